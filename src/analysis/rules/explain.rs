//! Why each rule holds: what PostgreSQL measurably does behind it (as the dry-run and the
//! agreement check in `tests/agreement.rs` measure it) and the section of PostgreSQL's
//! documentation that says so. `drydock lint --explain` prints it beside each hazard.

use serde::Serialize;

use super::Rule;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Explanation {
    /// What is measured, and how.
    pub measured: &'static str,
    /// The PostgreSQL documentation behind the rule.
    pub docs: &'static str,
}

pub fn explain(rule: Rule) -> Explanation {
    let (measured, docs) = match rule {
        Rule::UnknownObject => (
            "the catalog (pg_class, pg_attribute, pg_type, pg_namespace) has no such object and no earlier statement of the plan creates it; the statement fails when it runs",
            "https://www.postgresql.org/docs/current/ddl-schemas.html",
        ),
        Rule::BlockingRewrite => (
            "the table gets a new relfilenode (pg_class.relfilenode changes) while pg_locks shows ACCESS EXCLUSIVE on it: every row is copied while reads and writes wait",
            "https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-NOTES",
        ),
        Rule::BlockingScan => (
            "pg_stat_xact_user_tables.seq_scan of the table grows by the statement while pg_locks shows a mode that conflicts with ROW EXCLUSIVE (writes wait for the whole read)",
            "https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-NOTES",
        ),
        Rule::BlockingIndexBuild => (
            "pg_locks shows SHARE (or stronger) on the table for the whole build, which conflicts with ROW EXCLUSIVE: INSERT, UPDATE and DELETE wait",
            "https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY",
        ),
        Rule::LockHeldLong => (
            "pg_locks during a later statement of the transaction still shows the earlier statement's lock (acquired: false in the dry-run): locks are released only at commit",
            "https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES",
        ),
        Rule::UnbatchedWrite => (
            "one statement holds row locks on every row it changes until it commits, and leaves as many dead tuples for VACUUM; replicas apply it as one transaction",
            "https://www.postgresql.org/docs/current/routine-vacuuming.html",
        ),
        Rule::Destructive => (
            "the rows (or the column's values) are gone after commit; only a copy made first brings them back",
            "https://www.postgresql.org/docs/current/ddl-alter.html#DDL-ALTER-REMOVING-A-COLUMN",
        ),
        Rule::BreakingChange => (
            "after the statement, queries of the running application that name the old shape fail (undefined column, undefined table, invalid input value for enum)",
            "https://www.postgresql.org/docs/current/ddl-alter.html",
        ),
        Rule::NonTransactional => (
            "PostgreSQL refuses the statement inside a transaction block (CONCURRENTLY, VACUUM, ...): a failure leaves its work half done (an INVALID index)",
            "https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY",
        ),
        Rule::Irreversible => (
            "the dry-run's content hash of the touched tables after `down` differs from the hash before `up` (or there is no `down`)",
            "https://www.postgresql.org/docs/current/ddl-alter.html",
        ),
        Rule::Privileged => (
            "the construct reaches the server's files, programs, roles or settings, which no migration needs",
            "https://www.postgresql.org/docs/current/sql-copy.html",
        ),
    };
    Explanation { measured, docs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_explained_with_a_postgres_docs_section() {
        for r in Rule::ALL {
            let e = explain(r);
            assert!(
                e.docs
                    .starts_with("https://www.postgresql.org/docs/current/"),
                "{r}"
            );
            assert!(e.measured.len() > 40, "{r}");
        }
    }
}
