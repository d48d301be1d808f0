//! Tokens and who presents them: `authenticate` turns a bearer token into a principal (live,
//! unexpired, unrevoked; the secret compared in constant time); an admin creates, lists and
//! revokes tokens. A token is shown once, when it is made. People who decide at a terminal prove
//! who they are with a passphrase only they know (`person`), which an admin sets up for them.

use std::time::Duration;

use super::*;
use crate::store::{PassphraseRow, TokenRow};

/// A token just made: the only time its text is seen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedToken {
    pub token: String,
    pub name: String,
    pub role: Grant,
    pub expires_at: Option<String>,
}

impl Engine {
    /// The principal a bearer token proves, arriving by `via`.
    pub async fn authenticate(&self, token: &str, via: Via) -> Result<Principal> {
        let bad = || Error::Unauthenticated("the token is not one drydock issued".into());
        let (id, secret) = crate::identity::parse(token).ok_or_else(bad)?;
        let row = self.store.token(id).await?.ok_or_else(bad)?;
        if !crate::identity::verify(secret, &row.hash) {
            return Err(bad());
        }
        if let Some(at) = &row.revoked_at {
            return Err(Error::Unauthenticated(format!(
                "the token of `{}` was revoked at {at}",
                row.name
            )));
        }
        if let Some(at) = row.expires_at.as_deref()
            && at <= crate::clock::now().as_str()
        {
            return Err(Error::Unauthenticated(format!(
                "the token of `{}` expired at {at}",
                row.name
            )));
        }
        Ok(Principal {
            name: row.name,
            grant: row.role,
            via,
            os_user: None,
        })
    }

    /// Makes a token for `name` with `role`; only an admin (a token's, or a person's at the
    /// terminal) may.
    pub async fn create_token(
        &self,
        by: &Principal,
        name: &str,
        role: Grant,
        expires: Option<Duration>,
    ) -> Result<CreatedToken> {
        admin(by, "creating a token")?;
        let name = name.trim();
        crate::identity::validate_name(name).map_err(|e| Error::invalid(Part::Argument, e))?;
        let made = crate::identity::generate()?;
        let now = crate::clock::now();
        let expires_at = expires.and_then(|d| crate::clock::add(&now, d));
        self.store
            .insert_token(
                &TokenRow {
                    id: made.id,
                    name: name.to_string(),
                    role,
                    hash: made.hash,
                    created_at: now,
                    created_by: by.name.clone(),
                    expires_at: expires_at.clone(),
                    revoked_at: None,
                },
                by,
            )
            .await?;
        Ok(CreatedToken {
            token: made.token,
            name: name.to_string(),
            role,
            expires_at,
        })
    }

    /// Every token ever made (never a secret).
    pub async fn tokens(&self, by: &Principal) -> Result<Vec<TokenRow>> {
        admin(by, "listing tokens")?;
        Ok(self.store.tokens().await?)
    }

    /// Revokes every live token of `name`, effective at once.
    pub async fn revoke_tokens(&self, by: &Principal, name: &str) -> Result<u64> {
        admin(by, "revoking a token")?;
        let name = name.trim();
        let live = self
            .store
            .tokens()
            .await?
            .iter()
            .any(|t| t.name == name && t.revoked_at.is_none());
        if !live {
            return Err(Error::invalid(
                Part::Argument,
                format!("`{name}` has no live token (`drydock token list` shows them)"),
            ));
        }
        Ok(self.store.revoke_tokens(name, by).await?)
    }
}

impl Engine {
    /// Whether an admin has a passphrase yet: until one does, the first admin's is set by a
    /// person at a terminal (`drydock init`, `drydock passphrase set NAME --role admin`).
    pub async fn has_admin(&self) -> Result<bool> {
        Ok(self.store.has_admin_passphrase().await?)
    }

    /// Sets `name`'s passphrase, with `role` (approver or admin: an agent decides nothing). An
    /// admin sets it (`by`); with no admin yet, only the first admin's own, `by` none.
    pub async fn set_passphrase(
        &self,
        by: Option<&Principal>,
        name: &str,
        role: Grant,
        passphrase: &str,
    ) -> Result<()> {
        let name = name.trim();
        crate::identity::validate_name(name).map_err(|e| Error::invalid(Part::Argument, e))?;
        if role == Grant::Agent {
            return Err(Error::invalid(
                Part::Argument,
                "an agent has no passphrase: it decides nothing (give it an agent token)",
            ));
        }
        if passphrase.chars().count() < crate::identity::MIN_PASSPHRASE {
            return Err(Error::invalid(
                Part::Argument,
                format!(
                    "a passphrase has at least {} characters",
                    crate::identity::MIN_PASSPHRASE
                ),
            ));
        }
        let first = Principal::person(name, role);
        let by = match by {
            Some(by) => {
                admin(by, "setting a passphrase")?;
                by
            }
            None if role == Grant::Admin && !self.has_admin().await? => &first,
            None => {
                return Err(Error::NotPermitted {
                    principal: name.to_string(),
                    role: "nobody yet".into(),
                    action: "setting a passphrase",
                    needed: "an admin",
                });
            }
        };
        let row = PassphraseRow {
            name: name.to_string(),
            role,
            hash: crate::identity::hash_passphrase(passphrase)?,
            set_at: crate::clock::now(),
            set_by: by.name.clone(),
        };
        Ok(self.store.set_passphrase(&row, by).await?)
    }

    /// The person `name` proves to be by `passphrase`, when their role allows `action` (which
    /// needs `needed`). A wrong passphrase costs a second, and says no more than that it is.
    pub async fn person(
        &self,
        name: &str,
        passphrase: &str,
        needed: Grant,
        action: &'static str,
    ) -> Result<Principal> {
        let name = name.trim();
        let row = self.store.passphrase(name).await?;
        let Some(row) = row.filter(|r| crate::identity::passphrase_matches(passphrase, &r.hash))
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Err(Error::WrongPassphrase {
                name: name.to_string(),
            });
        };
        let who = Principal::person(&row.name, row.role);
        permitted(&who, needed, action)?;
        Ok(who)
    }
}

fn admin(by: &Principal, action: &'static str) -> Result<()> {
    permitted(by, Grant::Admin, action)
}

/// `who` may do `action` only with `needed` (or a stronger role).
pub(super) fn permitted(who: &Principal, needed: Grant, action: &'static str) -> Result<()> {
    if who.may(needed) {
        return Ok(());
    }
    Err(Error::NotPermitted {
        principal: who.name.clone(),
        role: who.grant.to_string(),
        action,
        needed: match needed {
            Grant::Agent => "an agent",
            Grant::Approver => "an approver",
            Grant::Admin => "an admin",
        },
    })
}
