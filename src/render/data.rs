//! Templates that move rows between tables — `move-data`, `split-table`, `merge-tables` — through
//! the batched backfill engine (copy, update or delete in keyset batches, each with its
//! checkpoint, what it changes saved for rollback), with the tables' keys and column types read
//! from the target's catalog.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lookup::{Ctx, parse, table, unused};
use super::{Reads, TemplateDef, quote_ident, validate_ident};
use crate::db::{Catalog, ColumnDependents, TableInfo};
use crate::plan::{Backfill, CopyInto};
use crate::sql::single_expression;

/// The template's own params again, as the context's `params` (typed, validated once).
fn params<T: for<'de> Deserialize<'de>>(ctx: &Value) -> std::result::Result<T, String> {
    parse(ctx["params"].clone())
}

/// `table`'s single-column primary key.
fn primary_key(info: &TableInfo, name: &str) -> std::result::Result<String, String> {
    match info
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => Ok(one.name.clone()),
        _ => Err(format!(
            "`{name}` has no single-column primary key to walk and key the moved rows by"
        )),
    }
}

/// Every one of `columns` is a column of `info` (named `name`).
fn has_columns(
    info: &TableInfo,
    name: &str,
    columns: &[String],
) -> std::result::Result<(), String> {
    match columns
        .iter()
        .find(|c| !info.columns.iter().any(|col| &col.name == *c))
    {
        Some(missing) => Err(format!(
            "`{name}` has no column `{missing}` (its columns: {})",
            info.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Ok(()),
    }
}

fn to_json(b: &Backfill) -> std::result::Result<Value, String> {
    crate::plan::input::validate_backfill("template", b).map_err(|e| e.to_string())?;
    serde_json::to_value(b).map_err(|e| e.to_string())
}

/// `move-data`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveData {
    /// The table the rows come from (its single-column primary key walks it and must be among
    /// `columns`).
    pub from_table: String,
    /// The table they go to: it exists and has every one of `columns`.
    pub to_table: String,
    /// The columns copied (same names in both tables).
    pub columns: Vec<String>,
    /// Which rows move (an SQL boolean expression over `from_table`); all when omitted.
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// Delete the moved rows from `from_table` too, behind a manual gate.
    #[serde(default)]
    pub delete_source: bool,
    /// Initial rows per batch (default 1000; adapted to ~100 ms per batch).
    pub batch_size: Option<u32>,
}

fn move_data(v: Value) -> Ctx {
    let p: MoveData = parse(v.clone())?;
    validate_ident(&p.from_table)?;
    validate_ident(&p.to_table)?;
    if p.columns.is_empty() {
        return Err("`columns` is empty".into());
    }
    p.columns.iter().try_for_each(|c| validate_ident(c))?;
    if let Some(w) = &p.filter {
        single_expression("`where`", w)?;
    }
    Ok(json!({
        "params": v, "from_table": p.from_table, "to_table": p.to_table, "columns": p.columns,
        "filter": p.filter, "where_sql": p.filter.as_deref().map(|w| format!("({w})")).unwrap_or_else(|| "true".into()),
    }))
}

fn move_data_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    _: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let p: MoveData = params(ctx)?;
    let from = table(catalog, &p.from_table)?;
    let to = table(catalog, &p.to_table).map_err(|e| format!("{e}; create it first"))?;
    has_columns(from, &p.from_table, &p.columns)?;
    has_columns(to, &p.to_table, &p.columns)?;
    let key = primary_key(from, &p.from_table)?;
    if !p.columns.contains(&key) {
        return Err(format!(
            "`columns` must include `{key}`, {}'s primary key: rollback finds the copied rows by it",
            p.from_table
        ));
    }
    let copy = Backfill {
        table: p.from_table.clone(),
        set: String::new(),
        copy_into: Some(CopyInto {
            table: p.to_table.clone(),
            columns: p.columns.clone(),
            skip_existing: false,
        }),
        delete: false,
        filter: p.filter.clone(),
        key: Some(key.clone()),
        batch_size: p.batch_size,
        pause_ms: None,
    };
    // Only rows that were copied, and are still as their copy is, are deleted: a row of the
    // source that matches `where` but arrived after the copy, or that a writer changed after
    // the sync trigger was dropped, stays (and the check says so). Compared as text: every
    // type has a text form, not every type an equality.
    let as_text = |alias: &str| {
        p.columns
            .iter()
            .map(|c| format!("CAST({alias}.{} AS text)", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let source_table = quote_ident(&p.from_table);
    let copied = format!(
        "EXISTS (SELECT 1 FROM {to} AS dd_copy WHERE dd_copy.{k} = {from}.{k} AND ({copy}) IS NOT DISTINCT FROM ({source}))",
        to = quote_ident(&p.to_table),
        from = source_table,
        k = quote_ident(&key),
        copy = as_text("dd_copy"),
        source = as_text(&source_table),
    );
    let delete = Backfill {
        set: String::new(),
        copy_into: None,
        delete: true,
        filter: Some(match &p.filter {
            Some(w) => format!("({w}) AND {copied}"),
            None => copied,
        }),
        ..copy.clone()
    };
    ctx["key"] = json!(key);
    ctx["function"] = json!(super::templates::derived(
        &[&p.from_table, &p.to_table],
        "move"
    ));
    ctx["trigger"] = json!(super::templates::derived(
        &[&p.from_table, &p.to_table],
        "move_trg"
    ));
    ctx["delete_trigger"] = json!(super::templates::derived(
        &[&p.from_table, &p.to_table],
        "move_del_trg"
    ));
    ctx["source_columns"] = json!(from.columns.iter().map(|c| &c.name).collect::<Vec<_>>());
    ctx["copy"] = to_json(&copy)?;
    if p.delete_source {
        ctx["delete"] = to_json(&delete)?;
    }
    Ok(())
}

pub(crate) const MOVE_DATA: TemplateDef = TemplateDef {
    name: "move-data",
    description: "Move rows between tables in keyset batches of INSERT … SELECT, each its own transaction with its checkpoint (exactly once across a kill); optionally delete the copied rows from the source in batches behind a manual gate. Rollback puts deleted rows back and removes the copied ones.",
    source: include_str!("../../templates/move-data.sql"),
    schema: || schemars::schema_for!(MoveData),
    context: move_data,
    moves: None,
    catalog: Reads::Required(move_data_catalog),
    sqlite: super::rebuild::Sqlite::Same,
};

/// Whether `column` is unique in `info`: its single-column primary key or a one-column UNIQUE
/// constraint.
fn unique(info: &TableInfo, column: &str) -> bool {
    let pk: Vec<&str> = info
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.as_str())
        .collect();
    pk == [column]
        || info.constraints.iter().any(|c| {
            c.split_once(": ").is_some_and(|(_, def)| {
                def == format!("UNIQUE ({column})")
                    || def == format!("UNIQUE ({})", quote_ident(column))
            })
        })
}

/// The `moved` context: each column's name, type and NOT NULL as the catalog has them.
fn moved(info: &TableInfo, columns: &[String]) -> Value {
    json!(
        columns
            .iter()
            .filter_map(|c| info.columns.iter().find(|col| &col.name == c))
            .map(|c| json!({"name": c.name, "ty": c.ty, "not_null": !c.nullable}))
            .collect::<Vec<_>>()
    )
}

/// Identifiers and names shared by `split-table` and `merge-tables`.
fn idents(names: &[&str], columns: &[String]) -> std::result::Result<(), String> {
    names.iter().try_for_each(|n| validate_ident(n))?;
    if columns.is_empty() {
        return Err("`columns` is empty".into());
    }
    columns.iter().try_for_each(|c| validate_ident(c))
}

/// `split-table`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitTable {
    /// The table to split.
    pub table: String,
    /// The new table (it must not exist yet).
    pub new_table: String,
    /// The columns that move to the new table.
    pub columns: Vec<String>,
    /// The table's unique key (its primary key, or a UNIQUE column): the new table's primary key.
    pub key: String,
}

fn split_table(v: Value) -> Ctx {
    let p: SplitTable = parse(v.clone())?;
    idents(&[&p.table, &p.new_table, &p.key], &p.columns)?;
    if p.columns.contains(&p.key) {
        return Err(format!(
            "`{}` is the key; it stays in both tables, not among `columns`",
            p.key
        ));
    }
    Ok(json!({
        "params": v, "table": p.table, "new_table": p.new_table, "columns": p.columns, "key": p.key,
        "function": super::templates::derived(&[&p.table, &p.new_table], "split"),
        "trigger": super::templates::derived(&[&p.table, &p.new_table], "split_trg"),
    }))
}

fn split_table_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    _: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let p: SplitTable = params(ctx)?;
    let info = table(catalog, &p.table)?;
    has_columns(info, &p.table, std::slice::from_ref(&p.key))?;
    has_columns(info, &p.table, &p.columns)?;
    if !unique(info, &p.key) {
        return Err(format!(
            "`{}` is not unique in `{}` (neither its primary key nor a UNIQUE column): the new table could not be keyed by it",
            p.key, p.table
        ));
    }
    if catalog.tables.contains_key(&p.new_table) {
        return Err(format!("`{}` exists already", p.new_table));
    }
    if let Some((col, views)) = p.columns.iter().find_map(|c| {
        catalog
            .column_views
            .get(&format!("{}.{c}", p.table))
            .filter(|v| !v.is_empty())
            .map(|v| (c, v))
    }) {
        return Err(format!(
            "view(s) {} use {}.{col}, which the contract drops; change them first",
            views.join(", "),
            p.table
        ));
    }
    let key_type = info
        .columns
        .iter()
        .find(|c| c.name == p.key)
        .map(|c| c.ty.clone())
        .unwrap_or_default();
    let mut columns = vec![p.key.clone()];
    columns.extend(p.columns.iter().cloned());
    let copy = Backfill {
        table: p.table.clone(),
        set: String::new(),
        copy_into: Some(CopyInto {
            table: p.new_table.clone(),
            columns,
            // The trigger may have written a row first (a newer value): it stays.
            skip_existing: true,
        }),
        delete: false,
        filter: None,
        key: Some(p.key.clone()),
        batch_size: None,
        pause_ms: None,
    };
    ctx["key_type"] = json!(key_type);
    ctx["moved"] = moved(info, &p.columns);
    ctx["copy"] = to_json(&copy)?;
    Ok(())
}

