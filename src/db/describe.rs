//! What `inspect` tells an agent beyond tables and columns, read only when it asks: what each
//! relation is (partitioned, a partition and its bound, a materialized view and whether it holds
//! data), the functions and views that read a table's columns, and the enums and domains its
//! columns use. The analysis never needs these; they are read apart from [`super::Catalog`] so
//! that a plan does not pay for them.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The facts, keyed as the catalog keys tables (`schema.name`, bare in `public`).
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub relations: BTreeMap<String, Relation>,
    /// Functions written in SQL or PL/pgSQL outside extensions, by `name(argument types)`.
    pub functions: BTreeMap<String, FunctionDef>,
    pub views: BTreeMap<String, ViewDef>,
    /// Enums and domains, by the name a column's type is printed with.
    pub types: BTreeMap<String, UserType>,
}

/// One relation's kind and partitioning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relation {
    pub kind: RelationKind,
    /// A partitioned table's key as PostgreSQL prints it (`RANGE (payment_date)`).
    pub partition_key: Option<String>,
    /// A partition's parent and bound (`FOR VALUES FROM (…) TO (…)`).
    pub partition_of: Option<PartitionOf>,
    /// A materialized view: whether it holds data.
    pub populated: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    #[default]
    Table,
    PartitionedTable,
    MaterializedView,
}

impl RelationKind {
    pub fn is_table(&self) -> bool {
        *self == RelationKind::Table
    }

    /// From `pg_class.relkind` (`r`, `p`, `m`).
    pub fn of_relkind(relkind: &str) -> RelationKind {
        match relkind {
            "p" => RelationKind::PartitionedTable,
            "m" => RelationKind::MaterializedView,
            _ => RelationKind::Table,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionOf {
    pub parent: String,
    pub bound: String,
}

/// A function's whole definition (`CREATE OR REPLACE FUNCTION …`) and the names it uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionDef {
    pub definition: String,
    /// Identifiers and keywords of the definition, lower-cased unless quoted.
    pub names: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewDef {
    pub materialized: bool,
    /// A materialized view: whether it holds data.
    pub populated: Option<bool>,
    /// The `SELECT` as PostgreSQL prints it (SQLite: the `CREATE VIEW` statement).
    pub definition: String,
}

/// An enum or a domain a column may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserType {
    /// Its labels, in order: a label is added with `ALTER TYPE … ADD VALUE` (never removed).
    Enum { labels: Vec<String> },
    /// Its base type and the constraints every value meets.
    Domain {
        base: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_null: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checks: Vec<String>,
    },
}

/// A function that reads a table's columns: a trigger's, or one whose body names the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionUse {
    /// `name(argument types)`.
    pub function: String,
    /// The trigger of this table that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The table's columns its body names: what a rename, drop or type change breaks.
    pub columns: Vec<String>,
    /// Its whole definition (with `bodies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}
