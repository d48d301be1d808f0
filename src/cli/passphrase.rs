//! `drydock passphrase set NAME --role ROLE`: the passphrase with which a person decides at a
//! terminal. An admin sets it up (with their own passphrase, or an admin token); the person whose
//! it is types it, twice, without echo. While no admin has one, the first admin sets their own:
//! `drydock init` offers it at a terminal.

use crate::engine::Engine;
use crate::error::{Error, Part};
use crate::identity::Grant;

use super::person::{self, Confirm};
use super::tty::Tty;

/// Sets `name`'s passphrase with `role`; `by` is the admin setting it up (none: the first admin).
pub async fn set(engine: &Engine, name: &str, role: Grant, by: Option<&str>) -> Result<(), Error> {
    let actor = if engine.has_admin().await? {
        Some(person::person(engine, by, Grant::Admin, "passphrase set", Confirm::Nothing).await?)
    } else {
        None
    };
    // The new passphrase is typed by its person, at a terminal, whoever set it up.
    let Some(mut tty) = Tty::open() else {
        return Err(Error::NeedsAPerson {
            action: "passphrase set",
            needed: "admin",
        });
    };
    let first = tty.ask_secret(&format!("new passphrase for `{name}` ({role}): "))?;
    let again = tty.ask_secret("the same again: ")?;
    if first != again {
        return Err(Error::invalid(
            Part::Argument,
            "the two passphrases differ; nothing was set",
        ));
    }
    engine
        .set_passphrase(actor.as_ref(), name, role, &first)
        .await
}

/// At a terminal with no admin yet, asks the person running `init` to become the first admin.
/// Says what it did, or why it did nothing.
pub async fn first_admin(engine: &Engine) -> Result<String, Error> {
    if engine.has_admin().await? {
        return Ok("kept the admins already set up".into());
    }
    let Some(mut tty) = Tty::open() else {
        return Ok("no admin yet: run `drydock passphrase set YOUR_NAME --role admin` at a terminal before anyone approves".into());
    };
    let name = tty.ask("the first admin's name (yours; empty to do it later): ")?;
    let name = name.trim();
    if name.is_empty() {
        return Ok("no admin yet: run `drydock passphrase set YOUR_NAME --role admin` at a terminal before anyone approves".into());
    }
    set(engine, name, Grant::Admin, None).await?;
    Ok(format!("`{name}` is the first admin"))
}
