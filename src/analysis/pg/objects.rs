//! CREATE and DROP of tables, indexes, triggers and views.

use pg_query::NodeEnum;
use pg_query::protobuf::{CreateStmt, CreateTrigStmt, DropStmt, IndexStmt, ObjectType, ViewStmt};

use super::{PlanState, object_word, rel_name, sval};
use crate::analysis::{Action, StatementFacts};
use crate::sql::LockMode;

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY]`: SHARE blocks writes for the build; CONCURRENTLY does
/// not, but cannot run in a transaction.
pub(super) fn create_index(f: &mut StatementFacts, i: &IndexStmt) {
    let table = i.relation.as_ref().map(rel_name).unwrap_or_default();
    f.kind = if i.unique {
        "create unique index"
    } else {
        "create index"
    }
    .into();
    f.tables.push(table);
    f.transactional = !i.concurrent;
    f.lock = if i.concurrent {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::Share
    };
    f.scans = true;
    f.actions.push(Action::BuildIndex {
        concurrent: i.concurrent,
    });
}

/// `CREATE TABLE`: nobody else sees the table yet.
pub(super) fn create_table(f: &mut StatementFacts, c: &CreateStmt, state: &mut PlanState) {
    let table = c.relation.as_ref().map(rel_name).unwrap_or_default();
    f.kind = "create table".into();
    f.tables.push(table.clone());
    state.created.insert(table);
    f.lock = LockMode::NewTable;
}

/// `DROP TABLE|SCHEMA|INDEX|VIEW|TRIGGER ...`.
pub(super) fn drop(f: &mut StatementFacts, d: &DropStmt) {
    let what = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let names: Vec<String> = d
        .objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::List(l) => Some(
                l.items
                    .iter()
                    .filter_map(sval)
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            NodeEnum::String(s) => Some(s.sval.clone()),
            _ => None,
        })
        .map(|n| n.trim_start_matches("public.").to_string())
        .collect();
    f.transactional = !d.concurrent;
    match what {
        ObjectType::ObjectTable => {
            f.kind = "drop table".into();
            f.tables = names;
            f.lock = LockMode::AccessExclusive;
            f.actions.push(Action::DropTable);
        }
        ObjectType::ObjectSchema => {
            f.kind = "drop schema".into();
            f.detail = names.first().cloned();
            f.lock = LockMode::AccessExclusive;
        }
        ObjectType::ObjectIndex => {
            f.kind = "drop index".into();
            f.detail = names.first().cloned();
            f.lock = if d.concurrent {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
        }
        ObjectType::ObjectView => {
            f.kind = "drop view".into();
            f.tables = names;
            f.lock = LockMode::AccessExclusive;
        }
        ObjectType::ObjectTrigger => {
            // `DROP TRIGGER t ON table`: the last name is the trigger, the rest its table.
            f.kind = "drop trigger".into();
            f.tables = names
                .iter()
                .filter_map(|n| n.rsplit_once('.').map(|(table, _)| table.to_string()))
                .map(|t| t.trim_start_matches("public.").to_string())
                .collect();
            f.detail = names
                .first()
                .map(|n| n.rsplit('.').next().unwrap_or(n).to_string());
            f.lock = LockMode::AccessExclusive;
        }
        other => f.kind = format!("drop {}", object_word(other)),
    }
}

/// `CREATE TRIGGER`: SHARE ROW EXCLUSIVE on its table.
pub(super) fn create_trigger(f: &mut StatementFacts, t: &CreateTrigStmt) {
    f.kind = "create trigger".into();
    f.tables.extend(t.relation.as_ref().map(rel_name));
    f.lock = LockMode::ShareRowExclusive;
}

/// `CREATE VIEW`.
pub(super) fn create_view(f: &mut StatementFacts, v: &ViewStmt) {
    f.kind = "create view".into();
    f.detail = v.view.as_ref().map(rel_name);
    f.lock = LockMode::AccessShare;
}
