//! SQL as text, below everything else: identifier validation and quoting, literals, column
//! types, and the lexer. A leaf: it imports nothing of drydock, and every module that splices
//! a name or a value into SQL goes through it.

pub mod definition;
pub mod layout;
pub mod lexer;
pub mod lock;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use lock::LockMode;

use pg_query::NodeEnum;

/// The database engine a target runs (and so the dialect its SQL is read in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first `n` words of a statement, for a message (` …` after them when it has more).
pub fn first_words(sql: &str, n: usize) -> String {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut s = words[..words.len().min(n)].join(" ");
    if words.len() > n {
        s.push_str(" …");
    }
    s
}

/// Identifiers: a letter or `_`, then letters, digits, `_`; at most 63 bytes (PostgreSQL's limit).
pub fn validate_ident(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(format!(
            "{name:?} is not a valid identifier (letters, digits and _, starting with a letter or _, at most 63 characters)"
        ));
    }
    Ok(())
}

/// Quotes an identifier for splicing: `"name"` with embedded quotes doubled. Callers that take
/// names from input validate them first; this function is safe even on hostile names.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string as an SQL literal: `'it''s'`. NUL bytes are refused by `literal_value`.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A JSON value as an SQL literal, or an error for values that have no literal form.
pub fn literal_value(v: &serde_json::Value) -> std::result::Result<String, String> {
    match v {
        serde_json::Value::Null => Ok("NULL".into()),
        serde_json::Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::String(s) if s.contains('\0') => {
            Err("a literal cannot contain a NUL byte".into())
        }
        serde_json::Value::String(s) => Ok(quote_literal(s)),
        _ => Err("only strings, numbers, booleans and null can be literals".into()),
    }
}

/// A column type: words, an optional `(p)` or `(p, s)`, an optional `[]`.
pub fn validate_type(ty: &str) -> std::result::Result<String, String> {
    let t = ty.trim();
    let (words, rest) = match t.find('(') {
        Some(p) => (&t[..p], &t[p..]),
        None => match t.find('[') {
            Some(p) => (&t[..p], &t[p..]),
            None => (t, ""),
        },
    };
    let words_ok = !words.trim().is_empty()
        && words.trim().starts_with(|c: char| c.is_ascii_alphabetic())
        && words
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ');
    let rest_ok = {
        let r = rest.strip_suffix("[]").unwrap_or(rest);
        r.is_empty()
            || (r.starts_with('(')
                && r.ends_with(')')
                && r[1..r.len() - 1].split(',').count() <= 2
                && r[1..r.len() - 1].split(',').all(|n| {
                    let n = n.trim();
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
                }))
    };
    if words_ok && rest_ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "{ty:?} is not a column type like `bigint`, `varchar(255)` or `numeric(10, 2)`"
        ))
    }
}

/// Checks that `expr` is exactly one SQL expression: wrapped as `SELECT (expr)`, it must parse as
/// one SELECT with one target and nothing else — so a parameter can never become a second
/// statement or a FROM clause.
pub fn single_expression(what: &str, expr: &str) -> std::result::Result<(), String> {
    let parsed = pg_query::parse(&format!("SELECT ({expr})"), 0)
        .map_err(|e| format!("{what} {expr:?} is not an SQL expression: {e}"))?;
    match parsed.protobuf.stmts.as_slice() {
        [one] => match one.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::SelectStmt(s))
                if s.target_list.len() == 1
                    && s.from_clause.is_empty()
                    && s.where_clause.is_none() =>
            {
                Ok(())
            }
            _ => Err(format!("{what} {expr:?} is not a single expression")),
        },
        _ => Err(format!(
            "{what} {expr:?} must be exactly one expression, not several statements"
        )),
    }
}

/// The columns a filter requires to be NULL: each `column IS NULL` among its top-level `AND`ed
/// conditions (so a row it admits has NULL in every one). Nothing for an expression that does
/// not parse, or whose conditions are joined any other way.
pub fn null_tested_columns(filter: &str) -> Vec<String> {
    fn walk(node: &NodeEnum, out: &mut Vec<String>) {
        match node {
            NodeEnum::BoolExpr(b) if b.boolop() == pg_query::protobuf::BoolExprType::AndExpr => {
                for arg in b.args.iter().filter_map(|a| a.node.as_ref()) {
                    walk(arg, out);
                }
            }
            NodeEnum::NullTest(t)
                if t.nulltesttype() == pg_query::protobuf::NullTestType::IsNull =>
            {
                if let Some(NodeEnum::ColumnRef(c)) = t.arg.as_ref().and_then(|a| a.node.as_ref())
                    && let Some(NodeEnum::String(name)) =
                        c.fields.last().and_then(|f| f.node.as_ref())
                {
                    out.push(name.sval.clone());
                }
            }
            _ => {}
        }
    }
    let Ok(parsed) = pg_query::parse(&format!("SELECT WHERE ({filter})"), 0) else {
        return vec![];
    };
    let mut out = Vec::new();
    if let [one] = parsed.protobuf.stmts.as_slice()
        && let Some(NodeEnum::SelectStmt(s)) = one.stmt.as_ref().and_then(|n| n.node.as_ref())
        && let Some(w) = s.where_clause.as_ref().and_then(|w| w.node.as_ref())
    {
        walk(w, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tested_columns_are_the_and_ed_is_null_conditions() {
        assert_eq!(null_tested_columns("cents IS NULL"), ["cents"]);
        assert_eq!(
            null_tested_columns("o.cents IS NULL AND (\"Tier\" IS NULL AND id > 5)"),
            ["cents", "Tier"]
        );
        assert!(null_tested_columns("cents IS NULL OR id > 5").is_empty());
        assert!(null_tested_columns("cents IS NOT NULL").is_empty());
        assert!(null_tested_columns("NOT (cents IS NULL)").is_empty());
        assert!(null_tested_columns("cents IS NULL; DROP TABLE x").is_empty());
        assert!(null_tested_columns("coalesce(cents, 0) = 0").is_empty());
    }
}
