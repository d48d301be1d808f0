//! Desired state on a schema nobody here wrote (Pagila's `customer`: triggers, views, foreign
//! keys both ways): the agent says the table as it wants it, drydock plans the zero-downtime
//! steps, and after apply the catalog is what was asked (no difference left); after rollback
//! it is what it was.

mod common;

use common::walk::run_sql;
use common::{PgProject, plan_id, step_names};
use serde_json::{Value, json};

/// `customer` as Pagila's dump creates it (its trigger aside: `desired` holds tables).
const CUSTOMER: &str = "
CREATE TABLE public.customer (
    customer_id integer DEFAULT nextval('public.customer_customer_id_seq'::regclass) NOT NULL,
    store_id integer NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text,
    address_id integer NOT NULL,
    activebool boolean DEFAULT true NOT NULL,
    create_date date DEFAULT CURRENT_DATE NOT NULL,
    last_update timestamp with time zone DEFAULT now(),
    active integer
);
ALTER TABLE ONLY public.customer ADD CONSTRAINT customer_pkey PRIMARY KEY (customer_id);
CREATE INDEX idx_fk_address_id ON public.customer USING btree (address_id);
CREATE INDEX idx_fk_store_id ON public.customer USING btree (store_id);
CREATE INDEX idx_last_name ON public.customer USING btree (last_name);
ALTER TABLE ONLY public.customer
    ADD CONSTRAINT customer_address_id_fkey FOREIGN KEY (address_id) REFERENCES public.address(address_id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE ONLY public.customer
    ADD CONSTRAINT customer_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.store(store_id) ON UPDATE CASCADE ON DELETE RESTRICT;
";

async fn pagila() -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, include_str!("fixtures/pagila/schema.sql")).await;
        run_sql(db, include_str!("fixtures/pagila/data.sql")).await;
    }
    p
}

fn desired(sql: &str) -> Value {
    json!({"goal": "customer as wanted", "target": "production", "desired": sql})
}

#[tokio::test]
async fn a_desired_schema_walks_to_validated_and_leaves_no_difference_either_way() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let same = c.ok("plan", desired(CUSTOMER)).await;
    assert_eq!(same["nothing_to_change"], true, "{same}");
    assert!(same.get("plan_id").is_none(), "no plan stored: {same}");

    // Written the way an author writes, not the way the catalog prints: `IN`, no casts, a
    // UNIQUE constraint, short type names.
    let wanted = CUSTOMER
        .replace(
            "    active integer\n",
            "    active integer,\n    nickname varchar(40),\n    tier int NOT NULL DEFAULT 0,\n    CONSTRAINT customer_active_known CHECK (active IN (0, 1)),\n    UNIQUE (email)\n",
        )
        .replace("activebool boolean DEFAULT true NOT NULL", "activebool boolean DEFAULT true")
        + "COMMENT ON TABLE public.customer IS 'people who rent films';\nCOMMENT ON COLUMN customer.nickname IS 'what the store calls them';\n";
    let planned = c.ok("plan", desired(&wanted)).await;
    assert_eq!(planned["source"], "desired", "{planned}");
    for h in planned["analysis"]["hazards"].as_array().unwrap() {
        assert!(
            !matches!(h["severity"].as_str(), Some("high" | "critical")),
            "a desired plan with a {} hazard: {h}",
            h["severity"]
        );
    }
    let id = plan_id(&planned);
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["source"], "desired", "{status}");
    let steps = step_names(&status);
    // Each difference by its template: the NOT NULL column expanded and backfilled, the
    // index built concurrently, the CHECK added NOT VALID then validated.
    for part in [
        "add-column",
        "expand",
        "set-not-null",
        "add-index",
        "add-check",
        "validate",
        "nullable-customer-activebool",
    ] {
        assert!(
            steps.iter().any(|s| s.ends_with(part)),
            "no `{part}` step in {steps:?}"
        );
    }
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");

    let after = c.ok("plan", desired(&wanted)).await;
    assert_eq!(
        after["nothing_to_change"], true,
        "the catalog is what was asked: {after}"
    );

    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "desired round trip"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    let back = c.ok("plan", desired(CUSTOMER)).await;
    assert_eq!(
        back["nothing_to_change"], true,
        "the catalog is what it was: {back}"
    );
    c.close().await;
}

