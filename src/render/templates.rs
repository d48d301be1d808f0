//! The zero-downtime template library: each template's typed parameters (their JSON schema is
//! what `render-template` lists) and the validation that turns them into a render context.
//! Identifiers go through `validate_ident` (and the `ident` filter quotes them), types through
//! `validate_type`, expressions must parse as exactly one SQL expression, values become literals.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lookup::{Ctx, parse};
use super::{
    Move, Reads, TemplateDef, Views, literal_value, quote_ident, validate_ident, validate_type,
};
use crate::sql::single_expression;

fn idents(names: &[&str]) -> std::result::Result<(), String> {
    names.iter().try_for_each(|n| validate_ident(n))
}

pub(super) fn column_list(cols: &[String]) -> std::result::Result<String, String> {
    if cols.is_empty() {
        return Err("at least one column is needed".into());
    }
    cols.iter().try_for_each(|c| validate_ident(c))?;
    Ok(cols
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", "))
}

/// A generated object name (`users_email_not_null`), cut to PostgreSQL's 63-byte limit.
pub(super) fn derived(parts: &[&str], suffix: &str) -> String {
    let max = 63 - suffix.len() - 1;
    let mut base = parts.join("_");
    base.truncate(max);
    format!("{base}_{suffix}")
}

fn expression(what: &str, e: &str) -> std::result::Result<String, String> {
    single_expression(what, e)?;
    Ok(e.to_string())
}

fn backfill(
    table: &str,
    set: String,
    filter: Option<String>,
    key: Option<&str>,
    batch: Option<u32>,
    pause: Option<u64>,
) -> Value {
    let mut b = json!({"table": table, "set": set});
    if let Some(f) = filter {
        b["where"] = json!(f);
    }
    if let Some(k) = key {
        b["key"] = json!(k);
    }
    if let Some(n) = batch {
        b["batch_size"] = json!(n);
    }
    if let Some(p) = pause {
        b["pause_ms"] = json!(p);
    }
    b
}

/// `add-not-null-column`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNotNullColumn {
    /// Table to extend.
    pub table: String,
    /// The new column.
    pub column: String,
    /// Its type, e.g. `text`, `bigint`, `varchar(64)`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Default for new rows (and for existing rows unless `backfill` is given): a value.
    pub default: Value,
    /// An SQL expression computing existing rows' values (e.g. `lower(email)`); default: `default`.
    pub backfill: Option<String>,
}

fn add_not_null_column(v: Value) -> Ctx {
    let p: AddNotNullColumn = parse(v)?;
    idents(&[&p.table, &p.column])?;
    validate_type(&p.ty)?;
    if p.default.is_null() {
        return Err("`default` must not be null for a NOT NULL column".into());
    }
    let default_sql = literal_value(&p.default)?;
    let value = match &p.backfill {
        Some(e) => format!("({})", expression("`backfill`", e)?),
        None => default_sql.clone(),
    };
    let col = quote_ident(&p.column);
    Ok(json!({
        "table": p.table, "column": p.column, "type": p.ty, "default_sql": default_sql,
        "check_name": derived(&[&p.table, &p.column], "not_null"),
        "backfill": backfill(&p.table, format!("{col} = {value}"), Some(format!("{col} IS NULL")), None, None, None),
    }))
}

/// `rename-column`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    pub table: String,
    /// The column's current name.
    pub column: String,
    /// Its new name.
    pub new_name: String,
}

fn rename_column_moves(v: &Value) -> std::result::Result<Move, String> {
    let p: RenameColumn = parse(v.clone())?;
    idents(&[&p.table, &p.column, &p.new_name])?;
    Ok(Move {
        restore_as: p.column.clone(),
        table: p.table,
        from: p.column,
        to: p.new_name,
        // The application switches to the new name at the `switched` gate: the views do then.
        views: Views::Repoint,
    })
}

fn rename_column(v: Value) -> Ctx {
    let p: RenameColumn = parse(v)?;
    idents(&[&p.table, &p.column, &p.new_name])?;
    let (old, new) = (quote_ident(&p.column), quote_ident(&p.new_name));
    Ok(json!({
        "table": p.table, "column": p.column, "new_name": p.new_name,
        "function": derived(&[&p.table, &p.column], "sync"),
        "trigger": derived(&[&p.table, &p.column], "sync_trg"),
        "not_null_check": derived(&[&p.table, &p.new_name], "not_null"),
        "backfill": backfill(&p.table, format!("{new} = {old}"), Some(format!("{new} IS DISTINCT FROM {old}")), None, None, None),
    }))
}

