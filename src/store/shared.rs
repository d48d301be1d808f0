//! What several servers sharing one store agree on: which server holds a plan (a lease kept
//! alive by heartbeats and taken over once it expires), and the agents' mistakes, counted once
//! across every server.

use std::time::Duration;

use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow};

use super::{Result, Store, now};
use crate::plan::mistake::Mistake;

/// A live lease: the server applying (or rolling back) a plan, for whom, and its latest progress.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Lease {
    pub plan_id: String,
    /// The holding server (`host:pid`).
    pub holder: String,
    /// Who asked it to.
    pub principal: String,
    pub action: String,
    pub acquired_at: String,
    /// Until the lease expires unless its holder heartbeats again.
    pub expires_in_ms: i64,
    /// The holder's latest progress line.
    pub progress: Option<String>,
}

/// A mistake as the shared store keeps it: once per code and lesson, with its count across
/// servers and the first occurrence's agent, tool and plan.
#[derive(Debug, Clone, FromRow)]
pub struct StoredMistake {
    pub key: String,
    pub code: String,
    pub lesson: String,
    pub what: String,
    pub agent: String,
    pub tool: String,
    pub plan_id: Option<String>,
    pub target: Option<String>,
    pub tables: String,
    pub count: i64,
    pub first_at: String,
    pub last_at: String,
}

impl StoredMistake {
    pub fn mistake(&self) -> Mistake {
        Mistake {
            agent: self.agent.clone(),
            tool: self.tool.clone(),
            plan: self.plan_id.clone(),
            target: self.target.clone(),
            code: self.code.clone(),
            what: self.what.clone(),
            lesson: self.lesson.clone(),
            tables: self
                .tables
                .split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Takes the plan's lease for `holder`, or renews it when `holder` has it already, or takes
    /// it from `dead` (a holder known to have exited). When another server holds a live lease,
    /// nothing changes and that lease is returned.
    pub async fn acquire_lease(
        &self,
        plan_id: &str,
        holder: &str,
        principal: &str,
        action: &str,
        ttl: Duration,
        dead: Option<&str>,
    ) -> Result<std::result::Result<(), Lease>> {
        let now_ms = self.backend.now_ms();
        // One statement: the upsert's conflict check and the expiry test are atomic, so of two
        // servers racing for an expired lease exactly one gets it.
        // language=SQL
        let taken: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO leases (plan_id, holder, principal, action, acquired_at, expires_ms)
             VALUES ($1, $2, $3, $4, $5, {now_ms} + $6)
             ON CONFLICT (plan_id) DO UPDATE SET holder = excluded.holder,
                 principal = excluded.principal, action = excluded.action,
                 acquired_at = excluded.acquired_at, expires_ms = excluded.expires_ms, progress = NULL
             WHERE leases.expires_ms < {now_ms} OR leases.holder = excluded.holder OR leases.holder = $7
             RETURNING holder"
        )))
        .bind(plan_id)
        .bind(holder)
        .bind(principal)
        .bind(action)
        .bind(now())
        .bind(millis(ttl))
        .bind(dead)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        match self.lease(plan_id).await? {
            Some(held) => Ok(Err(held)),
            // It expired between the two statements: try once more.
            None => {
                Box::pin(self.acquire_lease(plan_id, holder, principal, action, ttl, dead)).await
            }
        }
    }

    /// Extends `holder`'s lease by `ttl` and records its progress. `false` when the lease is no
    /// longer `holder`'s (it expired and another server took it over).
    pub async fn renew_lease(
        &self,
        plan_id: &str,
        holder: &str,
        ttl: Duration,
        progress: Option<&str>,
    ) -> Result<bool> {
        let now_ms = self.backend.now_ms();
        // language=SQL
        let n = sqlx::query(AssertSqlSafe(format!(
            "UPDATE leases SET expires_ms = {now_ms} + $1, progress = coalesce($2, progress)
             WHERE plan_id = $3 AND holder = $4"
        )))
        .bind(millis(ttl))
        .bind(progress)
        .bind(plan_id)
        .bind(holder)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn release_lease(&self, plan_id: &str, holder: &str) -> Result<()> {
        // language=SQL
        sqlx::query("DELETE FROM leases WHERE plan_id = $1 AND holder = $2")
            .bind(plan_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The plan's lease, while it is live.
    pub async fn lease(&self, plan_id: &str) -> Result<Option<Lease>> {
        let now_ms = self.backend.now_ms();
        // language=SQL
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT plan_id, holder, principal, action, acquired_at, expires_ms - {now_ms} AS expires_in_ms, progress
             FROM leases WHERE plan_id = $1 AND expires_ms >= {now_ms}"
        )))
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Counts `m` under `key` (its code and lesson): a new mistake is stored once, a repeat
    /// bumps the count. Returns the count across every server.
    pub async fn record_mistake(&self, key: &str, m: &Mistake) -> Result<i64> {
        let at = now();
        // language=SQL
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO mistakes (key, code, lesson, what, agent, tool, plan_id, target, tables, count, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)
             ON CONFLICT (key) DO UPDATE SET count = mistakes.count + 1, last_at = excluded.last_at
             RETURNING count",
        )
        .bind(key)
        .bind(&m.code)
        .bind(crate::redact::redact(&m.lesson))
        .bind(crate::redact::redact(&m.what))
        .bind(&m.agent)
        .bind(&m.tool)
        .bind(&m.plan)
        .bind(&m.target)
        .bind(m.tables.join(","))
        .bind(&at)
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    /// Every stored mistake, oldest first.
    pub async fn mistakes(&self) -> Result<Vec<StoredMistake>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT key, code, lesson, what, agent, tool, plan_id, target, tables, count, first_at, last_at
             FROM mistakes ORDER BY first_at, key",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
