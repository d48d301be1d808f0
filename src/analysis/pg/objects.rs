//! CREATE and DROP of tables, indexes, triggers and views.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterDomainStmt, AlterEnumStmt, ConstrType, CreateStmt, CreateTrigStmt, DropStmt, IndexStmt,
    ObjectType, RefreshMatViewStmt, ViewStmt,
};

use super::{
    PlanState, catalog_name, check_schema, check_type, last_name, object_word, rel_name, sval,
};
use crate::analysis::{Action, StatementFacts, StatementKind};
use crate::db::Catalog;
use crate::sql::LockMode;

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY]`: SHARE blocks writes for the build; CONCURRENTLY does
/// not, but cannot run in a transaction. On a partitioned table the index is built on every
/// partition, each locked and read; `ON ONLY` builds nothing (an invalid parent index that
/// partitions' indexes are attached to later).
pub(super) fn create_index(
    f: &mut StatementFacts,
    i: &IndexStmt,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    let table = i.relation.as_ref().map(rel_name).unwrap_or_default();
    state.indexed.insert(table.clone());
    let only = i.relation.as_ref().is_some_and(|r| !r.inh);
    let partitions = catalog.partitions.get(&table);
    f.kind = match (i.unique, only) {
        (_, true) => StatementKind::CreateParentOnlyIndex,
        (true, false) => StatementKind::CreateUniqueIndex,
        (false, false) => StatementKind::CreateIndex,
    };
    f.tables.push(table);
    f.transactional = !i.concurrent;
    f.lock = if i.concurrent {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::Share
    };
    if only && partitions.is_some() {
        return;
    }
    if let Some(parts) = partitions {
        f.tables.extend(parts.iter().cloned());
        f.detail = Some(format!("built on {} partition(s)", parts.len()));
    }
    // A build reads the whole table; on a partitioned table, each partition (the parent holds
    // no rows of its own): the measurement counts those as the parent's scan.
    f.scans = true;
    f.actions.push(Action::BuildIndex {
        concurrent: i.concurrent,
    });
}

/// `REFRESH MATERIALIZED VIEW`: recomputed into new storage under ACCESS EXCLUSIVE (readers
/// wait); `CONCURRENTLY` takes EXCLUSIVE (readers go on), diffs against the old contents and
/// needs a unique index.
pub(super) fn refresh(f: &mut StatementFacts, r: &RefreshMatViewStmt) {
    f.kind = StatementKind::RefreshMaterializedView;
    f.tables.extend(r.relation.as_ref().map(rel_name));
    // Both read the old contents: CONCURRENTLY to diff against them, the other to replace them.
    f.scans = true;
    if r.concurrent {
        f.lock = LockMode::Exclusive;
    } else {
        f.lock = LockMode::AccessExclusive;
        f.rewrites = true;
        f.actions.push(Action::Rewrite {
            why: "REFRESH MATERIALIZED VIEW recomputes it into new storage; readers wait for it"
                .into(),
        });
    }
    f.actions.push(Action::RefreshMaterializedView {
        concurrent: r.concurrent,
    });
}

/// `ALTER DOMAIN d ADD CONSTRAINT`: checks every column of the domain, reading each table that
/// has one under SHARE (writes wait); NOT VALID checks nothing.
pub(super) fn alter_domain(
    f: &mut StatementFacts,
    d: &AlterDomainStmt,
    catalog: &Catalog,
    state: &PlanState,
) {
    let domain = last_name(&d.type_name);
    f.detail = Some(domain.clone());
    check_type(f, &domain, catalog, state);
    let constraint = match d.def.as_ref().and_then(|n| n.node.as_ref()) {
        Some(pg_query::NodeEnum::Constraint(c)) if d.subtype == "C" => Some(c),
        _ => None,
    };
    let Some(c) = constraint else {
        f.kind = StatementKind::AlterDomain;
        f.lock = LockMode::NotPredicted;
        return;
    };
    f.kind = StatementKind::AlterDomainAddConstraint;
    let not_valid = c.skip_validation;
    if ConstrType::try_from(c.contype).is_ok_and(|k| k == ConstrType::ConstrCheck) && !not_valid {
        f.tables = catalog.users_of_type(&domain);
        f.scans = !f.tables.is_empty();
    }
    f.lock = LockMode::Share;
    f.actions
        .push(Action::AddDomainConstraint { domain, not_valid });
}

/// `ALTER TYPE e ADD VALUE | RENAME VALUE`: no table is locked; a renamed label breaks code that
/// still writes the old one.
pub(super) fn alter_enum(
    f: &mut StatementFacts,
    e: &AlterEnumStmt,
    catalog: &Catalog,
    state: &PlanState,
) {
    let ty = last_name(&e.type_name);
    f.detail = Some(ty.clone());
    check_type(f, &ty, catalog, state);
    f.lock = LockMode::NotPredicted;
    if e.old_val.is_empty() {
        f.kind = StatementKind::AlterTypeAddValue;
    } else {
        f.kind = StatementKind::AlterTypeRenameValue;
        f.actions.push(Action::RenameEnumValue {
            ty,
            from: e.old_val.clone(),
            to: e.new_val.clone(),
        });
    }
}

/// `CREATE TABLE`: nobody else sees the table yet.
pub(super) fn create_table(
    f: &mut StatementFacts,
    c: &CreateStmt,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    let table = c.relation.as_ref().map(rel_name).unwrap_or_default();
    if let Some(r) = c.relation.as_ref() {
        check_schema(f, &r.schemaname, catalog, state);
    }
    f.tables.push(table.clone());
    for e in &c.table_elts {
        match e.node.as_ref() {
            Some(pg_query::NodeEnum::ColumnDef(col)) => {
                if let Some(t) = col.type_name.as_ref() {
                    check_type(f, &catalog_name(t), catalog, state);
                }
                for n in &col.constraints {
                    if let Some(NodeEnum::Constraint(k)) = n.node.as_ref() {
                        super::alter::references(f, &table, k);
                    }
                }
            }
            Some(NodeEnum::Constraint(k)) => super::alter::references(f, &table, k),
            _ => {}
        }
    }
    f.kind = StatementKind::CreateTable;
    state.created.insert(table);
    f.lock = LockMode::NewTable;
}

/// `DROP TABLE|SCHEMA|INDEX|VIEW|TRIGGER ...`.
pub(super) fn drop(f: &mut StatementFacts, d: &DropStmt, catalog: &Catalog, state: &PlanState) {
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
            f.kind = StatementKind::DropTable;
            f.tables = names;
            f.lock = LockMode::AccessExclusive;
            f.actions.push(Action::DropTable);
        }
        ObjectType::ObjectSchema => {
            f.kind = StatementKind::DropSchema;
            f.detail = names.first().cloned();
            f.lock = LockMode::AccessExclusive;
            if !d.missing_ok {
                for n in &names {
                    check_schema(f, n, catalog, state);
                }
            }
        }
        ObjectType::ObjectType | ObjectType::ObjectDomain => {
            f.kind = StatementKind::from_name(&format!("drop {}", object_word(what)));
            f.detail = names.first().cloned();
            f.lock = LockMode::NotPredicted;
            if !d.missing_ok {
                for n in &names {
                    check_type(f, n.rsplit('.').next().unwrap_or(n), catalog, state);
                }
            }
        }
        ObjectType::ObjectIndex => {
            f.kind = StatementKind::DropIndex;
            f.detail = names.first().cloned();
            f.lock = if d.concurrent {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
        }
        ObjectType::ObjectView | ObjectType::ObjectMatview => {
            f.kind = if what == ObjectType::ObjectView {
                StatementKind::DropView
            } else {
                StatementKind::DropMaterializedView
            };
            f.tables = names;
            f.lock = LockMode::AccessExclusive;
        }
        ObjectType::ObjectTrigger => {
            // `DROP TRIGGER t ON table`: the last name is the trigger, the rest its table.
            f.kind = StatementKind::DropTrigger;
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
        other => f.kind = StatementKind::from_name(&format!("drop {}", object_word(other))),
    }
}

/// `CREATE TYPE` (enum, composite), `CREATE DOMAIN`, `CREATE SCHEMA`: no table is locked; the
/// name is known to the statements after it.
pub(super) fn create_type_or_schema(
    f: &mut StatementFacts,
    stmt: &pg_query::NodeEnum,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    use pg_query::NodeEnum as N;
    f.lock = LockMode::NotPredicted;
    match stmt {
        N::CreateEnumStmt(e) => {
            f.kind = StatementKind::CreateType;
            state.created_types.insert(last_name(&e.type_name));
        }
        N::CreateDomainStmt(d) => {
            f.kind = StatementKind::CreateDomain;
            if let Some(t) = d.type_name.as_ref() {
                check_type(f, &catalog_name(t), catalog, state);
            }
            state.created_types.insert(last_name(&d.domainname));
        }
        N::CompositeTypeStmt(c) => {
            f.kind = StatementKind::CreateType;
            if let Some(r) = c.typevar.as_ref() {
                state.created_types.insert(r.relname.clone());
            }
        }
        N::CreateSchemaStmt(s) => {
            f.kind = StatementKind::CreateSchema;
            state.created_schemas.insert(s.schemaname.clone());
        }
        _ => {}
    }
}

/// `CREATE TRIGGER`: SHARE ROW EXCLUSIVE on its table.
pub(super) fn create_trigger(f: &mut StatementFacts, t: &CreateTrigStmt) {
    f.kind = StatementKind::CreateTrigger;
    f.tables.extend(t.relation.as_ref().map(rel_name));
    f.lock = LockMode::ShareRowExclusive;
}

/// `CREATE VIEW`.
/// `CREATE TABLE … AS` (a new table, nobody else sees it yet) and `CREATE MATERIALIZED VIEW`.
pub(super) fn create_table_as(
    f: &mut StatementFacts,
    c: &pg_query::protobuf::CreateTableAsStmt,
    state: &mut PlanState,
) {
    let name = c
        .into
        .as_ref()
        .and_then(|i| i.rel.as_ref())
        .map(rel_name)
        .unwrap_or_default();
    if ObjectType::try_from(c.objtype) == Ok(ObjectType::ObjectMatview) {
        f.kind = StatementKind::CreateMaterializedView;
        f.detail = Some(name);
        f.lock = LockMode::AccessShare;
        return;
    }
    f.kind = StatementKind::CreateTableAs;
    f.tables.push(name.clone());
    state.created.insert(name);
    f.lock = LockMode::NewTable;
}

pub(super) fn create_view(f: &mut StatementFacts, v: &ViewStmt) {
    f.kind = StatementKind::CreateView;
    f.detail = v.view.as_ref().map(rel_name);
    f.lock = LockMode::AccessShare;
}
