//! Templates on SQLite, whose `ALTER TABLE` cannot change a column's type or add a CHECK or a
//! foreign key: the table-rebuild procedure. In one step (one `BEGIN IMMEDIATE` transaction,
//! foreign keys off and `foreign_key_check` before it commits — see `db::sqlite`): a new table
//! with the new definition, every row copied into it, the views that read the table dropped, the
//! table dropped and the new one renamed in its place, then its indexes, triggers and views
//! created again from the statements the database stored. The `down` is the same procedure back
//! to the original definition, verbatim, so rollback restores the schema exactly (column order,
//! constraints, indexes, triggers, views, the foreign keys that point at it).

use serde_json::Value;

use super::lookup::table;
use super::{quote_ident, quote_literal, validate_ident, validate_type};
use crate::db::{Catalog, TableInfo};
use crate::sql::definition::{column_of, definition, needs_a_value};
use crate::sql::lexer::tokenize;

/// How a template runs on SQLite.
#[derive(Clone, Copy)]
pub(crate) enum Sqlite {
    /// Its SQL is SQLite's too.
    Same,
    /// It renders its own script from the target's catalog.
    Own(fn(Value, &Catalog) -> std::result::Result<String, String>),
    /// It is a PostgreSQL procedure only.
    No,
}

/// The words that end a column's type in its definition.
const CONSTRAINT_WORDS: &[&str] = &[
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];

/// `item` (a column definition) with its type replaced by `ty`.
fn retyped(item: &str, ty: &str) -> std::result::Result<String, String> {
    let tokens = tokenize(item).map_err(|e| e.0)?;
    let name_end = tokens.get(1).map(|(at, _)| *at).unwrap_or(item.len());
    let type_end = tokens
        .iter()
        .skip(1)
        .find(|(_, t)| CONSTRAINT_WORDS.iter().any(|w| t.is_word(w)))
        .map(|(at, _)| *at)
        .unwrap_or(item.len());
    Ok(format!(
        "{} {ty} {}",
        item[..name_end].trim_end(),
        item[type_end..].trim_start()
    )
    .trim_end()
    .to_string())
}

/// The rebuild of `table` into `items` (with the original's options: `WITHOUT ROWID`,
/// `STRICT`), each new column filled by its expression over the old row; and the way back to
/// the original definition, filled by `back`.
fn rebuild(
    table: &str,
    info: &TableInfo,
    items: &[String],
    fill: &[(String, String)],
    back: &[(String, String)],
) -> std::result::Result<(String, String), String> {
    let original = definition(info.definition.as_deref().ok_or("no definition")?)?;
    let body = format!("({}) {}", items.join(", "), original.options);
    rebuild_into(table, info, body.trim_end(), fill, back)
}

