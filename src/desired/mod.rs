//! Desired state: the tables as the agent wants them (`CREATE TABLE`, `CREATE [UNIQUE] INDEX`,
//! `ALTER TABLE … ADD CONSTRAINT`), compared with the target's catalog, and each difference
//! said as the zero-downtime change that makes it (`Change`): a drydock template with its
//! parameters, or a step drydock writes itself. The engine renders them into one ordinary
//! plan. What cannot be decided is refused: `ambiguous-change` (a column gone and another
//! added: a rename?), `drop-needs-consent` (data would be lost), `unsupported-change`.
//!
//! Imports `db` (the catalog, as data), `plan` and `error`; never `engine` or `store`.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::db::Catalog;
use crate::error::{Error, Part, Result};

mod attach;
mod diff;
mod schema;
mod shape;
pub mod sqlite;

pub use diff::{Change, changes};
pub use schema::Table;

/// What the agent said beside its desired DDL.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `table.old` → `new`: a column renamed, not dropped and added.
    pub renames: BTreeMap<String, String>,
    /// Data may be lost (a column or table removed).
    pub allow_drop: bool,
    /// Every table of the schema is compared, not only those the DDL names (a table missing
    /// from the DDL is then dropped).
    pub whole_schema: bool,
}

/// A desired schema as read: its tables, and what it holds that is not compared.
#[derive(Debug, Default)]
pub struct Read {
    /// The tables, keyed as the catalog keys them.
    pub tables: BTreeMap<String, Table>,
    /// Statements a whole schema file holds beside its tables (functions, views, grants,
    /// comments, owners…), described: planned by nobody, said in the plan's warnings.
    pub skipped: Vec<String>,
    /// Relations indexed or altered without a `CREATE TABLE` here: a table of the target among
    /// them is refused (its whole shape is not known), anything else skipped.
    pub orphans: BTreeMap<String, Vec<String>>,
}

impl Read {
    /// The statements drydock plans from (each table's `CREATE TABLE`, its indexes and
    /// `ALTER TABLE`s, as printed): what is admitted as agent SQL, the rest never running.
    pub fn planned_sql(&self) -> String {
        let mut out = Vec::new();
        for t in self.tables.values() {
            out.extend(t.create.iter().cloned());
            out.extend(t.after_create.iter().cloned());
        }
        out.join(";\n")
    }
}

