//! Statements that write rows: UPDATE, DELETE, INSERT, TRUNCATE.

use pg_query::NodeEnum;
use pg_query::protobuf::{DeleteStmt, InsertStmt, TruncateStmt, UpdateStmt};

use super::rel_name;
use crate::analysis::StatementFacts;
use crate::sql::LockMode;

/// `UPDATE`: ROW EXCLUSIVE; without WHERE it reads the whole table.
pub(super) fn update(f: &mut StatementFacts, u: &UpdateStmt) {
    f.kind = "update".into();
    f.tables.extend(u.relation.as_ref().map(rel_name));
    f.has_where = u.where_clause.is_some();
    f.lock = LockMode::RowExclusive;
    f.scans = !f.has_where;
}

/// `DELETE`: ROW EXCLUSIVE; without WHERE it reads the whole table.
pub(super) fn delete(f: &mut StatementFacts, d: &DeleteStmt) {
    f.kind = "delete".into();
    f.tables.extend(d.relation.as_ref().map(rel_name));
    f.has_where = d.where_clause.is_some();
    f.lock = LockMode::RowExclusive;
    f.scans = !f.has_where;
}

/// `INSERT`.
pub(super) fn insert(f: &mut StatementFacts, i: &InsertStmt) {
    f.kind = "insert".into();
    f.tables.extend(i.relation.as_ref().map(rel_name));
    f.lock = LockMode::RowExclusive;
}

/// `TRUNCATE`: ACCESS EXCLUSIVE, and the rows are gone.
pub(super) fn truncate(f: &mut StatementFacts, t: &TruncateStmt) {
    f.kind = "truncate".into();
    f.tables
        .extend(t.relations.iter().filter_map(|r| match r.node.as_ref()? {
            NodeEnum::RangeVar(r) => Some(rel_name(r)),
            _ => None,
        }));
    f.lock = LockMode::AccessExclusive;
}
