//! Engineers' decisions at the command line, without a team server: approve, reject, waive,
//! pause, resume, release. Each needs a person (`person::decider`): at a terminal the engineer
//! types the plan's first 8 checksum characters; elsewhere `DRYDOCK_TOKEN` holds an approver's
//! token.

use super::{Command, Format, emit, person, refused};
use crate::engine::Engine;

pub(super) async fn decide(engine: &Engine, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Approve {
            plan_id,
            by,
            format,
        } => approve(engine, &plan_id, by.as_deref(), format).await?,
        Command::Reject {
            plan_id,
            reason,
            by,
            format,
        } => {
            let who = person::decider(engine, &plan_id, by.as_deref(), "reject")
                .await
                .map_err(refused)?;
            let s = engine
                .reject(&plan_id, &who, &reason)
                .await
                .map_err(refused)?;
            emit(
                format,
                || {
                    format!(
                        "rejected {} by {}: {reason}; status {}",
                        s.plan_id, who.name, s.status
                    )
                },
                || serde_json::json!({"by": who.name, "plan": s}),
            );
        }
        Command::Pause {
            plan_id,
            by,
            format,
        } => brake(engine, &plan_id, by.as_deref(), true, format).await?,
        Command::Resume {
            plan_id,
            by,
            format,
        } => brake(engine, &plan_id, by.as_deref(), false, format).await?,
        Command::Waive {
            plan_id,
            reason,
            by,
            format,
        } => waive(engine, &plan_id, &reason, by.as_deref(), format).await?,
        Command::Release {
            plan_id,
            step,
            by,
            override_window,
            reason,
            format,
        } => {
            let who = person::decider(engine, &plan_id, by.as_deref(), "release")
                .await
                .map_err(refused)?;
            let reason = if override_window {
                reason.as_deref()
            } else {
                None
            };
            engine
                .release(&plan_id, &step, &who, reason)
                .await
                .map_err(refused)?;
            emit(
                format,
                || format!("released step `{step}` of {plan_id} by {}", who.name),
                || serde_json::json!({"by": who.name, "plan_id": plan_id, "released": step}),
            );
        }
        _ => unreachable!("`run` sends only decisions here"),
    }
    Ok(())
}

/// A staging waiver for a hotfix, by a person, with the reason.
async fn waive(
    engine: &Engine,
    plan_id: &str,
    reason: &str,
    by: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let who = person::decider(engine, plan_id, by, "waive")
        .await
        .map_err(refused)?;
    let s = engine.waive(plan_id, &who, reason).await.map_err(refused)?;
    let checklist = s
        .checklist
        .iter()
        .find(|i| i.item == crate::checklist::Item::StagingTested)
        .map(|i| i.shown().state)
        .unwrap_or_default();
    emit(
        format,
        || {
            format!(
                "{} waived staging for hotfix {}: {reason}; staging-tested is {checklist}; status {}",
                who.name, s.plan_id, s.status
            )
        },
        || serde_json::json!({"by": who.name, "plan": s}),
    );
    Ok(())
}

async fn approve(
    engine: &Engine,
    plan_id: &str,
    by: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let who = person::decider(engine, plan_id, by, "approve")
        .await
        .map_err(refused)?;
    let s = engine.approve(plan_id, &who).await.map_err(refused)?;
    emit(
        format,
        || {
            format!(
                "approved {} (checksum {}) by {}; status {}",
                s.plan_id, s.checksum, who.name, s.status
            )
        },
        || serde_json::json!({"by": who.name, "plan": s}),
    );
    if let Some(last) = s
        .runs
        .iter()
        .rev()
        .find(|r| r.kind == crate::plan::RunKind::DryRun)
        && !last.ok
    {
        eprintln!(
            "warning: the last dry-run of {} failed ({}); `apply` stays refused until a dry-run of this checksum passes",
            s.plan_id,
            last.detail.error.as_deref().unwrap_or("see `drydock show`")
        );
    }
    Ok(())
}

/// `pause` / `resume`: the engineer's hand on a plan's backfills.
async fn brake(
    engine: &Engine,
    plan_id: &str,
    by: Option<&str>,
    pause: bool,
    format: Format,
) -> anyhow::Result<()> {
    let action = if pause { "pause" } else { "resume" };
    let who = person::decider(engine, plan_id, by, action)
        .await
        .map_err(refused)?;
    let s = if pause {
        engine.pause(plan_id, &who).await
    } else {
        engine.resume(plan_id, &who).await
    }
    .map_err(refused)?;
    emit(
        format,
        || format!("{} {action}d {}; status {}", who.name, s.plan_id, s.status),
        || serde_json::json!({"by": who.name, "plan": s}),
    );
    Ok(())
}
