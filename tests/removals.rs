//! The removal templates on real PostgreSQL, with a writer running: `drop-index`, `drop-column`
//! and `drop-table` walked through their gates and rolled back (schema and data as they were),
//! and walked to the end, past their final step, after which rollback is refused.

mod common;

use common::walk::{apply_past_final, run_sql, walk_until, walk_with};
use common::{PgProject, pg_connect, plan_id, refusal_body};
use serde_json::json;
use sqlx::Connection;

const NICKNAMES: &str = "UPDATE accounts SET nickname = 'n' || id;
    ALTER TABLE accounts ALTER COLUMN nickname SET NOT NULL, ALTER COLUMN nickname SET DEFAULT 'anon';
    ALTER TABLE accounts ADD CONSTRAINT nickname_short CHECK (length(nickname) < 40);
    CREATE INDEX accounts_nickname_lower ON accounts (lower(nickname));
    COMMENT ON COLUMN accounts.nickname IS 'shown to other users'";

const AUDIT: &str = "CREATE TABLE audit_old (id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now());
    INSERT INTO audit_old (note) SELECT 'note ' || g FROM generate_series(1, 500) g;
    CREATE INDEX audit_old_at ON audit_old (at)";

#[tokio::test]
async fn drop_index_is_rebuilt_concurrently_by_rollback() {
    let w = walk_with(
        "drop-index",
        json!({"name": "ledger_account"}),
        "",
        &["ledger"],
        Some("SELECT to_regclass('ledger_account') IS NULL"),
    )
    .await;
    assert!(
        w.before
            .iter()
            .any(|l| l.starts_with("index|ledger_account|"))
    );
    assert!(
        !w.applied
            .iter()
            .any(|l| l.starts_with("index|ledger_account|"))
    );
}

#[tokio::test]
async fn drop_column_rolled_back_within_the_window_restores_every_value() {
    // A row inserted while the column is gone (by the probe) gets the column's default back.
    let probe = "WITH late AS (INSERT INTO accounts (email) VALUES ('late@example.com') RETURNING 1)
                 SELECT count(*) = 1 AND NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'nickname') FROM late";
    let w = walk_until(
        "drop-column",
        json!({"table": "accounts", "column": "nickname"}),
        NICKNAMES,
        &["accounts"],
        Some(probe),
        Some("purge"),
    )
    .await;
    assert!(!w.applied.iter().any(|l| l.contains("nickname")));
    let p = &w.project;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname IS DISTINCT FROM CASE WHEN email = 'late@example.com' THEN 'anon' ELSE 'n' || id END"
        )
        .await,
        0,
        "every value is back, the late row has the default"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts").await,
        20_001
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_tables WHERE schemaname = 'drydock' AND tablename LIKE '%dd_dropped'").await,
        0,
        "the copy set aside is gone with the rollback"
    );
    // The values came back in batches, each its own short transaction, not in one UPDATE under
    // the `down`'s lock (the writer waited for all 20,000 rows): no transaction wrote most rows.
    let largest = p
        .scalar(
            &p.prod,
            "SELECT max(n) FROM (SELECT count(*) AS n FROM accounts GROUP BY xmin::text) AS by_transaction",
        )
        .await;
    assert!(largest < 15_000, "one transaction wrote {largest} rows");
}

#[tokio::test]
async fn drop_table_rolled_back_within_the_window_comes_back_whole() {
    let w = walk_until(
        "drop-table",
        json!({"table": "audit_old"}),
        AUDIT,
        &["audit_old"],
        Some("SELECT to_regclass('audit_old') IS NULL AND to_regclass('drydock.audit_old_dd_dropped') IS NOT NULL"),
        Some("purge"),
    )
    .await;
    assert!(w.applied.is_empty(), "{:?}", w.applied);
    let p = &w.project;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM audit_old WHERE note = 'note ' || id"
        )
        .await,
        500
    );
}

