//! `ALTER TABLE` subcommands and `ADD COLUMN`: the lock each takes, and whether it rewrites or
//! scans the table.

use super::*;
use pg_query::protobuf::{AlterTableStmt, RenameStmt};

pub(super) fn column_type(catalog: &Catalog, table: &str, column: &str) -> Option<PgType> {
    catalog
        .tables
        .get(table)?
        .columns
        .iter()
        .find(|c| c.name == column)
        .map(|c| PgType::from_formatted(&c.ty))
}

/// `ALTER TABLE t cmd, cmd, ...`: the statement takes the strongest lock of its commands.
pub(super) fn alter_table(
    f: &mut StatementFacts,
    a: &AlterTableStmt,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    let table = a.relation.as_ref().map(rel_name).unwrap_or_default();
    if ObjectType::try_from(a.objtype) == Ok(ObjectType::ObjectIndex) {
        return alter_index(f, a);
    }
    f.kind = StatementKind::AlterTable;
    f.tables.push(table.clone());
    let mut lock = LockMode::ShareUpdateExclusive;
    let cmds: Vec<&AlterTableCmd> = a
        .cmds
        .iter()
        .filter_map(|c| match c.node.as_ref()? {
            NodeEnum::AlterTableCmd(cmd) => Some(cmd.as_ref()),
            _ => None,
        })
        .collect();
    for cmd in &cmds {
        lock = lock.max(alter_cmd(f, &table, cmd, catalog, state));
    }
    f.lock = lock;
    // A command on a partitioned table recurses to its partitions, each locked as the parent
    // is (ATTACH and DETACH name their one partition themselves; ONLY stays on the parent).
    let partitioning = cmds.iter().any(|c| {
        matches!(
            AlterTableType::try_from(c.subtype),
            Ok(AlterTableType::AtAttachPartition | AlterTableType::AtDetachPartition)
        )
    });
    let only = a.relation.as_ref().is_some_and(|r| !r.inh);
    if !partitioning
        && !only
        && let Some(parts) = catalog.partitions.get(&table)
    {
        for p in parts {
            if !f.tables.contains(p) {
                f.tables.push(p.clone());
            }
        }
    }
}

/// `ALTER INDEX`: no table is named (the index is; an attached partition's index too, which
/// may be built earlier in the plan). Attaching a partition's index to a partitioned one is a
/// catalog change; the dry-run measures what it locks.
fn alter_index(f: &mut StatementFacts, a: &AlterTableStmt) {
    let attach = a.cmds.iter().any(|c| {
        matches!(c.node.as_ref(), Some(NodeEnum::AlterTableCmd(cmd))
            if AlterTableType::try_from(cmd.subtype) == Ok(AlterTableType::AtAttachPartition))
    });
    f.kind = if attach {
        StatementKind::AlterIndexAttachPartition
    } else {
        StatementKind::AlterIndex
    };
    f.lock = LockMode::ShareUpdateExclusive;
}

/// `ALTER TABLE ... RENAME [COLUMN]`: ACCESS EXCLUSIVE, and running code that names the old name
/// breaks.
pub(super) fn rename(f: &mut StatementFacts, r: &RenameStmt) {
    let what = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
    f.lock = LockMode::AccessExclusive;
    // A table's (or a view's, an index's) rename names its relation; a type's, a function's, a
    // schema's names none.
    let Some(table) = r.relation.as_ref().map(rel_name) else {
        f.kind = StatementKind::from_name(&format!("alter {} rename", object_word(what)));
        f.detail = Some(r.newname.clone());
        f.lock = LockMode::NotPredicted;
        return;
    };
    match what {
        ObjectType::ObjectColumn => {
            f.tables.push(table);
            f.kind = StatementKind::RenameColumn;
            f.detail = Some(r.subname.clone());
            f.actions.push(Action::RenameColumn {
                column: r.subname.clone(),
                to: r.newname.clone(),
            });
        }
        ObjectType::ObjectTable => {
            f.tables.push(table);
            f.kind = StatementKind::RenameTable;
            f.actions.push(Action::RenameTable {
                to: r.newname.clone(),
            });
        }
        other => {
            f.kind = StatementKind::from_name(&format!("alter {} rename", object_word(other)));
            f.detail = Some(table);
        }
    }
}

