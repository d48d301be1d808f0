//! What kind of statement the analysis read: one variant per kind a rule singles out, produced
//! by both parsers (pg_query's tree for PostgreSQL, the leading keywords for SQLite), and the
//! words of any other kind kept for the reader. The wire name (`alter table add column`) is what
//! plans, reports and the agreement check have always carried; a stored plan's name reads back
//! as the same variant.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A statement's kind.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(into = "String", from = "String")]
        pub enum StatementKind {
            $($(#[$doc])* $variant,)*
            /// An `ALTER TABLE` action no rule singles out, in PostgreSQL's words (`owner to`).
            AlterTableOther(String),
            /// Any other statement, in PostgreSQL's words (`create sequence`, `set`).
            Other(String),
        }

        impl StatementKind {
            /// The kind a wire name stands for.
            pub fn from_name(name: &str) -> StatementKind {
                match name {
                    $($name => StatementKind::$variant,)*
                    other => match other.strip_prefix("alter table ") {
                        Some(action) => StatementKind::AlterTableOther(action.to_string()),
                        None => StatementKind::Other(other.to_string()),
                    },
                }
            }
        }

        impl fmt::Display for StatementKind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(StatementKind::$variant => f.write_str($name),)*
                    StatementKind::AlterTableOther(action) => write!(f, "alter table {action}"),
                    StatementKind::Other(words) => f.write_str(words),
                }
            }
        }

        #[cfg(test)]
        const ALL: &[StatementKind] = &[$(StatementKind::$variant,)*];
    };
}

kinds! {
    Select => "select",
    Insert => "insert",
    Update => "update",
    Delete => "delete",
    Truncate => "truncate",
    /// A step's batched `backfill`.
    Backfill => "backfill",
    CreateTable => "create table",
    CreateTableAs => "create table as",
    CreateView => "create view",
    CreateMaterializedView => "create materialized view",
    CreateIndex => "create index",
    CreateUniqueIndex => "create unique index",
    /// `CREATE INDEX … ON ONLY` a partitioned table: the parent's index alone, built by none.
    CreateParentOnlyIndex => "create parent-only index",
    CreateFunction => "create function",
    CreateProcedure => "create procedure",
    CreateTrigger => "create trigger",
    CreateType => "create type",
    CreateDomain => "create domain",
    CreateSchema => "create schema",
    DropTable => "drop table",
    DropView => "drop view",
    DropMaterializedView => "drop materialized view",
    DropIndex => "drop index",
    DropTrigger => "drop trigger",
    DropSchema => "drop schema",
    /// `ALTER TABLE` with several actions, or none the analysis names alone.
    AlterTable => "alter table",
    AddColumn => "alter table add column",
    DropColumn => "alter table drop column",
    /// SQLite's `ALTER TABLE … ALTER …` as its keywords read (PostgreSQL's are finer).
    AlterColumn => "alter table alter column",
    AlterColumnType => "alter table alter column type",
    AlterColumnDefault => "alter table alter column default",
    SetNotNull => "alter table set not null",
    DropNotNull => "alter table drop not null",
    AddConstraint => "alter table add constraint",
    ValidateConstraint => "alter table validate constraint",
    DropConstraint => "alter table drop constraint",
    SetStorage => "alter table set storage",
    EnableTrigger => "alter table enable trigger",
    DisableTrigger => "alter table disable trigger",
    SetOptions => "alter table set options",
    SetStorageParameters => "alter table set storage parameters",
    AttachPartition => "alter table attach partition",
    DetachPartition => "alter table detach partition",
    RenameColumn => "alter table rename column",
    RenameTable => "alter table rename",
    AlterIndex => "alter index",
    AlterIndexAttachPartition => "alter index attach partition",
    RefreshMaterializedView => "refresh materialized view",
    AlterDomain => "alter domain",
    AlterDomainAddConstraint => "alter domain add constraint",
    AlterTypeAddValue => "alter type add value",
    AlterTypeRenameValue => "alter type rename value",
    Reindex => "reindex",
    Vacuum => "vacuum",
    VacuumFull => "vacuum full",
    Analyze => "analyze",
    Cluster => "cluster",
    DoBlock => "do block",
    /// `CREATE DATABASE`, `ALTER SYSTEM` and their like: not a plan's business.
    DatabaseLevel => "database-level",
}

impl StatementKind {
    /// Any `ALTER TABLE`.
    pub fn is_alter_table(&self) -> bool {
        use StatementKind::*;
        matches!(
            self,
            AlterTable
                | AddColumn
                | DropColumn
                | AlterColumn
                | AlterColumnType
                | AlterColumnDefault
                | SetNotNull
                | DropNotNull
                | AddConstraint
                | ValidateConstraint
                | DropConstraint
                | SetStorage
                | EnableTrigger
                | DisableTrigger
                | SetOptions
                | SetStorageParameters
                | AttachPartition
                | DetachPartition
                | RenameColumn
                | RenameTable
                | AlterTableOther(_)
        )
    }

    /// A `CREATE TABLE`, of columns or `AS` a query.
    pub fn creates_table(&self) -> bool {
        matches!(
            self,
            StatementKind::CreateTable | StatementKind::CreateTableAs
        )
    }

    /// An index built over a table's rows (a parent-only index builds none).
    pub fn builds_index(&self) -> bool {
        matches!(
            self,
            StatementKind::CreateIndex | StatementKind::CreateUniqueIndex
        )
    }

    /// A view or materialized view dropped.
    pub fn drops_view(&self) -> bool {
        matches!(
            self,
            StatementKind::DropView | StatementKind::DropMaterializedView
        )
    }

    /// A view or materialized view created.
    pub fn creates_view(&self) -> bool {
        matches!(
            self,
            StatementKind::CreateView | StatementKind::CreateMaterializedView
        )
    }

    /// Rows written by a statement of their own: `INSERT`, `UPDATE`, `DELETE`.
    pub fn writes_rows(&self) -> bool {
        matches!(
            self,
            StatementKind::Insert | StatementKind::Update | StatementKind::Delete
        )
    }
}

impl From<String> for StatementKind {
    fn from(name: String) -> StatementKind {
        StatementKind::from_name(&name)
    }
}

impl From<StatementKind> for String {
    fn from(kind: StatementKind) -> String {
        kind.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_wire_name() {
        for kind in ALL {
            assert_eq!(&StatementKind::from_name(&kind.to_string()), kind);
        }
        let owner = StatementKind::from_name("alter table owner to");
        assert_eq!(owner, StatementKind::AlterTableOther("owner to".into()));
        assert!(owner.is_alter_table());
        assert_eq!(owner.to_string(), "alter table owner to");
        let seq = StatementKind::from_name("create sequence");
        assert_eq!(seq, StatementKind::Other("create sequence".into()));
        assert_eq!(
            serde_json::to_value(&StatementKind::AddColumn).unwrap(),
            "alter table add column"
        );
        assert_eq!(
            serde_json::from_value::<StatementKind>("drop table".into()).unwrap(),
            StatementKind::DropTable
        );
    }
}
