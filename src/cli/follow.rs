//! `drydock status PLAN [--follow]` (and `show PLAN`): where a plan stands; following, a progress bar while an
//! apply, backfill or rollback runs (in this process's server or another sharing the state
//! store), ending when it stops; an approved plan is waited for until its apply starts.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Format, refused};
use crate::engine::{Engine, StatusReport};
use crate::plan::Status;

pub(super) async fn status(
    engine: &Engine,
    plan_id: &str,
    follow: bool,
    every: Duration,
    format: Format,
) -> anyhow::Result<i32> {
    let mut s = engine.status(plan_id).await.map_err(refused)?;
    if follow {
        s = follow_until_idle(
            engine,
            plan_id,
            s,
            every.max(Duration::from_millis(100)),
            format,
        )
        .await?;
    }
    match format {
        // Following, the end state is the last of the JSON lines.
        Format::Json if follow => println!("{}", serde_json::to_string(&s)?),
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Text if follow => println!("{}", line(&s)),
        Format::Text => print!("{}", s.to_markdown()),
    }
    Ok(0)
}

/// One line for a plan at rest.
fn line(s: &StatusReport) -> String {
    let applied = s
        .steps
        .iter()
        .filter(|st| st.state == crate::plan::StepState::Applied)
        .count();
    let next = s
        .next_steps
        .first()
        .map(|n| format!("; next: {n}"))
        .unwrap_or_default();
    format!(
        "{}: {} ({applied} of {} step(s) applied){next}",
        s.plan_id,
        s.status,
        s.steps.len()
    )
}

/// How long `--follow` waits for an apply to show up: a plan that is `applying` with nothing
/// running is gated, paused, or was cut short by a server's exit, and waits for a person.
const GRACE: Duration = Duration::from_secs(3);

/// Polls the plan's status every `every` while it runs; draws a bar on a terminal, and
/// otherwise writes each new progress message to stderr (JSON lines with `--format json`).
async fn follow_until_idle(
    engine: &Engine,
    plan_id: &str,
    mut s: StatusReport,
    every: Duration,
    format: Format,
) -> anyhow::Result<StatusReport> {
    let terminal = std::io::stderr().is_terminal() && matches!(format, Format::Text);
    let bar = ProgressBar::with_draw_target(
        None,
        if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut last = String::new();
    let started = std::time::Instant::now();
    // Follow while an apply or rollback runs (its lease, in any server); a plan `applying`
    // without one may be about to start: wait a moment for it, no longer. An approved plan
    // nobody has applied yet is waited for until its apply starts (followed before the agent
    // calls `apply`).
    while s.running.is_some()
        || s.status == Status::Approved
        || (s.status == Status::Applying && s.paused.is_none() && started.elapsed() < GRACE)
    {
        let (done, total, message) = match &s.running {
            Some(r) => (
                r.done.unwrap_or_default(),
                r.total.unwrap_or_default(),
                r.message
                    .clone()
                    .unwrap_or_else(|| format!("{} since {}", r.action, r.since)),
            ),
            None if s.status == Status::Approved => {
                (0, 0, "approved: waiting for the apply to start".into())
            }
            None => (
                0,
                0,
                "applying: waiting for the next progress report".into(),
            ),
        };
        bar.set_length(total.max(done));
        bar.set_position(done);
        bar.set_message(message.clone());
        if !terminal && message != last {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"plan_id": plan_id, "status": s.status, "done": done, "total": total, "message": message})
                ),
                Format::Text => eprintln!("{done}/{total} {message}"),
            }
            last = message;
        }
        tokio::time::sleep(every).await;
        s = engine.status(plan_id).await.map_err(refused)?;
    }
    bar.finish_and_clear();
    Ok(s)
}
