//! What the application will hit once a change is applied, probed: each touched table's
//! triggers fired by a write that is rolled back (an `UPDATE` of one row to itself, a copy of one
//! row for `INSERT` triggers, the delete of one row for `DELETE` triggers), and each view and
//! materialized view that depends on the table, directly or through another view, read. A
//! trigger function that still names a renamed column fails here, as every write of the
//! application would.
//!
//! Probes run inside a transaction the caller opened (a savepoint each, rolled back) as the
//! role the caller set, with the role's default search path (the application's, not one an agent
//! `SET`): the application's code resolves its names as it does in production.

use super::*;
use crate::db::{AppProbe, ProbeOutcome};

impl Postgres {
    /// Probes what the application will hit on `tables`, in a transaction that is rolled back,
    /// as the apply role (the probes fire the application's triggers: never as a privileged
    /// login), within the policy's lock timeout and the check timeout.
    pub async fn probe_app(&self, tables: &[String], known: &str) -> Result<Vec<AppProbe>> {
        let mut conn = self.connect().await?;
        self.agent_role(&mut conn, AgentUse::Apply).await?;
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = {}; {}",
            crate::db::millis(self.roles.check_timeout).max(1),
            self.roles.begin(AgentUse::Apply)
        );
        sqlx::raw_sql(AssertSqlSafe(begin))
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let probed = probe(&mut conn, tables, known).await;
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
        conn.close().await.ok();
        probed.map_err(|e| self.err(e))
    }
}

/// One probe: what it exercises and the statement that does.
struct Probe {
    object: String,
    sql: String,
    /// A write: one that touched no row (an empty table) fired no row trigger.
    write: bool,
    /// A constraint may refuse the write after the `BEFORE` triggers ran (a copied row breaks
    /// a unique key, a deleted one is still referenced): the triggers passed, and the
    /// application's own such write would be refused the same way.
    constrained: bool,
}

/// Probes the application's paths on `tables` (those that exist) inside the caller's open
/// transaction; each probe in a savepoint that is rolled back.
/// `known`: the plan's own SQL, whose names an error may repeat (anything else in quotes is
/// masked: it may be a value the code read).
pub(super) async fn probe(
    conn: &mut PgConnection,
    tables: &[String],
    known: &str,
) -> sqlx::Result<Vec<AppProbe>> {
    let probes = read(conn, tables).await?;
    let mut out = Vec::new();
    for p in probes {
        sqlx::raw_sql("SAVEPOINT drydock_probe; SET LOCAL search_path TO DEFAULT")
            .execute(&mut *conn)
            .await?;
        let ran = sqlx::raw_sql(AssertSqlSafe(p.sql.clone()))
            .execute(&mut *conn)
            .await;
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT drydock_probe; RELEASE SAVEPOINT drydock_probe")
            .execute(&mut *conn)
            .await?;
        let (outcome, detail) = match ran {
            Ok(done) if p.write && done.rows_affected() == 0 => (
                ProbeOutcome::Skipped,
                Some("the table has no row to fire its row triggers with".into()),
            ),
            Ok(_) => (ProbeOutcome::Passed, None),
            Err(e) => judge(&e, p.constrained, known),
        };
        out.push(AppProbe {
            object: p.object,
            outcome,
            detail,
        });
    }
    Ok(out)
}

/// What a probe's error says about the application's path.
fn judge(e: &sqlx::Error, constrained: bool, known: &str) -> (ProbeOutcome, Option<String>) {
    let state = sqlstate(e).unwrap_or_default();
    let mut said = crate::db::agent_error(e, known);
    // Where it failed: the function of the application's that failed (its name, never a value).
    if let sqlx::Error::Database(d) = e
        && let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        && let Some(function) = pg.r#where().and_then(|w| {
            w.lines()
                .find(|l| l.starts_with("PL/pgSQL function") || l.starts_with("SQL function"))
        })
    {
        said.push_str(&format!(" (in {})", function.trim()));
    }
    match state.as_str() {
        s if constrained && s.starts_with("23") => (ProbeOutcome::Passed, None),
        "42501" => (
            ProbeOutcome::Skipped,
            Some(format!("the probing role may not do this: {said}")),
        ),
        "55P03" | "57014" => (
            ProbeOutcome::Skipped,
            Some(format!("busy (it would have waited): {said}")),
        ),
        _ => (ProbeOutcome::Failed, Some(said)),
    }
}

