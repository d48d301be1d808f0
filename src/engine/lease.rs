//! One operation per plan: in this process, the running map (one apply or rollback per
//! target); across servers sharing the state store, the plan's lease, renewed by a heartbeat
//! that also publishes the progress so that `status` on any server shows it. A lease whose
//! holder crashed is taken over when it expires — at once when the holder was a process on this
//! machine that no longer exists.

use std::time::Duration;

use super::*;
use crate::store::Lease;

/// This server as leases name it: `host:pid`.
pub(super) fn this_server() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether `holder` names a process of this machine that has exited (its lease is stale).
fn exited_here(holder: &str, me: &str) -> bool {
    let (Some((host, pid)), Some((my_host, _))) = (holder.rsplit_once(':'), me.rsplit_once(':'))
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
    host == my_host && pid > 0 && unsafe { libc::kill(pid, 0) } != 0 && {
        std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// A plan's lease held by this server, renewed until released.
pub(super) struct LeaseGuard {
    store: Store,
    plan_id: String,
    holder: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    pub(super) async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self.store.release_lease(&self.plan_id, &self.holder).await {
            tracing::warn!(plan = %self.plan_id, error = %e, "could not release the plan's lease; it expires on its own");
        }
    }
}

/// An operation that ends without `release` (a panic, a cancelled task) stops the heartbeat:
/// the lease then expires and another server (or this one) can take the plan over.
impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// What holds a target (its running mark) or a plan (its lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Apply,
    Rollback,
    /// A linked staging following production (its turn on the staging's name).
    StagingSync,
}

impl Operation {
    /// As the lease, `status` and its refusals name it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "apply",
            Operation::Rollback => "rollback",
            Operation::StagingSync => "staging sync",
        }
    }

    fn parse(s: &str) -> Option<Operation> {
        [
            Operation::Apply,
            Operation::Rollback,
            Operation::StagingSync,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// What a plan held by it is being: `applied`, `rolled back`.
    fn being(self) -> &'static str {
        match self {
            Operation::Apply => "applied",
            Operation::Rollback => "rolled back",
            Operation::StagingSync => "synced to staging",
        }
    }
}

impl Engine {
    /// Marks `target` as running `action` for `plan_id`; a second operation on the target is
    /// refused (another plan) or told the plan is already being applied (the same plan).
    pub(super) fn claim(
        &self,
        target: &str,
        plan_id: &str,
        action: Operation,
    ) -> Result<std::result::Result<RunningGuard, Running>> {
        let mut running = self.running.lock().expect("running map lock");
        if let Some(r) = running.get(target) {
            if r.plan_id == plan_id && r.action == Operation::Apply && action == Operation::Apply {
                return Ok(Err(r.clone()));
            }
            return Err(Error::TargetBusy(target.to_string()));
        }
        running.insert(
            target.to_string(),
            Running {
                plan_id: plan_id.to_string(),
                action,
                started_at: crate::store::now(),
                progress: None,
            },
        );
        Ok(Ok(RunningGuard(self.running.clone(), target.to_string())))
    }

    /// Progress of a plan being applied in this process, if it is.
    pub(super) fn running_progress(&self, plan_id: &str) -> Option<Running> {
        self.running
            .lock()
            .expect("running map lock")
            .values()
            .find(|r| r.plan_id == plan_id)
            .cloned()
    }

    /// Takes the plan's lease in the state store for `action`, refused with who holds it when
    /// another server does; a heartbeat renews it (and publishes the progress) until released.
    pub(super) async fn hold(
        &self,
        plan: &Plan,
        who: &Principal,
        action: Operation,
    ) -> Result<LeaseGuard> {
        let ttl = self.config.state.lease;
        let mut dead = None;
        loop {
            let got = self
                .store
                .acquire_lease(
                    &plan.id,
                    &self.server,
                    &who.name,
                    action.as_str(),
                    ttl,
                    dead.as_deref(),
                )
                .await?;
            match got {
                Ok(()) => break,
                Err(held) if dead.is_none() && exited_here(&held.holder, &self.server) => {
                    tracing::info!(plan = %plan.id, holder = %held.holder, "taking over the lease of an exited server");
                    dead = Some(held.holder);
                }
                Err(held) => return Err(held_error(held)),
            }
        }
        let (store, running, target) = (
            self.store.clone(),
            self.running.clone(),
            plan.target.clone(),
        );
        let (plan_id, holder) = (plan.id.clone(), self.server.clone());
        let heartbeat = tokio::spawn(async move {
            // At least once a second: the progress it publishes is what `status --follow` in
            // another process draws.
            let every = (ttl / 3).clamp(Duration::from_millis(200), Duration::from_secs(1));
            loop {
                tokio::time::sleep(every).await;
                let progress = running
                    .lock()
                    .expect("running map lock")
                    .get(&target)
                    .and_then(|r| r.progress.as_ref())
                    .and_then(|p| serde_json::to_string(p).ok());
                match store
                    .renew_lease(&plan_id, &holder, ttl, progress.as_deref())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        // The target's advisory lock still keeps a second server out of it.
                        tracing::error!(plan = %plan_id, "this server's lease was taken over");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(plan = %plan_id, error = %e, "lease heartbeat failed; retrying")
                    }
                }
            }
        });
        Ok(LeaseGuard {
            store: self.store.clone(),
            plan_id: plan.id.clone(),
            holder: self.server.clone(),
            heartbeat,
        })
    }

    /// What another server sharing the store is doing with the plan, if anything.
    pub(super) async fn remote_running(&self, plan_id: &str) -> Result<Option<RunningInfo>> {
        let Some(lease) = self.store.lease(plan_id).await? else {
            return Ok(None);
        };
        if lease.holder == self.server {
            return Ok(None);
        }
        let progress: Option<Progress> = lease
            .progress
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        Ok(Some(RunningInfo {
            action: lease.action,
            since: lease.acquired_at,
            done: progress.as_ref().map(|p| p.done),
            total: progress.as_ref().map(|p| p.total),
            health: progress.as_ref().and_then(|p| p.health.clone()),
            message: progress.map(|p| p.message),
            server: Some(lease.holder),
        }))
    }
}

fn held_error(held: Lease) -> Error {
    Error::PlanHeld {
        plan: held.plan_id,
        held: Box::new(crate::error::Held {
            action: Operation::parse(&held.action)
                .map_or_else(|| held.action.clone(), |o| o.being().to_string()),
            holder: held.holder,
            principal: held.principal,
            since: held.acquired_at,
            expires_in_s: (held.expires_in_ms + 999) / 1000,
        }),
    }
}
