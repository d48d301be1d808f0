//! Credentials: bearer tokens (only a token's id and the SHA-256 of its secret are kept) and the
//! passphrases of the people who decide (only an argon2id hash).

use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store, audit, now};
use crate::identity::{Grant, Principal};

/// A token as the store keeps it: never its secret.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Grant,
    #[serde(skip)]
    pub hash: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Store {
    pub async fn insert_token(&self, row: &TokenRow, by: &Principal) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query(
            "INSERT INTO tokens (id, name, role, hash, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.role.as_str())
        .bind(&row.hash)
        .bind(&row.created_at)
        .bind(&row.created_by)
        .bind(&row.expires_at)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({"token": row.id, "name": row.name, "role": row.role, "expires_at": row.expires_at});
        audit(&mut tx, by, "token-create", None, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, name, role, hash, created_at, created_by, expires_at, revoked_at FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, name, role, hash, created_at, created_by, expires_at, revoked_at FROM tokens ORDER BY name, created_at",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes every live token of `name`; returns how many.
    pub async fn revoke_tokens(&self, name: &str, by: &Principal) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(now())
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let detail = serde_json::json!({"name": name, "revoked": n});
        audit(&mut tx, by, "token-revoke", None, detail).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Sets `row.name`'s passphrase (and role), replacing any earlier one.
    pub async fn set_passphrase(&self, row: &PassphraseRow, by: &Principal) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query(
            "INSERT INTO passphrases (name, role, hash, set_at, set_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash,
                 set_at = excluded.set_at, set_by = excluded.set_by",
        )
        .bind(&row.name)
        .bind(row.role.as_str())
        .bind(&row.hash)
        .bind(&row.set_at)
        .bind(&row.set_by)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({"name": row.name, "role": row.role});
        audit(&mut tx, by, "passphrase-set", None, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn passphrase(&self, name: &str) -> Result<Option<PassphraseRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT name, role, hash, set_at, set_by FROM passphrases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Whether any admin has a passphrase (until one does, the first is set at a terminal).
    pub async fn has_admin_passphrase(&self) -> Result<bool> {
        // language=SQL
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM passphrases WHERE role = 'admin'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

/// A person's passphrase as the store keeps it: an argon2id hash, never the passphrase.
#[derive(Debug, Clone, FromRow)]
pub struct PassphraseRow {
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Grant,
    pub hash: String,
    pub set_at: String,
    pub set_by: String,
}
