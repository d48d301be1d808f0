//! What the PostgreSQL benchmarks share: the server from `DRYDOCK_BENCH_PG` (or
//! `DRYDOCK_TEST_PG`), a throwaway database on it, and latency percentiles.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// The login drydock (and each bench's own sessions) use: no superuser, as drydock requires of
/// the role agent SQL runs as (`unsafe-role`); it may create databases and read every session's
/// statistics. Made on the server of `base` (a superuser's URL) with the same password; returns
/// `base` logged in as it.
pub const BENCH_ROLE: &str = "drydock_bench";

pub async fn unprivileged(base: &str) -> String {
    let (scheme, rest) = base.split_once("://").expect("a database URL");
    let (_, after_user) = rest.split_once(':').expect("a URL with a password");
    let password = after_user.split_once('@').expect("a URL with a host").0;
    let mut admin = connect(base).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DO $$ BEGIN
             PERFORM pg_advisory_xact_lock(7272727);
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{BENCH_ROLE}') THEN
                 CREATE ROLE {BENCH_ROLE} LOGIN CREATEDB PASSWORD '{password}';
                 GRANT pg_read_all_stats TO {BENCH_ROLE};
             END IF;
         END $$"
    )))
    .execute(&mut admin)
    .await
    .expect("the bench role");
    admin.close().await.ok();
    format!("{scheme}://{BENCH_ROLE}:{after_user}")
}

/// One writer's transactions (each one's scheduled start and latency in ms) and its failures.
pub type Writes = (Vec<(tokio::time::Instant, f64)>, u64);

/// `writers` sessions running `sql` (with `$1` a random key in 1..=`rows`) at `rate`
/// transactions per second in all until `stop`, each latency counted from the transaction's
/// scheduled start as `pgbench -R` counts it: a writer held up is late for every transaction it
/// could not start on time, not only the one that waited.
pub fn paced_writers(
    url: &str,
    sql: &str,
    rows: i64,
    (writers, rate): (usize, f64),
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Writes>> {
    let interval = Duration::from_secs_f64(writers as f64 / rate);
    (0..writers)
        .map(|w| {
            let (url, sql, stop) = (url.to_string(), sql.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut c = connect(&url).await;
                let (mut lat, mut errors) = (Vec::new(), 0);
                let mut i = w as i64 * 7_919;
                // Staggered so the writers do not all start at the same instant.
                let mut next =
                    tokio::time::Instant::now() + interval.mul_f64(w as f64 / writers as f64);
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep_until(next).await;
                    if sqlx::query(AssertSqlSafe(sql.as_str()))
                        .bind(1 + (i * 104_729) % rows)
                        .execute(&mut c)
                        .await
                        .is_err()
                    {
                        errors += 1;
                    }
                    lat.push((
                        next,
                        (tokio::time::Instant::now() - next).as_secs_f64() * 1000.0,
                    ));
                    next += interval;
                    i += 1;
                }
                c.close().await.ok();
                (lat, errors)
            })
        })
        .collect()
}

/// The engine's phases (`DRYDOCK_LOG=warn,drydock::phases=info`) on stderr, as `drydock` says
/// them, when `DRYDOCK_LOG` is set.
pub fn log_phases() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("DRYDOCK_LOG") {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(filter)
            .init();
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A fresh database for one benchmark run; `drop` removes it.
pub struct BenchDb {
    admin: PgConnection,
    name: String,
    pub url: String,
}

impl BenchDb {
    /// Creates the database, or exits with a usage message when no server is configured.
    pub async fn create(prefix: &str) -> BenchDb {
        let Ok(base) =
            std::env::var("DRYDOCK_BENCH_PG").or_else(|_| std::env::var("DRYDOCK_TEST_PG"))
        else {
            eprintln!(
                "set DRYDOCK_BENCH_PG to a PostgreSQL URL (a database is created and dropped on that server)"
            );
            std::process::exit(2);
        };
        let name = format!("{prefix}_{}", std::process::id());
        let app = unprivileged(&base).await;
        let mut admin = connect(&base).await;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER {BENCH_ROLE}"
        )))
        .execute(&mut admin)
        .await
        .expect("create database");
        let url = format!("{}/{name}", app.rsplit_once('/').expect("a database URL").0);
        BenchDb { admin, name, url }
    }

    /// A CHECKPOINT (as the server's superuser), so that what comes next does not pay for the
    /// writes before it.
    pub async fn checkpoint(&mut self) {
        sqlx::raw_sql("CHECKPOINT")
            .execute(&mut self.admin)
            .await
            .expect("checkpoint");
    }

    pub async fn drop(mut self) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .ok();
        self.admin.close().await.ok();
    }
}

/// An engine on a production target at `prod` with its linked staging at `staging`, its state
/// in `dir`.
pub async fn engine(prod: &str, staging: &str, dir: &std::path::Path) -> drydock::engine::Engine {
    let config = format!(
        "[targets.production]\nurl = \"{prod}\"\nrole = \"production\"\nstaging = \"staging\"\n\n[targets.staging]\nurl = \"{staging}\"\nrole = \"staging\"\n"
    );
    drydock::engine::Engine::open(
        drydock::config::Config::parse(&config, dir, None).expect("config"),
    )
    .await
    .expect("engine")
}
