//! `[policy]`: the knobs of the safety checklist, their defaults (the spec's) and how the
//! config file's text becomes them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The knobs of the safety checklist. Defaults are the spec's.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Policy {
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub rollback_window: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub dry_run_max_age: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub backup_max_age: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub lock_timeout: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub statement_timeout: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub max_block: Duration,
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub apply_wait: Duration,
    /// How long one check (a validation query) may run; checks run read-only under it.
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub check_timeout: Duration,
    /// Backfill batches pause while a streaming replica's replay lags more than this.
    #[serde(with = "humantime_serde_str")]
    #[schemars(with = "String")]
    pub max_replica_lag: Duration,
    pub large_table_rows: u64,
    pub min_staging_ratio: f64,
    pub snapshot_max_rows: u64,
    pub lock_retries: u32,
    /// Lanes a PostgreSQL backfill walks a large table in, side by side (each its own connection
    /// and key range; one lane per 50,000 rows at most); 1 walks it in one.
    pub backfill_lanes: u32,
}

impl Default for Policy {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Policy {
            rollback_window: Duration::from_secs(7 * 24 * HOUR),
            dry_run_max_age: Duration::from_secs(24 * HOUR),
            backup_max_age: Duration::from_secs(24 * HOUR),
            lock_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(15 * 60),
            max_block: Duration::from_secs(5),
            apply_wait: Duration::from_secs(50),
            check_timeout: Duration::from_secs(10),
            max_replica_lag: Duration::from_secs(10),
            large_table_rows: 100_000,
            min_staging_ratio: 0.1,
            snapshot_max_rows: 1_000_000,
            lock_retries: 5,
            backfill_lanes: 2,
        }
    }
}

mod humantime_serde_str {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    rollback_window: Option<String>,
    dry_run_max_age: Option<String>,
    backup_max_age: Option<String>,
    lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    max_block: Option<String>,
    apply_wait: Option<String>,
    check_timeout: Option<String>,
    max_replica_lag: Option<String>,
    large_table_rows: Option<u64>,
    min_staging_ratio: Option<f64>,
    snapshot_max_rows: Option<u64>,
    lock_retries: Option<u32>,
    backfill_lanes: Option<u32>,
}

impl RawPolicy {
    /// The policy the file says, each knob it leaves out at its default.
    pub(super) fn resolve(&self) -> Result<Policy> {
        let d = Policy::default();
        let p = self;
        Ok(Policy {
            rollback_window: duration("rollback_window", &p.rollback_window, d.rollback_window)?,
            dry_run_max_age: duration("dry_run_max_age", &p.dry_run_max_age, d.dry_run_max_age)?,
            backup_max_age: duration("backup_max_age", &p.backup_max_age, d.backup_max_age)?,
            lock_timeout: duration("lock_timeout", &p.lock_timeout, d.lock_timeout)?,
            statement_timeout: duration(
                "statement_timeout",
                &p.statement_timeout,
                d.statement_timeout,
            )?,
            max_block: duration("max_block", &p.max_block, d.max_block)?,
            apply_wait: duration("apply_wait", &p.apply_wait, d.apply_wait)?,
            check_timeout: duration("check_timeout", &p.check_timeout, d.check_timeout)?,
            max_replica_lag: duration("max_replica_lag", &p.max_replica_lag, d.max_replica_lag)?,
            large_table_rows: p.large_table_rows.unwrap_or(d.large_table_rows),
            min_staging_ratio: p.min_staging_ratio.unwrap_or(d.min_staging_ratio),
            snapshot_max_rows: p.snapshot_max_rows.unwrap_or(d.snapshot_max_rows),
            lock_retries: p.lock_retries.unwrap_or(d.lock_retries),
            backfill_lanes: lanes(p.backfill_lanes, d.backfill_lanes)?,
        })
    }
}

fn duration(key: &str, raw: &Option<String>, default: Duration) -> Result<Duration> {
    match raw {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            Error::Config(format!(
                "policy.{key} = {s:?} is not a duration like \"2s\", \"24h\", \"7d\": {e}"
            ))
        }),
    }
}

/// `policy.backfill_lanes`: 1 to 16 (each lane is a connection busy for the whole backfill).
fn lanes(raw: Option<u32>, default: u32) -> Result<u32> {
    match raw {
        None => Ok(default),
        Some(n @ 1..=16) => Ok(n),
        Some(n) => Err(Error::Config(format!(
            "policy.backfill_lanes = {n} is out of range: give 1 (one lane at a time) to 16"
        ))),
    }
}
