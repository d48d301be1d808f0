//! The replica-lag throttle against a real streaming replica: a cluster made with
//! `pg_basebackup` from a primary of its own, on loopback ports, its replay paused with
//! `pg_wal_replay_pause()` so that it falls behind. A backfill holds between batches while the
//! replica lags more than `policy.max_replica_lag`, says so in `status`, and goes on (every row
//! exactly once) when the replica catches up.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::free_port;
use common::{PgProject, pg_secret, plan_id};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// A command run as the `postgres` system user when the tests run as root (PostgreSQL's
/// programs refuse to run as root), with the test cluster's password in its environment.
fn postgres_cmd(program: &Path) -> Command {
    let root = unsafe { libc::getuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "env"])
            .arg(format!("PGPASSWORD={}", pg_secret()))
            .arg(program);
        c
    } else {
        let mut c = Command::new(program);
        c.env("PGPASSWORD", pg_secret());
        c
    };
    cmd.stdin(std::process::Stdio::null());
    cmd
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A primary of its own (the shared test cluster holds every test's databases, too many to
/// copy) and its streaming replica, both on loopback ports; stopped (immediately) when dropped,
/// so that a failing test never leaves a paused replica behind.
struct Replica {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Replica {
    /// Starts the pair, and points this test process's `DRYDOCK_TEST_PG` at the primary.
    fn start() -> Replica {
        let bin = PathBuf::from(std::env::var("DRYDOCK_TEST_PGBIN").expect("DRYDOCK_TEST_PGBIN"));
        let dir = tempfile::tempdir().unwrap();
        if unsafe { libc::getuid() } == 0 {
            run({
                let mut c = Command::new("chown");
                c.arg("postgres").arg(dir.path());
                c
            });
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, pg_secret()).unwrap();
        let (primary_port, port) = (free_port(), free_port());
        let mut init = postgres_cmd(&bin.join("initdb"));
        init.arg("-D")
            .arg(dir.path().join("primary"))
            .args(["-U", "drydock", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(init);
        configure(&dir.path().join("primary"), primary_port, dir.path(), "");
        pg_ctl(&bin, &dir.path().join("primary"), "start");
        let url = format!(
            "postgres://drydock:{}@127.0.0.1:{primary_port}/postgres",
            pg_secret()
        );
        // SAFETY: the only test of this binary, before it starts any thread of its own.
        unsafe { std::env::set_var("DRYDOCK_TEST_PG", url) };
        let data = dir.path().join("replica");
        let mut backup = postgres_cmd(&bin.join("pg_basebackup"));
        backup
            .args(["-h", "127.0.0.1", "-p", &primary_port.to_string()])
            .args(["-U", "drydock", "-R", "-X", "stream", "--no-sync", "-D"])
            .arg(&data);
        run(backup);
        configure(
            &data,
            port,
            dir.path(),
            "hot_standby = on\nwal_receiver_status_interval = 1s\n",
        );
        pg_ctl(&bin, &data, "start");
        Replica { dir, bin, port }
    }

    async fn connect(&self) -> PgConnection {
        let url = format!(
            "postgres://drydock:{}@127.0.0.1:{}/postgres",
            pg_secret(),
            self.port
        );
        PgConnection::connect(&url).await.expect("replica")
    }

    async fn sql(&self, sql: &'static str) {
        let mut c = self.connect().await;
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        c.close().await.ok();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        for data in ["replica", "primary"] {
            let mut stop = postgres_cmd(&self.bin.join("pg_ctl"));
            stop.arg("-D")
                .arg(self.dir.path().join(data))
                .args(["-m", "immediate", "-w", "stop"]);
            stop.output().ok();
        }
    }
}

/// Appends a cluster's settings: its port and socket directory, and `extra`.
fn configure(data: &Path, port: u16, sockets: &Path, extra: &str) {
    use std::io::Write;
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    writeln!(
        conf,
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\n{extra}",
        sockets.display()
    )
    .unwrap();
}

fn pg_ctl(bin: &Path, data: &Path, action: &str) {
    let mut cmd = postgres_cmd(&bin.join("pg_ctl"));
    cmd.arg("-D")
        .arg(data)
        .arg("-l")
        .arg(data.with_extension("log"))
        .args(["-w", "-t", "60", action]);
    run(cmd);
}

/// The primary's view of its replicas: (replay lag in seconds, streaming).
async fn replication(primary: &mut PgConnection) -> Vec<(Option<f64>, String)> {
    sqlx::query_as(
        "SELECT extract(epoch FROM replay_lag)::float8, state::text FROM pg_stat_replication",
    )
    .fetch_all(&mut *primary)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_backfill_waits_while_a_replica_lags_and_goes_on_when_it_catches_up() {
    let replica = Replica::start();
    let mut primary = common::pg_connect("postgres").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !replication(&mut primary)
        .await
        .iter()
        .any(|(_, s)| s == "streaming")
    {
        assert!(Instant::now() < deadline, "the replica never streamed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let p = PgProject::new("apply_wait = \"1s\"\nmax_replica_lag = \"1s\"").await;
    let c = p.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "count logins", "target": "production", "template": "backfill",
                   "params": {"table": "accounts", "set": "score = score + 1", "batch_size": 2000}}),
        )
        .await,
    );
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");

    // Replay paused, and WAL written until the replica is over two seconds behind.
    let mut writer = common::pg_connect(&p.prod).await;
    sqlx::raw_sql("CREATE TABLE replica_wal_maker (n int)")
        .execute(&mut writer)
        .await
        .unwrap();
    replica.sql("SELECT pg_wal_replay_pause()").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        sqlx::raw_sql("INSERT INTO replica_wal_maker SELECT generate_series(1, 1000)")
            .execute(&mut writer)
            .await
            .unwrap();
        let lag = replication(&mut primary).await;
        if lag.iter().any(|(l, _)| l.is_some_and(|l| l > 2.0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never fell behind: {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let first = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(first["status"], "applying", "{first}");
    // While the replica lags, no batch runs and status says why.
    let mut waiting = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting.is_none() {
        let s = c.ok("status", json!({"plan_id": id})).await;
        waiting = s["running"]["health"]["waiting"].as_str().map(String::from);
        assert!(
            Instant::now() < deadline,
            "status never showed the wait: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waiting = waiting.unwrap();
    assert!(
        waiting.contains("replica") && waiting.contains("policy.max_replica_lag"),
        "{waiting}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert!(
        s["running"]["health"]["waiting"].is_string(),
        "still waiting: {s}"
    );
    assert!(
        s["running"]["message"].as_str().unwrap().contains("behind"),
        "{s}"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
            .await,
        0,
        "no batch ran while the replica lagged"
    );

    // Replay resumed: the replica catches up, and the backfill finishes.
    replica.sql("SELECT pg_wal_replay_resume()").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = c.ok("status", json!({"plan_id": id})).await;
        if s["status"] == "applied" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill did not finish: {s}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
            .await,
        20_000,
        "every row exactly once"
    );
    c.close().await;
    writer.close().await.ok();
    primary.close().await.ok();
}