/// Reads a desired schema: the tables of its `CREATE TABLE`s with their `CREATE INDEX`es and
/// `ALTER TABLE … ADD CONSTRAINT`s (and `ALTER COLUMN … SET DEFAULT`), everything else set aside.
pub fn read(sql: &str) -> Result<Read> {
    let invalid = |d: String| Error::invalid(Part::Plan, format!("`desired`: {d}"));
    let parsed = pg_query::parse(sql, 0)
        .map_err(|e| invalid(format!("does not parse as PostgreSQL: {e}")))?;
    let mut read = Read::default();
    let mut later: Vec<(String, &NodeEnum)> = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(stmt) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let rel = match stmt {
            NodeEnum::CreateStmt(c) => {
                let rel = c
                    .relation
                    .as_ref()
                    .ok_or_else(|| invalid("a CREATE TABLE without a name".into()))?;
                if matches!(
                    rel.schemaname.as_str(),
                    "drydock" | "drydock_backup" | "pg_catalog" | "information_schema"
                ) || rel.schemaname.starts_with("pg_")
                {
                    return Err(invalid(format!(
                        "`{}.{}` is in a schema that is drydock's or PostgreSQL's own, never the application's",
                        rel.schemaname, rel.relname
                    )));
                }
                let t = create_table(c).map_err(|what| unsupported(&what))?;
                if read.tables.insert(schema::table_name(rel), t).is_some() {
                    return Err(invalid(format!("table `{}` is created twice", rel.relname)));
                }
                continue;
            }
            NodeEnum::IndexStmt(i) => i.relation.as_ref(),
            NodeEnum::AlterTableStmt(a) => a.relation.as_ref(),
            NodeEnum::CommentStmt(c) => match commented(c) {
                Some((rel, _)) => {
                    later.push((rel, stmt));
                    continue;
                }
                None => {
                    read.skipped.push(describe(stmt));
                    continue;
                }
            },
            other => {
                read.skipped.push(describe(other));
                continue;
            }
        };
        later.push((rel.map(schema::table_name).unwrap_or_default(), stmt));
    }
    for (rel, stmt) in later {
        let Some(t) = read.tables.get_mut(&rel) else {
            read.orphans.entry(rel).or_default().push(describe(stmt));
            continue;
        };
        if let Ok(sql) = stmt.deparse(pg_query::DeparseOptions::default()) {
            t.after_create.push(sql);
        }
        match stmt {
            NodeEnum::CommentStmt(c) => {
                let comment = (!c.comment.is_empty()).then(|| c.comment.clone());
                match commented(c).and_then(|(_, column)| column) {
                    None => t.comment = comment,
                    Some(column) => {
                        let col = t.columns.iter_mut().find(|c| c.name == column).ok_or_else(|| {
                            Error::invalid(
                                Part::Plan,
                                format!("`desired`: a comment on `{rel}.{column}`, which its CREATE TABLE does not have"),
                            )
                        })?;
                        col.comment = comment;
                    }
                }
            }
            NodeEnum::IndexStmt(i) => t.indexes.push(schema::index(i, false)),
            NodeEnum::AlterTableStmt(a) => {
                for cmd in &a.cmds {
                    let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                        continue;
                    };
                    alter(t, cmd, &mut read.skipped)?;
                }
            }
            _ => {}
        }
    }
    Ok(read)
}

/// One `ALTER TABLE` command of a desired table: a constraint added or a default set shape
/// the table; an owner, a partition attached, a storage setting are not compared.
fn alter(
    t: &mut Table,
    cmd: &pg_query::protobuf::AlterTableCmd,
    skipped: &mut Vec<String>,
) -> Result<()> {
    let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
    match (AlterTableType::try_from(cmd.subtype), def) {
        (Ok(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(c))) => {
            schema::constraint(t, c, false).map_err(|w| unsupported(&w))
        }
        (Ok(AlterTableType::AtColumnDefault), _) => {
            let col = t
                .columns
                .iter_mut()
                .find(|c| c.name == cmd.name)
                .ok_or_else(|| {
                    Error::invalid(
                        Part::Plan,
                        format!(
                            "`desired`: `{}.{}` has a default set but no such column",
                            t.name, cmd.name
                        ),
                    )
                })?;
            col.set_default(cmd.def.as_deref());
            Ok(())
        }
        (kind, _) => {
            skipped.push(format!("ALTER TABLE {} ({kind:?})", t.name));
            Ok(())
        }
    }
}

/// The table (keyed as the catalog keys it) and column a `COMMENT ON TABLE` or `COMMENT ON
/// COLUMN` is about; `None` for a comment on anything else.
fn commented(c: &pg_query::protobuf::CommentStmt) -> Option<(String, Option<String>)> {
    use pg_query::protobuf::ObjectType;
    let Some(NodeEnum::List(l)) = c.object.as_deref().and_then(|o| o.node.as_ref()) else {
        return None;
    };
    let mut parts = shape::names(&l.items);
    let column = match ObjectType::try_from(c.objtype) {
        Ok(ObjectType::ObjectTable) => None,
        Ok(ObjectType::ObjectColumn) => Some(parts.pop()?),
        _ => return None,
    };
    let table = parts.pop()?;
    let rel = match parts.pop().as_deref() {
        None | Some("public") => table,
        Some(schema) => format!("{schema}.{table}"),
    };
    Some((rel, column))
}

/// A statement set aside, in a few words (`CREATE FUNCTION public.last_updated() …`).
fn describe(stmt: &NodeEnum) -> String {
    let text = stmt
        .deparse(pg_query::DeparseOptions::default())
        .unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().take(4).collect();
    let mut out = words.join(" ");
    if out.chars().count() > 60 {
        out = out.chars().take(60).collect();
    }
    format!("{out} …")
}

