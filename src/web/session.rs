//! Review-page sessions: a token logs in once; the browser then holds only a random session id
//! in an HttpOnly, SameSite=Strict cookie (Secure behind https). Each session has its own CSRF
//! token, which every POST form carries; a missing or wrong one is refused (403). Sessions live
//! in memory and end after eight hours, at logout, or as soon as their token is revoked or
//! expires (each request re-checks it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;

use crate::identity::Principal;

pub const COOKIE: &str = "dd_session";
/// The login form's own CSRF cookie (double submit: the form's hidden field must match it).
pub const LOGIN_COOKIE: &str = "dd_login";
const LIFETIME: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    /// The token that logged in, kept in memory only, re-checked on every request.
    pub token: String,
    started: Instant,
}

#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

impl Sessions {
    /// Starts a session for `principal`, who logged in with `token`; returns its id.
    pub fn start(&self, principal: Principal, token: &str) -> std::io::Result<String> {
        let id = random()?;
        let session = Session {
            principal,
            csrf: random()?,
            token: token.to_string(),
            started: Instant::now(),
        };
        let mut map = self.0.lock().expect("sessions");
        map.retain(|_, s| s.started.elapsed() < LIFETIME);
        map.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session the request's cookie names.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let map = self.0.lock().expect("sessions");
        map.get(&id)
            .filter(|s| s.started.elapsed() < LIFETIME)
            .map(|s| (id.clone(), s.clone()))
    }

    pub fn end(&self, id: &str) {
        self.0.lock().expect("sessions").remove(id);
    }
}

/// 32 random bytes as hex, from the operating system.
pub fn random() -> std::io::Result<String> {
    crate::identity::random_hex(32)
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for `name=value`: HttpOnly, SameSite=Strict, Path=/, Secure behind https.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Whether the browser reached us over https (directly or through a TLS proxy in front).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub use crate::identity::same;