/// `merge-tables`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeTables {
    /// The table that receives the columns.
    pub table: String,
    /// The table merged into it (dropped by the final step).
    pub from_table: String,
    /// The columns of `from_table` that move (new in `table`).
    pub columns: Vec<String>,
    /// The column both tables have, unique in each, that pairs their rows.
    pub key: String,
}

fn merge_tables(v: Value) -> Ctx {
    let p: MergeTables = parse(v.clone())?;
    idents(&[&p.table, &p.from_table, &p.key], &p.columns)?;
    if p.columns.contains(&p.key) {
        return Err(format!(
            "`{}` is the key; it is in both tables already, not among `columns`",
            p.key
        ));
    }
    Ok(json!({
        "params": v, "table": p.table, "from_table": p.from_table, "columns": p.columns, "key": p.key,
        "function": super::templates::derived(&[&p.from_table, &p.table], "merge"),
        "trigger": super::templates::derived(&[&p.from_table, &p.table], "merge_trg"),
        "fill_function": super::templates::derived(&[&p.from_table, &p.table], "merge_fill"),
        "fill_trigger": super::templates::derived(&[&p.from_table, &p.table], "merge_fill_trg"),
    }))
}

fn merge_tables_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    _: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let p: MergeTables = params(ctx)?;
    let into = table(catalog, &p.table)?;
    let from = table(catalog, &p.from_table)?;
    has_columns(from, &p.from_table, &p.columns)?;
    for (info, name) in [(into, &p.table), (from, &p.from_table)] {
        has_columns(info, name, std::slice::from_ref(&p.key))?;
        if !unique(info, &p.key) {
            return Err(format!(
                "`{}` is not unique in `{name}` (neither its primary key nor a UNIQUE column): rows could not be paired by it",
                p.key
            ));
        }
    }
    if let Some(c) = p
        .columns
        .iter()
        .find(|c| into.columns.iter().any(|col| &col.name == *c))
    {
        return Err(format!("`{}` has a column `{c}` already", p.table));
    }
    unused(from, &p.from_table).map_err(|e| format!("{e} (its final step drops it)"))?;
    let walk = primary_key(into, &p.table)?;
    let pair = |from_alias: &str| {
        format!(
            "{from_alias}.{k} = {table}.{k}",
            k = quote_ident(&p.key),
            table = quote_ident(&p.table)
        )
    };
    let from_sql = format!("{} AS dd_from", quote_ident(&p.from_table));
    let set = p
        .columns
        .iter()
        .map(|c| {
            format!(
                "{c} = (SELECT dd_from.{c} FROM {from_sql} WHERE {})",
                pair("dd_from"),
                c = quote_ident(c)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fill = Backfill {
        table: p.table.clone(),
        set,
        copy_into: None,
        delete: false,
        filter: Some(format!(
            "EXISTS (SELECT 1 FROM {from_sql} WHERE {})",
            pair("dd_from")
        )),
        key: Some(walk),
        batch_size: None,
        pause_ms: None,
    };
    ctx["moved"] = moved(from, &p.columns);
    ctx["fill"] = to_json(&fill)?;
    Ok(())
}

pub(crate) const SPLIT_TABLE: TemplateDef = TemplateDef {
    name: "split-table",
    description: "Split columns off a table into a new table keyed by its key: new table + a trigger keeping it in step, batched copy, manual gate while the application moves to the new table, and (final, after the rollback window) the trigger and the old columns dropped.",
    source: include_str!("../../templates/split-table.sql"),
    schema: || schemars::schema_for!(SplitTable),
    context: split_table,
    moves: None,
    catalog: Reads::Required(split_table_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

pub(crate) const MERGE_TABLES: TemplateDef = TemplateDef {
    name: "merge-tables",
    description: "Merge columns of one table into another on a shared unique key: columns added + a trigger copying changes across, batched fill, manual gate while the application moves to the merged columns, and (final, after the rollback window) the merged-away table dropped.",
    source: include_str!("../../templates/merge-tables.sql"),
    schema: || schemars::schema_for!(MergeTables),
    context: merge_tables,
    moves: None,
    catalog: Reads::Required(merge_tables_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::db::{Catalog, Column, TableInfo};
    use crate::render::{Facts, render};

    fn catalog() -> Catalog {
        let col = |name: &str, ty: &str, pk: bool| Column {
            name: name.into(),
            ty: ty.into(),
            nullable: !pk,
            default: None,
            primary_key: pk,
            comment: None,
        };
        let mut c = Catalog {
            engine: crate::sql::Dialect::Postgres,
            ..Catalog::default()
        };
        c.tables.insert(
            "users".into(),
            TableInfo {
                columns: vec![
                    col("id", "bigint", true),
                    col("bio", "text", false),
                    col("email", "text", false),
                ],
                ..TableInfo::default()
            },
        );
        c.tables.insert(
            "profiles".into(),
            TableInfo {
                columns: vec![col("id", "bigint", true), col("avatar", "text", false)],
                ..TableInfo::default()
            },
        );
        c.tables.insert(
            "users_archive".into(),
            TableInfo {
                columns: vec![col("id", "bigint", true), col("email", "text", false)],
                ..TableInfo::default()
            },
        );
        c
    }

    #[test]
    fn rendered_sql_is_snapshotted() {
        let cat = catalog();
        let facts = Facts {
            deps: None,
            catalog: Some(&cat),
        };
        for (name, params) in [
            (
                "move-data",
                json!({"from_table": "users", "to_table": "users_archive", "columns": ["id", "email"], "where": "email LIKE '%@old.example'", "delete_source": true}),
            ),
            (
                "split-table",
                json!({"table": "users", "new_table": "user_bios", "columns": ["bio"], "key": "id"}),
            ),
            (
                "merge-tables",
                json!({"table": "users", "from_table": "profiles", "columns": ["avatar"], "key": "id"}),
            ),
        ] {
            let r = render(name, params, facts).unwrap_or_else(|e| panic!("{name}: {e}"));
            insta::assert_snapshot!(name, r.script);
        }
    }

    #[test]
    fn keys_must_pair_rows() {
        let cat = catalog();
        let facts = Facts {
            deps: None,
            catalog: Some(&cat),
        };
        let err = |name, params| render(name, params, facts).unwrap_err().to_string();
        assert!(
            err(
                "split-table",
                json!({"table": "users", "new_table": "x", "columns": ["bio"], "key": "email"})
            )
            .contains("not unique")
        );
        assert!(
            err(
                "split-table",
                json!({"table": "users", "new_table": "profiles", "columns": ["bio"], "key": "id"})
            )
            .contains("exists already")
        );
        assert!(
            err(
                "merge-tables",
                json!({"table": "users", "from_table": "users_archive", "columns": ["email"], "key": "id"})
            )
            .contains("has a column `email` already")
        );
    }
}
