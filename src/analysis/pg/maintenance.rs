//! Maintenance commands that rewrite or rebuild: VACUUM, CLUSTER, REINDEX.

use pg_query::NodeEnum;
use pg_query::protobuf::{ClusterStmt, ReindexStmt, VacuumStmt};

use super::rel_name;
use crate::analysis::{Action, StatementFacts, StatementKind};
use crate::sql::LockMode;

/// `VACUUM [FULL]` / `ANALYZE`: FULL rewrites the table under ACCESS EXCLUSIVE.
pub(super) fn vacuum(f: &mut StatementFacts, v: &VacuumStmt) {
    let full = v
        .options
        .iter()
        .any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full"));
    f.kind = if !v.is_vacuumcmd {
        StatementKind::Analyze
    } else if full {
        StatementKind::VacuumFull
    } else {
        StatementKind::Vacuum
    };
    f.tables
        .extend(v.rels.iter().filter_map(|r| match r.node.as_ref()? {
            NodeEnum::VacuumRelation(vr) => vr.relation.as_ref().map(rel_name),
            _ => None,
        }));
    f.transactional = !v.is_vacuumcmd;
    f.lock = if full {
        LockMode::AccessExclusive
    } else {
        LockMode::ShareUpdateExclusive
    };
    if full {
        f.rewrites = true;
        f.scans = true;
        f.actions.push(Action::Rewrite {
            why: "VACUUM FULL rewrites the whole table".into(),
        });
    }
}

/// `CLUSTER`: rewrites the table under ACCESS EXCLUSIVE.
pub(super) fn cluster(f: &mut StatementFacts, c: &ClusterStmt) {
    f.kind = StatementKind::Cluster;
    f.tables.extend(c.relation.as_ref().map(rel_name));
    f.lock = LockMode::AccessExclusive;
    f.rewrites = true;
    f.scans = true;
    f.actions.push(Action::Rewrite {
        why: "CLUSTER rewrites the whole table".into(),
    });
}

/// `REINDEX [CONCURRENTLY]`.
pub(super) fn reindex(f: &mut StatementFacts, r: &ReindexStmt) {
    let concurrent = r.params.iter().any(
        |o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
    );
    f.kind = StatementKind::Reindex;
    f.tables.extend(r.relation.as_ref().map(rel_name));
    f.transactional = !concurrent;
    f.lock = if concurrent {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::Share
    };
    f.actions.push(Action::BuildIndex { concurrent });
}
