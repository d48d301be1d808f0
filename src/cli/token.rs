//! `drydock token create|list|revoke`: principals' bearer tokens.

use super::*;

/// `drydock token create|list|revoke`.
pub(super) async fn token(engine: &Engine, command: TokenCommand) -> anyhow::Result<()> {
    use crate::identity::Grant;
    use person::Confirm;
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
            by,
            format,
        } => {
            let expires = expires
                .map(|e| humantime::parse_duration(&e))
                .transpose()
                .map_err(|e| refused(Error::invalid(Part::Argument, format!("--expires: {e}"))))?;
            let confirm = Confirm::Type {
                what: format!("the principal's name (`{name}`)"),
                expected: name.trim().to_string(),
            };
            let who = person::person(engine, by.as_deref(), Grant::Admin, "token create", confirm)
                .await
                .map_err(refused)?;
            let made = engine
                .create_token(&who, &name, role, expires)
                .await
                .map_err(refused)?;
            eprintln!(
                "token for `{}` ({}){}: shown once, keep it secret",
                made.name,
                made.role,
                made.expires_at
                    .as_ref()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            emit(
                format,
                || made.token.clone(),
                || serde_json::json!({"name": made.name, "role": made.role, "expires_at": made.expires_at, "token": made.token}),
            );
        }
        TokenCommand::List { by, format } => {
            let who = person::person(
                engine,
                by.as_deref(),
                Grant::Admin,
                "token list",
                Confirm::Nothing,
            )
            .await
            .map_err(refused)?;
            let tokens = engine.tokens(&who).await.map_err(refused)?;
            if let Format::Json = format {
                println!("{}", serde_json::json!({ "tokens": tokens }));
                return Ok(());
            }
            for t in tokens {
                println!(
                    "{:<20} {:<8} created {} by {}{}{}",
                    t.name,
                    t.role,
                    t.created_at,
                    t.created_by,
                    t.expires_at
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default(),
                    t.revoked_at
                        .map(|r| format!(", REVOKED {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { name, by, format } => {
            let confirm = Confirm::Type {
                what: format!("the principal's name (`{name}`)"),
                expected: name.trim().to_string(),
            };
            let who = person::person(engine, by.as_deref(), Grant::Admin, "token revoke", confirm)
                .await
                .map_err(refused)?;
            let n = engine.revoke_tokens(&who, &name).await.map_err(refused)?;
            emit(
                format,
                || format!("revoked {n} token(s) of `{name}`"),
                || serde_json::json!({"name": name, "revoked": n}),
            );
        }
    }
    Ok(())
}
