//! Who is at the command line. A decision (approve, reject, release) or a token change needs a
//! person: the principal of `DRYDOCK_TOKEN`, or an engineer at a terminal who proves presence by
//! typing what the command names (the plan's first 8 checksum characters; a token's principal
//! name). Without either — an agent's Bash tool, a script — the command is refused
//! (`needs-a-person`), whatever `--by` says.

use std::io::{BufRead, IsTerminal, Write};

use crate::engine::Engine;
use crate::error::{Error, Part};
use crate::identity::{Grant, Principal, Via};

/// What a person at the terminal must type to go on.
pub enum Confirm {
    /// Nothing: being at a terminal is enough (reading the token list).
    Nothing,
    /// Type `expected`, described to the person as `what`.
    Type { what: String, expected: String },
}

/// The principal acting: from `DRYDOCK_TOKEN`, else a person at this terminal with `grant`.
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
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsAPerson { action, needed });
    }
    let by = by.map(str::trim).filter(|b| !b.is_empty()).ok_or_else(|| {
        Error::invalid(
            Part::Decision,
            "`--by` names you, as the audit log records it",
        )
    })?;
    crate::identity::validate_name(by).map_err(|e| Error::invalid(Part::Decision, e))?;
    if let Confirm::Type { what, expected } = confirm {
        eprint!("{action} as `{by}`: type {what} to confirm: ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != expected {
            return Err(Error::invalid(
                Part::Decision,
                format!("the confirmation did not match {what}; nothing was done"),
            ));
        }
    }
    Ok(Principal::person(by, grant))
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