#[tokio::test]
async fn a_column_gone_and_another_added_is_asked_not_guessed() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let swapped = CUSTOMER.replace("    active integer\n", "    status integer\n");
    let r = c.refused("plan", desired(&swapped)).await;
    assert_eq!(r["code"], "ambiguous-change", "{r}");
    let fix = r["fix"].as_str().unwrap();
    assert!(
        fix.contains("\"customer.active\": \"status\"") && fix.contains("allow_drop"),
        "both readings, each with its answer: {fix}"
    );

    assert!(
        p.project.errors_md().contains("ambiguous-change"),
        "the refusal is a lesson in ERRORS.md"
    );

    let gone = CUSTOMER.replace("    email text,\n", "");
    let r = c.refused("plan", desired(&gone)).await;
    assert_eq!(r["code"], "drop-needs-consent", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("customer.email"),
        "{r}"
    );

    let mut renamed = desired(&swapped);
    renamed["renames"] = json!({"customer.active": "status"});
    let planned = c.ok("plan", renamed).await;
    let id = plan_id(&planned);
    let status = c.ok("status", json!({"plan_id": id})).await;
    let steps = step_names(&status);
    assert!(
        steps.iter().any(|s| s.ends_with("expand"))
            && steps.iter().any(|s| s.ends_with("contract")),
        "a rename is rename-column's expand and contract: {steps:?}"
    );

    let mut dropped = desired(&gone);
    dropped["allow_drop"] = json!(true);
    let planned = c.ok("plan", dropped).await;
    let status = c.ok("status", json!({"plan_id": plan_id(&planned)})).await;
    let last = status["steps"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["name"].as_str().unwrap().ends_with("purge"),
        "the drop's copy goes last, after the rollback window: {status}"
    );
    c.close().await;
}

