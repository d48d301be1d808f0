//! Who is at the command line. A decision (approve, reject, release, waive) or a token change
//! needs a person: the principal of `DRYDOCK_TOKEN`, or an engineer at a terminal who types the
//! passphrase only they know (set up with `drydock passphrase set`, kept as an argon2id hash,
//! asked without echo). A terminal alone proves nothing — `script` gives any agent one — and
//! what a command names (the plan's checksum, a principal's name) an agent knows as well: those
//! are still typed, to confirm what is decided, never to prove who decides. Without a token or a
//! terminal the command is refused (`needs-a-person`), whatever `--by` says.

use crate::engine::Engine;
use crate::error::{Error, Part};
use crate::identity::{Grant, Principal, Via};

use super::tty::Tty;

/// What a person at the terminal types, after their passphrase, to confirm what is done.
pub enum Confirm {
    /// Nothing beyond the passphrase (reading the token list).
    Nothing,
    /// Type `expected`, described to the person as `what`.
    Type { what: String, expected: String },
}

/// The principal acting: from `DRYDOCK_TOKEN`, else the person at this terminal whose
/// passphrase is typed, when their role allows `action` (which needs `grant`).
pub async fn person(
    engine: &Engine,
    by: Option<&str>,
    grant: Grant,
    action: &'static str,
    confirm: Confirm,
) -> Result<Principal, Error> {
    let needed = match grant {
        Grant::Admin => "admin",
        _ => "approver",
    };
    if let Some(token) = std::env::var("DRYDOCK_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        let mut who = engine.authenticate(&token, Via::Cli).await?;
        if let Some(by) = by.map(str::trim).filter(|b| *b != who.name) {
            return Err(Error::IdentityMismatch {
                by: by.to_string(),
                principal: who.name,
            });
        }
        who.os_user = crate::identity::os_user();
        return Ok(who);
    }
    let Some(mut tty) = Tty::open() else {
        return Err(Error::NeedsAPerson { action, needed });
    };
    let by = by.map(str::trim).filter(|b| !b.is_empty()).ok_or_else(|| {
        Error::invalid(
            Part::Decision,
            "`--by` names you, as the audit log records it",
        )
    })?;
    crate::identity::validate_name(by).map_err(|e| Error::invalid(Part::Decision, e))?;
    let passphrase = tty.ask_secret(&format!("{action} as `{by}`: passphrase: "))?;
    let who = engine.person(by, &passphrase, grant, action).await?;
    if let Confirm::Type { what, expected } = confirm {
        let line = tty.ask(&format!("type {what} to confirm: "))?;
        if line.trim() != expected {
            return Err(Error::invalid(
                Part::Decision,
                format!("the confirmation did not match {what}; nothing was done"),
            ));
        }
    }
    Ok(who)
}

/// A decision on a plan: the person confirms with the plan's first 8 checksum characters.
pub async fn decider(
    engine: &Engine,
    plan_id: &str,
    by: Option<&str>,
    action: &'static str,
) -> Result<Principal, Error> {
    // The store's record is enough: no reason to open the target and reconcile for a checksum.
    let checksum = engine.checksum(plan_id).await?;
    let expected: String = checksum.chars().take(8).collect();
    person(
        engine,
        by,
        Grant::Approver,
        action,
        Confirm::Type {
            what: format!("the first 8 characters of plan {plan_id}'s checksum"),
            expected,
        },
    )
    .await
}
