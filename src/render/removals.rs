//! Templates that remove something — an index, a column, a table — so that rollback can bring it
//! back: each reads what it removes from the target's catalog (an index's definition, a table's
//! primary key, what references it) and refuses, before anything runs, what it could not restore.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lookup::{Ctx, parse, table, unused};
use super::templates::derived;
use super::{Move, Reads, TemplateDef, Views, carry, validate_ident};
use crate::db::{Catalog, ColumnDependents};
use crate::sql::quote_ident;

/// The context's `name`-d string (set by the template's own `context`).
fn field<'a>(ctx: &'a Value, name: &str) -> &'a str {
    ctx[name].as_str().unwrap_or_default()
}

/// `drop-index`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropIndex {
    /// The index to drop (its name, in the `public` schema).
    pub name: String,
}

fn drop_index(v: Value) -> Ctx {
    let p: DropIndex = parse(v)?;
    validate_ident(&p.name)?;
    Ok(json!({"name": p.name}))
}

/// Finds the index's table and definition; refuses an index that backs a constraint (dropping
/// it would need the constraint gone first).
fn drop_index_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    _: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let name = field(ctx, "name").to_string();
    let found = catalog.tables.iter().find_map(|(t, info)| {
        info.indexes
            .iter()
            .find(|def| carry::index_name(def).as_deref() == Some(name.as_str()))
            .map(|def| (t, info, def))
    });
    let Some((table, info, definition)) = found else {
        return Err(format!(
            "the target has no index `{name}` in the public schema"
        ));
    };
    if let Some(c) = info.constraints.iter().find(|c| {
        c.strip_prefix(&format!("{name}: ")).is_some_and(|def| {
            ["PRIMARY KEY", "UNIQUE", "EXCLUDE"]
                .iter()
                .any(|k| def.starts_with(k))
        })
    }) {
        return Err(format!(
            "index `{name}` backs the constraint {c} of `{table}`; drop the constraint instead (a `migration` plan)"
        ));
    }
    ctx["create"] = json!(carry::index(definition, &name, &name, &name)?);
    ctx["table"] = json!(table);
    ctx["definition"] = json!(definition);
    Ok(())
}

/// `drop-column`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropColumn {
    /// The table (in the `public` schema).
    pub table: String,
    /// The column to drop.
    pub column: String,
}

fn drop_column_moves(v: &Value) -> std::result::Result<Move, String> {
    let p: DropColumn = parse(v.clone())?;
    validate_ident(&p.table)?;
    validate_ident(&p.column)?;
    // Nothing moves: `carry` holds the column's definition and its indexes' and constraints'
    // originals, which the `down` recreates.
    Ok(Move {
        to: p.column.clone(),
        restore_as: p.column.clone(),
        table: p.table,
        from: p.column,
        views: Views::Refuse,
    })
}

fn drop_column(v: Value) -> Ctx {
    let p: DropColumn = parse(v)?;
    validate_ident(&p.table)?;
    validate_ident(&p.column)?;
    Ok(json!({
        "table": p.table, "column": p.column,
        "aside": derived(&[&p.table, &p.column], "dd_dropped"),
    }))
}

