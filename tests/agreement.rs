//! The analysis checked against PostgreSQL, generated: proptest draws a catalog (tables with
//! columns of several types, nullable or not, proven NOT NULL or not, a foreign key, a
//! partitioned table and a loose partition, a materialized view, a domain, an enum) and
//! migrations from a grammar of statement families; each migration is analysed against the real
//! catalog and run in a dry-run sandbox (one transaction, rolled back), and every difference
//! between the predicted and the measured lock, rewrite and full scan is a disagreement. The test
//! prints the figures per family and fails on any disagreement in a family drydock claims to
//! cover (proptest then shrinks it to the smallest migration that disagrees).

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;

use drydock::analysis::agreement::{Disagreement, disagreements};
use drydock::config::Config;
use drydock::db::{Stmt, Target};
use drydock::plan::{Body, Step};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

/// Catalogs drawn per run, and migrations per catalog: a few hundred migrations in all.
const CATALOGS: u32 = 24;
/// The draw is reproducible (CI sees the same migrations every run); set
/// `DRYDOCK_AGREEMENT_SEED` to explore others.
const SEED: u64 = 20_261_126;
const MIGRATIONS: std::ops::Range<usize> = 8..14;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Bigint,
    Text,
    Varchar,
    Numeric,
    Bool,
    Timestamptz,
}

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::Int => "integer",
            Ty::Bigint => "bigint",
            Ty::Text => "text",
            Ty::Varchar => "varchar(20)",
            Ty::Numeric => "numeric(10,2)",
            Ty::Bool => "boolean",
            Ty::Timestamptz => "timestamptz",
        }
    }

    /// A value of the type for row `g` of `generate_series`.
    fn value(self) -> &'static str {
        match self {
            Ty::Int | Ty::Bigint => "g",
            Ty::Text | Ty::Varchar => "'v' || g",
            Ty::Numeric => "g / 7.0",
            Ty::Bool => "g % 2 = 0",
            Ty::Timestamptz => "now() - g * interval '1 minute'",
        }
    }
}

#[derive(Debug, Clone)]
struct Col {
    ty: Ty,
    not_null: bool,
    /// A validated `CHECK (c IS NOT NULL)` proves it.
    proven: bool,
    indexed: bool,
}

/// One generated catalog. `t0` (primary key `id`) and `t1` (a unique index on `id`, no primary
/// key; optionally a foreign key to `t0`), each with columns `c0..`; the fixed objects around
/// them are in `FIXED`.
#[derive(Debug, Clone)]
struct Catalog {
    rows: [u32; 2],
    cols: [Vec<Col>; 2],
    fk: bool,
    /// The loose partition carries a validated CHECK that proves its bound.
    bound_proven: bool,
    t1_id_not_null: bool,
}

fn ty() -> impl Strategy<Value = Ty> {
    prop_oneof![
        Just(Ty::Int),
        Just(Ty::Bigint),
        Just(Ty::Text),
        Just(Ty::Varchar),
        Just(Ty::Numeric),
        Just(Ty::Bool),
        Just(Ty::Timestamptz),
    ]
}

fn col() -> impl Strategy<Value = Col> {
    (ty(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(ty, not_null, proven, indexed)| Col {
            ty,
            not_null,
            proven: proven && !not_null,
            indexed,
        },
    )
}

fn catalog() -> impl Strategy<Value = Catalog> {
    let rows = prop_oneof![Just(0u32), Just(7), Just(300)];
    (
        [rows.clone(), rows],
        [
            prop::collection::vec(col(), 1..4),
            prop::collection::vec(col(), 1..4),
        ],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rows, cols, fk, bound_proven, t1_id_not_null)| Catalog {
            rows,
            cols,
            fk,
            bound_proven,
            t1_id_not_null,
        })
}

const FIXED: &str = "
    CREATE TYPE mood AS ENUM ('ok', 'sad');
    CREATE DOMAIN score_d AS integer;
    CREATE TABLE events (id bigint NOT NULL, at integer, payload text) PARTITION BY RANGE (id);
    CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (1000);
    CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (1000) TO (2000);
    INSERT INTO events SELECT g, g % 10, 'p' || g FROM generate_series(0, 1999, 7) g;
    CREATE TABLE events_c (id bigint NOT NULL, at integer, payload text);
    INSERT INTO events_c SELECT g, g % 10, 'p' || g FROM generate_series(2000, 2999, 7) g;
