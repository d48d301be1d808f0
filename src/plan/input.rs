//! What a plan's body must be before it is stored, checked where the input arrives: a backfill
//! is one UPDATE's assignments and an expression, a check one read-only query.

use pg_query::NodeEnum;

use crate::error::{Error, Part, Result};
use crate::sql::single_expression;

/// Validates a backfill: `UPDATE table SET <set> WHERE <where>` must parse as exactly one UPDATE
/// without FROM, RETURNING or WITH, and must not assign the key it walks by.
pub fn validate_backfill(step: &str, b: &crate::plan::Backfill) -> Result<()> {
    let bad = |m: String| Error::invalid(Part::Backfill, format!("step `{step}` backfill: {m}"));
    let ident_ok = |s: &str| {
        s.split('.').count() <= 2 && s.split('.').all(|p| crate::sql::validate_ident(p).is_ok())
    };
    if !ident_ok(&b.table) {
        return Err(bad(format!(
            "table {:?} is not a valid (schema-qualified) identifier",
            b.table
        )));
    }
    if let Some(k) = &b.key {
        crate::sql::validate_ident(k).map_err(bad)?;
    }
    if let Some(w) = &b.filter {
        single_expression("`where`", w).map_err(bad)?;
    }
    if b.batch_size == Some(0) {
        return Err(bad("batch_size must be at least 1".into()));
    }
    let modes = [!b.set.trim().is_empty(), b.copy_into.is_some(), b.delete];
    if modes.iter().filter(|m| **m).count() != 1 {
        return Err(bad(
            "give exactly one of `set` (update), `copy_into` (copy) or `delete: true`".into(),
        ));
    }
    if let Some(c) = &b.copy_into {
        if !ident_ok(&c.table) {
            return Err(bad(format!(
                "`copy_into.table` {:?} is not a valid (schema-qualified) identifier",
                c.table
            )));
        }
        if c.columns.is_empty() {
            return Err(bad("`copy_into.columns` is empty".into()));
        }
        c.columns
            .iter()
            .try_for_each(|col| crate::sql::validate_ident(col))
            .map_err(bad)?;
        match &b.key {
            Some(k) if c.columns.contains(k) => {}
            _ => {
                return Err(bad(
                    "a copy needs `key`, one of `copy_into.columns`: rollback deletes the copied rows by it".into(),
                ));
            }
        }
    }
    if b.set.trim().is_empty() {
        return Ok(());
    }
    let sql = format!("UPDATE {} SET {}", b.table, b.set);
    let parsed = pg_query::parse(&sql, 0)
        .map_err(|e| bad(format!("`set` {:?} does not parse: {e}", b.set)))?;
    let [one] = parsed.protobuf.stmts.as_slice() else {
        return Err(bad(format!(
            "`set` {:?} must be assignments only, not several statements",
            b.set
        )));
    };
    let Some(NodeEnum::UpdateStmt(u)) = one.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return Err(bad("`set` must be assignments like `col = expr`".into()));
    };
    if u.where_clause.is_some()
        || !u.from_clause.is_empty()
        || u.returning_clause.is_some()
        || u.with_clause.is_some()
    {
        return Err(bad(
            "`set` must hold assignments only; put the row filter in `where`".into(),
        ));
    }
    let assigned: Vec<&str> = u
        .target_list
        .iter()
        .filter_map(|t| match t.node.as_ref()? {
            NodeEnum::ResTarget(r) => Some(r.name.as_str()),
            _ => None,
        })
        .collect();
    if let Some(k) = b.key.as_deref().filter(|k| assigned.contains(k)) {
        return Err(bad(format!("`set` assigns the key `{k}` it walks by")));
    }
    Ok(())
}

/// A check must be exactly one read-only query, so a check can never smuggle a write.
pub fn check_is_single_query(name: &str, sql: &str) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidCheck {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let stmts = crate::sql::lexer::split(sql).map_err(|e| invalid(&e.0))?;
    match stmts.as_slice() {
        [one] => {
            let first = one.tokens.first();
            if !(first
                .is_some_and(|t| t.is_word("SELECT") || t.is_word("WITH") || t.is_word("VALUES")))
            {
                return Err(invalid("it does not start with SELECT, WITH or VALUES"));
            }
            let writes = [
                "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "ATTACH", "PRAGMA",
            ];
            if one
                .tokens
                .iter()
                .any(|t| writes.iter().any(|w| t.is_word(w)))
            {
                return Err(invalid("it contains a write or DDL keyword"));
            }
            Ok(())
        }
        [] => Err(invalid("it is empty")),
        _ => Err(invalid(&format!(
            "it holds {} statements; a check is exactly one",
            stmts.len()
        ))),
    }
}
