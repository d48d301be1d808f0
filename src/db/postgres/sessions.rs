//! The sessions drydock keeps to its PostgreSQL targets: the plain session of a target's reads,
//! kept between tool calls, and fresh sessions opened ahead of the work that will need them (the
//! next member of a rollout while the one before it runs).

use super::*;

/// One target's kept sessions.
pub type Spare = Arc<std::sync::Mutex<Slot>>;

/// What is kept of one target: the plain session of its reads, and sessions opened ahead of the
/// work that needs them (as `connect` left them, never used: the next `connect` takes one).
#[derive(Default)]
pub struct Slot {
    kept: Option<Kept>,
    fresh: Vec<PgConnection>,
}

/// A kept session: as `connect` left it, with the schema read a sandbox runs prepared on it when
/// it was warmed for that (`Postgres::session_for_agent_sql`, `Postgres::open_ahead`).
pub struct Kept {
    pub(super) conn: PgConnection,
    pub(super) schema_read: Option<fingerprint::SchemaRead>,
}

impl From<PgConnection> for Kept {
    fn from(conn: PgConnection) -> Kept {
        Kept {
            conn,
            schema_read: None,
        }
    }
}

/// The plain sessions a server keeps between tool calls, one per PostgreSQL target (by name and
/// URL): opening a target again takes its kept session instead of a new connection (a TLS or
/// SCRAM handshake and a backend's cold caches, some milliseconds each time). Only drydock's
/// own reads use them, never agent SQL, and each is kept only as `connect` left it. Beside them,
/// the slots of targets opened ahead (`ahead`), taken by the next open of the same target.
#[derive(Default, Clone)]
pub struct Spares(Arc<std::sync::Mutex<Slots>>);

#[derive(Default)]
struct Slots {
    kept: std::collections::HashMap<String, Spare>,
    /// Oldest first; a few at most (a slot never taken closes its sessions when dropped).
    ahead: std::collections::VecDeque<(String, Spare)>,
}

impl Spares {
    /// The kept session of target `name` at `url` (its own slot: a URL changed in the
    /// environment never reuses a session to the old database), or the slot it was opened ahead
    /// into. Beyond `KEPT` targets (a fleet's members), a target's session is kept only while it
    /// is open, as before: a server holds a few idle connections, not one per member.
    pub fn slot(&self, name: &str, url: &str) -> Spare {
        const KEPT: usize = 8;
        let key = Spares::key(name, url);
        let mut slots = self.0.lock().expect("spares lock");
        if let Some(slot) = slots.kept.get(&key) {
            return slot.clone();
        }
        let slot = match slots.ahead.iter().position(|(k, _)| *k == key) {
            Some(i) => slots.ahead.remove(i).expect("a slot at its position").1,
            None => Spare::default(),
        };
        if slots.kept.len() < KEPT {
            slots.kept.insert(key, slot.clone());
        }
        slot
    }

    /// A slot to open target `name` at `url` ahead into: its kept slot if it has one, else one
    /// the next `slot` of the same target takes.
    pub fn ahead(&self, name: &str, url: &str) -> Spare {
        const AHEAD: usize = 4;
        let key = Spares::key(name, url);
        let mut slots = self.0.lock().expect("spares lock");
        if let Some(slot) = slots.kept.get(&key) {
            return slot.clone();
        }
        if let Some((_, slot)) = slots.ahead.iter().find(|(k, _)| *k == key) {
            return slot.clone();
        }
        let slot = Spare::default();
        slots.ahead.push_back((key, slot.clone()));
        if slots.ahead.len() > AHEAD {
            slots.ahead.pop_front();
        }
        slot
    }

    fn key(name: &str, url: &str) -> String {
        format!("{name}\u{0}{}", crate::db::short_hash(url))
    }
}

