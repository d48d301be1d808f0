//! The PostgreSQL analysis against a real catalog: large and tiny tables, a view, an enum and a
//! validated CHECK. Each hazard class in a "hazard" and a "safe" variant, through `plan` over
//! MCP and through `drydock lint`.

mod common;

use common::{PgProject, pg_connect};
use serde_json::{Value, json};

async fn project() -> PgProject {
    let p = PgProject::new("large_table_rows = 1000").await;
    let mut c = pg_connect(&p.prod).await;
    sqlx::raw_sql(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE tiny (id int PRIMARY KEY, m mood, label varchar(20));
         INSERT INTO tiny VALUES (1, 'ok', 'a');
         ALTER TABLE accounts ADD COLUMN region text DEFAULT 'eu';
         ALTER TABLE accounts ADD CONSTRAINT region_present CHECK (region IS NOT NULL);
         ALTER TABLE accounts ADD COLUMN note text;
         ANALYZE;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    p
}

fn codes(planned: &Value) -> Vec<(String, String)> {
    planned["analysis"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["code"].as_str().unwrap().to_string(),
                h["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn hazards_of(c: &common::Client, up: &str) -> Vec<(String, String)> {
    let planned = c
        .ok(
            "plan",
            json!({"goal": "g", "target": "production", "steps": [{"up": up, "down": "SELECT 1"}]}),
        )
        .await;
    codes(&planned)
}

fn has(h: &[(String, String)], code: &str, severity: &str) -> bool {
    h.iter().any(|(c, s)| c == code && s == severity)
}

fn lacks(h: &[(String, String)], code: &str) -> bool {
    !h.iter().any(|(c, _)| c == code)
}

#[tokio::test]
async fn each_hazard_class_and_its_safe_variant() {
    let p = project().await;
    let c = p.project.connect().await;

    // blocking-scan: SET NOT NULL unproven vs proven by a validated CHECK
    assert!(has(
        &hazards_of(&c, "ALTER TABLE accounts ALTER COLUMN note SET NOT NULL").await,
        "blocking-scan",
        "high"
    ));
    assert!(lacks(
        &hazards_of(&c, "ALTER TABLE accounts ALTER COLUMN region SET NOT NULL").await,
        "blocking-scan"
    ));
    // ... and proven within the plan: NOT VALID, VALIDATE, SET NOT NULL
    let h = hazards_of(
        &c,
        "ALTER TABLE accounts ADD CONSTRAINT note_present CHECK (note IS NOT NULL) NOT VALID;
         ALTER TABLE accounts VALIDATE CONSTRAINT note_present;
         ALTER TABLE accounts ALTER COLUMN note SET NOT NULL",
    )
    .await;
    assert!(lacks(&h, "blocking-scan"), "{h:?}");
    assert!(has(
        &hazards_of(
            &c,
            "ALTER TABLE ledger ADD CONSTRAINT pos CHECK (amount >= 0)"
        )
        .await,
        "blocking-scan",
        "high"
    ));

    // blocking-rewrite: not binary-coercible vs coercible; volatile vs constant default
    assert!(has(
        &hazards_of(&c, "ALTER TABLE ledger ALTER COLUMN amount TYPE bigint").await,
        "blocking-rewrite",
        "high"
    ));
    assert!(lacks(
        &hazards_of(&c, "ALTER TABLE accounts ALTER COLUMN email TYPE text").await,
        "blocking-rewrite"
    ));
    assert!(has(
        &hazards_of(
            &c,
            "ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid()"
        )
        .await,
        "blocking-rewrite",
        "high"
    ));
    assert!(lacks(
        &hazards_of(&c, "ALTER TABLE accounts ADD COLUMN visits int DEFAULT 0").await,
        "blocking-rewrite"
    ));

    // blocking-index-build vs CONCURRENTLY (which is non-transactional instead)
    assert!(has(
        &hazards_of(&c, "CREATE INDEX accounts_email ON accounts (email)").await,
        "blocking-index-build",
        "high"
    ));
    let h = hazards_of(
        &c,
        "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)",
    )
    .await;
    assert!(
        lacks(&h, "blocking-index-build") && has(&h, "non-transactional", "medium"),
        "{h:?}"
    );

    // lock-held-long: strong lock first, slow work after, in one transaction
    assert!(has(
        &hazards_of(
            &c,
            "ALTER TABLE accounts ADD COLUMN x int; UPDATE accounts SET balance = balance + 1"
        )
        .await,
        "lock-held-long",
        "high"
    ));

    // unbatched-write vs a small table
    assert!(has(
        &hazards_of(&c, "UPDATE accounts SET balance = 0").await,
        "unbatched-write",
        "high"
    ));
    assert!(lacks(
        &hazards_of(&c, "UPDATE tiny SET label = 'b'").await,
        "unbatched-write"
    ));

    // destructive and breaking-change; narrowing a type
    let h = hazards_of(&c, "ALTER TABLE accounts DROP COLUMN note").await;
    assert!(
        has(&h, "destructive", "critical")
            && has(&h, "breaking-change", "medium")
            && has(&h, "irreversible", "high"),
        "{h:?}"
    );
    assert!(has(
        &hazards_of(&c, "ALTER TABLE accounts RENAME COLUMN email TO mail").await,
        "breaking-change",
        "medium"
    ));
    assert!(has(
        &hazards_of(
            &c,
            "ALTER TABLE accounts ALTER COLUMN email TYPE varchar(5)"
        )
        .await,
        "destructive",
        "critical"
    ));

    // a column a view is built on: the drop would fail
    let h = hazards_of(&c, "ALTER TABLE accounts DROP COLUMN email").await;
    assert!(has(&h, "breaking-change", "high"), "{h:?}");

    // context: the same statement on a tiny table, or on a table created in the plan, is low
    assert!(has(
        &hazards_of(&c, "ALTER TABLE tiny ADD CONSTRAINT pos CHECK (id > 0)").await,
        "blocking-scan",
        "low"
    ));
    let h = hazards_of(
        &c,
        "CREATE TABLE fresh (id int); CREATE INDEX fresh_id ON fresh (id)",
    )
    .await;
    assert!(lacks(&h, "blocking-index-build"), "{h:?}");

    // an enum-typed column and a view are part of the impact
    let planned = c.ok("plan", json!({"goal": "g", "target": "production", "steps": [{"up": "ALTER TABLE accounts ADD COLUMN m mood", "down": "ALTER TABLE accounts DROP COLUMN m"}]})).await;
    assert_eq!(
        planned["analysis"]["impact"][0]["views"],
        json!(["rich_accounts"])
    );
    assert_eq!(planned["analysis"]["impact"][0]["rows"], 20000);
    assert_eq!(
        planned["analysis"]["statements"][0]["lock"],
        "ACCESS EXCLUSIVE"
    );
    assert_eq!(planned["analysis"]["risk"], "low");
    c.close().await;
}

#[tokio::test]
async fn statements_that_do_not_parse_are_named() {
    let p = project().await;
    let c = p.project.connect().await;
    let r = c
        .refused("plan", json!({"goal": "g", "target": "production", "steps": [{"name": "s", "up": "ALTER TABLE accounts ADD COLUMN x int; ALTER TABLE accounts ADD COLUM y int", "down": "SELECT 1"}]}))
        .await;
    assert_eq!(r["code"], "invalid-input");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("statement 2") && msg.contains("COLUM y"),
        "{msg}"
    );
    c.close().await;
}

#[tokio::test]
async fn the_dry_run_measurement_stands_beside_the_analysis() {
    let p = project().await;
    let c = p.project.connect().await;
    let planned = c
        .ok("plan", json!({"goal": "g", "target": "production", "steps": [{"up": "ALTER TABLE ledger ALTER COLUMN amount TYPE bigint", "down": "ALTER TABLE ledger ALTER COLUMN amount TYPE integer"}]}))
        .await;
    let id = planned["plan_id"].as_str().unwrap();
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(
        dry["disagreements"],
        json!([]),
        "static and measured agree on a rewrite under ACCESS EXCLUSIVE: {dry}"
    );
    let status = c.ok("status", json!({"plan_id": id, "detail": true})).await;
    assert_eq!(
        status["report"]["analysis"]["measured"]["statements"][0]["rewritten"],
        json!(["ledger"])
    );
    assert!(
        status["report"]["analysis"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["code"] == "blocking-rewrite")
    );
    c.close().await;
}

#[tokio::test]
async fn lint_reports_hazards_and_fails_at_the_threshold() {
    let p = project().await;
    let dir = p.project.dir.path();
    std::fs::write(
        dir.join("risky.sql"),
        "ALTER TABLE accounts ALTER COLUMN note SET NOT NULL;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("safe.sql"),
        "ALTER TABLE accounts ADD COLUMN visits int DEFAULT 0;\n",
    )
    .unwrap();
    let lint = |file: &str, fail_on: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(&p.project.config_path)
            .args([
                "lint",
                file,
                "--target",
                "production",
                "--format",
                "json",
                "--fail-on",
                fail_on,
            ])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let out = lint("risky.sql", "high");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hazards"][0]["code"], "blocking-scan");
    assert!(
        v["hazards"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("NOT VALID")
    );
    assert_eq!(lint("risky.sql", "critical").status.code(), Some(0));
    // --explain: the measured rule behind each hazard, and PostgreSQL's documentation of it.
    let explained = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--config")
        .arg(&p.project.config_path)
        .args(["lint", "risky.sql", "--target", "production", "--explain"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        text.contains("measured: pg_stat_xact_user_tables.seq_scan")
            && text.contains("docs: https://www.postgresql.org/docs/current/sql-altertable.html"),
        "{text}"
    );
    let out = lint("safe.sql", "low");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The DDL beyond tables and columns, on a real catalog: partitions (a partitioned table's size
/// is its partitions'), materialized views, domains, enums and constraints made from indexes —
/// each hazard with the variant that avoids it.
#[tokio::test]
async fn partitions_views_domains_enums_and_index_constraints() {
    let p = project().await;
    let mut c = pg_connect(&p.prod).await;
    sqlx::raw_sql(
        "CREATE TABLE events (id bigint NOT NULL, at int) PARTITION BY RANGE (id);
         CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (1000);
         CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (1000) TO (2000);
         INSERT INTO events SELECT g, g % 7 FROM generate_series(0, 1999) g;
         CREATE TABLE loose (id bigint NOT NULL, at int);
         INSERT INTO loose SELECT g, 1 FROM generate_series(2000, 3999) g;
         CREATE TABLE proven (id bigint NOT NULL, at int, CONSTRAINT proven_bound CHECK (id >= 4000 AND id < 6000));
         INSERT INTO proven SELECT g, 1 FROM generate_series(4000, 5999) g;
         CREATE DOMAIN cents AS integer;
         ALTER TABLE accounts ADD COLUMN fee cents;
         CREATE MATERIALIZED VIEW balances AS SELECT id, balance FROM accounts;
         CREATE UNIQUE INDEX balances_id ON balances (id);
         CREATE TABLE keyed (id bigint, code text);
         INSERT INTO keyed SELECT g, 'c' || g FROM generate_series(1, 5000) g;
         CREATE UNIQUE INDEX keyed_id ON keyed (id);
         CREATE UNIQUE INDEX keyed_code ON keyed (code);
         ANALYZE;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let cl = p.project.connect().await;

    // Partitions: ATTACH reads the partition unless a validated CHECK proves the bound.
    let h = hazards_of(
        &cl,
        "ALTER TABLE events ATTACH PARTITION loose FOR VALUES FROM (2000) TO (4000)",
    )
    .await;
    assert!(has(&h, "blocking-scan", "high"), "{h:?}");
    let h = hazards_of(
        &cl,
        "ALTER TABLE events ATTACH PARTITION proven FOR VALUES FROM (4000) TO (6000)",
    )
    .await;
    assert!(lacks(&h, "blocking-scan"), "{h:?}");
    // An index on the parent is built on every partition: 2,000 rows in all (each has 1,000,
    // below large_table_rows = 1000 only together); ON ONLY builds nothing.
    let planned = cl
        .ok("plan", json!({"goal": "g", "target": "production",
                            "steps": [{"up": "CREATE INDEX events_at ON events (at)", "down": "DROP INDEX events_at"}]}))
        .await;
    assert!(
        has(&codes(&planned), "blocking-index-build", "high"),
        "{planned}"
    );
    let facts = &planned["analysis"]["statements"][0];
    assert_eq!(
        facts["tables"],
        json!(["events", "events_a", "events_b"]),
        "{facts}"
    );
    let h = hazards_of(&cl, "CREATE INDEX events_at ON ONLY events (at)").await;
    assert!(lacks(&h, "blocking-index-build"), "{h:?}");

    // Materialized views: REFRESH blocks readers while it recomputes; CONCURRENTLY does not.
    let h = hazards_of(&cl, "REFRESH MATERIALIZED VIEW balances").await;
    assert!(has(&h, "blocking-rewrite", "high"), "{h:?}");
    let h = hazards_of(&cl, "REFRESH MATERIALIZED VIEW CONCURRENTLY balances").await;
    assert!(lacks(&h, "blocking-rewrite"), "{h:?}");

    // Domains: a new constraint is checked against every column of the domain, named.
    let planned = cl
        .ok("plan", json!({"goal": "g", "target": "production",
                            "steps": [{"up": "ALTER DOMAIN cents ADD CONSTRAINT cents_positive CHECK (VALUE >= 0)", "down": "ALTER DOMAIN cents DROP CONSTRAINT cents_positive"}]}))
        .await;
    let scan = planned["analysis"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["code"] == "blocking-scan")
        .unwrap_or_else(|| panic!("{planned}"));
    assert!(
        scan["message"].as_str().unwrap().contains("accounts"),
        "{scan}"
    );
    let h = hazards_of(
        &cl,
        "ALTER DOMAIN cents ADD CONSTRAINT cents_positive CHECK (VALUE >= 0) NOT VALID",
    )
    .await;
    assert!(lacks(&h, "blocking-scan"), "{h:?}");

    // Enums: renaming a label breaks code that writes it; adding one does not.
    let h = hazards_of(&cl, "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'").await;
    assert!(has(&h, "breaking-change", "high"), "{h:?}");
    let h = hazards_of(&cl, "ALTER TYPE mood ADD VALUE 'meh'").await;
    assert!(lacks(&h, "breaking-change"), "{h:?}");

    // Constraints from indexes: a primary key on a nullable column implies SET NOT NULL (a
    // scan); UNIQUE USING INDEX is instant.
    let h = hazards_of(
        &cl,
        "ALTER TABLE keyed ADD CONSTRAINT keyed_pk PRIMARY KEY USING INDEX keyed_id",
    )
    .await;
    assert!(has(&h, "blocking-scan", "high"), "{h:?}");
    let h = hazards_of(
        &cl,
        "ALTER TABLE keyed ADD CONSTRAINT keyed_code_key UNIQUE USING INDEX keyed_code",
    )
    .await;
    assert!(
        lacks(&h, "blocking-scan") && lacks(&h, "blocking-index-build"),
        "{h:?}"
    );
    cl.close().await;
}

/// Names nothing defines — tables, columns, types, schemas — are `unknown-object` with the
/// nearest existing name as the fix; what the plan creates first is known; a schema dropped
/// with CASCADE names its tables and counts their rows; a table emptied earlier is small.
#[tokio::test]
async fn unknown_names_get_the_nearest_and_the_plan_state_counts() {
    let p = project().await;
    let mut c = pg_connect(&p.prod).await;
    sqlx::raw_sql(
        "CREATE SCHEMA reports;
         CREATE TABLE reports.daily (id int, total int);
         INSERT INTO reports.daily SELECT g, g FROM generate_series(1, 3000) g;
         CREATE TABLE reports.monthly (id int);
         ANALYZE;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let cl = p.project.connect().await;
    let unknown = |planned: &Value| -> Option<(String, String)> {
        planned["analysis"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["code"] == "unknown-object")
            .map(|h| {
                (
                    h["message"].as_str().unwrap().to_string(),
                    h["fix"].as_str().unwrap().to_string(),
                )
            })
    };
    let plan = |up: &str| json!({"goal": "g", "target": "production", "steps": [{"up": up, "down": "SELECT 1"}]});
    for (up, name, nearest) in [
        (
            "ALTER TABLE acounts ADD COLUMN x int",
            "acounts",
            "accounts",
        ),
        (
            "ALTER TABLE accounts ALTER COLUMN balanse SET NOT NULL",
            "balanse",
            "balance",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN feeling moood",
            "moood",
            "mood",
        ),
        ("CREATE TABLE report.weekly (id int)", "report", "reports"),
        ("ALTER TYPE moods ADD VALUE 'meh'", "moods", "mood"),
    ] {
        let planned = cl.ok("plan", plan(up)).await;
        let (message, fix) = unknown(&planned).unwrap_or_else(|| panic!("{up}: {planned}"));
        assert!(message.contains(name), "{up}: {message}");
        assert!(
            fix.contains(&format!("did you mean `{nearest}`")),
            "{up}: {fix}"
        );
        assert_eq!(planned["analysis"]["risk"], "high", "{up}");
    }
    for up in [
        "CREATE TYPE tier AS ENUM ('free', 'paid'); ALTER TABLE accounts ADD COLUMN tier tier",
        "CREATE SCHEMA archive; CREATE TABLE archive.old (id int)",
        "ALTER TABLE accounts ADD COLUMN visits bigserial",
        "DROP SCHEMA IF EXISTS nothing_here",
    ] {
        let planned = cl.ok("plan", plan(up)).await;
        assert!(unknown(&planned).is_none(), "{up}: {planned}");
    }

    // DROP SCHEMA … CASCADE: the tables lost, named, and their rows counted — never "~0 rows".
    let planned = cl.ok("plan", plan("DROP SCHEMA reports CASCADE")).await;
    let lost = planned["analysis"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["code"] == "destructive")
        .unwrap_or_else(|| panic!("{planned}"))
        .clone();
    assert_eq!(lost["severity"], "critical", "{lost}");
    let message = lost["message"].as_str().unwrap();
    assert!(
        message.contains("`reports.daily` (~3000 rows)") && message.contains("`reports.monthly`"),
        "{message}"
    );

    // A table emptied earlier in the plan is small: building an index on it blocks nobody long.
    let h = hazards_of(
        &cl,
        "TRUNCATE ledger; CREATE INDEX ledger_amount ON ledger (amount)",
    )
    .await;
    assert!(
        h.iter()
            .any(|(c, s)| c == "blocking-index-build" && s == "low"),
        "{h:?}"
    );
    cl.close().await;
}