/// The probes of `tables`, read from the catalog: both reads in one round trip, under a pinned
/// search path.
async fn read(conn: &mut PgConnection, tables: &[String]) -> sqlx::Result<Vec<Probe>> {
    let rels: Vec<String> = tables.iter().map(|t| relation(t)).collect();
    let rels = escaped_names(&rels);
    // The enabled user triggers of each table by event (tgtype: 4 INSERT, 8 DELETE, 16 UPDATE),
    // with the columns a probe writes (quoted, comma-separated): every stored column (not
    // generated), and for the self-update those it may set (not GENERATED ALWAYS AS IDENTITY).
    // language=SQL
    let triggered = format!(
        "SELECT n.nspname::text, c.relname::text, string_agg(DISTINCT t.tgname::text, ', '),
                bool_or((t.tgtype::int4 & 4) <> 0), bool_or((t.tgtype::int4 & 16) <> 0), bool_or((t.tgtype::int4 & 8) <> 0),
                (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a'),
                (SELECT string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_trigger t ON t.tgrelid = c.oid
         WHERE c.oid IN (SELECT to_regclass(r) FROM unnest({rels}) AS r) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
           AND c.relkind IN ('r', 'p')
         GROUP BY n.nspname, c.relname, c.oid
         ORDER BY 1, 2"
    );
    // Views and materialized views on the tables, directly or through other views.
    // language=SQL
    let views = format!(
        "WITH RECURSIVE on_it(oid) AS (
             SELECT to_regclass(r)::oid FROM unnest({rels}) AS r WHERE to_regclass(r) IS NOT NULL
             UNION
             SELECT w.ev_class FROM on_it
             JOIN pg_depend d ON d.refobjid = on_it.oid AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_rewrite'::regclass
             JOIN pg_rewrite w ON w.oid = d.objid
             WHERE w.ev_class <> on_it.oid)
         SELECT n.nspname::text, c.relname::text, c.relkind::text
         FROM on_it JOIN pg_class c ON c.oid = on_it.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm')
         ORDER BY 1, 2"
    );
    let [triggered, views] =
        <[_; 2]>::try_from(pinned_batch(conn, &[&triggered, &views]).await?).unwrap_or_default();
    let views: Vec<(String, String, String)> = decoded(&views)?;

    let mut out = Vec::new();
    for row in &triggered {
        out.extend(trigger_probes(row)?);
    }
    for (schema, name, kind) in views {
        let rel = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        let what = if kind == "m" {
            "materialized view"
        } else {
            "view"
        };
        // A view runs its query (and the functions it calls); a materialized view is read as
        // stored (an unpopulated one fails every read until it is refreshed, as the
        // application's would).
        out.push(Probe {
            object: format!("{what} {}", qualified(&schema, &name)),
            sql: format!("SELECT 1 FROM (SELECT * FROM {rel} LIMIT 1) AS drydock_probe"),
            write: false,
            constrained: false,
        });
    }
    Ok(out)
}

/// The write probes of one table with enabled user triggers (a row of `read`'s trigger query):
/// a self-update, an insert of a copy of a row, a delete of one row, by the events they fire on.
fn trigger_probes(row: &sqlx::postgres::PgRow) -> sqlx::Result<Vec<Probe>> {
    let mut out = Vec::new();
    let (schema, name, triggers): (String, String, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (insert, update, delete): (bool, bool, bool) =
        (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    let stored: Option<String> = row.try_get(6)?;
    let settable: Option<(String, String)> =
        row.try_get::<Option<String>, _>(7)?.zip(row.try_get(8)?);
    let rel = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
    let table = qualified(&schema, &name);
    // One row, found by (tableoid, ctid): a partitioned table's partitions share ctids.
    let one = format!(
        "(SELECT tableoid AS drydock_probe_oid, ctid AS drydock_probe_ctid FROM {rel} LIMIT 1) AS drydock_probe
         WHERE t.tableoid OPERATOR(pg_catalog.=) drydock_probe.drydock_probe_oid AND t.ctid OPERATOR(pg_catalog.=) drydock_probe.drydock_probe_ctid"
    );
    let on = |event: &str| format!("triggers {triggers} on {table} ({event})");
    if let (true, Some((settable, row))) = (update, settable) {
        out.push(Probe {
            object: on("update"),
            sql: format!("UPDATE {rel} AS t SET ({settable}) = ROW({row}) FROM {one}"),
            write: true,
            constrained: false,
        });
    }
    if let (true, Some(stored)) = (insert, stored) {
        out.push(Probe {
            object: on("insert"),
            sql: format!(
                "INSERT INTO {rel} ({stored}) OVERRIDING SYSTEM VALUE SELECT {stored} FROM {rel} LIMIT 1"
            ),
            write: true,
            constrained: true,
        });
    }
    if delete {
        out.push(Probe {
            object: on("delete"),
            sql: format!("DELETE FROM {rel} AS t USING {one}"),
            write: true,
            constrained: true,
        });
    }
    Ok(out)
}
