//! Statements analysed per second on a large PostgreSQL migration file (parse with pg_query,
//! classify, run every hazard rule against a catalog). Run: `cargo bench --bench analysis`.
//! Under `cargo test` it does nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use drydock::analysis;
use drydock::config::Policy;
use drydock::db::{Catalog, Column, TableInfo};
use drydock::plan::{Body, Step};

const TEMPLATES: &[&str] = &[
    "ALTER TABLE t{n} ADD COLUMN c{i} integer DEFAULT 0",
    "ALTER TABLE t{n} ALTER COLUMN name TYPE text",
    "ALTER TABLE t{n} ALTER COLUMN id TYPE bigint",
    "CREATE INDEX CONCURRENTLY t{n}_c{i} ON t{n} (name)",
    "ALTER TABLE t{n} ADD CONSTRAINT k{i} CHECK (id > 0) NOT VALID",
    "ALTER TABLE t{n} VALIDATE CONSTRAINT k{i}",
    "UPDATE t{n} SET name = lower(name) WHERE id BETWEEN {i} AND {i} + 1000",
    "CREATE TABLE n{i} (id bigint PRIMARY KEY, payload jsonb NOT NULL DEFAULT '{}'::jsonb, created_at timestamptz DEFAULT now())",
    "ALTER TABLE t{n} RENAME COLUMN name TO name_{i}",
    "DELETE FROM t{n} WHERE id = {i}",
];

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut tables = BTreeMap::new();
    for n in 0..50 {
        let col = |name: &str, ty: &str| Column {
            name: name.into(),
            ty: ty.into(),
            nullable: true,
            default: None,
            primary_key: false,
            comment: None,
        };
        tables.insert(
            format!("t{n}"),
            TableInfo {
                rows: if n % 2 == 0 { 5_000_000 } else { 500 },
                columns: vec![col("id", "integer"), col("name", "character varying(100)")],
                ..TableInfo::default()
            },
        );
    }
    let catalog = Catalog {
        engine: drydock::sql::Dialect::Postgres,
        tables,
        ..Catalog::default()
    };
    let policy = Policy::default();
    for &count in &[1_000usize, 10_000] {
        let sql: String = (0..count)
            .map(|i| {
                TEMPLATES[i % TEMPLATES.len()]
                    .replace("{n}", &(i % 50).to_string())
                    .replace("{i}", &i.to_string())
                    + ";\n"
            })
            .collect();
        // Steps of 10 statements each, as a long migration file split into transactions.
        let steps: Vec<Step> = sql
            .lines()
            .collect::<Vec<_>>()
            .chunks(10)
            .enumerate()
            .map(|(k, c)| Step {
                name: Some(format!("s{k}")),
                up: Some(c.join("\n")),
                down: Some("SELECT 1".into()),
                backfill: None,
                gate: None,
                restore: None,
            })
            .collect();
        let body = Body::new("production", steps, vec![]).expect("body");
        let mut best = f64::MAX;
        let mut hazards = 0;
        for _ in 0..5 {
            let t0 = Instant::now();
            let a = analysis::analyze(&body, &catalog, &policy, true).expect("analysis");
            best = best.min(t0.elapsed().as_secs_f64());
            hazards = a.hazards.len();
        }
        println!(
            "{count:>6} statements ({} KiB): best of 5 {:.1} ms, {:.0} statements/s, {hazards} hazards",
            sql.len() / 1024,
            best * 1000.0,
            count as f64 / best
        );
    }
}
