//! Secrets never leave drydock: connection strings and passwords are masked in everything it
//! outputs, logs or stores. A leaf: it imports nothing of drydock.

/// Removes anything that looks like a connection string or a password from `s`.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = ["postgres://", "postgresql://", "mysql://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..pos]);
        out.push_str("[redacted connection string]");
        let tail = &rest[pos..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    // Every `password=...` and `PGPASSWORD=...`, not only the first.
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(value_start) = ["pgpassword=", "password="]
            .iter()
            .filter_map(|k| lower.find(k).map(|p| (p, p + k.len())))
            .min()
            .map(|(_, value)| value)
        else {
            break;
        };
        masked.push_str(&rest[..value_start]);
        masked.push_str("[redacted]");
        let value = &rest[value_start..];
        let end = value
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`' || c == ';')
            .unwrap_or(value.len());
        rest = &value[end..];
    }
    masked.push_str(rest);
    masked
}