/// `change-column-type`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeColumnType {
    pub table: String,
    pub column: String,
    /// The new type, e.g. `bigint`, `numeric(12,2)`.
    pub new_type: String,
    /// An SQL expression over the row's columns computing the new value (e.g. `price * 100`);
    /// default: the column cast to the new type.
    pub using: Option<String>,
}

fn change_column_type_moves(v: &Value) -> std::result::Result<Move, String> {
    let p: ChangeColumnType = parse(v.clone())?;
    idents(&[&p.table, &p.column])?;
    Ok(Move {
        to: derived(&[&p.column], "new"),
        restore_as: derived(&[&p.column], "old"),
        table: p.table,
        from: p.column,
        // The swap gives the column's name to the successor: views on it are created again
        // there, and then read the new type.
        views: Views::Recreate,
    })
}

fn change_column_type(v: Value) -> Ctx {
    let p: ChangeColumnType = parse(v)?;
    idents(&[&p.table, &p.column])?;
    validate_type(&p.new_type)?;
    let using = match &p.using {
        Some(e) => expression("`using`", e)?,
        None => quote_ident(&p.column),
    };
    let shadow = derived(&[&p.column], "new");
    let set = format!("{} = ({using})::{}", quote_ident(&shadow), p.new_type);
    let filter = format!(
        "{} IS NULL AND {} IS NOT NULL",
        quote_ident(&shadow),
        quote_ident(&p.column)
    );
    Ok(json!({
        "table": p.table, "column": p.column, "new_type": p.new_type, "using": using,
        "shadow": shadow, "old": derived(&[&p.column], "old"),
        "check": derived(&[&p.table, &p.column], "new_not_null"),
        "function": derived(&[&p.table, &p.column], "convert"),
        "trigger": derived(&[&p.table, &p.column], "convert_trg"),
        "backfill": backfill(&p.table, set, Some(filter), None, None, None),
    }))
}

/// `backfill`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillParams {
    pub table: String,
    /// Assignments, as after `UPDATE table SET` (e.g. `status = 'active'`).
    pub set: String,
    /// Which rows (an SQL boolean expression).
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// A unique, ordered column to walk by; default the primary key.
    pub key: Option<String>,
    /// Initial rows per batch (default 1000; adapted to ~100 ms per batch).
    pub batch_size: Option<u32>,
    /// Pause between batches in milliseconds.
    pub pause_ms: Option<u64>,
}

fn backfill_params(v: Value) -> Ctx {
    let p: BackfillParams = parse(v)?;
    idents(&[&p.table])?;
    if let Some(k) = &p.key {
        validate_ident(k)?;
    }
    let filter = p
        .filter
        .as_deref()
        .map(|w| expression("`where`", w))
        .transpose()?;
    let b = backfill(
        &p.table,
        p.set.clone(),
        filter,
        p.key.as_deref(),
        p.batch_size,
        p.pause_ms,
    );
    let spec: crate::plan::Backfill =
        serde_json::from_value(b.clone()).map_err(|e| e.to_string())?;
    crate::plan::input::validate_backfill("backfill", &spec).map_err(|e| e.to_string())?;
    Ok(json!({"table": p.table, "backfill": b}))
}

/// `add-index`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIndex {
    pub table: String,
    /// Indexed columns, in order.
    pub columns: Vec<String>,
    /// Index name; default `TABLE_COLUMNS_idx`.
    pub name: Option<String>,
    #[serde(default)]
    pub unique: bool,
}

fn add_index(v: Value) -> Ctx {
    let p: AddIndex = parse(v)?;
    validate_ident(&p.table)?;
    let columns_sql = column_list(&p.columns)?;
    let mut parts = vec![p.table.as_str()];
    parts.extend(p.columns.iter().map(String::as_str));
    let name = p
        .name
        .clone()
        .unwrap_or_else(|| derived(&parts, if p.unique { "key" } else { "idx" }));
    validate_ident(&name)?;
    Ok(
        json!({"table": p.table, "columns": p.columns, "columns_sql": columns_sql, "name": name, "unique": p.unique}),
    )
}

