//! Static analysis of a plan: per statement its kind, tables, lock, rewrite/scan and whether it
//! can run in a transaction; the hazards (one rule per file in `rules/`) with context-aware
//! severity; the impact on the target's catalog; and a risk level. The dry-run's measurements
//! are reported beside these facts; where they disagree the measurement wins.
//! Imports `db` (the catalog), `plan`, `config` and the leaves; never `engine`, `store` or the adapters.

pub use crate::sql::lexer;
pub mod agreement;
mod analyze;
mod keywords;
pub mod pg;
pub mod privilege;
pub mod rules;

use std::collections::BTreeSet;

use crate::config::Policy;
use crate::db::Catalog;
use crate::error::{Error, Part, Result};
use lexer::Token;

pub use crate::plan::analysis::{
    Action, Analysis, Hazard, Rule, Severity, StatementFacts, StatementKind, TableImpact,
};
pub use analyze::analyze;
pub use keywords::classify;

/// Context the rules see for every statement.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub policy: &'a Policy,
    /// Tables created by earlier statements of this plan.
    pub created: &'a BTreeSet<String>,
    /// Tables emptied (TRUNCATE) by earlier statements of this plan: small, whatever the
    /// catalog says.
    pub emptied: &'a BTreeSet<String>,
    /// `table.column` added by earlier statements of this plan.
    pub added: &'a BTreeSet<String>,
    /// Tables known under a name an earlier statement of this plan gave them (`RENAME TO`).
    pub renamed: &'a BTreeSet<String>,
    /// Tables an earlier statement of this plan renamed away or dropped (and none created
    /// again under that name): whatever the catalog says, they are gone by then.
    pub gone: &'a BTreeSet<String>,
    /// Views dropped by earlier statements of this plan (and not created again since): they no
    /// longer depend on anything.
    pub dropped_views: &'a BTreeSet<String>,
    /// Functions the current step creates or replaces (by name): a trigger function rewritten
    /// in the same transaction as the column it names.
    pub replaced_functions: &'a BTreeSet<String>,
    /// The plan's target is a production database.
    pub production: bool,
}

impl Context<'_> {
    /// Rows the catalog estimates for `table`; 0 for a table this plan creates or empties.
    pub fn rows(&self, table: &str) -> u64 {
        if self.created.contains(table) || self.emptied.contains(table) {
            return 0;
        }
        self.catalog.tables.get(table).map(|t| t.rows).unwrap_or(0)
    }

    /// Caps a severity at `low` on tables created in this plan or below `large_table_rows`.
    pub fn severity(&self, table: Option<&str>, wanted: Severity) -> Severity {
        match table {
            Some(t) if self.created.contains(t) || self.rows(t) < self.policy.large_table_rows => {
                wanted.min(Severity::Low)
            }
            _ => wanted,
        }
    }

    /// The severity of lost data or broken application code: on production, size never lowers
    /// it (ten lost rows are lost data; a renamed column breaks running code on any table).
    pub fn data_severity(&self, table: Option<&str>, wanted: Severity) -> Severity {
        match table {
            Some(t) if self.created.contains(t) => wanted.min(Severity::Low),
            _ if self.production => wanted,
            _ => self.severity(table, wanted),
        }
    }
}

/// The existing name nearest to `name` (a typo's likely meaning): the smallest edit distance,
/// if it is small for the name's length.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&name, &c.to_lowercase()), c))
        .filter(|(d, c)| *d > 0 && *d <= (name.len().max(c.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Splits a step's SQL into statements, with a clear error naming the step.
pub fn statements(step: &str, sql: &str) -> Result<Vec<lexer::Statement>> {
    let stmts = lexer::split(sql)
        .map_err(|e| Error::invalid(Part::Statement, format!("step `{step}`: {}", e.0)))?;
    for s in &stmts {
        if let Some(Token::Word(w)) = s.tokens.first()
            && matches!(
                w.as_str(),
                "BEGIN" | "COMMIT" | "ROLLBACK" | "END" | "SAVEPOINT" | "RELEASE"
            )
            && !s.tokens.get(1).is_some_and(|t| t.is_word("TRIGGER"))
        {
            return Err(Error::invalid(
                Part::Statement,
                format!(
                    "step `{step}` contains `{}`: drydock opens and commits the transaction itself; remove transaction control from the SQL",
                    s.sql
                ),
            ));
        }
    }
    Ok(stmts)
}

pub use crate::plan::input::check_is_single_query;

/// A backfill as one UPDATE statement (what a dry-run measures; the engine runs it in batches).
pub fn backfill_sql(b: &crate::plan::Backfill) -> String {
    use crate::plan::BackfillMode;
    let qualified = |t: &str| {
        t.split('.')
            .map(crate::sql::quote_ident)
            .collect::<Vec<_>>()
            .join(".")
    };
    let table = qualified(&b.table);
    let filter = b
        .filter
        .as_deref()
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_default();
    // An INSERT … SELECT always has its WHERE: SQLite reads `FROM t ON CONFLICT` as a join.
    let copy_filter = b
        .filter
        .as_deref()
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_else(|| " WHERE true".into());
    match b.mode() {
        BackfillMode::Update(set) => format!("UPDATE {table} SET {set}{filter}"),
        BackfillMode::Delete => format!("DELETE FROM {table}{filter}"),
        BackfillMode::Copy(c) => {
            let cols = c
                .columns
                .iter()
                .map(|c| crate::sql::quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {table}{copy_filter}{}",
                qualified(&c.table),
                if c.skip_existing {
                    " ON CONFLICT DO NOTHING"
                } else {
                    ""
                }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    fn facts(sql: &str) -> StatementFacts {
        let st = &lexer::split(sql).unwrap()[0];
        classify("s", 1, st, Dialect::Sqlite)
    }

    #[test]
    fn classifies_common_statements() {
        assert_eq!(
            facts("ALTER TABLE users ADD COLUMN age int").kind,
            StatementKind::AddColumn
        );
        assert_eq!(
            facts("ALTER TABLE main.users DROP COLUMN age").tables,
            vec!["users"]
        );
        assert_eq!(
            facts("ALTER TABLE users DROP COLUMN age").detail.as_deref(),
            Some("age")
        );
        assert_eq!(
            facts("CREATE UNIQUE INDEX i ON \"Orders\"(a)").tables,
            vec!["Orders"]
        );
        assert_eq!(facts("DELETE FROM t").kind, StatementKind::Delete);
        assert!(!facts("DELETE FROM t").has_where);
        assert_eq!(
            facts("UPDATE OR IGNORE t SET a = 1 WHERE b").tables,
            vec!["t"]
        );
        assert_eq!(facts("DROP TABLE IF EXISTS old").tables, vec!["old"]);
    }

    #[test]
    fn check_must_be_one_select() {
        assert!(check_is_single_query("c", "SELECT count(*) = 0 FROM t").is_ok());
        assert!(check_is_single_query("c", "SELECT 1; DROP TABLE users").is_err());
        assert!(check_is_single_query("c", "DELETE FROM users").is_err());
        assert!(
            check_is_single_query("c", "WITH x AS (DELETE FROM t RETURNING 1) SELECT 1 FROM x")
                .is_err()
        );
        assert!(check_is_single_query("c", "SELECT 'DROP; x' FROM t").is_ok());
    }

    #[test]
    fn transaction_control_in_steps_is_refused() {
        assert!(statements("s", "BEGIN; ALTER TABLE t ADD c int; COMMIT").is_err());
        assert!(
            statements(
                "s",
                "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END"
            )
            .is_ok()
        );
    }
}
