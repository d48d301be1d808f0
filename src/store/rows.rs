//! What the store reads back: its rows as typed values (flags, kinds and JSON evidence decoded).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::StoreError;
use crate::plan::evidence::{BackupEvidence, RunDetail};
use crate::plan::{Decision, RunKind, Status, StepState};

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct StepRow {
    pub idx: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub state: StepState,
    pub applied_at: Option<String>,
    pub released_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RunRow {
    pub id: i64,
    pub kind: RunKind,
    pub target: String,
    pub checksum: String,
    pub ok: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: f64,
    pub detail: RunDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct ApprovalRow {
    pub by: String,
    pub checksum: String,
    #[sqlx(try_from = "String")]
    pub decision: Decision,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct BackupRow {
    pub target: String,
    pub plan_id: Option<String>,
    pub verified: bool,
    pub detail: BackupEvidence,
    pub taken_at: String,
}

/// Decodes a stored JSON column.
fn json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
    what: &'static str,
) -> sqlx::Result<T> {
    serde_json::from_str(row.try_get::<&str, _>(col)?).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(StoreError::Decode {
            what,
            cause: e.to_string(),
        }),
    })
}

// Flags are integers in both schemas (SQLite has no boolean): decoded by hand.
impl FromRow<'_, AnyRow> for RunRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<RunRow> {
        Ok(RunRow {
            id: row.try_get("id")?,
            kind: RunKind::try_from(row.try_get::<String, _>("kind")?).map_err(|e| {
                sqlx::Error::ColumnDecode {
                    index: "kind".into(),
                    source: e.into(),
                }
            })?,
            target: row.try_get("target")?,
            checksum: row.try_get("checksum")?,
            ok: row.try_get::<i64, _>("ok")? != 0,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            duration_ms: row.try_get("duration_ms")?,
            detail: json(row, "detail", "run detail")?,
        })
    }
}

impl FromRow<'_, AnyRow> for BackupRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<BackupRow> {
        Ok(BackupRow {
            target: row.try_get("target")?,
            plan_id: row.try_get("plan_id")?,
            verified: row.try_get::<i64, _>("verified")? != 0,
            detail: json(row, "detail", "backup evidence")?,
            taken_at: row.try_get("taken_at")?,
        })
    }
}

/// A plan in the list: `plans`.
#[derive(Debug, Clone, FromRow)]
pub struct PlanListRow {
    pub id: String,
    pub target: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub goal: String,
    pub author: String,
    pub created_at: String,
    /// The analysis's risk (`low` ... `critical`).
    pub risk: Option<String>,
    /// The newest plan submitted to supersede this one.
    pub superseded_by: Option<String>,
}

/// A plan held by an engineer: its backfills wait between batches until it is resumed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, FromRow)]
pub struct Paused {
    pub by: String,
    pub at: String,
}

/// One row of the audit trail.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub plan_id: Option<String>,
    pub detail: String,
    /// The principal's role, the channel and the OS user, when recorded.
    pub role: Option<String>,
    pub via: Option<String>,
    pub os_user: Option<String>,
}