#[tokio::test]
async fn drydock_diff_prints_the_steps_and_saves_nothing() {
    let p = pagila().await;
    let file = p.project.dir.path().join("customer.sql");
    std::fs::write(
        &file,
        CUSTOMER.replace(
            "    active integer\n",
            "    active integer,\n    nickname text\n",
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let v = p.project.cli_json(&[
        "diff",
        "--desired",
        path,
        "--target",
        "production",
        "--format",
        "json",
    ]);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{v}");
    assert!(
        steps[0]["up"].as_str().unwrap().contains("ADD COLUMN"),
        "{v}"
    );
    assert!(
        steps[0]["down"].as_str().unwrap().contains("DROP COLUMN"),
        "{v}"
    );
    assert!(v["hazards"].is_array(), "{v}");

    std::fs::write(&file, CUSTOMER).unwrap();
    let v = p.project.cli_json(&[
        "diff",
        "--desired",
        path,
        "--target",
        "production",
        "--format",
        "json",
    ]);
    assert_eq!(v["nothing_to_change"], true, "{v}");
    let v = p.project.cli_json(&["plans", "--format", "json"]);
    assert_eq!(
        v["plans"].as_array().map(Vec::len),
        Some(0),
        "diff stores no plan: {v}"
    );

    let out = p
        .project
        .cli(&["lint", "--desired", path, "--target", "production"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sample(sql: &str) -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, sql).await;
    }
    p
}

/// Every table of three public samples, given as its dump (or its author) wrote it, is what
/// the catalog has: PostgreSQL's printing (`integer`, `'x'::text`, `nextval(…)`, `ON UPDATE
/// CASCADE`, partitions) and the author's (`SERIAL`, `INT`, `VARCHAR(160)`) compare equal.
#[tokio::test]
async fn three_samples_as_written_are_nothing_to_change() {
    for (name, dump) in [
        ("pagila", include_str!("fixtures/pagila/schema.sql")),
        ("chinook", include_str!("fixtures/chinook/chinook.sql")),
        (
            "northwind",
            include_str!("fixtures/northwind/northwind.sql"),
        ),
    ] {
        let p = sample(dump).await;
        let c = p.project.connect().await;
        let ddl = common::walk::table_ddl(dump);
        assert!(ddl.matches("CREATE TABLE").count() >= 8, "{name}: {ddl}");
        let r = c.call("plan", desired(&ddl)).await;
        let body = r.structured_content.clone().unwrap_or_default();
        assert_eq!(
            body["nothing_to_change"],
            true,
            "{name}: {}",
            if r.is_error == Some(true) {
                format!("{:?}", r.content)
            } else {
                c.ok(
                    "status",
                    json!({"plan_id": body["plan_id"], "detail": true}),
                )
                .await["steps"]
                    .to_string()
            }
        );
        c.close().await;
    }
}

/// A whole schema file (Pagila's dump: `SET`s, functions, views, triggers, grants, owners) is
/// read as its tables: nothing to change on the database it made. What the agent's DDL would
/// run is admitted as agent SQL first: a default that reads the server's files is refused.
#[tokio::test]
async fn a_whole_schema_file_is_its_tables_and_its_sql_is_admitted_first() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let same = c
        .ok("plan", desired(include_str!("fixtures/pagila/schema.sql")))
        .await;
    assert_eq!(same["nothing_to_change"], true, "{same}");

    let reading = CUSTOMER.replace(
        "    active integer\n",
        "    active integer,\n    secret text DEFAULT pg_read_file('/etc/hostname')\n",
    );
    let r = c.refused("plan", desired(&reading)).await;
    assert_eq!(r["code"], "forbidden-statement", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("pg_read_file"),
        "{r}"
    );
    c.close().await;
}

/// `scope: "schema"` speaks for every table: one missing from `desired` is dropped (with
/// consent), a materialized view or a partition is not a table to drop.
#[tokio::test]
async fn a_schema_scope_drops_a_table_the_schema_leaves_out_only_with_consent() {
    let p = pagila().await;
    // Pagila alone: the project's own example table is not in Pagila's file.
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "DROP TABLE ledger; DROP VIEW rich_accounts; DROP TABLE accounts",
        )
        .await;
    }
    let c = p.project.connect().await;
    let schema = include_str!("fixtures/pagila/schema.sql");
    let whole = json!({"goal": "pagila as wanted", "target": "production", "desired": schema, "scope": "schema"});
    let same = c.ok("plan", whole.clone()).await;
    if same["nothing_to_change"] != true {
        let steps = c
            .ok(
                "status",
                json!({"plan_id": same["plan_id"], "detail": true}),
            )
            .await["steps"]
            .clone();
        panic!("Pagila as its file says is Pagila: {steps}");
    }

    // `film_category` left out of the file: every statement that names it. Views still read
    // it: the drop is refused naming them, consent or not.
    let without: String = schema
        .split(";\n")
        .filter(|stmt| !stmt.contains("film_category"))
        .collect::<Vec<_>>()
        .join(";\n");
    let mut args = whole.clone();
    args["desired"] = json!(without);
    let r = c.refused("plan", args.clone()).await;
    assert_eq!(r["code"], "drop-needs-consent", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("film_category"),
        "{r}"
    );
    args["allow_drop"] = json!(true);
    let r = c.refused("plan", args).await;
    assert!(
        r["message"].as_str().unwrap().contains("view film_list"),
        "a table views read is not dropped under them: {r}"
    );

    // A table nothing reads, on the target and not in the file: dropped the recoverable way.
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "CREATE TABLE scratch_notes (id integer PRIMARY KEY, note text)",
        )
        .await;
    }
    let r = c.refused("plan", whole.clone()).await;
    assert_eq!(r["code"], "drop-needs-consent", "{r}");
    let mut args = whole.clone();
    args["allow_drop"] = json!(true);
    let planned = c.ok("plan", args).await;
    let status = c.ok("status", json!({"plan_id": plan_id(&planned)})).await;
    let steps = step_names(&status);
    assert_eq!(
        steps,
        ["1-aside", "1-purge"],
        "drop-table's steps: {status}"
    );
    c.close().await;
}

#[tokio::test]
async fn a_table_outside_the_search_path_is_refused_by_name_or_created_by_drydocks_own_step() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "CREATE SCHEMA app; CREATE TABLE app.orders (id integer PRIMARY KEY, total integer NOT NULL)",
        )
        .await;
    }
    let c = p.project.connect().await;
    let same = c
        .ok(
            "plan",
            desired("CREATE TABLE app.orders (id int PRIMARY KEY, total int NOT NULL);"),
        )
        .await;
    assert_eq!(same["nothing_to_change"], true, "{same}");
    let r = c
        .refused(
            "plan",
            desired("CREATE TABLE app.orders (id int PRIMARY KEY, total int NOT NULL, note text);"),
        )
        .await;
    assert_eq!(r["code"], "unsupported-change", "{r}");
    assert!(r["message"].as_str().unwrap().contains("app.orders"), "{r}");
    let planned = c
        .ok(
            "plan",
            desired("CREATE TABLE app.orders (id int PRIMARY KEY, total int NOT NULL);\nCREATE TABLE app.refunds (id int PRIMARY KEY, order_id int REFERENCES app.orders);"),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    c.close().await;
}