pub(super) fn alter_cmd(
    f: &mut StatementFacts,
    table: &str,
    cmd: &AlterTableCmd,
    catalog: &Catalog,
    state: &mut PlanState,
) -> LockMode {
    let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
    match subtype {
        AlterTableType::AtAddColumn => {
            f.kind = StatementKind::AddColumn;
            if let Some(NodeEnum::ColumnDef(c)) = def {
                add_column(f, c, catalog, state);
                remember_column(f, table, c, state);
            }
            LockMode::AccessExclusive
        }
        AlterTableType::AtDropColumn => {
            f.kind = StatementKind::DropColumn;
            f.detail = Some(cmd.name.clone());
            f.actions.push(Action::DropColumn {
                column: cmd.name.clone(),
            });
            LockMode::AccessExclusive
        }
        AlterTableType::AtAlterColumnType => {
            f.kind = StatementKind::AlterColumnType;
            f.detail = Some(cmd.name.clone());
            if let Some(NodeEnum::ColumnDef(c)) = def {
                change_type(f, table, &cmd.name, c, catalog, state);
            }
            LockMode::AccessExclusive
        }
        AlterTableType::AtSetNotNull => {
            set_not_null(f, table, &cmd.name, catalog, state);
            LockMode::AccessExclusive
        }
        AlterTableType::AtAttachPartition => attach_partition(f, table, def, catalog, state),
        AlterTableType::AtDetachPartition => detach_partition(f, def),
        AlterTableType::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => add_constraint(f, table, c, catalog, state),
            _ => LockMode::AccessExclusive,
        },
        AlterTableType::AtValidateConstraint => validate_constraint(f, table, &cmd.name, state),
        AlterTableType::AtDropConstraint => {
            f.kind = StatementKind::DropConstraint;
            f.detail = Some(cmd.name.clone());
            LockMode::AccessExclusive
        }
        AlterTableType::AtColumnDefault => {
            f.kind = StatementKind::AlterColumnDefault;
            LockMode::AccessExclusive
        }
        AlterTableType::AtDropNotNull => {
            f.kind = StatementKind::DropNotNull;
            state
                .not_null
                .insert(format!("{table}.{}", cmd.name), false);
            LockMode::AccessExclusive
        }
        AlterTableType::AtSetLogged
        | AlterTableType::AtSetUnLogged
        | AlterTableType::AtSetAccessMethod
        | AlterTableType::AtSetTableSpace => set_storage(f, table, subtype, state),
        AlterTableType::AtEnableTrig
        | AlterTableType::AtEnableAlwaysTrig
        | AlterTableType::AtEnableReplicaTrig
        | AlterTableType::AtEnableTrigAll
        | AlterTableType::AtEnableTrigUser => {
            f.kind = StatementKind::EnableTrigger;
            LockMode::ShareRowExclusive
        }
        AlterTableType::AtDisableTrig
        | AlterTableType::AtDisableTrigAll
        | AlterTableType::AtDisableTrigUser => {
            f.kind = StatementKind::DisableTrigger;
            LockMode::ShareRowExclusive
        }
        AlterTableType::AtSetStatistics
        | AlterTableType::AtSetOptions
        | AlterTableType::AtResetOptions
        | AlterTableType::AtClusterOn => {
            f.kind = StatementKind::SetOptions;
            LockMode::ShareUpdateExclusive
        }
        AlterTableType::AtSetRelOptions | AlterTableType::AtResetRelOptions => {
            f.kind = StatementKind::SetStorageParameters;
            reloptions_lock(def)
        }
        _ => {
            f.kind = StatementKind::AlterTableOther(action_words(subtype));
            LockMode::AccessExclusive
        }
    }
}

/// An `ALTER TABLE` action no rule singles out, in PostgreSQL's words (`owner to`).
fn action_words(subtype: AlterTableType) -> String {
    let name = format!("{subtype:?}");
    match name.strip_prefix("At").unwrap_or(&name) {
        "ChangeOwner" => "owner to".to_string(),
        other => super::postgres_words(other),
    }
}

