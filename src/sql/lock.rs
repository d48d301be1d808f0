//! Lock modes, one list for the analysis (what a statement is expected to take), the dry-run
//! (what PostgreSQL's `pg_locks` shows it took) and the comparison between the two.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A lock a statement takes, named as PostgreSQL's documentation names table lock modes (in
/// strength order), plus what a SQLite statement takes on its database file and the two cases
/// where the analysis does not name a mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum LockMode {
    /// A table created by the statement itself: nobody else can see it yet.
    #[serde(rename = "none (new table)")]
    NewTable,
    #[serde(rename = "ACCESS SHARE")]
    AccessShare,
    #[serde(rename = "ROW SHARE")]
    RowShare,
    #[serde(rename = "ROW EXCLUSIVE")]
    RowExclusive,
    #[serde(rename = "SHARE UPDATE EXCLUSIVE")]
    ShareUpdateExclusive,
    #[serde(rename = "SHARE")]
    Share,
    #[serde(rename = "SHARE ROW EXCLUSIVE")]
    ShareRowExclusive,
    #[serde(rename = "EXCLUSIVE")]
    Exclusive,
    #[serde(rename = "ACCESS EXCLUSIVE")]
    AccessExclusive,
    /// SQLite: a reader's lock on the database file.
    #[serde(rename = "SHARED")]
    DatabaseRead,
    /// SQLite: the one writer's lock on the database file (other writers wait).
    #[serde(rename = "database write lock (RESERVED)")]
    DatabaseWrite,
    /// A statement the analysis does not model (a DO block, an unknown command).
    #[serde(rename = "not predicted (see the dry-run's measurement)")]
    NotPredicted,
}

impl LockMode {
    /// PostgreSQL's table lock modes, weakest first.
    pub const TABLE_MODES: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The name on the wire and in messages.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::NewTable => "none (new table)",
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
            LockMode::DatabaseRead => "SHARED",
            LockMode::DatabaseWrite => "database write lock (RESERVED)",
            LockMode::NotPredicted => "not predicted (see the dry-run's measurement)",
        }
    }

    /// Whether it is one of PostgreSQL's table lock modes (the ones strength compares).
    pub fn is_table_mode(self) -> bool {
        Self::TABLE_MODES.contains(&self)
    }

    /// Whether the mode blocks INSERT/UPDATE/DELETE on the table (conflicts with ROW EXCLUSIVE).
    pub fn blocks_writes(self) -> bool {
        matches!(
            self,
            LockMode::Share
                | LockMode::ShareRowExclusive
                | LockMode::Exclusive
                | LockMode::AccessExclusive
        )
    }

    /// Reads `pg_locks.mode` (`AccessExclusiveLock`); `None` for modes that are not table locks.
    pub fn from_pg_locks(mode: &str) -> Option<LockMode> {
        Some(match mode {
            "AccessShareLock" => LockMode::AccessShare,
            "RowShareLock" => LockMode::RowShare,
            "RowExclusiveLock" => LockMode::RowExclusive,
            "ShareUpdateExclusiveLock" => LockMode::ShareUpdateExclusive,
            "ShareLock" => LockMode::Share,
            "ShareRowExclusiveLock" => LockMode::ShareRowExclusive,
            "ExclusiveLock" => LockMode::Exclusive,
            "AccessExclusiveLock" => LockMode::AccessExclusive,
            _ => return None,
        })
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_order_by_strength() {
        for m in LockMode::TABLE_MODES {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<LockMode>(&json).unwrap(), m);
        }
        assert!(LockMode::TABLE_MODES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            LockMode::from_pg_locks("ShareUpdateExclusiveLock"),
            Some(LockMode::ShareUpdateExclusive)
        );
        assert!(LockMode::Share.blocks_writes());
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
        assert!(!LockMode::DatabaseWrite.is_table_mode());
    }
}