/// A session with drydock's timeouts, and a search path without drydock's own schemas: a
/// login role named `drydock` would otherwise (through the default `"$user", public`) put
/// every unqualified table a step creates into the `drydock` schema, out of the
/// application's sight and of the schema fingerprint.
pub(super) async fn connect(
    options: &PgConnectOptions,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> sqlx::Result<PgConnection> {
    let mut conn = options.connect().await?;
    // language=SQL
    let set = format!(
        "SET lock_timeout = {}; SET statement_timeout = {};
         SELECT set_config('search_path', coalesce(string_agg(e, ', ' ORDER BY o), ''), false)
         FROM (SELECT trim(e) AS e, o FROM unnest(string_to_array(current_setting('search_path'), ',')) WITH ORDINALITY AS t(e, o)) AS path
         WHERE e NOT IN ('drydock', '\"drydock\"', 'drydock_backup', '\"drydock_backup\"')
           AND NOT (e = '\"$user\"' AND current_user IN ('drydock', 'drydock_backup'))",
        super::super::millis(lock_timeout),
        super::super::millis(statement_timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut conn).await?;
    Ok(conn)
}

/// Keeps a session that is as `connect` left it (no role, no open transaction, no changed
/// setting) in `spare` for the next read; one at most, a second is closed.
pub(super) async fn keep_in(spare: &Spare, kept: Kept) {
    let extra = {
        let mut slot = spare.lock().expect("spare session lock");
        match slot.kept {
            None => {
                slot.kept = Some(kept);
                None
            }
            Some(_) => Some(kept),
        }
    };
    if let Some(kept) = extra {
        kept.conn.close().await.ok();
    }
}

/// A new session, warmed: its schema read prepared and planned while nobody waits (a first
/// schema read is otherwise most of what a sandbox's or a member's reads cost). `run`: the read
/// is run once too, warming what rendering it reads — only where nothing of drydock's may hold
/// the tables (a rollout's next member): running it locks every table whose expressions it
/// renders, so beside a dry-run it would queue behind the dry-run's own locks.
async fn warmed(
    options: &PgConnectOptions,
    lock_timeout: Duration,
    statement_timeout: Duration,
    run: bool,
) -> sqlx::Result<Kept> {
    let mut conn = connect(options, lock_timeout, statement_timeout).await?;
    let schema_read = if run {
        let mut slot = None;
        fingerprint::SchemaRead::lines(&mut slot, &mut conn)
            .await
            .ok()
            .and(slot)
    } else {
        fingerprint::SchemaRead::warm(&mut conn).await.ok()
    };
    Ok(Kept { conn, schema_read })
}

impl Slot {
    /// The kept session, taken (see `keep_in` to give it back).
    pub(super) fn take(&mut self) -> Option<Kept> {
        self.kept.take()
    }
}

impl Postgres {
    /// Reachable now: the session kept since an earlier call when it answers, else a new one,
    /// kept for this call's reads.
    pub async fn reach(&self) -> Result<()> {
        // A session kept since an earlier call may have been ended by the server meanwhile
        // (idle timeout, restart): it is pinged once here; reads within this call reuse it as is.
        let kept = self.spare.lock().expect("spare session lock").take();
        let kept = match kept {
            Some(mut kept) => match kept.conn.ping().await {
                Ok(()) => kept,
                Err(_) => {
                    kept.conn.close_hard().await.ok();
                    self.connect().await?.into()
                }
            },
            None => self.connect().await?.into(),
        };
        self.keep(kept).await;
        Ok(())
    }

    /// Opens the target ahead of work that will need it: its read session, warmed (its schema
    /// read planned and run once), and `fresh` more sessions, side by side, kept in its slot for that work's
    /// `reach` and `connect`. Failures are left to that work to meet.
    pub async fn open_ahead(&self, fresh: usize) {
        let open = || connect(&self.options, self.lock_timeout, self.statement_timeout);
        let more = futures_util::future::join_all((0..fresh).map(|_| open()));
        let (read, more) = tokio::join!(
            warmed(
                &self.options,
                self.lock_timeout,
                self.statement_timeout,
                true
            ),
            more
        );
        if let Ok(read) = read {
            keep_in(&self.spare, read).await;
        }
        let mut slot = self.spare.lock().expect("spare session lock");
        slot.fresh.extend(more.into_iter().flatten());
    }

    /// A plain session for a read: the one kept from the last read, else a new one.
    pub(super) async fn reader(&self) -> Result<Kept> {
        let kept = self.spare.lock().expect("spare session lock").take();
        match kept {
            Some(kept) => Ok(kept),
            None => Ok(self.connect().await?.into()),
        }
    }

    /// Keeps a session for the next read (see `keep_in`).
    pub(super) async fn keep(&self, kept: Kept) {
        keep_in(&self.spare, kept).await
    }

    /// Runs a read on a kept (or new) session, keeping the session when the read succeeded.
    pub(super) async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> Result<T> {
        self.read_kept(async |kept| f(&mut kept.conn).await).await
    }

    /// The schema's fingerprint, read on the kept session: through the schema read prepared
    /// there when it was warmed (planned already), else as one statement.
    pub(super) async fn read_fingerprint(&self) -> Result<Fingerprint> {
        self.read_kept(async |kept| match kept.schema_read {
            Some(_) => fingerprint::SchemaRead::lines(&mut kept.schema_read, &mut kept.conn).await,
            None => fingerprint::fingerprint_on(&mut kept.conn).await,
        })
        .await
    }

    async fn read_kept<T>(&self, f: impl AsyncFnOnce(&mut Kept) -> sqlx::Result<T>) -> Result<T> {
        let mut kept = self.reader().await?;
        match f(&mut kept).await {
            Ok(v) => {
                self.keep(kept).await;
                Ok(v)
            }
            Err(e) => {
                kept.conn.close().await.ok();
                Err(self.err(e))
            }
        }
    }

    /// A new session to the target (see the free `connect`): one opened ahead when there is
    /// one that answers.
    pub(super) async fn connect(&self) -> Result<PgConnection> {
        loop {
            let fresh = self.spare.lock().expect("spare session lock").fresh.pop();
            let Some(mut conn) = fresh else { break };
            if conn.ping().await.is_ok() {
                return Ok(conn);
            }
            conn.close_hard().await.ok();
        }
        connect(&self.options, self.lock_timeout, self.statement_timeout)
            .await
            .map_err(|e| self.err(e))
    }

    /// A session for agent SQL (a dry-run's), with the schema read prepared on it when it has
    /// one: the kept one, whose backend's caches drydock's reads have warmed (it ran nothing
    /// else, and is never kept again once agent SQL ran on it), else a new one. The sandbox
    /// puts a new warmed session in its place when it finishes ([`Refill`]).
    pub(super) async fn session_for_agent_sql(&self) -> Result<Kept> {
        let kept = self.spare.lock().expect("spare session lock").take();
        if let Some(mut kept) = kept {
            if kept.conn.ping().await.is_ok() {
                return Ok(kept);
            }
            kept.conn.close_hard().await.ok();
        }
        Ok(self.connect().await?.into())
    }

    /// What puts a warmed session back in this target's slot after a sandbox (see [`Refill`]).
    pub(super) fn refill(&self) -> Refill {
        Refill {
            options: self.options.clone(),
            spare: self.spare.clone(),
            timeouts: (self.lock_timeout, self.statement_timeout),
        }
    }
}

/// A new session, connected and warmed in the background (its schema read prepared and planned)
/// and kept for the next read or dry-run, when the target's slot has none: started when a
/// sandbox finishes, not when it takes the kept session — beside the sandbox's own work the
/// warm-up (a backend's cold caches, a plan of ~20 catalog queries: some 10 ms of CPU) competed
/// with it for the cores.
#[derive(Clone)]
pub(super) struct Refill {
    pub(super) options: PgConnectOptions,
    pub(super) spare: Spare,
    timeouts: (Duration, Duration),
}

impl Refill {
    pub(super) fn spawn(self) {
        if self
            .spare
            .lock()
            .expect("spare session lock")
            .kept
            .is_some()
        {
            return;
        }
        tokio::spawn(async move {
            let (lock_timeout, statement_timeout) = self.timeouts;
            if let Ok(kept) = warmed(&self.options, lock_timeout, statement_timeout, false).await {
                keep_in(&self.spare, kept).await;
            }
        });
    }
}
