//! The members of a group rollout: each one's wave and state, read by `status` and the rollout.

use schemars::JsonSchema;
use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store, now};
use crate::plan::MemberState;

/// One member of a rollout, as `status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema, FromRow)]
pub struct MemberRow {
    pub target: String,
    pub wave: i64,
    #[sqlx(try_from = "String")]
    pub state: MemberState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub updated_at: String,
}

impl Store {
    /// Records the rollout's members (target, wave) as pending; members already recorded keep
    /// their state, so a resumed rollout continues where it stopped.
    pub async fn ensure_members(&self, plan_id: &str, members: &[(&str, usize)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        for (position, (target, wave)) in members.iter().enumerate() {
            // language=SQL
            sqlx::query(
                "INSERT INTO members (plan_id, target, position, wave, state, updated_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (plan_id, target) DO NOTHING",
            )
            .bind(plan_id)
            .bind(*target)
            .bind(position as i64)
            .bind(*wave as i64)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The rollout's members in list order (none for a plan on a single target).
    pub async fn members(&self, plan_id: &str) -> Result<Vec<MemberRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT target, wave, state, error, updated_at FROM members WHERE plan_id = $1 ORDER BY position",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
