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

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A Unix time as the number `YYYYMMDDHHMMSS` (UTC): how migration tools' users version files.
pub fn compact_utc(unix: i64) -> i64 {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_default()
}

/// Says how long a phase of an apply took since `since`, at `DRYDOCK_LOG=drydock::phases=info`
/// on stderr (`phase=backup ms=12.3`): the apply bench reads them to show where an apply's time
/// goes; nothing in drydock does.
pub fn phase(name: &str, since: std::time::Instant) {
    tracing::info!(
        target: "drydock::phases",
        phase = %name,
        ms = format_args!("{:.1}", since.elapsed().as_secs_f64() * 1000.0)
    );
}
