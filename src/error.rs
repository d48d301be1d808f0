//! The refusal enum at the top of drydock's domain errors (the store's `StoreError` and the
//! targets' errors convert into it). Every refusal an agent or engineer can meet is a
//! variant here, with a stable kebab-case `code`, a lowercase message that names the object, and
//! a `fix` that says what to do next. `mcp` and `cli` render it; nothing else formats errors.
//! A leaf: it imports nothing of the domain (a refusal's checklist is `ItemShown`).

use serde::Serialize;

/// Why a rollback was not verified: what the agent is taught differs with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Unverified {
    /// The schema after `down` differs from before `up`.
    Schema,
    /// A step has no `down`.
    NoDown,
    /// The data after `down` differs; `triggers` are the triggers of the tables whose data
    /// differs (`table.trigger`), which may have written what `down` does not restore.
    Data { triggers: Vec<String> },
    /// Another failure came first, and undoing what had run left a difference: the lesson is
    /// that failure's.
    After { lesson: Option<&'static str> },
}

/// A checklist item as a refusal shows it: the checklist's own item, serialized the same way
/// (`error` sits below every domain module and imports none of them).
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ItemShown {
    pub item: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    pub required: bool,
}

/// A refusal body as it travels to agents: `{code, message, fix, checklist?}`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub fix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checklist: Option<Vec<ItemShown>>,
}

/// The part of a request that bad input is about: it chooses the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The plan as a whole: goal, steps or template.
    Plan,
    /// One step: its name, `up`/`down`/`backfill`, its gate.
    Step,
    /// One SQL statement of a step.
    Statement,
    /// A backfill: its table, key, assignments.
    Backfill,
    /// A validation check.
    Check,
    /// An engineer's decision: `--by`, `--reason`, the step released.
    Decision,
    /// Another argument of a tool or command.
    Argument,
    /// A mistake an agent records.
    Mistake,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Plan => "plan",
            Part::Step => "step",
            Part::Statement => "statement",
            Part::Backfill => "backfill",
            Part::Check => "check",
            Part::Decision => "decision",
            Part::Argument => "argument",
            Part::Mistake => "mistake",
        })
    }
}

/// How an engineer reads a refusal at a terminal: `error[code]: message` then `fix: ...`.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error[{}]: {}\nfix: {}",
            self.code, self.message, self.fix
        )
    }
}