/// What a column added tells the statements after it: its type, and what it references.
fn remember_column(f: &mut StatementFacts, table: &str, c: &ColumnDef, state: &mut PlanState) {
    if let Some(t) = c.type_name.as_ref() {
        state
            .column_types
            .insert(format!("{table}.{}", c.colname), PgType::from_type_name(t));
    }
    for n in &c.constraints {
        if let Some(NodeEnum::Constraint(k)) = n.node.as_ref() {
            references(f, table, k);
        }
    }
}

/// `VALIDATE CONSTRAINT`: scans, but under SHARE UPDATE EXCLUSIVE (reads and writes continue —
/// unless an earlier statement of the same transaction holds a stronger lock: lock-held-long).
/// A constraint already validated earlier in the plan is not read again.
fn validate_constraint(
    f: &mut StatementFacts,
    table: &str,
    name: &str,
    state: &mut PlanState,
) -> LockMode {
    f.kind = StatementKind::ValidateConstraint;
    f.detail = Some(name.to_string());
    if let Some(key) = state.pending_not_null.remove(name) {
        state.proven_not_null.insert(key);
    }
    if let Some(columns) = state.unvalidated_checks.remove(name) {
        state.checked_columns.extend(columns);
    }
    f.scans = state.validated.insert(format!("{table}.{name}"));
    LockMode::ShareUpdateExclusive
}

/// `SET LOGGED`/`UNLOGGED`, `SET ACCESS METHOD`, `SET TABLESPACE`: a rewrite, unless the
/// persistence asked is already the table's (earlier in this plan), when PostgreSQL does nothing.
fn set_storage(
    f: &mut StatementFacts,
    table: &str,
    subtype: AlterTableType,
    state: &mut PlanState,
) -> LockMode {
    f.kind = StatementKind::SetStorage;
    let why = match subtype {
        AlterTableType::AtSetLogged | AlterTableType::AtSetUnLogged => {
            let unlogged = subtype == AlterTableType::AtSetUnLogged;
            if state.persistence.insert(table.to_string(), unlogged) == Some(unlogged) {
                return LockMode::AccessExclusive;
            }
            "changing between LOGGED and UNLOGGED rewrites the table"
        }
        _ => "changing persistence, access method or tablespace rewrites the table",
    };
    f.rewrites = true;
    f.scans = true;
    f.actions.push(Action::Rewrite { why: why.into() });
    LockMode::AccessExclusive
}

/// `ALTER COLUMN ... TYPE`: a rewrite (and a scan) unless the new type is binary-coercible
/// and there is no `USING`.
fn change_type(
    f: &mut StatementFacts,
    table: &str,
    column: &str,
    c: &ColumnDef,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    if let Some(t) = c.type_name.as_ref() {
        check_type(f, &catalog_name(t), catalog, state);
    }
    let to = c.type_name.as_ref().map(PgType::from_type_name);
    let key = format!("{table}.{column}");
    let from = state
        .column_types
        .get(&key)
        .cloned()
        .or_else(|| column_type(catalog, table, column));
    if let Some(to) = &to {
        state.column_types.insert(key, to.clone());
    }
    let (coercible, narrowing) = match (&from, &to) {
        (Some(from), Some(to)) => type_change(from, to),
        _ => (false, false),
    };
    let using = c.raw_default.is_some();
    let rewrite = !coercible || using;
    if rewrite && !state.created.contains(table) {
        f.rewrites = true;
        f.scans = true;
    }
    // The CHECK constraints on the column are validated again against every row, even when the
    // table is not rewritten.
    let checked = checks_on_column(catalog, table, column)
        || state.checked_columns.contains(&format!("{table}.{column}"));
    if checked && !state.created.contains(table) {
        f.scans = true;
    }
    f.actions.push(Action::ChangeType {
        column: column.to_string(),
        from: from.map(|t| t.base),
        to: to.map(|t| t.base).unwrap_or_default(),
        rewrite,
        narrowing,
    });
}