/// The table's primary key (the values are put back by it); a column with an identity or a
/// sequence of its own is refused: its sequence would go with it.
fn drop_column_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    deps: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let (name, column) = (
        field(ctx, "table").to_string(),
        field(ctx, "column").to_string(),
    );
    let (name, column) = (name.as_str(), column.as_str());
    let info = table(catalog, name)?;
    let keys: Vec<&str> = info
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.as_str())
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "`{name}` has no primary key, so the values of `{column}` could not be put back on rollback; add a primary key first"
        ));
    }
    if let Some(shape) = deps.map(|d| &d.column)
        && (shape.identity.is_some() || shape.sequence.is_some())
    {
        return Err(format!(
            "{name}.{column} owns a sequence ({}), which would be dropped with it and could not be restored as it was; detach it first (`ALTER SEQUENCE … OWNED BY NONE` in a `migration` plan)",
            shape.sequence.as_deref().unwrap_or("identity")
        ));
    }
    // The column comes back instantly (a default is stored once, not written to every row:
    // the rows added while it was gone take it), by the `down` and, before it, by a rollback
    // that puts the values back in batches (`Restore`: by a single-column key only).
    let shape = &ctx["carry"]["column"];
    let prepare = format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{}",
        quote_ident(name),
        quote_ident(column),
        shape["ty"].as_str().ok_or("the column's type is unknown")?,
        shape["default"]
            .as_str()
            .map(|d| format!(" DEFAULT {d}"))
            .unwrap_or_default()
    );
    if let [key] = keys.as_slice() {
        ctx["restore"] = json!({
            "table": name, "key": key, "columns": [column],
            "from": format!("drydock.{}", field(ctx, "aside")), "prepare": prepare,
        });
    }
    ctx["keys"] = json!(keys);
    ctx["prepare"] = json!(prepare);
    Ok(())
}

/// `drop-table`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropTable {
    /// The table to drop (in the `public` schema).
    pub table: String,
}

fn drop_table(v: Value) -> Ctx {
    let p: DropTable = parse(v)?;
    validate_ident(&p.table)?;
    Ok(json!({"table": p.table, "aside": derived(&[&p.table], "dd_dropped")}))
}

/// Refuses a table that others still reference: a foreign key or a view would keep the table
/// set aside in use, and stop its final drop.
fn drop_table_catalog(
    ctx: &mut Value,
    catalog: &Catalog,
    _: Option<&ColumnDependents>,
) -> std::result::Result<(), String> {
    let name = field(ctx, "table");
    unused(table(catalog, name)?, name)
}