";

impl Catalog {
    fn setup(&self) -> String {
        let mut sql = FIXED.to_string();
        for t in 0..2 {
            let mut defs = vec![if t == 0 {
                "id bigint PRIMARY KEY".to_string()
            } else if self.t1_id_not_null {
                "id bigint NOT NULL".to_string()
            } else {
                "id bigint".to_string()
            }];
            let mut values = vec!["g".to_string()];
            for (i, c) in self.cols[t].iter().enumerate() {
                defs.push(format!(
                    "c{i} {}{}",
                    c.ty.sql(),
                    if c.not_null { " NOT NULL" } else { "" }
                ));
                values.push(c.ty.value().to_string());
            }
            if t == 0 {
                defs.push("score score_d".into());
                values.push("g".into());
            } else {
                defs.push("m mood".into());
                defs.push("ref bigint".into());
                values.push("'ok'".into());
                values.push("g".into());
            }
            sql.push_str(&format!("CREATE TABLE t{t} ({});\n", defs.join(", ")));
            sql.push_str(&format!(
                "INSERT INTO t{t} SELECT {} FROM generate_series(1, {}) g;\n",
                values.join(", "),
                self.rows[t]
            ));
            for (i, c) in self.cols[t].iter().enumerate() {
                if c.proven {
                    sql.push_str(&format!(
                        "ALTER TABLE t{t} ADD CONSTRAINT t{t}_c{i}_present CHECK (c{i} IS NOT NULL);\n"
                    ));
                }
                if c.indexed {
                    sql.push_str(&format!("CREATE INDEX t{t}_c{i}_idx ON t{t} (c{i});\n"));
                }
            }
        }
        sql.push_str("CREATE UNIQUE INDEX t1_id_key ON t1 (id);\n");
        sql.push_str("ALTER TABLE t0 ADD CONSTRAINT t0_positive CHECK (id > 0) NOT VALID;\n");
        if self.fk {
            sql.push_str("ALTER TABLE t1 ADD CONSTRAINT t1_ref_fk FOREIGN KEY (ref) REFERENCES t0 (id) NOT VALID;\n");
        }
        if self.bound_proven {
            sql.push_str("ALTER TABLE events_c ADD CONSTRAINT events_c_bound CHECK (id >= 2000 AND id < 3000);\n");
        }
        sql.push_str(
            "CREATE MATERIALIZED VIEW t0_summary AS SELECT id, score FROM t0;
             CREATE UNIQUE INDEX t0_summary_id ON t0_summary (id);
             ANALYZE;",
        );
        sql
    }
}

/// A family of statements and a seed choosing one of its forms.
#[derive(Debug, Clone, Copy)]
struct Draw {
    family: usize,
    seed: u32,
}

/// The statement families, by name; `family(i, catalog, seed)` writes one statement.
const FAMILIES: [&str; 12] = [
    "add-column",
    "change-type",
    "not-null",
    "check-and-foreign-key",
    "constraint-using-index",
    "index",
    "drop-and-rename",
    "storage",
    "partition",
    "materialized-view",
    "domain-and-enum",
    "data",
];

fn pick<T: Copy>(seed: u32, salt: u32, of: &[T]) -> T {
    let h = seed.wrapping_mul(2_654_435_761).rotate_left(salt * 7 + 3) ^ salt.wrapping_mul(40_503);
    of[(h as usize) % of.len()]
}