fn create_table(c: &pg_query::protobuf::CreateStmt) -> std::result::Result<Table, String> {
    let rel = c.relation.as_ref().expect("checked");
    let mut t = Table {
        name: schema::table_name(rel),
        partitioning: c.partspec.is_some() || c.partbound.is_some() || !c.inh_relations.is_empty(),
        create: NodeEnum::CreateStmt(c.clone())
            .deparse(pg_query::DeparseOptions::default())
            .ok(),
        ..Table::default()
    };
    if c.of_typename.is_some() {
        return Err(format!("typed table `{}` (OF type)", t.name));
    }
    let mut constraints = Vec::new();
    for e in &c.table_elts {
        match &e.node {
            Some(NodeEnum::ColumnDef(d)) => {
                let (col, more) = schema::column(d)?;
                t.columns.push(col);
                constraints.extend(more);
            }
            Some(NodeEnum::Constraint(k)) => constraints.push((**k).clone()),
            _ => {
                return Err(format!(
                    "a table element of `{}` that is neither a column nor a constraint (LIKE?)",
                    t.name
                ));
            }
        }
    }
    for k in &c.constraints {
        if let Some(NodeEnum::Constraint(k)) = &k.node {
            constraints.push((**k).clone());
        }
    }
    for k in &constraints {
        schema::constraint(&mut t, k, false)?;
    }
    Ok(t)
}

fn unsupported(what: &str) -> Error {
    Error::UnsupportedChange {
        what: what.to_string(),
        manual: "write this part of the change as `steps` in its own plan (`render-template` has the safe procedures); the rest can stay in `desired`".into(),
    }
}

/// A statement set aside because the relation it indexes or alters is not a table.
fn not_a_table(statement: &str, rel: &str) -> String {
    format!("{statement} (on `{rel}`, not a table)")
}

/// A read desired schema beside the catalog: the tables wanted, the catalog's tables compared
/// with them, and what is set aside.
pub struct Compared {
    pub wanted: BTreeMap<String, Table>,
    pub current: BTreeMap<String, Table>,
    pub skipped: Vec<String>,
}

/// Sets `read` beside `catalog`: the catalog's tables it names (every table but materialized
/// views with `whole_schema`); an index or `ALTER TABLE` on a table it does not create is
/// refused (its whole shape is not known), on anything else set aside.
pub fn compare_with(read: Read, catalog: &Catalog, whole_schema: bool) -> Result<Compared> {
    let is_table =
        |t: &crate::db::TableInfo| t.kind != crate::db::describe::RelationKind::MaterializedView;
    let mut skipped = read.skipped;
    for (rel, statements) in read.orphans {
        if catalog.tables.get(&rel).is_some_and(is_table) {
            return Err(Error::invalid(
                Part::Plan,
                format!(
                    "`desired`: `{rel}` is indexed or altered but not created: give its CREATE TABLE as you want it (the whole table: what it leaves out would be removed)"
                ),
            ));
        }
        skipped.extend(statements.iter().map(|s| not_a_table(s, &rel)));
    }
    let names: BTreeSet<String> = if whole_schema {
        catalog
            .tables
            .iter()
            .filter(|(_, t)| is_table(t))
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        read.tables.keys().cloned().collect()
    };
    Ok(Compared {
        current: from_catalog(catalog, &names)?,
        wanted: read.tables,
        skipped,
    })
}