/// The rebuild of `table` into the definition `body` (from its column list's `(` on), as
/// `rebuild`.
fn rebuild_into(
    table: &str,
    info: &TableInfo,
    body: &str,
    fill: &[(String, String)],
    back: &[(String, String)],
) -> std::result::Result<(String, String), String> {
    let original = definition(info.definition.as_deref().ok_or("no definition")?)?;
    let into = |body: &str, fill: &[(String, String)]| {
        let temp = quote_ident(&format!("_drydock_rebuild_{table}"));
        let t = quote_ident(table);
        let cols = fill
            .iter()
            .map(|(c, _)| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let exprs = fill
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = vec![
            format!("CREATE TABLE {temp} {body}"),
            format!("INSERT INTO {temp} ({cols}) SELECT {exprs} FROM {t}"),
        ];
        sql.extend(
            info.views
                .iter()
                .map(|v| format!("DROP VIEW {}", quote_ident(v))),
        );
        sql.push(format!("DROP TABLE {t}"));
        sql.push(format!("ALTER TABLE {temp} RENAME TO {t}"));
        sql.extend(info.recreate.iter().cloned());
        sql.iter()
            .map(|s| format!("{s};"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok((into(body, fill), into(&original.body, back)))
}

/// Every column carried over as itself.
fn same(info: &TableInfo) -> Vec<(String, String)> {
    info.columns
        .iter()
        .map(|c| (c.name.clone(), quote_ident(&c.name)))
        .collect()
}

fn script(title: &str, step: &str, up: &str, down: &str, check: (&str, String)) -> String {
    format!(
        "-- Migration: {title}\n-- Rollback strategy: the down rebuilds the table with its original definition, indexes, triggers and views\n-- drydock:step {step}\n-- drydock:up\n{up}\n-- drydock:down\n{down}\n-- drydock:check {} true\n{}\n",
        check.0, check.1
    )
}

/// `change-column-type` on SQLite: the column retyped, its values cast (or computed by `using`).
pub(super) fn change_column_type(
    params: Value,
    catalog: &Catalog,
) -> std::result::Result<String, String> {
    let p: super::templates::ChangeColumnType =
        serde_json::from_value(params).map_err(|e| e.to_string())?;
    validate_ident(&p.column)?;
    validate_type(&p.new_type)?;
    let info = table(catalog, &p.table)?;
    let old = info
        .columns
        .iter()
        .find(|c| c.name == p.column)
        .ok_or_else(|| format!("`{}` has no column `{}`", p.table, p.column))?;
    let def = definition(info.definition.as_deref().unwrap_or_default())?;
    let items = def
        .items
        .iter()
        .map(|i| match column_of(i) {
            Some(c) if c.eq_ignore_ascii_case(&p.column) => retyped(i, &p.new_type),
            _ => Ok(i.clone()),
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let col = quote_ident(&p.column);
    let using = match &p.using {
        Some(e) => crate::sql::single_expression("`using`", e).map(|_| format!("({e})"))?,
        None => format!("CAST({col} AS {})", p.new_type),
    };
    let with = |e: &str| -> Vec<(String, String)> {
        same(info)
            .into_iter()
            .map(|(c, x)| {
                let x = if c == p.column { e.to_string() } else { x };
                (c, x)
            })
            .collect()
    };
    let back_expr = if old.ty.is_empty() {
        col.clone()
    } else {
        format!("CAST({col} AS {})", old.ty)
    };
    let (fill, back) = (with(&using), with(&back_expr));
    let (up, down) = rebuild(&p.table, info, &items, &fill, &back)?;
    Ok(script(
        &format!("change {}.{} to {}", p.table, p.column, p.new_type),
        "rebuild",
        &up,
        &down,
        (
            "column-type",
            format!(
                "SELECT count(*) = 1 FROM pragma_table_info({}) WHERE name = {} AND upper(type) = upper({})",
                quote_literal(&p.table),
                quote_literal(&p.column),
                quote_literal(&p.new_type)
            ),
        ),
    ))
}

/// `add-not-null-column` on SQLite: the column added `NOT NULL DEFAULT …` at the end of the
/// definition, each existing row's value computed by `backfill` over the old row (or the
/// default); a row the expression leaves NULL fails the copy, and the step. The `down` rebuilds
/// the original definition, so rollback takes the column away with its values.
pub(super) fn add_not_null_column(
    params: Value,
    catalog: &Catalog,
) -> std::result::Result<String, String> {
    let p: super::templates::AddNotNullColumn =
        serde_json::from_value(params).map_err(|e| e.to_string())?;
    validate_ident(&p.column)?;
    validate_type(&p.ty)?;
    if p.default.is_null() {
        return Err("`default` must not be null for a NOT NULL column".into());
    }
    let default = crate::sql::literal_value(&p.default)?;
    let info = table(catalog, &p.table)?;
    if info.columns.iter().any(|c| c.name == p.column) {
        return Err(format!("`{}` has a column `{}` already", p.table, p.column));
    }
    let value = match &p.backfill {
        Some(e) => crate::sql::single_expression("`backfill`", e).map(|_| format!("({e})"))?,
        None => default.clone(),
    };
    let mut items = definition(info.definition.as_deref().unwrap_or_default())?.items;
    // A column goes before the table constraints, as SQLite's own ADD COLUMN would put it.
    let at = items
        .iter()
        .position(|i| column_of(i).is_none())
        .unwrap_or(items.len());
    items.insert(
        at,
        format!(
            "{} {} NOT NULL DEFAULT {default}",
            quote_ident(&p.column),
            p.ty
        ),
    );
    let mut fill = same(info);
    fill.push((p.column.clone(), value));
    let (up, down) = rebuild(&p.table, info, &items, &fill, &same(info))?;
    Ok(script(
        &format!("add NOT NULL column {}.{}", p.table, p.column),
        "rebuild",
        &up,
        &down,
        (
            "column-not-null",
            format!(
                "SELECT count(*) = 1 FROM pragma_table_info({}) WHERE name = {} AND \"notnull\" = 1",
                quote_literal(&p.table),
                quote_literal(&p.column)
            ),
        ),
    ))
}

/// `add-check-constraint` on SQLite: the CHECK added as a table constraint (rows that break it
/// fail the copy, and the step).
pub(super) fn add_check_constraint(
    params: Value,
    catalog: &Catalog,
) -> std::result::Result<String, String> {
    let p: super::templates::AddCheckConstraint =
        serde_json::from_value(params).map_err(|e| e.to_string())?;
    validate_ident(&p.name)?;
    crate::sql::single_expression("`expression`", &p.expression)?;
    let info = table(catalog, &p.table)?;
    let mut items = definition(info.definition.as_deref().unwrap_or_default())?.items;
    items.push(format!(
        "CONSTRAINT {} CHECK ({})",
        quote_ident(&p.name),
        p.expression
    ));
    let (up, down) = rebuild(&p.table, info, &items, &same(info), &same(info))?;
    Ok(script(
        &format!("check {} on {}", p.name, p.table),
        "rebuild",
        &up,
        &down,
        (
            "check-present",
            format!(
                "SELECT count(*) = 1 FROM sqlite_master WHERE type = 'table' AND name = {} AND instr(sql, {}) > 0",
                quote_literal(&p.table),
                quote_literal(&format!("CONSTRAINT {} CHECK", quote_ident(&p.name)))
            ),
        ),
    ))
}

/// `add-foreign-key` on SQLite: the foreign key added as a table constraint (rows that break it
/// fail the step's `foreign_key_check`).
pub(super) fn add_foreign_key(
    params: Value,
    catalog: &Catalog,
) -> std::result::Result<String, String> {
    let p: super::templates::AddForeignKey =
        serde_json::from_value(params).map_err(|e| e.to_string())?;
    let info = table(catalog, &p.table)?;
    table(catalog, &p.ref_table)?;
    if p.columns.len() != p.ref_columns.len() || p.columns.is_empty() {
        return Err("`columns` and `ref_columns` must have the same, non-zero length".into());
    }
    let list = super::templates::column_list;
    let name = p.name.clone().unwrap_or_else(|| {
        let mut parts = vec![p.table.as_str()];
        parts.extend(p.columns.iter().map(String::as_str));
        super::templates::derived(&parts, "fkey")
    });
    validate_ident(&name)?;
    let mut items = definition(info.definition.as_deref().unwrap_or_default())?.items;
    items.push(format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        quote_ident(&name),
        list(&p.columns)?,
        quote_ident(&p.ref_table),
        list(&p.ref_columns)?
    ));
    let (up, down) = rebuild(&p.table, info, &items, &same(info), &same(info))?;
    Ok(script(
        &format!("foreign key {name} on {}", p.table),
        "rebuild",
        &up,
        &down,
        (
            "foreign-key-present",
            format!(
                "SELECT count(*) >= 1 FROM pragma_foreign_key_list({}) WHERE \"table\" = {}",
                quote_literal(&p.table),
                quote_literal(&p.ref_table)
            ),
        ),
    ))
}

/// `rebuild-table` on SQLite: the table rebuilt to `definition` (a `CREATE TABLE` of the same
/// name), for what SQLite's `ALTER TABLE` cannot change in place — types, NOT NULL, defaults,
/// CHECKs, keys, collations, column order, options — in one rebuild. Every column is kept and
/// copied by name (values keep themselves: the new type's affinity, never a lossy `CAST`); a new
/// column takes its default. The `down` rebuilds the original definition.
pub(super) fn rebuild_table(
    params: Value,
    catalog: &Catalog,
) -> std::result::Result<String, String> {
    let p: super::templates::RebuildTable =
        serde_json::from_value(params).map_err(|e| e.to_string())?;
    let info = table(catalog, &p.table)?;
    let created = crate::sql::definition::created(&p.definition)?;
    if !created.eq_ignore_ascii_case(&p.table) {
        return Err(format!(
            "`definition` creates `{created}`, not `{}`",
            p.table
        ));
    }
    let want = definition(&p.definition)?;
    let columns: Vec<(String, &str)> = want.columns().collect();
    let kept = |name: &str| columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(name));
    if let Some(c) = info.columns.iter().find(|c| !kept(&c.name)) {
        return Err(format!(
            "`{}` is not in `definition`: rebuild-table keeps every column (a column is dropped or renamed as `steps` of its own)",
            c.name
        ));
    }
    if info.rows > 0 {
        let had = |name: &str| {
            info.columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(name))
        };
        if let Some((c, _)) = columns
            .iter()
            .find(|(c, item)| !had(c) && needs_a_value(item))
        {
            return Err(format!(
                "new column `{c}` is NOT NULL without a DEFAULT, and `{}` has {} row(s) to give it a value: add a DEFAULT (or add it nullable, backfill it, then make it NOT NULL)",
                p.table, info.rows
            ));
        }
    }
    let body = want.body.trim().trim_end_matches(';').trim_end();
    let (up, down) = rebuild_into(&p.table, info, body, &same(info), &same(info))?;
    Ok(script(
        &format!("rebuild {}", p.table),
        "rebuild",
        &up,
        &down,
        (
            "definition",
            format!(
                "SELECT count(*) = 1 FROM sqlite_master WHERE type = 'table' AND name = {} AND instr(sql, {}) > 0",
                quote_literal(&p.table),
                quote_literal(body)
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_replaced_in_place() {
        assert_eq!(
            retyped("price NUMERIC(10, 2) NOT NULL DEFAULT 0", "INTEGER").unwrap(),
            "price INTEGER NOT NULL DEFAULT 0"
        );
        assert_eq!(retyped("note TEXT", "BLOB").unwrap(), "note BLOB");
        assert_eq!(
            retyped("\"odd name\"", "TEXT").unwrap(),
            "\"odd name\" TEXT"
        );
    }

    #[test]
    fn a_rebuild_keeps_the_tables_options() {
        let info = TableInfo {
            definition: Some("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID".into()),
            columns: vec![crate::db::Column {
                name: "k".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let items = vec!["k TEXT PRIMARY KEY".to_string(), "v BLOB".to_string()];
        let (up, down) = rebuild("kv", &info, &items, &same(&info), &same(&info)).unwrap();
        assert!(
            up.contains("(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;"),
            "{up}"
        );
        assert!(
            down.contains("(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"),
            "{down}"
        );
    }
}
