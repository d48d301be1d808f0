//! Statement facts from leading keywords: SQLite's statements (no parser of its dialect here), and
//! PostgreSQL's where only the kind is needed (is it transactional?). The catalog-aware PostgreSQL
//! analysis is `pg`.

use super::lexer::{self, Token};
use super::{Action, StatementFacts, StatementKind};
use crate::sql::{Dialect, LockMode};

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
    let Shape {
        kind,
        writes_data,
        tables,
        detail,
    } = shape(t);
    let has_where = position(t, "WHERE").is_some();
    let transactional =
        kind != StatementKind::Vacuum && !t.iter().any(|x| x.is_word("CONCURRENTLY"));
    let (lock, rewrites, scans) = if engine == Dialect::Sqlite {
        let lock = if kind == StatementKind::Select {
            LockMode::DatabaseRead
        } else {
            LockMode::DatabaseWrite
        };
        let rewrites = matches!(kind, StatementKind::Vacuum | StatementKind::DropColumn);
        let scans = writes_data
            || matches!(
                kind,
                StatementKind::CreateIndex | StatementKind::AddConstraint
            );
        (lock, rewrites, scans)
    } else {
        // PostgreSQL facts are refined by the catalog-aware analysis; until then, assume the
        // strongest lock a DDL statement commonly takes.
        let lock = if writes_data {
            LockMode::RowExclusive
        } else if kind == StatementKind::CreateIndex {
            LockMode::Share
        } else {
            LockMode::AccessExclusive
        };
        (lock, false, writes_data)
    };
    let actions = match kind {
        StatementKind::RenameTable => renamed_to(t)
            .map(|to| vec![Action::RenameTable { to }])
            .unwrap_or_default(),
        _ => vec![],
    };
    StatementFacts {
        step: step.to_string(),
        index,
        sql: st.sql.clone(),
        kind,
        tables,
        lock,
        locks_on: Default::default(),
        rewrites,
        scans,
        transactional,
        has_where,
        actions,
        detail,
        unmodelled: false,
    }
}

/// The new name of `ALTER TABLE … RENAME TO name`.
fn renamed_to(t: &[Token]) -> Option<String> {
    let at = t.iter().position(|x| x.is_word("RENAME"))?;
    t.get(at + 1)?.is_word("TO").then_some(())?;
    name_after(t, at + 2)
}

/// What the leading keywords say: the kind, whether it writes rows, its tables.
struct Shape {
    kind: StatementKind,
    writes_data: bool,
    tables: Vec<String>,
    detail: Option<String>,
}

fn shape(t: &[Token]) -> Shape {
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
            (StatementKind::from_name(&format!("create {what}")), false)
        }
        ("DROP", what) => {
            let what = what.to_lowercase();
            if what == "table" {
                tables.extend(name_after(t, 2));
            }
            (StatementKind::from_name(&format!("drop {what}")), false)
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
                Some(("ADD", "CONSTRAINT")) => StatementKind::AddConstraint,
                Some(("ADD", _)) => StatementKind::AddColumn,
                Some(("DROP", "CONSTRAINT")) => StatementKind::DropConstraint,
                Some(("DROP", _)) => {
                    let p = action.unwrap_or(0) + 1;
                    let p = if w(p) == "COLUMN" { p + 1 } else { p };
                    detail = name_after(t, p);
                    StatementKind::DropColumn
                }
                Some(("RENAME", "TO")) => StatementKind::RenameTable,
                Some(("RENAME", _)) => StatementKind::RenameColumn,
                Some(("ALTER", _)) => StatementKind::AlterColumn,
                _ => StatementKind::AlterTable,
            };
            (kind, false)
        }
        ("INSERT", _) | ("REPLACE", _) => {
            if let Some(into) = position(t, "INTO") {
                tables.extend(name_after(t, into + 1));
            }
            (StatementKind::Insert, true)
        }
        ("UPDATE", _) => {
            let mut i = 1;
            if w(1) == "OR" {
                i = 3;
            }
            tables.extend(name_after(t, i));
            (StatementKind::Update, true)
        }
        ("DELETE", _) => {
            if let Some(from) = position(t, "FROM") {
                tables.extend(name_after(t, from + 1));
            }
            (StatementKind::Delete, true)
        }
        (first, _) => (StatementKind::from_name(&first.to_lowercase()), false),
    };
    Shape {
        kind,
        writes_data,
        tables,
        detail,
    }
}
