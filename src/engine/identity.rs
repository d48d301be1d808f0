//! Tokens and who presents them: `authenticate` turns a bearer token into a principal (live,
//! unexpired, unrevoked; the secret compared in constant time); an admin creates, lists and
//! revokes tokens. A token is shown once, when it is made.

use std::time::Duration;

use super::*;
use crate::store::TokenRow;

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