/// The catalog's tables in the same model, those of `names` (each may be missing).
fn from_catalog(catalog: &Catalog, names: &BTreeSet<String>) -> Result<BTreeMap<String, Table>> {
    let mut out = BTreeMap::new();
    for name in names {
        let Some(info) = catalog.tables.get(name) else {
            continue;
        };
        if info.kind == crate::db::describe::RelationKind::MaterializedView {
            return Err(unsupported(&format!(
                "`{name}` is a materialized view on the target, a table in `desired`"
            )));
        }
        let mut t = catalog_table(name, info).map_err(|w| unsupported(&w))?;
        t.partitioning |= info.kind == crate::db::describe::RelationKind::PartitionedTable
            || catalog.partitions.values().any(|p| p.contains(name));
        out.insert(name.clone(), t);
    }
    Ok(out)
}

fn first(sql: &str) -> std::result::Result<NodeEnum, String> {
    shape::first_statement(sql).ok_or_else(|| format!("the catalog's {sql:?} does not parse"))
}

/// A table's key (`t`, `s.t`) as SQL names it, each part quoted.
pub(super) fn qualified(name: &str) -> String {
    name.split('.')
        .map(crate::sql::quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn catalog_table(name: &str, info: &crate::db::TableInfo) -> std::result::Result<Table, String> {
    let mut t = Table {
        name: name.to_string(),
        comment: info.comment.clone(),
        ..Table::default()
    };
    for c in &info.columns {
        let mut sql = format!(
            "CREATE TABLE t ({} {}",
            crate::sql::quote_ident(&c.name),
            c.ty
        );
        if let Some(d) = &c.default {
            sql.push_str(&format!(" DEFAULT {d}"));
        }
        sql.push(')');
        let Ok(NodeEnum::CreateStmt(stmt)) = first(&sql) else {
            return Err(format!("column `{name}.{}` of type {}", c.name, c.ty));
        };
        let Some(NodeEnum::ColumnDef(d)) = stmt.table_elts.first().and_then(|n| n.node.clone())
        else {
            return Err(format!("column `{name}.{}`", c.name));
        };
        let (mut col, _) = schema::column(&d)?;
        col.not_null = !c.nullable;
        col.comment = c.comment.clone();
        t.columns.push(col);
    }
    let mut unique_constraints = BTreeSet::new();
    for line in &info.constraints {
        let Some((cname, def)) = line.split_once(": ") else {
            continue;
        };
        let def = def
            .trim_end_matches(" (NOT VALID)")
            .trim_end_matches(" NOT VALID");
        if def.starts_with("UNIQUE") {
            unique_constraints.insert(cname.to_string());
        }
        let sql = format!(
            "ALTER TABLE t ADD CONSTRAINT {} {def}",
            crate::sql::quote_ident(cname)
        );
        let stmt = first(&sql)?;
        let NodeEnum::AlterTableStmt(a) = stmt else {
            continue;
        };
        for cmd in &a.cmds {
            if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node
                && let Some(NodeEnum::Constraint(k)) =
                    cmd.def.as_deref().and_then(|d| d.node.as_ref())
            {
                schema::constraint(&mut t, k, true)?;
            }
        }
    }
    let pk_name = info
        .constraints
        .iter()
        .find(|l| l.contains(": PRIMARY KEY"))
        .and_then(|l| l.split_once(": ").map(|(n, _)| n.to_string()));
    for def in &info.indexes {
        let NodeEnum::IndexStmt(i) = first(def)? else {
            continue;
        };
        if Some(&i.idxname) == pk_name.as_ref() {
            continue;
        }
        let backs = unique_constraints.contains(&i.idxname);
        t.indexes.push(schema::index(&i, backs));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drydocks_own_schemas_are_never_desired() {
        for sql in [
            "CREATE TABLE drydock.history (id int)",
            "CREATE TABLE drydock_backup.x (id int)",
            "CREATE TABLE pg_catalog.x (id int)",
        ] {
            let e = read(sql).unwrap_err();
            assert_eq!(e.code(), "invalid-input", "{sql}: {e}");
        }
        let r = read("CREATE TABLE app.orders (id int PRIMARY KEY); CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'").unwrap();
        assert!(r.tables.contains_key("app.orders"));
        assert_eq!(
            r.skipped.len(),
            1,
            "the function is set aside: {:?}",
            r.skipped
        );
    }
}
