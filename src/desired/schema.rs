//! One model of a table for both sides of the comparison: the desired DDL the agent wrote
//! (`from_desired`) and the target's catalog (`from_catalog`), both read through pg_query.

use pg_query::NodeEnum;
use pg_query::protobuf::{ColumnDef, ConstrType, Constraint, IndexStmt, Node, RangeVar};

use super::shape;

/// An expression twice: as the author wrote it (to run) and normalised (to compare).
#[derive(Debug, Clone)]
pub struct Printed {
    pub key: String,
    pub sql: String,
}

impl Printed {
    pub fn of(n: &Node) -> Printed {
        Printed {
            key: shape::expression(n),
            sql: shape::sql(n),
        }
    }
}

/// A column default, as far as planning a change needs to tell them apart.
#[derive(Debug, Clone)]
pub enum ColDefault {
    /// A constant: the value a template takes.
    Value(serde_json::Value, Printed),
    /// Computed (`now()`, `gen_random_uuid()`).
    Expr(Printed),
    /// A sequence's next value (serial, identity): the column's own numbering.
    Sequence,
}

impl PartialEq for ColDefault {
    fn eq(&self, other: &ColDefault) -> bool {
        self.key() == other.key()
    }
}

impl ColDefault {
    fn of(n: &Node) -> ColDefault {
        let printed = Printed::of(n);
        if printed.key.starts_with("nextval(") {
            return ColDefault::Sequence;
        }
        match shape::constant(n) {
            Some(v) => ColDefault::Value(v, printed),
            None => ColDefault::Expr(printed),
        }
    }

    /// What compares: the normalised expression.
    pub fn key(&self) -> &str {
        match self {
            ColDefault::Value(_, p) | ColDefault::Expr(p) => &p.key,
            ColDefault::Sequence => "nextval",
        }
    }