fn statement(d: Draw, c: &Catalog, n: usize) -> String {
    let s = d.seed;
    let t = pick(s, 1, &[0usize, 1]);
    let i = (s as usize / 3) % c.cols[t].len();
    let col = &c.cols[t][i];
    match FAMILIES[d.family] {
        "add-column" => {
            let ty = pick(
                s,
                2,
                &[Ty::Int, Ty::Bigint, Ty::Text, Ty::Numeric, Ty::Timestamptz],
            );
            let default = match pick(s, 3, &[0, 1, 2, 3, 4, 5, 6]) {
                0 => String::new(),
                1 => format!(
                    " DEFAULT {}",
                    if ty == Ty::Text {
                        "'x'"
                    } else if ty == Ty::Timestamptz {
                        "'2024-01-01'"
                    } else {
                        "1"
                    }
                ),
                2 if ty == Ty::Timestamptz => " DEFAULT now()".into(),
                2 => " DEFAULT 1 NOT NULL".into(),
                3 if ty == Ty::Timestamptz => " DEFAULT clock_timestamp()".into(),
                3 if ty == Ty::Numeric => " DEFAULT random()".into(),
                4 if matches!(ty, Ty::Int | Ty::Bigint) => " GENERATED ALWAYS AS IDENTITY".into(),
                5 if ty == Ty::Bigint => " GENERATED ALWAYS AS (id * 2) STORED".into(),
                6 => format!(" CHECK (n{n} IS NULL OR n{n} IS NOT NULL)"),
                _ => String::new(),
            };
            format!("ALTER TABLE t{t} ADD COLUMN n{n} {}{default}", ty.sql())
        }
        "change-type" => {
            let to = match (col.ty, pick(s, 4, &[0, 1, 2])) {
                (Ty::Varchar, 0) => "varchar(40)",
                (Ty::Varchar, 1) => "text",
                (Ty::Varchar, _) => "varchar(10)",
                (Ty::Text, 0) => "varchar",
                (Ty::Text, _) => "varchar(30)",
                (Ty::Int, 0) => "bigint",
                (Ty::Int, _) => "numeric",
                (Ty::Bigint, _) => "integer",
                (Ty::Numeric, 0) => "numeric(12,2)",
                (Ty::Numeric, 1) => "numeric",
                (Ty::Numeric, _) => "numeric(8,2)",
                (Ty::Bool, _) => "text",
                (Ty::Timestamptz, _) => "text",
            };
            format!("ALTER TABLE t{t} ALTER COLUMN c{i} TYPE {to}")
        }
        "not-null" => match pick(s, 5, &[0, 1]) {
            0 => format!("ALTER TABLE t{t} ALTER COLUMN c{i} SET NOT NULL"),
            _ => format!("ALTER TABLE t{t} ALTER COLUMN c{i} DROP NOT NULL"),
        },
        "check-and-foreign-key" => match pick(s, 6, &[0, 1, 2, 3, 4, 5, 6]) {
            5 => format!("ALTER TABLE t1 ADD COLUMN f{n} bigint REFERENCES t0 (id)"),
            6 => format!("CREATE TABLE r{n} (id bigint, ref bigint REFERENCES t0 (id))"),
            0 => format!("ALTER TABLE t{t} ADD CONSTRAINT k{n} CHECK (c{i} IS NOT NULL)"),
            1 => format!("ALTER TABLE t{t} ADD CONSTRAINT k{n} CHECK (c{i} IS NOT NULL) NOT VALID"),
            2 => "ALTER TABLE t0 VALIDATE CONSTRAINT t0_positive".into(),
            3 => format!("ALTER TABLE t1 ADD CONSTRAINT k{n} FOREIGN KEY (ref) REFERENCES t0 (id)"),
            _ => format!(
                "ALTER TABLE t1 ADD CONSTRAINT k{n} FOREIGN KEY (ref) REFERENCES t0 (id) NOT VALID"
            ),
        },
        "constraint-using-index" => match pick(s, 7, &[0, 1, 2]) {
            0 => "ALTER TABLE t1 ADD CONSTRAINT t1_pk PRIMARY KEY USING INDEX t1_id_key".into(),
            1 => "ALTER TABLE t1 ADD CONSTRAINT t1_uq UNIQUE USING INDEX t1_id_key".into(),
            _ => format!("ALTER TABLE t0 ADD CONSTRAINT u{n} UNIQUE (id)"),
        },
        "index" => match pick(s, 8, &[0, 1, 2, 3]) {
            0 => format!("CREATE INDEX x{n} ON t{t} (c{i})"),
            1 => format!("CREATE UNIQUE INDEX x{n} ON t{t} (id)"),
            2 => format!("CREATE INDEX x{n} ON events (at)"),
            _ => format!("CREATE INDEX x{n} ON ONLY events (at)"),
        },
        "drop-and-rename" => match pick(s, 9, &[0, 1, 2, 3]) {
            0 => format!("ALTER TABLE t{t} DROP COLUMN c{i}"),
            1 => format!("ALTER TABLE t{t} RENAME COLUMN c{i} TO r{n}"),
            2 => format!("ALTER TABLE t1 RENAME TO r{n}"),
            _ => format!("ALTER TABLE t{t} ALTER COLUMN c{i} SET DEFAULT NULL"),
        },
        "storage" => match pick(s, 10, &[0, 1, 2, 3, 4]) {
            3 => format!("ALTER TABLE t{t} DISABLE TRIGGER USER"),
            4 => format!("ALTER TABLE t{t} ENABLE TRIGGER ALL"),
            0 => "ALTER TABLE t1 SET UNLOGGED".into(),
            1 => "CLUSTER t0 USING t0_pkey".into(),
            _ => format!("ALTER TABLE t{t} SET (fillfactor = 80)"),
        },
        "partition" => match pick(s, 11, &[0, 1]) {
            0 => "ALTER TABLE events ATTACH PARTITION events_c FOR VALUES FROM (2000) TO (3000)"
                .into(),
            _ => "ALTER TABLE events DETACH PARTITION events_b".into(),
        },
        "materialized-view" => match pick(s, 12, &[0, 1, 2]) {
            2 => "DROP MATERIALIZED VIEW t0_summary".into(),
            0 => "REFRESH MATERIALIZED VIEW t0_summary".into(),
            _ => "REFRESH MATERIALIZED VIEW CONCURRENTLY t0_summary".into(),
        },
        "domain-and-enum" => match pick(s, 13, &[0, 1, 2]) {
            0 => format!("ALTER DOMAIN score_d ADD CONSTRAINT d{n} CHECK (VALUE >= 0)"),
            1 => "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'".into(),
            _ => format!("ALTER TYPE mood ADD VALUE 'v{n}'"),
        },
        _ => match pick(s, 14, &[0, 1, 2]) {
            0 => format!("UPDATE t{t} SET c{i} = c{i}"),
            1 => "TRUNCATE t1".into(),
            _ => format!("DELETE FROM t{t} WHERE id < 3"),
        },
    }
}

