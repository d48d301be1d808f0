//! The embedded demo: with no `drydock.toml`, drydock serves a SQLite production/staging pair
//! under `.drydock/`, created with sample data on first start, so `cargo run -- serve` works on a
//! fresh machine with nothing else. Staging holds a tenth of production's rows, as real staging
//! databases often do, so the dry-run's row ratio and estimate have something to say.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::error::{Error, Result};

/// The demo configuration rooted at `dir` (the databases are created by `ensure`).
pub fn config(dir: &Path) -> Result<Config> {
    let text = r#"
        errors = "ERRORS.md"
        state_dir = "."

        [targets.production]
        url = "sqlite:demo-production.db"
        role = "production"
        staging = "staging"

        [targets.staging]
        url = "sqlite:demo-staging.db"
        role = "staging"
    "#;
    Config::parse(text, dir, None)
}

/// Whether `serve` has created the demo under `dir`.
pub fn exists(dir: &Path) -> bool {
    dir.join("demo-production.db").exists()
}

/// Creates the demo databases if they do not exist yet.
pub async fn ensure(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    seed(&dir.join("demo-production.db"), 2_000).await?;
    seed(&dir.join("demo-staging.db"), 200).await
}

/// Writes the sample schema and `users` rows (and three orders each for a tenth of them) into a
/// new database at `path`. An existing file is left alone.
pub async fn seed(path: &Path, users: u32) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension("db.partial");
    let _ = std::fs::remove_file(&tmp);
    let err = |e: sqlx::Error| Error::Target {
        target: path.display().to_string(),
        cause: e.to_string(),
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(&tmp)
        .create_if_missing(true)
        .connect()
        .await
        .map_err(err)?;
    let mut tx = conn.begin().await.map_err(err)?;
    // language=SQL
    sqlx::raw_sql(
        "CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
            status TEXT NOT NULL DEFAULT 'new'
        );
        CREATE INDEX orders_user_id ON orders (user_id);
        CREATE VIEW order_totals AS SELECT user_id, sum(total_cents) AS total FROM orders GROUP BY user_id;",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    for i in 1..=users {
        sqlx::query("INSERT INTO users (id, email, name) VALUES (?, ?, ?)")
            .bind(i64::from(i))
            .bind(format!("user{i}@example.com"))
            .bind(format!("User {i}"))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if i % 10 == 0 {
            for k in 0..3 {
                sqlx::query("INSERT INTO orders (user_id, total_cents, status) VALUES (?, ?, ?)")
                    .bind(i64::from(i))
                    .bind(i64::from(i * 100 + k))
                    .bind(if k == 0 { "paid" } else { "new" })
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
        }
    }
    tx.commit().await.map_err(err)?;
    conn.close().await.map_err(err)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