#[tokio::test]
async fn past_the_final_step_the_copy_is_gone_and_rollback_is_refused() {
    let (p, _) = apply_past_final(
        "drop-column",
        json!({"table": "accounts", "column": "nickname"}),
        NICKNAMES,
    )
    .await;
    assert!(!p.has_column(&p.prod, "accounts", "nickname").await);
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_tables WHERE schemaname = 'drydock' AND tablename LIKE '%dd_dropped'").await,
        0
    );
    let (p, _) = apply_past_final("drop-table", json!({"table": "audit_old"}), AUDIT).await;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'audit_old%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn removals_refuse_what_rollback_could_not_bring_back() {
    let p = PgProject::new("").await;
    common::walk::run_sql(&p.prod, "CREATE TABLE nokey (a int, b text)").await;
    let c = p.project.connect().await;
    for (template, params, says) in [
        (
            "drop-table",
            json!({"table": "accounts"}),
            "ledger.ledger_account_id_fkey",
        ),
        (
            "drop-column",
            json!({"table": "nokey", "column": "b"}),
            "no primary key",
        ),
        (
            "drop-column",
            json!({"table": "accounts", "column": "id"}),
            "this template cannot carry over",
        ),
        (
            "drop-index",
            json!({"name": "accounts_pkey"}),
            "backs the constraint",
        ),
    ] {
        let r = c
            .call(
                "plan",
                json!({"goal": "remove", "target": "production", "template": template, "params": params}),
            )
            .await;
        let body = refusal_body(&r);
        assert_eq!(
            body["code"], "invalid-template-params",
            "{template}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{template}: {body}"
        );
    }
    c.close().await;
}

/// A drop-column rollback that stops half way through putting the values back (a session holds
/// a row set aside past every try of its batch) leaves the step half restored: the column is back,
/// some values are, the rest are still set aside. An apply refuses to go on over it; a rollback
/// again brings the column back once more (no error: it is there), puts back what is left and
/// ends the step — every value as it was, the application's own write kept.
#[tokio::test]
async fn a_drop_column_rollback_stopped_half_way_finishes_when_called_again() {
    let p =
        PgProject::new("lock_timeout = \"200ms\"\nlock_retries = 2\nlarge_table_rows = 1000").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, "UPDATE accounts SET nickname = 'n' || id; ANALYZE").await;
    }
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "drop nickname", "target": "production", "template": "drop-column",
                   "params": {"table": "accounts", "column": "nickname"}}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let gated = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(gated["gated"]["step"], "drop", "{gated}");
    let out = p.project.cli(&["release", &id, "drop", "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gated = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(gated["gated"]["step"], "purge", "{gated}");

    // A session holds one of the rows set aside past every try of its batch (a lock on the
    // table itself would stop the column coming back, before any batch).
    let mut app = pg_connect(&p.prod).await;
    let aside: String = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'drydock' AND tablename LIKE '%dd_dropped'",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; SELECT 1 FROM drydock.\"{aside}\" WHERE id = 19990 FOR UPDATE"
    )))
    .execute(&mut app)
    .await
    .unwrap();
    let failed = c
        .refused("rollback", json!({"plan_id": id, "reason": "still read"}))
        .await;
    assert_eq!(failed["code"], "sql-failed", "{failed}");
    let back = p
        .scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname IS NOT NULL",
        )
        .await;
    assert!(
        back > 0 && back < 20_000,
        "the batches before the held row committed: {back}"
    );
    let refused = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "rollback-incomplete", "{refused}");

    sqlx::raw_sql("COMMIT; UPDATE accounts SET email = 'held@example.com' WHERE id = 19990")
        .execute(&mut app)
        .await
        .unwrap();
    let rolled = c
        .ok("rollback", json!({"plan_id": id, "reason": "still read"}))
        .await;
    assert_eq!(rolled["status"], "rolled-back", "{rolled}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname IS DISTINCT FROM 'n' || id"
        )
        .await,
        0,
        "every value is back"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE id = 19990 AND email = 'held@example.com'"
        )
        .await,
        1,
        "the application's write is kept"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_tables WHERE schemaname = 'drydock' AND tablename LIKE '%dd_dropped'").await,
        0,
        "the copy set aside is gone with the rollback"
    );
    app.close().await.ok();
    c.close().await;
}
