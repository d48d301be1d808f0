//! Time as drydock records it: RFC 3339 UTC with milliseconds (sortable as text). A leaf: it
//! imports nothing of drydock.

use std::time::{Duration, SystemTime};

/// Now, as an RFC 3339 UTC timestamp with milliseconds (sortable as text).
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// How long ago an RFC 3339 timestamp was; `None` when it does not parse.
pub fn age(ts: &str) -> Option<Duration> {
    let t = humantime::parse_rfc3339_weak(ts.trim_end_matches('Z')).ok()?;
    Some(SystemTime::now().duration_since(t).unwrap_or_default())
}

/// `ts + d` as RFC 3339.
pub fn add(ts: &str, d: Duration) -> Option<String> {
    let t = humantime::parse_rfc3339_weak(ts.trim_end_matches('Z')).ok()?;
    Some(humantime::format_rfc3339_millis(t + d).to_string())
}
