//! Who acts: principals with a role (`agent`, `approver`, `admin`) and the channel they came by,
//! and the bearer tokens that prove it. A token is `ddk_<id>_<secret>`: the id finds its row,
//! the secret is kept only as a SHA-256 hash and compared in constant time. Tokens are made from
//! the operating system's randomness and shown once. A leaf: it imports nothing of drydock.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a principal may do. Ordered: each role may do what the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// Proposes, dry-runs, applies approved plans, validates, rolls back.
    Agent,
    /// Also approves, rejects, releases gates, signs hotfix waivers.
    Approver,
    /// Also creates and revokes tokens.
    Admin,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Agent => "agent",
            Grant::Approver => "approver",
            Grant::Admin => "admin",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grant {
    type Err = String;
    fn from_str(s: &str) -> Result<Grant, String> {
        match s {
            "agent" => Ok(Grant::Agent),
            "approver" => Ok(Grant::Approver),
            "admin" => Ok(Grant::Admin),
            other => Err(format!("unknown role `{other}` (agent, approver or admin)")),
        }
    }
}

impl TryFrom<String> for Grant {
    type Error = std::io::Error;
    fn try_from(s: String) -> Result<Grant, std::io::Error> {
        s.parse()
            .map_err(|e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// The channel an action came by, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Stdio,
    McpHttp,
    Web,
    Api,
    Cli,
    /// drydock itself, acting on what it found (reconciling a step a crash left unrecorded).
    Internal,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Stdio => "stdio",
            Via::McpHttp => "mcp-http",
            Via::Web => "web",
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Internal => "drydock",
        }
    }
}

/// Someone acting on drydock: a name, what they may do, how they came, and the operating-system
/// user of the process that acted for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub grant: Grant,
    pub via: Via,
    pub os_user: Option<String>,
}

impl Principal {
    /// An engineer at this machine's terminal who proved presence by typing what was asked.
    pub fn person(name: &str, grant: Grant) -> Principal {
        Principal {
            name: name.trim().to_string(),
            grant,
            via: Via::Cli,
            os_user: os_user(),
        }
    }

    /// drydock itself: what it records when it acts on its own findings, with no one's authority.
    pub fn drydock() -> Principal {
        Principal {
            name: "drydock".into(),
            grant: Grant::Agent,
            via: Via::Internal,
            os_user: os_user(),
        }
    }

    pub fn may(&self, needed: Grant) -> bool {
        self.grant >= needed
    }
}

/// The operating-system user running this process.
pub fn os_user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// A principal's name: what the audit log and the approvals show.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "principal name {name:?} must be 1-64 letters, digits, `-`, `_`, `.` or `@`"
        ))
    }
}

/// A freshly made token: the text shown once, and what the store keeps.
pub struct NewToken {
    pub token: String,
    pub id: String,
    pub hash: String,
}

/// `bytes` of the operating system's randomness (`/dev/urandom`), as hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The shortest passphrase drydock keeps: long enough that the argon2id hash, not its length,
/// is what a guesser is up against.
pub const MIN_PASSPHRASE: usize = 12;

/// A person's passphrase as drydock keeps it: an argon2id hash (PHC string) over a random salt.
pub fn hash_passphrase(passphrase: &str) -> std::io::Result<String> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    argon2::Argon2::default()
        .hash_password_with_salt(passphrase.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Whether `passphrase` is the one `hash` (a PHC string) was made from.
pub fn passphrase_matches(passphrase: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default()
        .verify_password(passphrase.as_bytes(), hash)
        .is_ok()
}

/// Makes a token from the operating system's randomness.
pub fn generate() -> std::io::Result<NewToken> {
    let hex = random_hex(30)?;
    let (id, secret) = hex.split_at(12);
    Ok(NewToken {
        token: format!("ddk_{id}_{secret}"),
        id: id.to_string(),
        hash: hash(secret),
    })
}

/// `ddk_<id>_<secret>` → (id, secret).
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix("ddk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (id.len() == 12 && secret.len() == 48 && hexish(id) && hexish(secret)).then_some((id, secret))
}

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `secret` hashes to `stored`.
pub fn verify(secret: &str, stored: &str) -> bool {
    same(&hash(secret), stored)
}

/// Compares two secrets without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_verify_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.token, b.token);
        let (id, secret) = parse(&a.token).unwrap();
        assert_eq!(id, a.id);
        assert!(verify(secret, &a.hash));
        assert!(!verify(secret, &b.hash));
        assert!(parse("ddk_short_x").is_none());
        assert!(parse(&a.token.replace("ddk_", "ddx_")).is_none());
        assert!(!a.hash.contains(secret), "only the hash is kept");
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Grant::Admin > Grant::Approver && Grant::Approver > Grant::Agent);
        assert!(Principal::person("alice", Grant::Approver).may(Grant::Agent));
        assert!(!Principal::person("bot", Grant::Agent).may(Grant::Approver));
        assert!(validate_name("alice@example.com").is_ok());
        assert!(validate_name("a b").is_err());
    }
}
