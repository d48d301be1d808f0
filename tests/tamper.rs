//! A plan edited in the state store after approval: the SQL no longer matches the checksum the
//! engineer approved, so nothing of it may run, and the tampering is audited and logged.

mod common;

use common::Project;
use serde_json::json;
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn a_plan_edited_after_approval_is_refused_everywhere() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, common::add_column_plan()).await;
    let state = p.dir.path().join(".drydock/state.db");
    assert!(state.exists(), "the state store lives beside the config");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&state)
        .connect()
        .await
        .unwrap();
    let edited = sqlx::query(
        "UPDATE plans SET body = replace(body, 'DEFAULT ''free''', 'DEFAULT ''paid''') WHERE id = ?",
    )
    .bind(&id)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    conn.close().await.ok();

    for (tool, args) in [
        ("apply", json!({"plan_id": id})),
        ("dry-run", json!({"plan_id": id})),
        ("status", json!({"plan_id": id})),
    ] {
        let refused = c.refused(tool, args).await;
        assert_eq!(refused["code"], "plan-tampered", "{tool}: {refused}");
    }
    let show = p.cli(&["show", &id]);
    assert!(!show.status.success());
    assert!(String::from_utf8_lossy(&show.stderr).contains("plan-tampered"));
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'tier'"
        )
        .await,
        0,
        "nothing of the edited plan ran"
    );
    assert!(p.errors_md().contains("plan-tampered"));
    c.close().await;
}