/// Who holds a plan another server asked for: the holding server, for whom, since when.
#[derive(Debug)]
pub struct Held {
    pub action: String,
    pub holder: String,
    pub principal: String,
    pub since: String,
    pub expires_in_s: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown target `{0}`")]
    UnknownTarget(String),
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    #[error("plan `{plan}` belongs to target `{plan_target}`, not `{target}`")]
    PlanTargetMismatch {
        plan: String,
        plan_target: String,
        target: String,
    },
    #[error("target `{0}` has role production; dry-runs never run on production")]
    ProductionDryRun(String),
    #[error("target `{0}` has no non-production target to dry-run on")]
    NoStaging(String),
    #[error("invalid {part}: {detail}")]
    Invalid { part: Part, detail: String },
    #[error("check `{name}` is not a single read-only query: {reason}")]
    InvalidCheck { name: String, reason: String },
    #[error(
        "{place}: {construct} {reason}; drydock runs nothing that reaches beyond the database on an agent's behalf"
    )]
    Forbidden {
        place: String,
        construct: String,
        reason: String,
    },
    #[error(
        "staging `{staging}` has drifted from `{target}` on the tables this plan touches: {detail}"
    )]
    StagingDrift {
        staging: String,
        target: String,
        detail: String,
    },
    #[error(
        "plan `{plan}` was changed in the state store: its steps and checks hash to {actual}, not its checksum {stored}"
    )]
    PlanTampered {
        plan: String,
        stored: String,
        actual: String,
    },
    #[error("unknown template `{0}`")]
    UnknownTemplate(String),
    #[error("the desired schema can be read more than one way: {what}")]
    AmbiguousChange { what: String, readings: Vec<String> },
    #[error("the desired schema removes {what}: its data would be lost")]
    DropNeedsConsent { what: String },
    #[error("the desired schema asks for a change drydock does not plan: {what}")]
    UnsupportedChange { what: String, manual: String },
    #[error("template `{template}` refused its parameters: {reason}")]
    TemplateParams { template: String, reason: String },
    #[error("plan `{plan}` cannot be applied: {count} checklist item(s) unmet ({items})")]
    ChecklistUnmet {
        plan: String,
        count: usize,
        items: String,
        checklist: Vec<ItemShown>,
    },
    #[error("{phase} failed on target `{target}` at step `{step}`, statement {index}: {cause}")]
    SqlFailed {
        phase: &'static str,
        target: String,
        step: String,
        index: usize,
        cause: String,
    },
    #[error("check `{name}` failed: {detail}")]
    CheckFailed { name: String, detail: String },
    #[error("rollback was not verified: {detail}")]
    RollbackUnverified { detail: String, why: Unverified },
    #[error("after `up` on `{target}`, what the application will hit fails: {object}: {detail}")]
    AppProbeFailed {
        target: String,
        object: String,
        detail: String,
    },
    #[error(
        "step `{step}` of plan `{plan}` is half rolled back: a rollback began putting its backfill's saved values back and did not finish"
    )]
    RollbackIncomplete { plan: String, step: String },
    #[error("plan `{plan}` is {status}; {action} needs it {needed}")]
    WrongStatus {
        plan: String,
        status: String,
        action: &'static str,
        needed: &'static str,
    },
    #[error("rollback needs a reason")]
    MissingReason,
    #[error("the rollback window of plan `{plan}` closed at {closed_at}")]
    RollbackWindowClosed { plan: String, closed_at: String },
    #[error("`{by}` authored plan `{plan}` and cannot {action} it")]
    SelfApproval {
        plan: String,
        by: String,
        /// What the author tried: `approve` or `release a step of`.
        action: &'static str,
    },
    #[error("validation of plan `{plan}` failed: {failures}")]
    ValidationFailed { plan: String, failures: String },
    #[error("backup of target `{target}` could not be verified: {detail}")]
    /// `fix` says what to do about this failure (too many rows, privileges, disk, a command).
    BackupFailed {
        target: String,
        detail: String,
        fix: String,
    },
    #[error("another migration is running on target `{0}`")]
    TargetBusy(String),
    #[error("the rollout of plan `{plan}` halted: member `{member}` (wave {wave}) failed: {cause}")]
    RolloutHalted {
        plan: String,
        member: String,
        wave: usize,
        cause: String,
    },
    #[error("group `{group}` cannot be used: {problem}")]
    BadGroup { group: String, problem: String },
    #[error("plan `{plan}` is being {} by server `{}` (for {}, since {}); its lease expires in {} s unless that server heartbeats", held.action, held.holder, held.principal, held.since, held.expires_in_s)]
    PlanHeld { plan: String, held: Box<Held> },
    #[error("target `{target}`: a long transaction holds a lock the step needs: {detail}")]
    BlockedByTransaction { target: String, detail: String },
    #[error("cannot export plan `{plan}` into {dir}: {problem}")]
    ExportConflict {
        plan: String,
        dir: String,
        problem: String,
        fix: String,
    },
    #[error("configuration error: {0}")]
    Config(String),
    #[error("state store error: {0}")]
    Store(String),
    #[error("target `{target}` error: {cause}")]
    Target { target: String, cause: String },
    /// Agent SQL would run as a role with privileges beyond the database (a superuser, CREATEROLE,
    /// the server's files, programs or other sessions), or as one that does not exist.
    #[error("unsafe role on target `{target}`: {detail}")]
    UnsafeRole { target: String, detail: String },
    /// A least-privilege role lacks what drydock needs of it on a table the plan touches.
    #[error("target `{target}`: {detail}")]
    RolePrivilege { target: String, detail: String },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "{action} needs a person: standard input is not a terminal and DRYDOCK_TOKEN holds no {needed} token"
    )]
    NeedsAPerson {
        action: &'static str,
        needed: &'static str,
    },
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// A person at a terminal typed a passphrase that is not theirs (or they have none).
    #[error("not authenticated: that is not `{name}`'s passphrase, or `{name}` has none")]
    WrongPassphrase { name: String },
    #[error("`{principal}` is {role}; {action} needs {needed}")]
    NotPermitted {
        principal: String,
        role: String,
        action: &'static str,
        needed: &'static str,
    },
    #[error("`--by {by}` is not the token's principal `{principal}`")]
    IdentityMismatch { by: String, principal: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Part {
    fn fix(self) -> &'static str {
        match self {
            Part::Plan => {
                "give `goal`, `target` and either `steps` (each with `up` and `down`) or `template` + `params`, then call `plan` again"
            }
            Part::Step => {
                "correct the named step (a unique name; `up` or `backfill`, and `down`) and submit the plan again"
            }
            Part::Statement => {
                "correct the named statement so that it parses as the target's SQL (no transaction control: drydock wraps each step) and submit the plan again"
            }
            Part::Backfill => {
                "correct the backfill: its `table` and `key` must exist (`inspect` lists them; the key is a unique, ordered column, the primary key when omitted) and `set` is a list of assignments"
            }
            Part::Check => {
                "give every check a unique `name`, one SELECT as `sql`, and `expect` (`true`, `empty` or `rows:N`)"
            }
            Part::Decision => "correct the named argument and run the command again",
            Part::Argument => "correct the named field and call again",
            Part::Mistake => {
                "say what went wrong in `what` and what to do instead next time in `lesson`"
            }
        }
    }
}