/// `add-index` on a partitioned table: PostgreSQL refuses `CONCURRENTLY` there, so each
/// partition's index is built concurrently (named from the partition and the columns), then the
/// parent's index is made `ON ONLY` the parent and each partition's attached to it.
fn add_index_catalog(
    ctx: &mut Value,
    catalog: &crate::db::Catalog,
    _: Option<&crate::db::ColumnDependents>,
) -> std::result::Result<(), String> {
    let table = ctx["table"].as_str().unwrap_or_default().to_string();
    let Some(partitions) = catalog.partitions.get(&table) else {
        return Ok(());
    };
    let columns: Vec<String> = serde_json::from_value(ctx["columns"].clone()).unwrap_or_default();
    let mut built = Vec::new();
    for partition in partitions {
        validate_ident(partition).map_err(|_| {
            format!("`{table}`'s partition `{partition}` is outside the public schema: write the index as `steps` (`migration`)")
        })?;
        if catalog.partitions.contains_key(partition) {
            return Err(format!(
                "`{table}`'s partition `{partition}` is partitioned itself: index each level as `steps` (`migration`): ON ONLY, CONCURRENTLY on the leaves, ATTACH"
            ));
        }
        let mut parts = vec![partition.as_str()];
        parts.extend(columns.iter().map(String::as_str));
        built.push(json!({"table": partition, "name": derived(&parts, if ctx["unique"] == true { "key" } else { "idx" })}));
    }
    ctx["partitions"] = json!(built);
    Ok(())
}

/// `add-foreign-key`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKey {
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced table.
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// Constraint name; default `TABLE_COLUMNS_fkey`.
    pub name: Option<String>,
    /// What a delete of the referenced row does (default `no action`).
    pub on_delete: Option<FkAction>,
    /// What an update of the referenced key does (default `no action`).
    pub on_update: Option<FkAction>,
}

/// A foreign key's referential action.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    /// The action as SQL says it.
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

fn add_foreign_key(v: Value) -> Ctx {
    let p: AddForeignKey = parse(v)?;
    idents(&[&p.table, &p.ref_table])?;
    if p.columns.len() != p.ref_columns.len() {
        return Err("`columns` and `ref_columns` must have the same length".into());
    }
    let mut parts = vec![p.table.as_str()];
    parts.extend(p.columns.iter().map(String::as_str));
    let name = p.name.clone().unwrap_or_else(|| derived(&parts, "fkey"));
    validate_ident(&name)?;
    let mut actions = String::new();
    if let Some(a) = p.on_update.filter(|a| *a != FkAction::NoAction) {
        actions.push_str(&format!(" ON UPDATE {}", a.sql()));
    }
    if let Some(a) = p.on_delete.filter(|a| *a != FkAction::NoAction) {
        actions.push_str(&format!(" ON DELETE {}", a.sql()));
    }
    Ok(json!({
        "table": p.table, "ref_table": p.ref_table, "name": name,
        "columns_sql": column_list(&p.columns)?, "ref_columns_sql": column_list(&p.ref_columns)?,
        "actions_sql": actions,
    }))
}

/// `rebuild-table` (SQLite).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildTable {
    pub table: String,
    /// The table as it should be: a `CREATE TABLE` of the same name, in SQLite's DDL. Every
    /// column it has now is kept (copied by name); a new one takes its default.
    pub definition: String,
}

fn rebuild_table(_: Value) -> Ctx {
    Err("`rebuild-table` is SQLite's table rebuild; PostgreSQL changes a table in place: use add-not-null-column, change-column-type, add-check-constraint or add-foreign-key (or plan from `desired`)".into())
}

pub(crate) const REBUILD_TABLE: TemplateDef = TemplateDef {
    name: "rebuild-table",
    description: "SQLite: rebuild a table to a new CREATE TABLE in one transaction (types, NOT NULL, defaults, CHECKs, keys, collations SQLite cannot ALTER): every row copied by name, its indexes, triggers and views recreated; down rebuilds the original definition.",
    source: include_str!("../../templates/rebuild-table.sql"),
    schema: || schemars::schema_for!(RebuildTable),
    context: rebuild_table,
    moves: None,
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Own(super::rebuild::rebuild_table),
};

/// `add-check-constraint`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCheckConstraint {
    pub table: String,
    /// Constraint name.
    pub name: String,
    /// The condition, one SQL boolean expression (e.g. `total_cents >= 0`).
    pub expression: String,
}

fn add_check_constraint(v: Value) -> Ctx {
    let p: AddCheckConstraint = parse(v)?;
    idents(&[&p.table, &p.name])?;
    Ok(
        json!({"table": p.table, "name": p.name, "expression": expression("`expression`", &p.expression)?}),
    )
}

pub(crate) const ADD_NOT_NULL_COLUMN: TemplateDef = TemplateDef {
    name: "add-not-null-column",
    description: "Add a NOT NULL column without blocking writes: nullable with a default for new rows, batched backfill, CHECK NOT VALID, VALIDATE, SET NOT NULL, drop the check.",
    source: include_str!("../../templates/add-not-null-column.sql"),
    schema: || schemars::schema_for!(AddNotNullColumn),
    context: add_not_null_column,
    moves: None,
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Own(super::rebuild::add_not_null_column),
};

