//! The templates that move rows between tables, on real PostgreSQL with a writer running:
//! planned, dry-run (rollback verified on data), applied in batches through their gates,
//! validated and rolled back to the rows as they were.

mod common;

use common::walk::{apply_past_final, walk_until, walk_with};
use common::{PgProject, refusal_body};
use serde_json::json;

const EVENTS: &str =
    "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
    INSERT INTO events (kind, at) SELECT 'k' || g, g FROM generate_series(1, 5000) g;
    CREATE TABLE events_archive (id bigint PRIMARY KEY, kind text NOT NULL, at integer NOT NULL)";

#[tokio::test]
async fn move_data_copies_then_deletes_the_copied_rows_and_rollback_puts_them_back() {
    let w = walk_with(
        "move-data",
        json!({"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"],
               "where": "at <= 3000", "delete_source": true, "batch_size": 400}),
        EVENTS,
        &["events", "events_archive"],
        Some("SELECT (SELECT count(*) FROM events_archive WHERE kind = 'k' || id AND at = id) = 3000
                 AND (SELECT count(*) FROM events) = 2000 AND (SELECT min(at) FROM events) = 3001"),
    )
    .await;
    let p = &w.project;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM events WHERE kind = 'k' || id AND at = id"
        )
        .await,
        5000,
        "every deleted row is back as it was"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM events_archive")
            .await,
        0,
        "the copied rows are gone"
    );
}

#[tokio::test]
async fn move_data_without_delete_leaves_the_source_alone() {
    let w = walk_with(
        "move-data",
        json!({"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"]}),
        EVENTS,
        &["events", "events_archive"],
        Some("SELECT (SELECT count(*) FROM events_archive) = 5000 AND (SELECT count(*) FROM events) = 5000"),
    )
    .await;
    let p = &w.project;
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM events_archive")
            .await,
        0
    );
}

#[tokio::test]
async fn move_data_refuses_what_it_could_not_undo() {
    let p = PgProject::new("").await;
    common::walk::run_sql(&p.prod, EVENTS).await;
    let c = p.project.connect().await;
    for (params, says) in [
        (
            json!({"from_table": "events", "to_table": "events_archive", "columns": ["kind", "at"]}),
            "must include `id`",
        ),
        (
            json!({"from_table": "events", "to_table": "events_archiv", "columns": ["id"]}),
            "did you mean `events_archive`",
        ),
        (
            json!({"from_table": "events", "to_table": "accounts", "columns": ["id", "kind"]}),
            "`accounts` has no column `kind`",
        ),
        (
            json!({"from_table": "events", "to_table": "events_archive", "columns": ["id"], "where": "true; DROP TABLE events"}),
            "is not an SQL expression",
        ),
    ] {
        let r = c
            .call(
                "plan",
                json!({"goal": "archive", "target": "production", "template": "move-data", "params": params}),
            )
            .await;
        let body = refusal_body(&r);
        assert_eq!(body["code"], "invalid-template-params", "{body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    c.close().await;
}

const NICKNAMES: &str = "UPDATE accounts SET nickname = 'n' || id, score = id % 7";

#[tokio::test]
async fn split_table_keeps_the_new_table_in_step_and_rolls_back_before_the_contract() {
    let params = json!({"table": "accounts", "new_table": "account_profiles", "columns": ["nickname", "score"], "key": "id"});
    let w = walk_until(
        "split-table",
        params.clone(),
        NICKNAMES,
        &["accounts", "account_profiles"],
        // A row inserted and one updated after the copy reach the new table through the trigger.
        Some("WITH ins AS (INSERT INTO accounts (email, nickname, score) VALUES ('late@example.com', 'late', 3) RETURNING id),
                   upd AS (UPDATE accounts SET nickname = 'renamed' WHERE id = 5 RETURNING id)
              SELECT (SELECT count(*) FROM ins) = 1 AND (SELECT count(*) FROM upd) = 1"),
        Some("contract"),
    )
    .await;
    assert!(
        w.applied
            .iter()
            .any(|l| l.starts_with("column|account_profiles.nickname|text"))
    );
    let (p, _) = apply_past_final("split-table", params, NICKNAMES).await;
    assert!(!p.has_column(&p.prod, "accounts", "nickname").await);
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM account_profiles WHERE nickname = 'n' || id AND score = id % 7"
        )
        .await,
        20_000,
        "every row's values are in the new table"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal").await,
        0,
        "the contract dropped the trigger"
    );
}

const FLAGS: &str =
    "CREATE TABLE account_flags (id bigint PRIMARY KEY, vip boolean NOT NULL, note text);
    INSERT INTO account_flags SELECT id, id % 2 = 0, 'note ' || id FROM accounts WHERE id % 3 = 0";

#[tokio::test]
async fn merge_tables_fills_the_columns_and_rolls_back_before_the_contract() {
    let params = json!({"table": "accounts", "from_table": "account_flags", "columns": ["vip", "note"], "key": "id"});
    walk_until(
        "merge-tables",
        params.clone(),
        FLAGS,
        &["accounts", "account_flags"],
        Some(
            "WITH upd AS (UPDATE account_flags SET note = 'changed' WHERE id = 3 RETURNING id)
              SELECT (SELECT count(*) FROM upd) = 1",
        ),
        Some("contract"),
    )
    .await;
    let (p, _) = apply_past_final("merge-tables", params, FLAGS).await;
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE vip IS NOT NULL AND note = 'note ' || id AND vip = (id % 2 = 0)").await,
        20_000 / 3,
        "every paired row has its values"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE id % 3 <> 0 AND (vip IS NOT NULL OR note IS NOT NULL)").await,
        0,
        "rows without a pair stay NULL"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_class WHERE relname = 'account_flags'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_copy_into_a_serial_key_moves_its_sequence_past_the_copied_keys() {
    // The archive hands out its own keys too: after the copy, its next one must not be a key a
    // copied row already has.
    let setup = "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
        INSERT INTO events (kind, at) SELECT 'k' || g, g FROM generate_series(1, 3000) g;
        CREATE TABLE events_archive (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL)";
    walk_with(
        "move-data",
        json!({"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"]}),
        setup,
        &["events", "events_archive"],
        Some("WITH n AS (INSERT INTO events_archive (kind, at) VALUES ('written by the application', 0) RETURNING id)
              SELECT (SELECT id FROM n) = 3001"),
    )
    .await;
}