impl Error {
    /// The stable code agents and tests match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownTarget(_) => "unknown-target",
            Error::UnknownPlan(_) => "unknown-plan",
            Error::PlanTargetMismatch { .. } => "plan-target-mismatch",
            Error::ProductionDryRun(_) => "production-target",
            Error::NoStaging(_) => "no-staging-target",
            Error::Invalid { .. } => "invalid-input",
            Error::InvalidCheck { .. } => "invalid-check",
            Error::Forbidden { .. } => "forbidden-statement",
            Error::StagingDrift { .. } => "staging-drift",
            Error::PlanTampered { .. } => "plan-tampered",
            Error::UnknownTemplate(_) => "unknown-template",
            Error::AmbiguousChange { .. } => "ambiguous-change",
            Error::DropNeedsConsent { .. } => "drop-needs-consent",
            Error::UnsupportedChange { .. } => "unsupported-change",
            Error::TemplateParams { .. } => "invalid-template-params",
            Error::ChecklistUnmet { .. } => "checklist-unmet",
            Error::SqlFailed { .. } => "sql-failed",
            Error::CheckFailed { .. } => "check-failed",
            Error::RollbackUnverified { .. } => "rollback-unverified",
            Error::AppProbeFailed { .. } => "app-probe-failed",
            Error::RollbackIncomplete { .. } => "rollback-incomplete",
            Error::WrongStatus { .. } => "wrong-status",
            Error::MissingReason => "missing-reason",
            Error::RollbackWindowClosed { .. } => "rollback-window-closed",
            Error::SelfApproval { .. } => "self-approval",
            Error::ValidationFailed { .. } => "validation-failed",
            Error::BackupFailed { .. } => "backup-unverified",
            Error::TargetBusy(_) => "target-busy",
            Error::BadGroup { .. } => "invalid-group",
            Error::ExportConflict { .. } => "export-conflict",
            Error::RolloutHalted { .. } => "rollout-halted",
            Error::PlanHeld { .. } => "plan-held",
            Error::BlockedByTransaction { .. } => "blocked-by-transaction",
            Error::Config(_) => "config",
            Error::Store(_) => "state-store",
            Error::Target { .. } => "target-error",
            Error::RolePrivilege { .. } => "role-privilege",
            Error::UnsafeRole { .. } => "unsafe-role",
            Error::Io(_) => "io",
            Error::NeedsAPerson { .. } => "needs-a-person",
            Error::Unauthenticated(_) | Error::WrongPassphrase { .. } => "unauthenticated",
            Error::NotPermitted { .. } => "not-permitted",
            Error::IdentityMismatch { .. } => "identity-mismatch",
        }
    }

    /// What to do next, in one or two sentences.
    pub fn fix(&self) -> String {
        match self {
            Error::UnknownTarget(_) => {
                "use a target named in drydock.toml; `inspect` and the `drydock://checklist` resource list them".into()
            }
            Error::UnknownPlan(_) => "call `status` without a plan_id to list plans, or create one with `plan`".into(),
            Error::PlanTargetMismatch { plan_target, .. } => format!(
                "dry-run on `{plan_target}`'s linked staging (omit `target`) or on a scratch target; to change this database, make a plan for it"
            ),
            Error::ProductionDryRun(_) => {
                "omit `target` to use the production target's linked staging, or name a staging/scratch target".into()
            }
            Error::NoStaging(t) => format!(
                "add `staging = \"NAME\"` to [targets.{t}] in drydock.toml, pointing at a staging or scratch target"
            ),
            Error::Invalid { part, .. } => part.fix().into(),
            Error::InvalidCheck { .. } => {
                "make each check one SELECT (or WITH ... SELECT) returning what `expect` says; put writes in a step".into()
            }
            Error::Forbidden { construct, .. } => format!(
                "remove {construct} from the plan and submit a new one: agent SQL stays inside the database (no server files or programs, roles, privileges, settings, other sessions or code drydock cannot analyse); if the change truly needs it, an engineer runs that part by hand"
            ),
            Error::PlanTampered { .. } => "nothing of this plan will run: investigate who changed the state store (see the audit log), and submit the change as a new plan".into(),
            Error::StagingDrift { staging, .. } => format!(
                "a dry-run there would not test what production will do: bring `{staging}` in step (apply the plans production has and it lacks — drydock does after every production apply when it can — or rebuild it from production), then dry-run again"
            ),
            Error::UnknownTemplate(_) => "call `render-template` without a name to list the templates".into(),
            Error::AmbiguousChange { readings, .. } => format!(
                "say which you mean — {}",
                readings.join("; or ")
            ),
            Error::DropNeedsConsent { .. } => "if the data may go, plan again with `allow_drop: true` (the drop keeps a copy until the rollback window passes); else keep it in `desired`, or name its new name in `renames`".into(),
            Error::UnsupportedChange { manual, .. } => manual.clone(),
            Error::TemplateParams { .. } => {
                "do what the message asks first (a dependent object to change, a name to correct), or pass parameters matching the template's schema (`render-template` without a name lists it; identifiers are letters, digits and _)".into()
            }
            Error::ChecklistUnmet { .. } => {
                "satisfy each unmet item (dry-run on staging, ask an engineer to run `drydock approve`), then call `apply` again".into()
            }
            Error::SqlFailed { phase, .. } => format!(
                "correct the statement named above and submit a new plan; nothing from the failed {phase} persisted"
            ),
            Error::CheckFailed { .. } => "inspect the data the check looks at; fix the migration or the check, then re-plan".into(),
            Error::AppProbeFailed { .. } => "a step changed something that code inside the database still uses (a trigger function's body, a view's function): change that code in the same step (`CREATE OR REPLACE FUNCTION`, `CREATE OR REPLACE VIEW`), or keep the old name with expand/contract (the `rename-column` template), then re-plan".into(),
            Error::RollbackUnverified {
                why: Unverified::Data { .. },
                ..
            } => {
                "make `down` put back every value `up` changed (or change values with a `backfill` step, which drydock reverses), then re-plan and dry-run".into()
            }
            Error::RollbackUnverified { .. } => {
                "make `down` undo exactly what `up` does (same columns, indexes, constraints), then re-plan and dry-run".into()
            }
            Error::RollbackIncomplete { .. } => "call `rollback` again (with a reason): it puts back the rest of the step's saved values and finishes; the plan cannot go forward over a half-restored backfill".into(),
            Error::WrongStatus { .. } => "call `status` to see where the plan is and what comes next".into(),
            Error::MissingReason => "pass `reason`: why this change is being rolled back".into(),
            Error::RollbackWindowClosed { .. } => {
                "write a new forward migration that reverses the change; the old `down` is no longer trusted".into()
            }
            Error::SelfApproval { action, .. } => {
                format!("another engineer must {action} it; the plan's author cannot")
            }
            Error::ValidationFailed { .. } => {
                "investigate the failed checks; if the change is wrong, `rollback` it with a reason".into()
            }
            Error::BackupFailed { fix, .. } => fix.clone(),
            Error::TargetBusy(_) => "wait for the running migration to finish (see `status`), then call again".into(),
            Error::RolloutHalted { plan, member, .. } => format!("the failed member's step was rolled back and no later member was touched: fix the cause on `{member}` (see `status` members), then call `apply` with plan_id `{plan}` to resume the rollout, or `rollback` to reverse the members already applied"),
            Error::ExportConflict { fix, .. } => fix.clone(),
            Error::BadGroup { group, problem } => format!("fix `[groups.{group}]` in drydock.toml ({problem}); `inspect` lists the targets"),
            Error::PlanHeld { .. } => "poll `status` (it shows the holder's progress) instead of applying again; if that server crashed, another server takes the plan over once its lease expires".into(),
            Error::BlockedByTransaction { .. } => {
                "nothing was changed; ask the owner of that session to finish its transaction (or wait for a quieter moment), then call `apply` again".into()
            }
            Error::Config(_) => "correct drydock.toml (see README) and restart drydock".into(),
            Error::Store(_) | Error::Io(_) => "check the state directory's disk and permissions; run `drydock doctor`".into(),
            Error::Target { .. } => "check that the target is reachable and its credentials are valid; run `drydock doctor`".into(),
            Error::UnsafeRole { target, .. } => format!("an engineer runs `drydock doctor --fix` (it makes `drydock_migrator`, owner of the application's objects, and `drydock_checker`, and prints what it ran), or makes such roles by hand (README: least privilege); then names them in [targets.{target}] apply_role and check_role. drydock refuses agent SQL until then"),
            Error::RolePrivilege { .. } => "an engineer grants the role what a migration of that table needs (owner of the table, or SELECT for drydock's comparison; README: least privilege), then dry-run again".into(),
            Error::NeedsAPerson { needed, .. } => format!(
                "an engineer runs the command at a terminal (it asks to type what it names), or sets DRYDOCK_TOKEN to an {needed} token (`drydock token create`)"
            ),
            Error::WrongPassphrase { name } => format!(
                "type your own passphrase; an admin sets one up with `drydock passphrase set {name} --role approver --by ADMIN` (or use an approver token in DRYDOCK_TOKEN)"
            ),
            Error::Unauthenticated(_) => {
                "send `Authorization: Bearer <token>` with a live token (`drydock token list` shows them; an admin creates one with `drydock token create`)".into()
            }
            Error::NotPermitted { needed, .. } => format!(
                "ask someone holding an {needed} token to do it; an agent proposes, engineers decide"
            ),
            Error::IdentityMismatch { principal, .. } => format!(
                "omit `--by` (the token says who you are: `{principal}`) or use your own token"
            ),
        }
    }

    /// The lesson an agent should draw when it made this mistake (written to ERRORS.md), or
    /// `None` when the failure is not the agent's doing.
    pub fn lesson(&self) -> Option<&'static str> {
        Some(match self {
            Error::ChecklistUnmet { .. } => {
                "call `dry-run` on the plan, wait for an engineer's `drydock approve`, and only then `apply`; check `status` for unmet items first"
            }
            Error::ProductionDryRun(_) => {
                "dry-runs go to the production target's linked staging: omit `target` in `dry-run`"
            }
            Error::SqlFailed { .. } => {
                "run `inspect` on the target before writing SQL, and let `dry-run` catch errors before production"
            }
            Error::RolloutHalted { .. } => {
                "a change that passes on the group's staging can still fail on a member whose data differs: before approving a rollout, read the dry-run's member pre-check and query the members' data the change depends on"
            }
            Error::AppProbeFailed { .. } => {
                "before renaming, dropping or retyping a column, read the bodies of the table's trigger functions and the views on it (`inspect`): code inside the database names columns too"
            }
            Error::CheckFailed { .. } => {
                "write checks that state what must be true after `up`, and verify the data they depend on with `inspect`"
            }
            Error::RollbackUnverified { why, .. } => match why {
                Unverified::Schema => {
                    "write `down` as the exact inverse of `up`: every column, index and constraint added must be removed, and vice versa"
                }
                Unverified::NoDown => {
                    "give every step a `down` (or change values with a `backfill` step, which drydock reverses): a rollback without one cannot be verified"
                }
                Unverified::Data { triggers } if !triggers.is_empty() => {
                    "a statement that writes rows also fires the table's triggers, which write columns of their own (a `last_update` stamp): change values with a `backfill` step, whose rows drydock saves whole and restores, or make `down` put back what the triggers wrote too"
                }
                Unverified::Data { .. } => {
                    "`down` must put back every value `up` changed: change values with a `backfill` step, whose old values drydock saves and restores"
                }
                Unverified::After { lesson } => return *lesson,
            },
            Error::ValidationFailed { .. } => {
                "validate right after apply and roll back with a reason when a check fails"
            }
            Error::InvalidCheck { .. } => "a check is exactly one SELECT; writes belong in steps",
            Error::AmbiguousChange { .. } => {
                "when a column leaves `desired` and another arrives, say which it is: `renames` for a rename, `allow_drop` for a drop and an add"
            }
            Error::DropNeedsConsent { .. } => {
                "a `desired` without a column or table drops it and its data: mean it (`allow_drop: true`) or name the new name in `renames`"
            }
            Error::PlanTampered { .. } => {
                "plans are immutable once stored: change one by submitting a new plan (`supersedes`), never by editing the state store"
            }
            Error::Forbidden { .. } => {
                "keep agent SQL inside the database: no COPY to/from programs or files, no functions that touch the server's files, settings or other sessions, no roles, SET ROLE, ALTER SYSTEM, untrusted languages or dynamic SQL; ask an engineer for anything that needs them"
            }
            Error::RollbackWindowClosed { .. } => {
                "roll back within the rollback window; after it, write a new forward migration"
            }
            Error::RollbackIncomplete { .. } => {
                "a rollback that failed is finished by calling `rollback` again, never by applying over it"
            }
            Error::WrongStatus { .. } => {
                "call `status` before acting on a plan; follow its `next_steps`"
            }
            Error::MissingReason => "every rollback states its reason",
            Error::BackupFailed { .. } => {
                "make sure a restorable backup exists before changing production"
            }
            Error::UnknownTarget(_)
            | Error::UnknownPlan(_)
            | Error::PlanTargetMismatch { .. }
            | Error::NoStaging(_)
            | Error::Invalid { .. }
            | Error::StagingDrift { .. }
            | Error::UnknownTemplate(_)
            | Error::TemplateParams { .. }
            | Error::UnsupportedChange { .. }
            | Error::SelfApproval { .. }
            | Error::TargetBusy(_)
            | Error::BadGroup { .. }
            | Error::ExportConflict { .. }
            | Error::PlanHeld { .. }
            | Error::BlockedByTransaction { .. }
            | Error::Config(_)
            | Error::Store(_)
            | Error::Target { .. }
            | Error::RolePrivilege { .. }
            | Error::UnsafeRole { .. }
            | Error::Io(_)
            | Error::NeedsAPerson { .. }
            | Error::Unauthenticated(_)
            | Error::WrongPassphrase { .. }
            | Error::NotPermitted { .. }
            | Error::IdentityMismatch { .. } => return None,
        })
    }

    /// Bad input about `part`.
    pub fn invalid(part: Part, detail: impl Into<String>) -> Error {
        Error::Invalid {
            part,
            detail: detail.into(),
        }
    }

    pub fn to_refusal(&self) -> Refusal {
        Refusal {
            code: self.code().to_string(),
            message: self.to_string(),
            fix: self.fix(),
            checklist: match self {
                Error::ChecklistUnmet { checklist, .. } => Some(checklist.clone()),
                _ => None,
            },
        }
    }

    pub fn store(e: impl std::fmt::Display) -> Self {
        Error::Store(e.to_string())
    }
}