pub(crate) const RENAME_COLUMN: TemplateDef = TemplateDef {
    name: "rename-column",
    description: "Rename a column with expand/contract: new column + dual-write trigger + backfill, a manual gate while the application switches, then drop the old column after the rollback window.",
    source: include_str!("../../templates/rename-column.sql"),
    schema: || schemars::schema_for!(RenameColumn),
    context: rename_column,
    moves: Some(rename_column_moves),
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::No,
};

pub(crate) const CHANGE_COLUMN_TYPE: TemplateDef = TemplateDef {
    name: "change-column-type",
    description: "Change a column's type without a rewrite under ACCESS EXCLUSIVE: new column + sync trigger, backfill, swap names in one short transaction (manual gate), drop the old column after the rollback window.",
    source: include_str!("../../templates/change-column-type.sql"),
    schema: || schemars::schema_for!(ChangeColumnType),
    context: change_column_type,
    moves: Some(change_column_type_moves),
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Own(super::rebuild::change_column_type),
};

pub(crate) const BACKFILL: TemplateDef = TemplateDef {
    name: "backfill",
    description: "Batched UPDATE in keyset batches, each its own transaction with its checkpoint: resumable, exactly once.",
    source: include_str!("../../templates/backfill.sql"),
    schema: || schemars::schema_for!(BackfillParams),
    context: backfill_params,
    moves: None,
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Same,
};

