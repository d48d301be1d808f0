//! Static analysis of a plan: per statement its kind, tables, lock, rewrite/scan and whether it
//! can run in a transaction; the hazards (one rule per file in `rules/`) with context-aware
//! severity; the impact on the target's catalog; and a risk level. The dry-run's measurements
//! are reported beside these facts; where they disagree the measurement wins.

pub use crate::sql::lexer;
pub mod pg;
pub mod privilege;
pub mod rules;

use std::collections::BTreeSet;

use crate::config::Policy;
use crate::db::Catalog;
use crate::error::{Error, Result};
use crate::plan::Body;
use crate::sql::{Dialect, LockMode};
use lexer::Token;

pub use crate::plan::analysis::{
    Action, Analysis, Hazard, Rule, Severity, StatementFacts, TableImpact,
};

/// Context the rules see for every statement.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub policy: &'a Policy,
    /// Tables created by earlier statements of this plan.
    pub created: &'a BTreeSet<String>,
    /// `table.column` added by earlier statements of this plan.
    pub added: &'a BTreeSet<String>,
    /// The plan's target is a production database.
    pub production: bool,
}

impl Context<'_> {
    /// Rows the catalog estimates for `table`; 0 for a table this plan creates.
    pub fn rows(&self, table: &str) -> u64 {
        if self.created.contains(table) {
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

/// Splits a step's SQL into statements, with a clear error naming the step.
pub fn statements(step: &str, sql: &str) -> Result<Vec<lexer::Statement>> {
    let stmts =
        lexer::split(sql).map_err(|e| Error::InvalidInput(format!("step `{step}`: {}", e.0)))?;
    for s in &stmts {
        if let Some(Token::Word(w)) = s.tokens.first()
            && matches!(
                w.as_str(),
                "BEGIN" | "COMMIT" | "ROLLBACK" | "END" | "SAVEPOINT" | "RELEASE"
            )
            && !s.tokens.get(1).is_some_and(|t| t.is_word("TRIGGER"))
        {
            return Err(Error::InvalidInput(format!(
                "step `{step}` contains `{}`: drydock opens and commits the transaction itself; remove transaction control from the SQL",
                s.sql
            )));
        }
    }
    Ok(stmts)
}

pub use crate::plan::input::check_is_single_query;

fn name_after(tokens: &[Token], mut i: usize) -> Option<String> {
    // Skip IF [NOT] EXISTS, then read `schema.name` or `name`.
    while tokens.get(i).is_some_and(|t| {
        t.is_word("IF") || t.is_word("NOT") || t.is_word("EXISTS") || t.is_word("ONLY")
    }) {
        i += 1;
    }
    let first = tokens.get(i)?.name()?;
    if tokens.get(i + 1) == Some(&Token::Punct('.')) {
        return tokens.get(i + 2).and_then(Token::name);
    }
    Some(first)
}

fn position(tokens: &[Token], word: &str) -> Option<usize> {
    tokens.iter().position(|t| t.is_word(word))
}

/// Reads a statement's kind and tables from its leading keywords.
pub fn classify(
    step: &str,
    index: usize,
    st: &lexer::Statement,
    engine: Dialect,
) -> StatementFacts {
    let t = &st.tokens;
    let w = |i: usize| match t.get(i) {
        Some(Token::Word(w)) => w.as_str(),
        _ => "",
    };
    let mut tables = Vec::new();
    let mut detail = None;
    let (kind, writes_data) = match (w(0), w(1)) {
        ("CREATE", _) => {
            let mut i = 1;
            while matches!(
                w(i),
                "TEMP" | "TEMPORARY" | "UNIQUE" | "OR" | "REPLACE" | "UNLOGGED"
            ) {
                i += 1;
            }
            let what = w(i).to_lowercase();
            match what.as_str() {
                "table" => tables.extend(name_after(t, i + 1)),
                "index" => {
                    if let Some(on) = position(t, "ON") {
                        tables.extend(name_after(t, on + 1));
                    }
                }
                "trigger" => {
                    if let Some(on) = position(t, "ON") {
                        tables.extend(name_after(t, on + 1));
                    }
                }
                _ => {}
            }
            (format!("create {what}"), false)
        }
        ("DROP", what) => {
            let what = what.to_lowercase();
            if what == "table" {
                tables.extend(name_after(t, 2));
            }
            (format!("drop {what}"), false)
        }
        ("ALTER", "TABLE") => {
            tables.extend(name_after(t, 2));
            let action = t
                .iter()
                .skip(3)
                .position(|x| {
                    x.is_word("ADD")
                        || x.is_word("DROP")
                        || x.is_word("RENAME")
                        || x.is_word("ALTER")
                })
                .map(|p| p + 3);
            let kind = match action.map(|p| (w(p), w(p + 1))) {
                Some(("ADD", "CONSTRAINT")) => "alter table add constraint",
                Some(("ADD", _)) => "alter table add column",
                Some(("DROP", "CONSTRAINT")) => "alter table drop constraint",
                Some(("DROP", _)) => {
                    let p = action.unwrap_or(0) + 1;
                    let p = if w(p) == "COLUMN" { p + 1 } else { p };
                    detail = name_after(t, p);
                    "alter table drop column"
                }
                Some(("RENAME", "TO")) => "alter table rename",
                Some(("RENAME", _)) => "alter table rename column",
                Some(("ALTER", _)) => "alter table alter column",
                _ => "alter table",
            };
            (kind.to_string(), false)
        }
        ("INSERT", _) | ("REPLACE", _) => {
            if let Some(into) = position(t, "INTO") {
                tables.extend(name_after(t, into + 1));
            }
            ("insert".into(), true)
        }
        ("UPDATE", _) => {
            let mut i = 1;
            if w(1) == "OR" {
                i = 3;
            }
            tables.extend(name_after(t, i));
            ("update".into(), true)
        }
        ("DELETE", _) => {
            if let Some(from) = position(t, "FROM") {
                tables.extend(name_after(t, from + 1));
            }
            ("delete".into(), true)
        }
        (first, _) => (first.to_lowercase(), false),
    };
    let has_where = position(t, "WHERE").is_some();
    let transactional =
        !matches!(kind.as_str(), "vacuum") && !t.iter().any(|x| x.is_word("CONCURRENTLY"));
    let (lock, rewrites, scans) = if engine == Dialect::Sqlite {
        let lock = if kind == "select" {
            LockMode::DatabaseRead
        } else {
            LockMode::DatabaseWrite
        };
        let rewrites = kind == "vacuum" || kind == "alter table drop column";
        let scans = writes_data || kind == "create index" || kind == "alter table add constraint";
        (lock, rewrites, scans)
    } else {
        // PostgreSQL facts are refined by the catalog-aware analysis; until then, assume the
        // strongest lock a DDL statement commonly takes.
        let lock = if writes_data {
            LockMode::RowExclusive
        } else if kind.starts_with("create index") {
            LockMode::Share
        } else {
            LockMode::AccessExclusive
        };
        (lock, false, writes_data)
    };
    StatementFacts {
        step: step.to_string(),
        index,
        sql: st.sql.clone(),
        kind,
        tables,
        lock,
        rewrites,
        scans,
        transactional,
        has_where,
        detail,
        actions: vec![],
    }
}

/// A backfill as one UPDATE statement (what a dry-run measures; the engine runs it in batches).
pub fn backfill_sql(b: &crate::plan::Backfill) -> String {
    let table = b
        .table
        .split('.')
        .map(crate::sql::quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    let filter = b
        .filter
        .as_deref()
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_default();
    format!("UPDATE {table} SET {}{filter}", b.set)
}

/// Analyses a plan body against a target's catalog.
/// `production`: the plan's target is a production database (size then never lowers the
/// severity of lost data or broken code).
pub fn analyze(
    body: &Body,
    catalog: &Catalog,
    policy: &Policy,
    production: bool,
) -> Result<Analysis> {
    let mut created = BTreeSet::new();
    let mut added = BTreeSet::new();
    let mut facts = Vec::new();
    let mut hazards = Vec::new();
    let mut touched = BTreeSet::new();
    let mut pg_state = pg::PlanState::new(catalog);
    for step in &body.steps {
        let name = step.name.as_deref().unwrap_or("step");
        let up = step.up.as_deref().unwrap_or("");
        let mut step_facts = Vec::new();
        let first_hazard = hazards.len();
        for (i, st) in statements(name, up)?.iter().enumerate() {
            let f = if catalog.engine == Dialect::Postgres {
                pg::facts(name, i + 1, &st.sql, catalog, &mut pg_state)?
            } else {
                classify(name, i + 1, st, catalog.engine)
            };
            let ctx = Context {
                catalog,
                policy,
                created: &created,
                added: &added,
                production,
            };
            hazards.extend(rules::check_statement(&f, &ctx));
            touched.extend(f.tables.iter().cloned());
            if f.kind.starts_with("create table") {
                created.extend(f.tables.iter().cloned());
            }
            for a in &f.actions {
                if let (Action::AddColumn { column }, Some(t)) = (a, f.tables.first()) {
                    added.insert(format!("{t}.{column}"));
                }
            }
            step_facts.push(f);
        }
        if let Some(b) = &step.backfill {
            if catalog.engine != Dialect::Postgres {
                return Err(Error::InvalidInput(format!(
                    "step `{name}`: backfill steps need a PostgreSQL target; on {} write the change as `up` SQL",
                    catalog.engine
                )));
            }
            touched.insert(b.table.clone());
            let overwrites = pg::assigned_columns(&b.set).map_err(Error::InvalidInput)?;
            let f = StatementFacts {
                step: name.to_string(),
                index: 1,
                sql: format!(
                    "{} -- in keyset batches, each its own transaction; overwrites {} (old values saved for rollback)",
                    backfill_sql(b),
                    overwrites.join(", ")
                ),
                kind: "backfill".into(),
                tables: vec![b.table.clone()],
                lock: LockMode::RowExclusive,
                rewrites: false,
                scans: false,
                transactional: true,
                has_where: true,
                detail: None,
                actions: vec![],
            };
            let ctx = Context {
                catalog,
                policy,
                created: &created,
                added: &added,
                production,
            };
            hazards.extend(rules::check_statement(&f, &ctx));
            step_facts.push(f);
        }
        if let Some(down) = &step.down {
            for (i, st) in statements(name, down)?.iter().enumerate() {
                if catalog.engine == Dialect::Postgres {
                    // `down` must parse too; its facts do not feed the plan's state.
                    pg::facts(
                        name,
                        i + 1,
                        &st.sql,
                        catalog,
                        &mut pg::PlanState::new(catalog),
                    )?;
                }
            }
        }
        let ctx = Context {
            catalog,
            policy,
            created: &created,
            added: &added,
            production,
        };
        hazards.extend(rules::check_step(step, name, &step_facts, &ctx));
        if let Some(gate) = &step.gate {
            // A gated step runs only after an engineer releases it, or after the rollback window:
            // the hazard stays visible, but a human decision and the passage of time stand
            // between it and production.
            let why = match gate {
                crate::plan::Gate::Manual => {
                    "an engineer releases it (`drydock release`)".to_string()
                }
                crate::plan::Gate::After { duration } => {
                    format!("{duration} has passed, or an engineer overrides")
                }
            };
            for h in &mut hazards[first_hazard..] {
                if h.severity > Severity::Medium {
                    h.severity = Severity::Medium;
                    h.message
                        .push_str(&format!(" (gated: step `{name}` waits until {why})"));
                }
            }
        }
        facts.extend(step_facts);
    }
    // Agent SQL that reaches beyond the database: critical whatever the table, never capped by a
    // gate, and refused by every verb that would run it.
    for v in privilege::violations(body, catalog.engine) {
        hazards.push(Hazard {
            code: Rule::Privileged,
            severity: Severity::Critical,
            statement: v.place.clone(),
            table: None,
            message: format!(
                "{}: {}; drydock refuses to run it (forbidden-statement) in dry-run, apply and validate",
                v.place, v.forbidden
            ),
            fix: "keep agent SQL inside the database; if the change truly needs this, an engineer runs that part by hand".into(),
        });
    }
    let impact = touched
        .iter()
        .map(|t| match catalog.tables.get(t) {
            Some(info) => TableImpact {
                table: t.clone(),
                exists: true,
                rows: Some(info.rows),
                bytes: info.bytes,
                indexes: info.indexes.clone(),
                views: info.views.clone(),
                foreign_keys: info.foreign_keys_in.clone(),
                triggers: info.triggers.clone(),
            },
            None => TableImpact {
                table: t.clone(),
                exists: false,
                rows: None,
                bytes: None,
                indexes: vec![],
                views: vec![],
                foreign_keys: vec![],
                triggers: vec![],
            },
        })
        .collect();
    let risk = hazards
        .iter()
        .map(|h| h.severity)
        .max()
        .unwrap_or(Severity::Low);
    Ok(Analysis {
        engine: catalog.engine,
        statements: facts,
        hazards,
        impact,
        risk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(sql: &str) -> StatementFacts {
        let st = &lexer::split(sql).unwrap()[0];
        classify("s", 1, st, Dialect::Sqlite)
    }

    #[test]
    fn classifies_common_statements() {
        assert_eq!(
            facts("ALTER TABLE users ADD COLUMN age int").kind,
            "alter table add column"
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
        assert_eq!(facts("DELETE FROM t").kind, "delete");
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