pub(crate) const DROP_INDEX: TemplateDef = TemplateDef {
    name: "drop-index",
    description: "DROP INDEX CONCURRENTLY alone in its step; the down rebuilds it CONCURRENTLY from its definition, read from the target when the plan is made.",
    source: include_str!("../../templates/drop-index.sql"),
    schema: || schemars::schema_for!(DropIndex),
    context: drop_index,
    moves: None,
    catalog: Reads::Required(drop_index_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

pub(crate) const DROP_COLUMN: TemplateDef = TemplateDef {
    name: "drop-column",
    description: "Drop a column recoverably: a manual gate while the application stops using it, then its values copied aside (by primary key) and the column dropped in one transaction; the down restores column, default, NOT NULL, constraints, indexes and data; the copy is dropped after the rollback window.",
    source: include_str!("../../templates/drop-column.sql"),
    schema: || schemars::schema_for!(DropColumn),
    context: drop_column,
    moves: Some(drop_column_moves),
    catalog: Reads::Required(drop_column_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

pub(crate) const DROP_TABLE: TemplateDef = TemplateDef {
    name: "drop-table",
    description: "Drop a table recoverably: a manual gate while the application stops using it, then the table renamed aside into the `drydock` schema (rows, indexes, constraints and triggers intact; the down moves it back); the final drop runs after the rollback window.",
    source: include_str!("../../templates/drop-table.sql"),
    schema: || schemars::schema_for!(DropTable),
    context: drop_table,
    moves: None,
    catalog: Reads::Required(drop_table_catalog),
    sqlite: super::rebuild::Sqlite::No,
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::db::{Catalog, Column, ColumnDependents, ColumnShape, Dependent, TableInfo};
    use crate::render::{Facts, render};

    fn catalog() -> Catalog {
        let col = |name: &str, pk: bool| Column {
            name: name.into(),
            ty: "text".into(),
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
                columns: vec![col("id", true), col("nickname", false)],
                indexes: vec![
                    "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)".into(),
                    "CREATE INDEX users_nickname_idx ON public.users USING btree (lower(nickname)) WHERE (nickname IS NOT NULL)".into(),
                ],
                constraints: vec!["users_pkey: PRIMARY KEY (id)".into()],
                foreign_keys_in: vec!["orders.orders_user_fkey: FOREIGN KEY (user_id) REFERENCES users(id)".into()],
                ..TableInfo::default()
            },
        );
        c.tables.insert(
            "events".into(),
            TableInfo {
                columns: vec![col("payload", false)],
                ..TableInfo::default()
            },
        );
        c
    }

    fn deps() -> ColumnDependents {
        ColumnDependents {
            column: ColumnShape {
                ty: "text".into(),
                not_null: true,
                default: Some("'anon'::text".into()),
                comment: Some("shown name".into()),
                ..ColumnShape::default()
            },
            indexes: vec![Dependent {
                name: "users_nickname_idx".into(),
                definition:
                    "CREATE INDEX users_nickname_idx ON public.users USING btree (lower(nickname))"
                        .into(),
            }],
            constraints: vec![],
            views: vec![],
            blocking: vec![],
        }
    }

    #[test]
    fn drop_index_rebuilds_the_saved_definition_concurrently() {
        let cat = catalog();
        let facts = Facts {
            deps: None,
            catalog: Some(&cat),
        };
        let r = render("drop-index", json!({"name": "users_nickname_idx"}), facts).unwrap();
        assert_eq!(
            r.steps[0].up.as_deref(),
            Some(r#"DROP INDEX CONCURRENTLY "users_nickname_idx";"#)
        );
        assert_eq!(
            r.steps[0].down.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY users_nickname_idx ON public.users USING btree (lower(nickname)) WHERE nickname IS NOT NULL;"
            )
        );
        let refused = |params| render("drop-index", params, facts).unwrap_err().to_string();
        assert!(refused(json!({"name": "users_pkey"})).contains("backs the constraint"));
        assert!(refused(json!({"name": "nope"})).contains("no index `nope`"));
        assert!(
            render(
                "drop-index",
                json!({"name": "users_nickname_idx"}),
                Facts::default()
            )
            .unwrap_err()
            .to_string()
            .contains("give `target`")
        );
    }

    #[test]
    fn drop_column_and_drop_table_refuse_what_they_could_not_restore() {
        let cat = catalog();
        let d = deps();
        let facts = Facts {
            deps: Some(&d),
            catalog: Some(&cat),
        };
        let err = |name, params| render(name, params, facts).unwrap_err().to_string();
        assert!(
            err(
                "drop-column",
                json!({"table": "events", "column": "payload"})
            )
            .contains("no primary key")
        );
        let mut serial = deps();
        serial.column.sequence = Some("public.users_nickname_seq".into());
        let e = render(
            "drop-column",
            json!({"table": "users", "column": "nickname"}),
            Facts {
                deps: Some(&serial),
                catalog: Some(&cat),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("owns a sequence"), "{e}");
        let e = err("drop-table", json!({"table": "users"}));
        assert!(e.contains("orders.orders_user_fkey"), "{e}");
        assert!(err("drop-table", json!({"table": "userz"})).contains("did you mean `users`"));
    }

    /// The SQL the removal templates render, snapshotted like the others'.
    #[test]
    fn rendered_sql_is_snapshotted() {
        let cat = catalog();
        let d = deps();
        let facts = Facts {
            deps: Some(&d),
            catalog: Some(&cat),
        };
        for (name, params) in [
            ("drop-index", json!({"name": "users_nickname_idx"})),
            (
                "drop-column",
                json!({"table": "users", "column": "nickname"}),
            ),
            ("drop-table", json!({"table": "events"})),
        ] {
            let r = render(name, params, facts).unwrap_or_else(|e| panic!("{name}: {e}"));
            insta::assert_snapshot!(name, r.script);
            assert!(r.steps.iter().all(|s| s.down.is_some() || s.is_final()));
        }
    }
}
