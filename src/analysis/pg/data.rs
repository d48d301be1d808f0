//! Statements that write rows: UPDATE, DELETE, INSERT, TRUNCATE.

use pg_query::NodeEnum;
use pg_query::protobuf::{DeleteStmt, InsertStmt, TruncateStmt, UpdateStmt};

use super::rel_name;
use crate::analysis::{Action, StatementFacts, StatementKind};
use crate::sql::LockMode;

/// `UPDATE`: ROW EXCLUSIVE; without WHERE it reads the whole table.
pub(super) fn update(f: &mut StatementFacts, u: &UpdateStmt) {
    f.kind = StatementKind::Update;
    f.tables.extend(u.relation.as_ref().map(rel_name));
    f.has_where = u.where_clause.is_some();
    f.lock = LockMode::RowExclusive;
    f.scans = !f.has_where;
    if u.from_clause.is_empty() {
        let names = own_names(u.relation.as_ref());
        let mut columns: Vec<String> = u
            .target_list
            .iter()
            .filter_map(|t| match t.node.as_ref()? {
                NodeEnum::ResTarget(r) if !r.name.is_empty() => Some(r.name.clone()),
                _ => None,
            })
            .collect();
        columns.extend(referenced(&u.target_list, &names));
        columns.extend(referenced(&u.where_clause, &names));
        uses(f, columns);
    }
}

/// `DELETE`: ROW EXCLUSIVE; without WHERE it reads the whole table.
pub(super) fn delete(f: &mut StatementFacts, d: &DeleteStmt) {
    f.kind = StatementKind::Delete;
    f.tables.extend(d.relation.as_ref().map(rel_name));
    f.has_where = d.where_clause.is_some();
    f.lock = LockMode::RowExclusive;
    f.scans = !f.has_where;
    if d.using_clause.is_empty() {
        let names = own_names(d.relation.as_ref());
        uses(f, referenced(&d.where_clause, &names));
    }
}

fn uses(f: &mut StatementFacts, mut columns: Vec<String>) {
    columns.sort();
    columns.dedup();
    if !columns.is_empty() {
        f.actions.push(Action::UsesColumns { columns });
    }
}

/// The names a statement's own table goes by (its alias, else its name; `""` for unqualified).
fn own_names(r: Option<&pg_query::protobuf::RangeVar>) -> Vec<String> {
    let mut names = vec![String::new()];
    if let Some(r) = r {
        names.push(
            r.alias
                .as_ref()
                .map(|a| a.aliasname.clone())
                .unwrap_or_else(|| r.relname.clone()),
        );
    }
    names
}

/// The columns of the statement's table that `clause` names under `names`, outside subqueries
/// (a subquery's names are its own tables').
fn referenced(clause: &impl serde::Serialize, names: &[String]) -> Vec<String> {
    fn walk(v: &serde_json::Value, names: &[String], out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.contains_key("SubLink") || m.contains_key("SelectStmt") {
                    return;
                }
                if let Some(c) = m.get("ColumnRef") {
                    let fields: Vec<&str> = c["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["node"]["String"]["sval"].as_str())
                        .collect();
                    match fields.as_slice() {
                        [column] if names.iter().any(String::is_empty) => {
                            out.push(column.to_string())
                        }
                        [q, column] if names.iter().any(|n| n == q) => out.push(column.to_string()),
                        _ => {}
                    }
                    return;
                }
                m.values().for_each(|x| walk(x, names, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, names, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(clause) {
        walk(&v, names, &mut out);
    }
    out
}

/// `INSERT`.
pub(super) fn insert(f: &mut StatementFacts, i: &InsertStmt) {
    f.kind = StatementKind::Insert;
    f.tables.extend(i.relation.as_ref().map(rel_name));
    f.lock = LockMode::RowExclusive;
}

/// `TRUNCATE`: ACCESS EXCLUSIVE, and the rows are gone.
pub(super) fn truncate(f: &mut StatementFacts, t: &TruncateStmt) {
    f.kind = StatementKind::Truncate;
    f.tables
        .extend(t.relations.iter().filter_map(|r| match r.node.as_ref()? {
            NodeEnum::RangeVar(r) => Some(rel_name(r)),
            _ => None,
        }));
    f.lock = LockMode::AccessExclusive;
}
