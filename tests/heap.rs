//! The space a backfill leaves behind, in a binary of its own: VACUUM can only reclaim rows no
//! open snapshot may still see, and a write transaction open in *any* database of the cluster
//! (another test's) holds back every snapshot's horizon — run beside the others, this test would
//! measure them, not the backfill.

mod common;

use common::walk::run_sql;
use common::{PgProject, plan_id};
use serde_json::json;

/// A backfill rewrites every row of a table whose pages are full: without VACUUM between its
/// batches, each new version goes to a new page and the heap doubles. The backfill vacuums as it
/// goes (every 1/16th of the rows), so later batches reuse the space of earlier ones. Measured
/// here: 1.39–1.44× alone, 1.60× with another test suite loading both cores (the VACUUM falls
/// behind the lanes), 2.17× without VACUUM; the bound sits between.
#[tokio::test]
async fn a_backfill_reuses_the_space_of_the_rows_it_rewrote() {
    const ROWS: i64 = 200_000;
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            &format!(
                "CREATE TABLE orders (id bigint PRIMARY KEY, amount integer NOT NULL, cents bigint);
                 INSERT INTO orders SELECT g, g % 1000 FROM generate_series(1, {ROWS}) g;"
            ),
        )
        .await;
        run_sql(db, "VACUUM ANALYZE orders").await;
    }
    let heap = || p.scalar(&p.prod, "SELECT pg_relation_size('orders')");
    let before = heap().await;
    let client = p.project.connect().await;
    let planned = client
        .ok(
            "plan",
            json!({"goal": "cents from amount", "target": "production",
                   "steps": [{"name": "cents", "backfill": {"table": "orders", "set": "cents = amount * 100",
                              "where": "cents IS NULL", "batch_size": 2000}}]}),
        )
        .await;
    let id = plan_id(&planned);
    client.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let applied = client.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM orders WHERE cents = amount * 100"
        )
        .await,
        ROWS
    );
    let growth = heap().await as f64 / before as f64;
    assert!(
        growth < 1.8,
        "the heap grew {growth:.2}x (a rewrite without vacuum doubles it)"
    );
}