/// Whether a validated CHECK constraint of `table` (per the catalog) names `column`: a type
/// change validates it again (a NOT VALID one stays unvalidated).
fn checks_on_column(catalog: &Catalog, table: &str, column: &str) -> bool {
    let Some(t) = catalog.tables.get(table) else {
        return false;
    };
    t.constraints
        .iter()
        .filter(|c| !c.ends_with("(NOT VALID)"))
        .any(|c| {
            c.split_once(": CHECK ").is_some_and(|(_, expr)| {
                expr.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .any(|word| word.eq_ignore_ascii_case(column))
            })
        })
}

/// The columns of index `name` on `table`, read from its definition in the catalog.
fn index_columns(catalog: &Catalog, table: &str, name: &str) -> Vec<String> {
    let Some(def) = catalog.tables.get(table).and_then(|t| {
        t.indexes
            .iter()
            .find(|d| d.contains(&format!(" INDEX {name} ON ")))
    }) else {
        return vec![];
    };
    let Ok(parsed) = pg_query::parse(def, 0) else {
        return vec![];
    };
    match super::first_statement(&parsed) {
        Some(NodeEnum::IndexStmt(i)) => i
            .index_params
            .iter()
            .filter_map(|p| match p.node.as_ref()? {
                NodeEnum::IndexElem(e) if !e.name.is_empty() => Some(e.name.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// `SET (option = ...)`: the storage parameters PostgreSQL changes under SHARE UPDATE EXCLUSIVE
/// (fill factor, autovacuum and statistics settings, TOAST's target); any other one takes
/// ACCESS EXCLUSIVE.
fn reloptions_lock(def: Option<&NodeEnum>) -> LockMode {
    const LIGHT: &[&str] = &[
        "fillfactor",
        "toast_tuple_target",
        "parallel_workers",
        "vacuum_index_cleanup",
        "vacuum_truncate",
        "log_autovacuum_min_duration",
    ];
    let names: Vec<&str> = match def {
        Some(NodeEnum::List(l)) => l
            .items
            .iter()
            .filter_map(|n| match n.node.as_ref()? {
                NodeEnum::DefElem(d) => Some(d.defname.as_str()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let light = |n: &&str| LIGHT.contains(n) || n.starts_with("autovacuum_");
    if !names.is_empty() && names.iter().all(light) {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::AccessExclusive
    }
}

/// `ATTACH PARTITION p`: SHARE UPDATE EXCLUSIVE on the parent, ACCESS EXCLUSIVE on the partition,
/// which is scanned to prove it fits the bound unless a validated CHECK constraint of its own
/// proves it (PostgreSQL then skips the scan). The partition comes first: it is what is locked
/// and read.
fn attach_partition(
    f: &mut StatementFacts,
    parent: &str,
    def: Option<&NodeEnum>,
    catalog: &Catalog,
    state: &PlanState,
) -> LockMode {
    f.kind = StatementKind::AttachPartition;
    let Some(NodeEnum::PartitionCmd(p)) = def else {
        return LockMode::AccessExclusive;
    };
    let partition = p.name.as_ref().map(rel_name).unwrap_or_default();
    // A validated CHECK other than a NOT NULL test: PostgreSQL proves the bound from such
    // constraints; when it cannot, the dry-run measures the scan and says so.
    let proven = catalog.tables.get(&partition).is_some_and(|t| {
        t.constraints.iter().any(|c| {
            c.contains(": CHECK") && !c.ends_with("(NOT VALID)") && !c.contains("IS NOT NULL)")
        })
    });
    f.scans = !proven;
    // The parent's indexes are built on the partition as it is attached, unless it has its own.
    let parent_indexed = state.indexed.contains(parent)
        || catalog
            .tables
            .get(parent)
            .is_some_and(|t| !t.indexes.is_empty());
    let own = catalog
        .tables
        .get(&partition)
        .is_some_and(|t| !t.indexes.is_empty());
    if parent_indexed && !own {
        f.scans = true;
        f.actions.push(Action::BuildIndex { concurrent: false });
    }
    f.detail = Some(partition.clone());
    f.tables.insert(0, partition);
    f.locks_on
        .insert(parent.to_string(), LockMode::ShareUpdateExclusive);
    f.actions.push(Action::AttachPartition { proven });
    LockMode::AccessExclusive
}

/// `DETACH PARTITION p [CONCURRENTLY]`: ACCESS EXCLUSIVE on the parent and the partition;
/// CONCURRENTLY takes SHARE UPDATE EXCLUSIVE instead and cannot run in a transaction.
fn detach_partition(f: &mut StatementFacts, def: Option<&NodeEnum>) -> LockMode {
    f.kind = StatementKind::DetachPartition;
    let Some(NodeEnum::PartitionCmd(p)) = def else {
        return LockMode::AccessExclusive;
    };
    let partition = p.name.as_ref().map(rel_name).unwrap_or_default();
    f.detail = Some(partition.clone());
    f.tables.push(partition);
    if p.concurrent {
        f.transactional = false;
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::AccessExclusive
    }
}

/// `SET NOT NULL`: scans the table unless a validated CHECK (or this plan's new table) proves
/// it, or the column already is NOT NULL (then it does nothing).
fn set_not_null(
    f: &mut StatementFacts,
    table: &str,
    column: &str,
    catalog: &Catalog,
    state: &mut PlanState,
) {
    f.kind = StatementKind::SetNotNull;
    f.detail = Some(column.to_string());
    let key = format!("{table}.{}", column);
    let already = state
        .not_null
        .get(&key)
        .copied()
        .unwrap_or(catalog.nullable(table, column) == Some(false));
    let proven = state.proven_not_null.contains(&key) || state.created.contains(table) || already;
    state.not_null.insert(key, true);
    if !proven {
        f.scans = true;
    }
    f.actions.push(Action::SetNotNull {
        column: column.to_string(),
        proven,
    });
}

/// `ADD CONSTRAINT`: CHECK and FOREIGN KEY scan unless NOT VALID; PRIMARY KEY, UNIQUE and
/// EXCLUDE build an index unless `USING INDEX`. Returns the lock it takes.
fn add_constraint(
    f: &mut StatementFacts,
    table: &str,
    c: &Constraint,
    catalog: &Catalog,
    state: &mut PlanState,
) -> LockMode {
    let kind = ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined);
    f.kind = StatementKind::AddConstraint;
    f.detail = Some(c.conname.clone());
    let not_valid = c.skip_validation;
    if !not_valid {
        state.validated.insert(format!("{table}.{}", c.conname));
    }
    if kind == ConstrType::ConstrCheck
        && let Some(expr) = c.raw_expr.as_ref()
    {
        let columns: Vec<String> = referenced_columns(expr)
            .into_iter()
            .map(|col| format!("{table}.{col}"))
            .collect();
        if not_valid {
            state.unvalidated_checks.insert(c.conname.clone(), columns);
        } else {
            state.checked_columns.extend(columns);
        }
    }
    match kind {
        ConstrType::ConstrCheck | ConstrType::ConstrForeign => {
            if !not_valid && !state.created.contains(table) {
                f.scans = true;
            }
            if kind == ConstrType::ConstrCheck
                && let Some(col) = not_null_check_column(c)
            {
                let key = format!("{table}.{col}");
                if not_valid {
                    state.pending_not_null.insert(c.conname.clone(), key);
                } else {
                    state.proven_not_null.insert(key);
                }
            }
            references(f, table, c);
            f.actions.push(Action::AddConstraint {
                kind: if kind == ConstrType::ConstrCheck {
                    "check"
                } else {
                    "foreign key"
                }
                .into(),
                not_valid,
            });
            if kind == ConstrType::ConstrForeign {
                LockMode::ShareRowExclusive
            } else {
                LockMode::AccessExclusive
            }
        }
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion => {
            let using_index = !c.indexname.is_empty();
            if !using_index {
                f.scans = true;
                f.actions.push(Action::BuildIndex { concurrent: false });
            } else if kind == ConstrType::ConstrPrimary {
                // A primary key makes its columns NOT NULL: each nullable one is a SET NOT NULL,
                // which reads the table unless a validated CHECK proves it.
                for column in index_columns(catalog, table, &c.indexname) {
                    if catalog.nullable(table, &column) == Some(true) {
                        set_not_null(f, table, &column, catalog, state);
                    }
                }
                f.kind = StatementKind::AddConstraint;
                f.detail = Some(c.conname.clone());
            }
            LockMode::AccessExclusive
        }
        _ => LockMode::AccessExclusive,
    }
}

/// A foreign key's referenced table: named by the statement, under SHARE ROW EXCLUSIVE (what
/// PostgreSQL takes there to add the key's triggers, whatever the statement takes on its own
/// table). A key referencing its own table adds nothing.
pub(super) fn references(f: &mut StatementFacts, table: &str, c: &Constraint) {
    if ConstrType::try_from(c.contype) != Ok(ConstrType::ConstrForeign) {
        return;
    }
    let Some(pk) = c.pktable.as_ref().map(rel_name) else {
        return;
    };
    if pk != table && !f.tables.contains(&pk) {
        f.tables.push(pk.clone());
    }
    if pk != table {
        f.locks_on.insert(pk, LockMode::ShareRowExclusive);
    }
}

fn add_column(f: &mut StatementFacts, c: &ColumnDef, catalog: &Catalog, state: &PlanState) {
    if let Some(t) = c.type_name.as_ref() {
        check_type(f, &catalog_name(t), catalog, state);
    }
    let functions: Vec<String> = c
        .raw_default
        .iter()
        .flat_map(|d| called_functions(d))
        .chain(c.constraints.iter().flat_map(called_functions))
        .collect();
    let constraints: Vec<&Constraint> = c
        .constraints
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::Constraint(c) => Some(c.as_ref()),
            _ => None,
        })
        .collect();
    let kinds: Vec<ConstrType> = constraints
        .iter()
        .map(|c| ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined))
        .collect();
    let volatile: Vec<&String> = functions
        .iter()
        .filter(|func| is_volatile(catalog, func))
        .collect();
    let serial = c.type_name.as_ref().is_some_and(|t| {
        matches!(
            PgType::from_type_name(t).base.as_str(),
            "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
        )
    });
    let why = if kinds.contains(&ConstrType::ConstrGenerated) {
        Some("a stored generated column is computed for every existing row".to_string())
    } else if kinds.contains(&ConstrType::ConstrIdentity) || serial {
        Some("an identity/serial column fills every existing row from a sequence".to_string())
    } else if !volatile.is_empty() {
        Some(format!(
            "the default calls volatile {} and is evaluated for every existing row",
            volatile
                .iter()
                .map(|v| format!("`{v}()`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        None
    };
    if let Some(why) = why {
        // A rewrite reads every row, too.
        f.rewrites = true;
        f.scans = true;
        f.actions.push(Action::Rewrite { why });
    }
    // A NOT NULL column without a default is verified by reading the table (it fails unless the
    // table is empty); with a default PostgreSQL stores it once and reads nothing.
    let has_default = c.raw_default.is_some() || kinds.contains(&ConstrType::ConstrDefault);
    if (kinds.contains(&ConstrType::ConstrNotnull) || c.is_not_null) && !has_default {
        f.scans = true;
    }
    if kinds
        .iter()
        .any(|k| matches!(k, ConstrType::ConstrPrimary | ConstrType::ConstrUnique))
    {
        f.actions.push(Action::BuildIndex { concurrent: false });
    }
    if kinds
        .iter()
        .any(|k| matches!(k, ConstrType::ConstrCheck | ConstrType::ConstrForeign))
    {
        // A CHECK is verified against every row; a foreign key only when the new column has a
        // value (a default): a column of NULLs references nothing, and PostgreSQL reads nothing.
        f.scans |= kinds.contains(&ConstrType::ConstrCheck) || has_default;
        f.actions.push(Action::AddConstraint {
            kind: "inline".into(),
            not_valid: false,
        });
    }
    f.actions.push(Action::AddColumn {
        column: c.colname.clone(),
    });
}
