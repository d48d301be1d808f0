//! A plan made from a desired schema keeps what the agent said: the DDL, its renames and its
//! consent to drops (part of the checksum, so the review reads what was asked).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Desired {
    /// The tables as the agent wants them: `CREATE TABLE`, `CREATE [UNIQUE] INDEX`,
    /// `ALTER TABLE … ADD CONSTRAINT`.
    pub sql: String,
    /// `table.old` → `new`: a column renamed, not dropped and added.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub renames: BTreeMap<String, String>,
    /// Data may be lost (a column, or with `scope: schema` a table, removed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_drop: bool,
    /// Every table of the target compared, not only those `sql` names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_schema: bool,
}

/// Where a plan's steps came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The agent's own steps.
    Steps,
    /// One drydock template.
    Template,
    /// A desired schema, compared with the catalog.
    Desired,
}
