//! PostgreSQL types as `format_type` prints them, and which type changes rewrite the table.

use super::*;

/// A parsed type as PostgreSQL's `format_type` prints it, with its modifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct PgType {
    pub base: String,
    pub mods: Vec<i64>,
    pub array: bool,
}

/// A type's name as `pg_type` has it (`int4`, `varchar`, `mood`): the last name that is not the
/// `pg_catalog` qualifier.
pub(super) fn catalog_name(t: &TypeName) -> String {
    t.names
        .iter()
        .filter_map(sval)
        .rfind(|s| *s != "pg_catalog")
        .unwrap_or("")
        .to_string()
}

impl PgType {
    pub(super) fn from_type_name(t: &TypeName) -> PgType {
        let raw = t
            .names
            .iter()
            .filter_map(sval)
            .rfind(|s| *s != "pg_catalog")
            .unwrap_or("")
            .to_string();
        let base = match raw.as_str() {
            "int2" => "smallint",
            "int4" | "int" => "integer",
            "int8" => "bigint",
            "varchar" => "character varying",
            "bpchar" => "character",
            "bool" => "boolean",
            "float4" => "real",
            "float8" => "double precision",
            "timestamp" => "timestamp without time zone",
            "timestamptz" => "timestamp with time zone",
            "time" => "time without time zone",
            "timetz" => "time with time zone",
            "decimal" => "numeric",
            other => other,
        }
        .to_string();
        let mods = t
            .typmods
            .iter()
            .filter_map(|m| match m.node.as_ref()? {
                NodeEnum::AConst(c) => match c.val.as_ref()? {
                    pg_query::protobuf::a_const::Val::Ival(i) => Some(i64::from(i.ival)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        PgType {
            base,
            mods,
            array: !t.array_bounds.is_empty(),
        }
    }

    /// Parses `format_type` output such as `character varying(50)` or `numeric(10,2)`.
    pub fn from_formatted(s: &str) -> PgType {
        let array = s.ends_with("[]");
        let s = s.trim_end_matches("[]");
        match s.find('(') {
            Some(p) => {
                let close = s.find(')').unwrap_or(s.len());
                let mods = s[p + 1..close]
                    .split(',')
                    .filter_map(|m| m.trim().parse().ok())
                    .collect();
                let base = format!("{}{}", s[..p].trim(), s.get(close + 1..).unwrap_or(""));
                PgType {
                    base: base.trim().to_string(),
                    mods,
                    array,
                }
            }
            None => PgType {
                base: s.trim().to_string(),
                mods: vec![],
                array,
            },
        }
    }
}

/// Whether changing `from` to `to` keeps the stored bytes (no rewrite), and whether it narrows.
pub fn type_change(from: &PgType, to: &PgType) -> (bool, bool) {
    if from.array != to.array {
        return (false, false);
    }
    let (f, t) = (from.base.as_str(), to.base.as_str());
    let len = |p: &PgType| p.mods.first().copied();
    match (f, t) {
        _ if from == to => (true, false),
        ("character varying", "character varying") => match (len(from), len(to)) {
            (_, None) => (true, false),
            (Some(a), Some(b)) if b >= a => (true, false),
            _ => (false, true),
        },
        ("character varying", "text") => (true, false),
        ("text", "character varying") => (len(to).is_none(), len(to).is_some()),
        ("numeric", "numeric") => match (from.mods.as_slice(), to.mods.as_slice()) {
            (_, []) => (true, false),
            ([p1, s1], [p2, s2]) if s1 == s2 && p2 >= p1 => (true, false),
            ([p1], [p2]) if p2 >= p1 => (true, false),
            _ => (false, true),
        },
        ("bigint", "integer" | "smallint") | ("integer", "smallint") => (false, true),
        ("double precision", "real") => (false, true),
        _ => (false, false),
    }
}
