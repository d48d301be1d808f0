//! Sequences around a dry-run. A sequence is non-transactional: the dry-run's rollback does not
//! take back a `nextval` (a serial column's insert) or a `setval`, so a dry-run would move
//! staging's sequences for good. drydock reads them before the plan runs and after the rollback,
//! and puts back each that moved when that can hand out no value twice. And after a backfill
//! that copies keys: the destination's sequence moved past them.

use super::*;
use crate::db::SequenceMove;

/// The application's sequences (qualified, quoted) with their last value (none: never used).
pub(super) type Sequences = BTreeMap<String, Option<i64>>;

/// Every sequence of the application's schemas, with its last value: read as the login, under a
/// pinned search path ([`pinned_batch`]).
// language=SQL
pub(super) const READ: &str =
    "SELECT format('%I.%I', s.schemaname, s.sequencename), s.last_value FROM pg_sequences s
     WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema', 'drydock', 'drydock_backup')
       AND s.schemaname NOT LIKE E'pg\\\\_%'";

pub(super) fn from_rows(rows: &[sqlx::postgres::PgRow]) -> sqlx::Result<Sequences> {
    Ok(decoded::<(String, Option<i64>)>(rows)?
        .into_iter()
        .collect())
}

async fn read(conn: &mut PgConnection) -> sqlx::Result<Sequences> {
    from_rows(&pinned_read(conn, READ).await?)
}

/// After the dry-run's rollback, on the login's own session again: each sequence the dry-run
/// moved, put back where that is safe. A read or a put-back that fails leaves the sequence as it
/// is, and says why.
pub(super) async fn restore(conn: &mut PgConnection, before: &Sequences) -> Vec<SequenceMove> {
    let after = match read(conn).await {
        Ok(after) => after,
        Err(e) => {
            tracing::warn!(error = %crate::redact::redact(&e.to_string()), "reading sequences after a dry-run failed");
            return vec![];
        }
    };
    let mut out = Vec::new();
    for (sequence, was) in before {
        let now = after.get(sequence).copied().flatten();
        if now == *was {
            continue;
        }
        let left = match put_back(conn, sequence, *was, now).await {
            Ok(left) => left,
            Err(e) => Some(format!(
                "could not be put back: {}",
                crate::redact::redact(&e.to_string())
            )),
        };
        out.push(SequenceMove {
            sequence: sequence.clone(),
            before: *was,
            after: now,
            restored: left.is_none(),
            left,
        });
    }
    out
}

/// Puts `sequence` back at `was`, unless it moved forward and the application may have used a
/// value of the range since: then it says why it left it. Compare-and-set: nothing is changed
/// when the sequence moved again since it was read.
async fn put_back(
    conn: &mut PgConnection,
    sequence: &str,
    was: Option<i64>,
    now: Option<i64>,
) -> sqlx::Result<Option<String>> {
    let forward = match (was, now) {
        (Some(w), Some(n)) => n > w,
        (None, Some(_)) => true,
        _ => false,
    };
    if forward && let Some(why) = used_since(conn, sequence, was, now).await? {
        return Ok(Some(why));
    }
    // language=SQL
    let done = pinned(conn, async |c| {
        sqlx::query(
            "SELECT pg_catalog.setval($1::regclass, coalesce($2, s.start_value), $2 IS NOT NULL)
             FROM pg_sequences s
             WHERE format('%I.%I', s.schemaname, s.sequencename) = $1 AND s.last_value IS NOT DISTINCT FROM $3",
        )
        .persistent(false)
        .bind(sequence)
        .bind(was)
        .bind(now)
        .fetch_all(c)
        .await
    })
    .await?;
    Ok(done
        .is_empty()
        .then(|| "moved again since the dry-run; left where it is".to_string()))
}

/// Why a forward move cannot be taken back, if it cannot: the sequence belongs to no column
/// (`OWNED BY`, serial, identity), or a committed row of its column holds a value the dry-run
/// consumed (the staging application inserted while the dry-run ran).
async fn used_since(
    conn: &mut PgConnection,
    sequence: &str,
    was: Option<i64>,
    now: Option<i64>,
) -> sqlx::Result<Option<String>> {
    // language=SQL
    let owner: Option<(String, String)> = pinned(conn, async |c| {
        sqlx::query_as(
            "SELECT format('%I.%I', n.nspname, t.relname), quote_ident(a.attname)
             FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.objid = $1::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0",
        )
        .persistent(false)
        .bind(sequence)
        .fetch_optional(c)
        .await
    })
    .await?;
    let Some((table, column)) = owner else {
        return Ok(Some(
            "no column owns it, so drydock cannot tell whether the application used its values meanwhile; left advanced (a gap is harmless)".into(),
        ));
    };
    // language=SQL
    let sql = format!("SELECT EXISTS (SELECT FROM {table} WHERE {column} > $1 AND {column} <= $2)");
    let used: bool = pinned(conn, async |c| {
        sqlx::query_scalar(AssertSqlSafe(sql))
            .persistent(false)
            .bind(was.unwrap_or(i64::MIN))
            .bind(now.unwrap_or(i64::MAX))
            .fetch_one(c)
            .await
    })
    .await?;
    Ok(used.then(|| {
        format!("{table}.{column} holds values the dry-run's range covers (the application inserted meanwhile); left advanced (a gap is harmless)")
    }))
}

/// A copy writes the source's keys into `table`: when that key column takes its values from a
/// sequence (serial, identity), the sequence is moved past the largest key copied, or the
/// application's next insert there would be handed a key a copied row already has. Never moved
/// back (another writer may have gone further); as the login, on drydock's own session.
pub(super) async fn advance_past_copied(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
) -> sqlx::Result<()> {
    let sequence: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
        .persistent(false)
        .bind(qualified_ident(table))
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    let Some(sequence) = sequence else {
        return Ok(());
    };
    // language=SQL
    let sql = format!(
        "SELECT setval($1::regclass, greatest(m, coalesce(pg_sequence_last_value($1::regclass), m)))
         FROM (SELECT max({key})::bigint AS m FROM {table}) AS copied WHERE m IS NOT NULL",
        key = quote_ident(key),
        table = qualified_ident(table),
    );
    sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(sequence)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
