//! What the template modules share: typed parameters from JSON, and the target's tables looked
//! up in its catalog with the nearest name suggested for a typo.

use serde::Deserialize;
use serde_json::Value;

use crate::db::{Catalog, TableInfo};

/// A template's render context, or why its parameters are refused.
pub(super) type Ctx = std::result::Result<Value, String>;

pub(super) fn parse<T: for<'de> Deserialize<'de>>(v: Value) -> std::result::Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `name`, a table of the target (the templates name tables unqualified, in `public`).
pub(super) fn table<'a>(
    catalog: &'a Catalog,
    name: &str,
) -> std::result::Result<&'a TableInfo, String> {
    super::validate_ident(name)?;
    catalog.tables.get(name).ok_or_else(|| {
        let near = crate::analysis::nearest(name, catalog.tables.keys().map(String::as_str));
        format!(
            "the target has no table `{name}`{}",
            near.map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default()
        )
    })
}

/// Refuses a table that others still use — a foreign key into it, a view reading it — which
/// would keep it alive, and stop its drop.
pub(super) fn unused(info: &TableInfo, name: &str) -> std::result::Result<(), String> {
    let mut users: Vec<String> = info
        .foreign_keys_in
        .iter()
        .map(|f| format!("foreign key {f}"))
        .collect();
    users.extend(info.views.iter().map(|v| format!("view {v}")));
    if users.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`{name}` is still used by {}; drop or change {} first",
        users.join("; "),
        if users.len() == 1 { "it" } else { "them" }
    ))
}