    /// What runs: the expression as written.
    pub fn sql(&self) -> &str {
        match self {
            ColDefault::Value(_, p) | ColDefault::Expr(p) => &p.sql,
            ColDefault::Sequence => "nextval",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub name: String,
    /// The type as a key (`varchar(20)`, `int4`).
    pub ty: String,
    /// The type as SQL a template takes.
    pub ty_sql: String,
    pub not_null: bool,
    pub default: Option<ColDefault>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckC {
    pub name: Option<String>,
    /// The condition, normalised (to compare) and as written (to run).
    pub expr: Printed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// `ON DELETE`/`ON UPDATE` actions and match type, as PostgreSQL codes them (`a`, `c`, …).
    pub actions: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: Option<String>,
    pub unique: bool,
    /// Its plain columns, when it is one over columns alone.
    pub columns: Option<Vec<String>>,
    /// Its shape without name (see `shape::index_shape`).
    pub shape: String,
    /// It backs a UNIQUE constraint (catalog), or was written as one (desired).
    pub constraint: bool,
    /// Its `CREATE INDEX CONCURRENTLY` with its name (for one `add-index` cannot build).
    pub create: String,
    /// The name `create` gives it (its own, or one made from its table and shape).
    pub built_as: String,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Col>,
    pub primary_key: Option<Vec<String>>,
    pub checks: Vec<CheckC>,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
    /// A partitioned table (`PARTITION BY`), or a partition (`PARTITION OF`).
    pub partitioning: bool,
    pub comment: Option<String>,
    /// The desired `CREATE TABLE` as the deparser prints it (for a table that is new).
    pub create: Option<String>,
    /// The desired `CREATE INDEX`es and `ALTER TABLE`s of the table, as printed: a new table's
    /// step runs them after its `CREATE TABLE` (an empty table: no need for CONCURRENTLY).
    pub after_create: Vec<String>,
}

impl Col {
    /// `ALTER COLUMN … SET DEFAULT` (or `DROP DEFAULT`, without an expression).
    pub fn set_default(&mut self, expr: Option<&Node>) {
        self.default = expr.map(ColDefault::of);
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Col> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A table's name as the catalog keys it: `public` left out, other schemas qualified.
pub fn table_name(r: &RangeVar) -> String {
    match r.schemaname.as_str() {
        "" | "public" => r.relname.clone(),
        s => format!("{s}.{}", r.relname),
    }
}

/// A column from its definition; `Err` names what drydock cannot compare.
pub fn column(d: &ColumnDef) -> Result<(Col, Vec<Constraint>), String> {
    let t = d
        .type_name
        .as_ref()
        .ok_or_else(|| format!("column `{}` has no type", d.colname))?;
    let mut col = Col {
        name: d.colname.clone(),
        ty: shape::type_key(t),
        ty_sql: shape::type_sql(t),
        not_null: d.is_not_null,
        default: d.raw_default.as_deref().map(ColDefault::of),
        comment: None,
    };
    if let Some(int) = shape::serial(t) {
        col.ty = int.into();
        col.ty_sql = match int {
            "int8" => "bigint",
            "int2" => "smallint",
            _ => "integer",
        }
        .into();
        col.not_null = true;
        col.default = Some(ColDefault::Sequence);
    }
    let mut table_level = Vec::new();
    for c in &d.constraints {
        let Some(NodeEnum::Constraint(c)) = &c.node else {
            continue;
        };
        match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
            ConstrType::ConstrNotnull => col.not_null = true,
            ConstrType::ConstrNull => col.not_null = false,
            ConstrType::ConstrDefault => col.default = c.raw_expr.as_deref().map(ColDefault::of),
            ConstrType::ConstrIdentity => {
                col.not_null = true;
                col.default = Some(ColDefault::Sequence);
            }
            ConstrType::ConstrGenerated => {
                return Err(format!("generated column `{}`", d.colname));
            }
            ConstrType::ConstrPrimary
            | ConstrType::ConstrUnique
            | ConstrType::ConstrCheck
            | ConstrType::ConstrForeign => {
                // Written on the column, it is the table's constraint over that one column.
                let mut c = (**c).clone();
                let key = Node {
                    node: Some(NodeEnum::String(pg_query::protobuf::String {
                        sval: d.colname.clone(),
                    })),
                };
                if c.keys.is_empty() {
                    c.keys = vec![key.clone()];
                }
                if c.fk_attrs.is_empty() {
                    c.fk_attrs = vec![key];
                }
                if ConstrType::try_from(c.contype) == Ok(ConstrType::ConstrPrimary) {
                    col.not_null = true;
                }
                table_level.push(c);
            }
            _ => {}
        }
    }
    Ok((col, table_level))
}

/// Adds a table-level constraint to `t`; `Err` names what drydock cannot compare.
pub fn constraint(t: &mut Table, c: &Constraint, from_catalog: bool) -> Result<(), String> {
    let name = (!c.conname.is_empty()).then(|| c.conname.clone());
    match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
        ConstrType::ConstrPrimary => {
            let keys = shape::names(&c.keys);
            for k in &keys {
                if let Some(col) = t.columns.iter_mut().find(|col| &col.name == k) {
                    col.not_null = true;
                }
            }
            t.primary_key = Some(keys);
        }
        ConstrType::ConstrUnique if !from_catalog => {
            // A UNIQUE constraint is its unique index, as the catalog's index list shows it.
            let columns = shape::names(&c.keys);
            let sql = format!(
                "CREATE UNIQUE INDEX ON {} ({}){}",
                super::qualified(&t.name),
                columns
                    .iter()
                    .map(|c| crate::sql::quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                if c.nulls_not_distinct {
                    " NULLS NOT DISTINCT"
                } else {
                    ""
                }
            );
            let index = match shape::first_statement(&sql) {
                Some(NodeEnum::IndexStmt(i)) => *i,
                _ => {
                    return Err(format!(
                        "unique constraint on `{}` ({})",
                        t.name,
                        columns.join(", ")
                    ));
                }
            };
            let mut made = self::index(&index, true);
            made.name = name;
            t.indexes.push(made);
        }
        // The catalog's unique constraints are read from its index list.
        ConstrType::ConstrUnique => {}
        ConstrType::ConstrCheck => {
            let Some(expr) = c.raw_expr.as_deref() else {
                return Err(format!("a CHECK without a condition on `{}`", t.name));
            };
            t.checks.push(CheckC {
                name,
                expr: Printed::of(expr),
            });
        }
        ConstrType::ConstrForeign => {
            let ref_table = c.pktable.as_ref().map(table_name).unwrap_or_default();
            t.foreign_keys.push(ForeignKey {
                name,
                columns: shape::names(&c.fk_attrs),
                ref_columns: shape::names(&c.pk_attrs),
                ref_table,
                actions: format!(
                    "{}{}{}",
                    or(&c.fk_upd_action, "a"),
                    or(&c.fk_del_action, "a"),
                    or(&c.fk_matchtype, "s")
                ),
            });
        }
        ConstrType::ConstrNotnull => {}
        other => return Err(format!("a {other:?} constraint on `{}`", t.name)),
    }
    Ok(())
}

fn or<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.is_empty() { default } else { v }
}

/// An index from its `CREATE INDEX`.
pub fn index(i: &IndexStmt, constraint: bool) -> Index {
    let shape = shape::index_shape(i);
    let mut create = i.clone();
    create.concurrent = true;
    create.if_not_exists = false;
    if create.idxname.is_empty() {
        let table = i
            .relation
            .as_ref()
            .map(|r| r.relname.as_str())
            .unwrap_or("t");
        create.idxname = format!(
            "{}_{}_idx",
            table.chars().take(40).collect::<String>(),
            &crate::db::short_hash(&shape)[..8]
        );
    }
    Index {
        name: (!i.idxname.is_empty()).then(|| i.idxname.clone()),
        unique: i.unique,
        columns: shape::index_columns(i),
        shape,
        constraint,
        built_as: create.idxname.clone(),
        create: NodeEnum::IndexStmt(Box::new(create))
            .deparse(pg_query::DeparseOptions::default())
            .unwrap_or_default(),
    }
}
