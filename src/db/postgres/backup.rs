//! drydock's own backup: a verified snapshot of the plan's tables.

use super::*;

impl Postgres {
    /// A restorable snapshot of the affected tables in the `drydock_backup` schema, verified by
    /// row count and content hash in one consistent snapshot.
    pub async fn snapshot(
        &self,
        label: &str,
        tables: &[String],
        max_rows: u64,
    ) -> Result<BackupEvidence> {
        let mut conn = self.connect().await?;
        let fail = |detail: String, fix: &str| Error::BackupFailed {
            target: self.name.clone(),
            detail,
            fix: fix.to_string(),
        };
        // What to do about a statement of the snapshot that failed, by its SQLSTATE.
        let failed = |e: sqlx::Error| {
            let fix = match super::sqlstate(&e).as_deref() {
                Some("53100") => {
                    "free disk space on the target's server (the snapshot copies the affected tables), or configure `[backup] command` in drydock.toml to verify your real backups instead"
                }
                Some("42501") => {
                    "let the login create and fill the schema `drydock_backup` (GRANT CREATE ON DATABASE), or configure `[backup] command` in drydock.toml"
                }
                _ => {
                    "see the detail: the snapshot's own SQL failed on this target; configure `[backup] command` in drydock.toml to verify your real backups instead"
                }
            };
            fail(crate::redact::redact(&e.to_string()), fix)
        };
        let estimates = row_counts_on(&mut conn, tables)
            .await
            .map_err(|e| self.err(e))?;
        let total: u64 = estimates.values().sum();
        if total > max_rows {
            conn.close().await.ok();
            return Err(fail(
                format!(
                    "the affected tables hold ~{total} rows, above policy.snapshot_max_rows ({max_rows})"
                ),
                "configure `[backup] command` in drydock.toml so drydock verifies your real backups, or raise policy.snapshot_max_rows",
            ));
        }
        sqlx::raw_sql("SET statement_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE SCHEMA IF NOT EXISTS drydock_backup")
            .execute(&mut conn)
            .await
            .map_err(failed)?;
        let mut counts = BTreeMap::new();
        for table in estimates.keys() {
            let source = qualified_ident(table);
            let copy = quote_ident(&snapshot_name(label, table));
            let sql = format!("CREATE TABLE drydock_backup.{copy} AS TABLE {source}");
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .map_err(failed)?;
            let probe = |rel: &str| {
                format!(
                    "SELECT count(*)::int8, coalesce(sum(hashtext(t::text)::int8), 0)::int8 FROM {rel} AS t"
                )
            };
            let a: (i64, i64) = sqlx::query_as(AssertSqlSafe(probe(&source)))
                .persistent(false)
                .fetch_one(&mut conn)
                .await
                .map_err(failed)?;
            let b: (i64, i64) =
                sqlx::query_as(AssertSqlSafe(probe(&format!("drydock_backup.{copy}"))))
                    .persistent(false)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(failed)?;
            if a != b {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
                return Err(fail(
                    format!("the snapshot of `{table}` differs from the source ({a:?} vs {b:?})"),
                    "call `apply` again (nothing was changed); if it repeats, configure `[backup] command` in drydock.toml",
                ));
            }
            counts.insert(table.clone(), a.0 as u64);
        }
        sqlx::raw_sql("COMMIT")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(BackupEvidence {
            method: "postgres snapshot of the affected tables into drydock_backup, verified by row count and content hash".into(),
            location: format!("schema drydock_backup, tables {label}_*"),
            verified: true,
            tables: counts.keys().cloned().collect(),
            row_counts: counts,
            taken_at: crate::clock::now(),
            whole_database: false,
        })
    }
}

/// The snapshot table of `table` for `label`: a short hash of the table's whole name comes first,
/// so that two long names sharing their first characters never meet where PostgreSQL cuts an
/// identifier (63 bytes); the rest of the name follows, for a person reading the schema.
fn snapshot_name(label: &str, table: &str) -> String {
    let mut name = format!(
        "{label}_{}_{}",
        crate::db::short_hash(table),
        table.replace('.', "_")
    );
    while name.len() > 63 {
        name.pop();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::snapshot_name;

    #[test]
    fn long_names_sharing_a_prefix_get_their_own_snapshot() {
        let prefix = "customer_subscription_billing_history_entries_by_region_and";
        let (a, b) = (format!("{prefix}_month"), format!("{prefix}_quarter"));
        let (x, y) = (
            snapshot_name("pl-0123456789", &a),
            snapshot_name("pl-0123456789", &b),
        );
        assert_ne!(x, y);
        assert!(x.len() <= 63 && y.len() <= 63, "{x} {y}");
        assert!(snapshot_name("pl-1", "billing.invoices").ends_with("_billing_invoices"));
        // A name cut inside a multi-byte character stays valid UTF-8 (String::pop drops chars).
        assert!(snapshot_name("pl-1", &"é".repeat(40)).len() <= 63);
    }
}