pub(crate) const ADD_INDEX: TemplateDef = TemplateDef {
    name: "add-index",
    description: "CREATE INDEX CONCURRENTLY alone in its step, outside a transaction; a failed build's invalid index is dropped. On a partitioned table: each partition's index built CONCURRENTLY, then the parent's made ON ONLY and each attached.",
    source: include_str!("../../templates/add-index.sql"),
    schema: || schemars::schema_for!(AddIndex),
    context: add_index,
    moves: None,
    catalog: Reads::IfGiven(add_index_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

pub(crate) const ADD_FOREIGN_KEY: TemplateDef = TemplateDef {
    name: "add-foreign-key",
    description: "Foreign key added NOT VALID, then VALIDATEd in its own transaction (no write lock during validation).",
    source: include_str!("../../templates/add-foreign-key.sql"),
    schema: || schemars::schema_for!(AddForeignKey),
    context: add_foreign_key,
    moves: None,
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Own(super::rebuild::add_foreign_key),
};

pub(crate) const ADD_CHECK_CONSTRAINT: TemplateDef = TemplateDef {
    name: "add-check-constraint",
    description: "CHECK constraint added NOT VALID, then VALIDATEd in its own transaction.",
    source: include_str!("../../templates/add-check-constraint.sql"),
    schema: || schemars::schema_for!(AddCheckConstraint),
    context: add_check_constraint,
    moves: None,
    catalog: Reads::Nothing,
    sqlite: super::rebuild::Sqlite::Own(super::rebuild::add_check_constraint),
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::render::{Facts, render};

    const HOSTILE: &str = "users\"; DROP TABLE users; --";

    #[test]
    fn every_template_refuses_hostile_identifiers() {
        let cases = [
            (
                "add-not-null-column",
                json!({"table": HOSTILE, "column": "c", "type": "text", "default": "x"}),
            ),
            (
                "add-not-null-column",
                json!({"table": "t", "column": HOSTILE, "type": "text", "default": "x"}),
            ),
            (
                "rename-column",
                json!({"table": "t", "column": "a", "new_name": HOSTILE}),
            ),
            (
                "change-column-type",
                json!({"table": HOSTILE, "column": "a", "new_type": "bigint"}),
            ),
            (
                "change-column-type",
                json!({"table": "t", "column": "a", "new_type": "bigint; DROP TABLE t"}),
            ),
            (
                "change-column-type",
                json!({"table": "t", "column": "a", "new_type": "bigint", "using": "a); DROP TABLE t; SELECT (1"}),
            ),
            ("backfill", json!({"table": HOSTILE, "set": "a = 1"})),
            (
                "backfill",
                json!({"table": "t", "set": "a = 1; DROP TABLE t"}),
            ),
            (
                "backfill",
                json!({"table": "t", "set": "a = 1", "where": "true; DROP TABLE t"}),
            ),
            ("add-index", json!({"table": "t", "columns": [HOSTILE]})),
            (
                "add-index",
                json!({"table": "t", "columns": ["a"], "name": HOSTILE}),
            ),
            (
                "add-foreign-key",
                json!({"table": "t", "columns": ["a"], "ref_table": HOSTILE, "ref_columns": ["id"]}),
            ),
            (
                "add-check-constraint",
                json!({"table": "t", "name": "c", "expression": "a > 0); DROP TABLE t; --"}),
            ),
            (
                "add-check-constraint",
                json!({"table": "t", "name": HOSTILE, "expression": "a > 0"}),
            ),
        ];
        for (name, params) in cases {
            let err = render(name, params.clone(), Facts::default()).unwrap_err();
            assert_eq!(err.code(), "invalid-template-params", "{name} {params}");
        }
    }

    #[test]
    fn values_are_escaped_not_spliced() {
        let r = render("add-not-null-column", json!({"table": "t", "column": "c", "type": "text", "default": "it's'); DROP TABLE t; --"}), Facts::default())
            .unwrap();
        assert!(
            r.steps[0]
                .up
                .as_deref()
                .unwrap()
                .contains("DEFAULT 'it''s''); DROP TABLE t; --'"),
            "{:?}",
            r.steps[0].up
        );
    }

    #[test]
    fn templates_render_steps_with_downs_and_gates() {
        let r = render(
            "rename-column",
            json!({"table": "users", "column": "name", "new_name": "full_name"}),
            Facts {
                deps: Some(&crate::db::ColumnDependents::default()),
                catalog: None,
            },
        )
        .unwrap();
        let names: Vec<_> = r.steps.iter().map(|s| s.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            [
                "expand",
                "backfill",
                "constraints",
                "validate",
                "switched",
                "contract"
            ]
        );
        assert!(r.steps.iter().all(|s| s.down.is_some()));
        assert_eq!(r.steps[4].gate, Some(crate::plan::Gate::Manual));
        assert_eq!(
            r.steps[5].gate,
            Some(crate::plan::Gate::After {
                duration: "rollback_window".into()
            })
        );
        assert!(r.steps[1].backfill.is_some());
        let r = render(
            "add-index",
            json!({"table": "users", "columns": ["email", "name"], "unique": true}),
            Facts::default(),
        )
        .unwrap();
        assert_eq!(
            r.steps[0].up.as_deref(),
            Some(
                r#"CREATE UNIQUE INDEX CONCURRENTLY "users_email_name_key" ON "users" ("email", "name");"#
            )
        );
    }

    /// The SQL every template renders, snapshotted: a change to what drydock would run on a
    /// production database is a reviewed change.
    #[test]
    fn rendered_sql_is_snapshotted() {
        let none = crate::db::ColumnDependents::default();
        let cases = [
            (
                "migration",
                json!({"goal": "add a flag", "up": "ALTER TABLE t ADD COLUMN f boolean", "down": "ALTER TABLE t DROP COLUMN f"}),
            ),
            (
                "add-column",
                json!({"table": "users", "column": "nickname", "type": "text"}),
            ),
            (
                "add-not-null-column",
                json!({"table": "users", "column": "tier", "type": "text", "default": "free"}),
            ),
            ("add-index", json!({"table": "users", "columns": ["email"]})),
            (
                "add-foreign-key",
                json!({"table": "orders", "columns": ["user_id"], "ref_table": "users", "ref_columns": ["id"]}),
            ),
            (
                "add-check-constraint",
                json!({"table": "users", "name": "age_positive", "expression": "age > 0"}),
            ),
            (
                "backfill",
                json!({"table": "users", "set": "tier = 'free'", "where": "tier IS NULL"}),
            ),
            (
                "rename-column",
                json!({"table": "users", "column": "name", "new_name": "full_name"}),
            ),
            (
                "change-column-type",
                json!({"table": "users", "column": "id", "new_type": "bigint"}),
            ),
        ];
        for (name, params) in cases {
            let facts = Facts {
                deps: Some(&none),
                catalog: None,
            };
            let r = render(name, params, facts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut out = String::new();
            for s in &r.steps {
                out.push_str(&format!(
                    "-- step {} (gate: {:?})\n-- up\n{}\n-- backfill\n{:?}\n-- down\n{}\n\n",
                    s.name.as_deref().unwrap_or("step"),
                    s.gate,
                    s.up.as_deref().unwrap_or("-"),
                    s.backfill,
                    s.down.as_deref().unwrap_or("-"),
                ));
            }
            for c in &r.checks {
                out.push_str(&format!(
                    "-- check {} (expect {})\n{}\n",
                    c.name, c.expect, c.sql
                ));
            }
            insta::assert_snapshot!(name, out);
        }
    }
}