fn draws() -> impl Strategy<Value = Vec<Vec<Draw>>> {
    let draw = (0..FAMILIES.len(), any::<u32>()).prop_map(|(family, seed)| Draw { family, seed });
    prop::collection::vec(prop::collection::vec(draw, 1..4), MIGRATIONS)
}

/// Per family: statements measured, agreeing, disagreeing; statements PostgreSQL refused.
#[derive(Default, Debug)]
struct Tally {
    measured: u32,
    disagreed: u32,
    failed: u32,
}

struct Run {
    rt: tokio::runtime::Runtime,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
    seen: Mutex<Vec<(String, Disagreement, String)>>,
    n: std::sync::atomic::AtomicUsize,
}

impl Run {
    /// Builds the catalog in a fresh database, then analyses and measures each migration.
    async fn case(&self, c: &Catalog, migrations: &[Vec<Draw>]) -> Result<(), String> {
        use sqlx::Connection;
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let db = format!("agree_{}_{n}", std::process::id());
        let mut admin = common::pg_connect("postgres").await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut conn = common::pg_connect(&db).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(c.setup()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("catalog {c:?}: {e}"));
        conn.close().await.ok();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drydock.toml");
        std::fs::write(
            &path,
            format!(
                "[targets.scratch]\nurl = \"{}\"\nrole = \"scratch\"\n",
                common::pg_url_for(&db)
            ),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let target = Target::open(&config, config.target("scratch").unwrap())
            .await
            .unwrap();
        let catalog = target.catalog().await.unwrap();
        let mut result = Ok(());
        for (m, draws) in migrations.iter().enumerate() {
            let sql: Vec<String> = draws
                .iter()
                .enumerate()
                .map(|(k, d)| statement(*d, c, m * 10 + k))
                .collect();
            let body = Body::new(
                "scratch",
                vec![Step {
                    name: Some("m".into()),
                    up: Some(sql.join(";\n")),
                    down: Some("SELECT 1".into()),
                    backfill: None,
                    gate: None,
                    restore: None,
                }],
                vec![],
            )
            .unwrap();
            let analysis =
                drydock::analysis::analyze(&body, &catalog, &config.policy, false).unwrap();
            let stmts: Vec<Stmt> = analysis
                .statements
                .iter()
                .map(|f| Stmt {
                    sql: f.sql.clone(),
                    transactional: f.transactional,
                })
                .collect();
            let mut sandbox = target
                .sandbox(dir.path(), drydock::db::SandboxMode::RolledBack)
                .await
                .unwrap();
            let runs = sandbox.execute("m", &stmts).await.unwrap();
            sandbox.finish().await;
            let (runs, failed_at) = match runs {
                Ok(runs) => (runs, None),
                Err(f) => (vec![], Some(f.index)),
            };
            let found = disagreements(&analysis, &runs);
            let mut tallies = self.tallies.lock().unwrap();
            for (k, d) in draws.iter().enumerate() {
                let family = FAMILIES[d.family];
                let tally = tallies.entry(family).or_default();
                match failed_at {
                    Some(at) if at == k + 1 => tally.failed += 1,
                    Some(_) => {}
                    None => {
                        tally.measured += 1;
                        let here: Vec<&Disagreement> =
                            found.iter().filter(|x| x.index == k + 1).collect();
                        if !here.is_empty() {
                            tally.disagreed += 1;
                            let mut seen = self.seen.lock().unwrap();
                            for x in &here {
                                seen.push((family.to_string(), (*x).clone(), sql[k].clone()));
                            }
                            if result.is_ok() {
                                result = Err(format!(
                                    "{family}: {}\n  in migration:\n  {}",
                                    here.iter()
                                        .map(|x| format!("{x}"))
                                        .collect::<Vec<_>>()
                                        .join("\n  "),
                                    sql.join(";\n  ")
                                ));
                            }
                        }
                    }
                }
            }
        }
        drop(target);
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        admin.close().await.ok();
        result
    }
}

#[test]
fn the_analysis_agrees_with_what_postgres_measurably_does() {
    let run = Run {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tallies: Mutex::new(BTreeMap::new()),
        seen: Mutex::new(Vec::new()),
        n: std::sync::atomic::AtomicUsize::new(0),
    };
    let seed: u64 = std::env::var("DRYDOCK_AGREEMENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases = std::env::var("DRYDOCK_AGREEMENT_CATALOGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CATALOGS);
    eprintln!("agreement: seed {seed}, {cases} catalogs");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            max_shrink_iters: 64,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let outcome = runner.run(&(catalog(), draws()), |(c, migrations)| {
        run.rt
            .block_on(run.case(&c, &migrations))
            .map_err(TestCaseError::fail)
    });
    let tallies = run.tallies.lock().unwrap();
    let mut report = format!(
        "agreement of the analysis with PostgreSQL (seed {seed}, {cases} catalogs)\n{:<26} {:>8} {:>6} {:>9} {:>20}\n",
        "family", "measured", "agree", "disagree", "refused-by-postgres"
    );
    for (family, t) in tallies.iter() {
        report.push_str(&format!(
            "{family:<26} {:>8} {:>6} {:>9} {:>20}\n",
            t.measured,
            t.measured - t.disagreed,
            t.disagreed,
            t.failed
        ));
    }
    let seen = run.seen.lock().unwrap();
    let mut kinds: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for (family, d, sql) in seen.iter() {
        let e = kinds
            .entry(format!(
                "{family} / {} / {}: predicted {}, measured {}",
                d.kind,
                d.aspect.name(),
                d.predicted,
                d.measured
            ))
            .or_insert((0, sql.clone()));
        e.0 += 1;
    }
    for (k, (n, example)) in &kinds {
        report.push_str(&format!("  {n:>4} × {k}\n         e.g. {example}\n"));
    }
    eprint!("{report}");
    // `.ci/run` prints it after the tests (cargo keeps a passing test's output to itself).
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("agreement.txt"),
        &report,
    );
    if let Err(e) = outcome {
        panic!("the analysis disagrees with PostgreSQL: {e}");
    }
}
