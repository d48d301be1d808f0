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
    f.kind = "alter table".into();
    f.tables.push(table.clone());
    let mut lock = LockMode::ShareUpdateExclusive;
    for cmd in a.cmds.iter().filter_map(|c| match c.node.as_ref()? {
        NodeEnum::AlterTableCmd(cmd) => Some(cmd),
        _ => None,
    }) {
        lock = lock.max(alter_cmd(f, &table, cmd, catalog, state));
    }
    f.lock = lock;
}

/// `ALTER TABLE ... RENAME [COLUMN]`: ACCESS EXCLUSIVE, and running code that names the old name
/// breaks.
pub(super) fn rename(f: &mut StatementFacts, r: &RenameStmt) {
    let table = r.relation.as_ref().map(rel_name).unwrap_or_default();
    let what = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
    f.lock = LockMode::AccessExclusive;
    f.tables.push(table);
    match what {
        ObjectType::ObjectColumn => {
            f.kind = "alter table rename column".into();
            f.detail = Some(r.subname.clone());
            f.actions.push(Action::RenameColumn {
                column: r.subname.clone(),
            });
        }
        ObjectType::ObjectTable => {
            f.kind = "alter table rename".into();
            f.actions.push(Action::RenameTable);
        }
        other => f.kind = format!("rename {}", object_word(other)),
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
            f.kind = "alter table add column".into();
            if let Some(NodeEnum::ColumnDef(c)) = def {
                add_column(f, c, catalog);
            }
            LockMode::AccessExclusive
        }
        AlterTableType::AtDropColumn => {
            f.kind = "alter table drop column".into();
            f.detail = Some(cmd.name.clone());
            f.actions.push(Action::DropColumn {
                column: cmd.name.clone(),
            });
            LockMode::AccessExclusive
        }
        AlterTableType::AtAlterColumnType => {
            f.kind = "alter table alter column type".into();
            f.detail = Some(cmd.name.clone());
            if let Some(NodeEnum::ColumnDef(c)) = def {
                change_type(f, table, &cmd.name, c, catalog, state);
            }
            LockMode::AccessExclusive
        }
        AlterTableType::AtSetNotNull => {
            set_not_null(f, table, &cmd.name, state);
            LockMode::AccessExclusive
        }
        AlterTableType::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => add_constraint(f, table, c, state),
            _ => LockMode::AccessExclusive,
        },
        AlterTableType::AtValidateConstraint => {
            f.kind = "alter table validate constraint".into();
            f.detail = Some(cmd.name.clone());
            if let Some(key) = state.pending_not_null.remove(&cmd.name) {
                state.proven_not_null.insert(key);
            }
            // Scans, but under SHARE UPDATE EXCLUSIVE: reads and writes continue — unless an
            // earlier statement of the same transaction holds a stronger lock (lock-held-long).
            f.scans = true;
            LockMode::ShareUpdateExclusive
        }
        AlterTableType::AtDropConstraint => {
            f.kind = "alter table drop constraint".into();
            f.detail = Some(cmd.name.clone());
            LockMode::AccessExclusive
        }
        AlterTableType::AtColumnDefault => {
            f.kind = "alter table alter column default".into();
            LockMode::AccessExclusive
        }
        AlterTableType::AtDropNotNull => {
            f.kind = "alter table drop not null".into();
            LockMode::AccessExclusive
        }
        AlterTableType::AtSetLogged
        | AlterTableType::AtSetUnLogged
        | AlterTableType::AtSetAccessMethod
        | AlterTableType::AtSetTableSpace => {
            f.kind = "alter table set storage".into();
            f.rewrites = true;
            f.actions.push(Action::Rewrite {
                why: "changing persistence, access method or tablespace rewrites the table".into(),
            });
            LockMode::AccessExclusive
        }
        AlterTableType::AtSetStatistics
        | AlterTableType::AtSetOptions
        | AlterTableType::AtResetOptions
        | AlterTableType::AtClusterOn => {
            f.kind = "alter table set options".into();
            LockMode::ShareUpdateExclusive
        }
        _ => {
            f.kind = format!(
                "alter table {}",
                format!("{subtype:?}")
                    .trim_start_matches("At")
                    .to_lowercase()
            );
            LockMode::AccessExclusive
        }
    }
}

/// `ALTER COLUMN ... TYPE`: a rewrite (and a scan) unless the new type is binary-coercible
/// and there is no `USING`.
fn change_type(
    f: &mut StatementFacts,
    table: &str,
    column: &str,
    c: &ColumnDef,
    catalog: &Catalog,
    state: &PlanState,
) {
    let to = c.type_name.as_ref().map(PgType::from_type_name);
    let from = column_type(catalog, table, column);
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
    f.actions.push(Action::ChangeType {
        column: column.to_string(),
        from: from.map(|t| t.base),
        to: to.map(|t| t.base).unwrap_or_default(),
        rewrite,
        narrowing,
    });
}

/// `SET NOT NULL`: scans the table unless a validated CHECK (or this plan's new table) proves it.
fn set_not_null(f: &mut StatementFacts, table: &str, column: &str, state: &PlanState) {
    f.kind = "alter table set not null".into();
    f.detail = Some(column.to_string());
    let key = format!("{table}.{}", column);
    let proven = state.proven_not_null.contains(&key) || state.created.contains(table);
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
    state: &mut PlanState,
) -> LockMode {
    let kind = ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined);
    f.kind = "alter table add constraint".into();
    f.detail = Some(c.conname.clone());
    let not_valid = c.skip_validation;
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
            if kind == ConstrType::ConstrForeign
                && let Some(pk) = c.pktable.as_ref()
            {
                f.tables.push(rel_name(pk));
            }
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
            }
            LockMode::AccessExclusive
        }
        _ => LockMode::AccessExclusive,
    }
}

fn add_column(f: &mut StatementFacts, c: &ColumnDef, catalog: &Catalog) {
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
        f.rewrites = true;
        f.actions.push(Action::Rewrite { why });
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
        f.scans = true;
        f.actions.push(Action::AddConstraint {
            kind: "inline".into(),
            not_valid: false,
        });
    }
    f.actions.push(Action::AddColumn {
        column: c.colname.clone(),
    });
}
