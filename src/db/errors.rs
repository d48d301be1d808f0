//! What an agent may read of a database error: the message's shape, names it wrote, never a
//! value the server read.

/// What an agent sees of a database error raised by SQL it wrote: the message's shape and the
/// SQLSTATE. A quoted value in the message that the agent's SQL does not contain is one the
/// server read (a file's content cast to `int`, a row's value cast to `regclass`) and is cut;
/// names the agent wrote stay, so the error still says which object was wrong. DETAIL and HINT
/// lines (which quote row values) are never included.
pub fn agent_error(e: &sqlx::Error, sql: &str) -> String {
    let sqlx::Error::Database(d) = e else {
        return crate::redact::redact(&e.to_string());
    };
    let message = d.message().lines().next().unwrap_or_default();
    // A PL/pgSQL error (RAISE, ASSERT: SQLSTATE class P0) says what the agent's code made it
    // say, which may be anything the code read: only what the agent wrote itself stays.
    let shaped = if raised(e).is_some() && !sql.to_lowercase().contains(&message.to_lowercase()) {
        "an error raised by the plan's PL/pgSQL, its message withheld (it may carry what the code read)".to_string()
    } else {
        // An integrity violation (SQLSTATE class 23) names the column, relation and constraint
        // PostgreSQL checked: those names stay. Elsewhere a quoted name may be a value cast to
        // one (`'…'::regclass` says `relation "…" does not exist`): masked.
        let integrity = d.code().is_some_and(|c| c.starts_with("23"));
        mask_values(message, sql, integrity)
    };
    match d.code() {
        // PostgreSQL's SQLSTATEs are five characters; SQLite's result codes are numbers.
        Some(code) if code.len() == 5 => format!("{shaped} (SQLSTATE {code})"),
        Some(code) => format!("{shaped} (SQLite code {code})"),
        None => shaped,
    }
}

/// The message of a PL/pgSQL error (SQLSTATE class P0), unmasked but redacted.
pub fn raised(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("P0")) => Some(
            crate::redact::redact(d.message().lines().next().unwrap_or_default()),
        ),
        _ => None,
    }
}

/// The words before which PostgreSQL's messages quote a schema object's name.
const OBJECT_WORDS: &[&str] = &[
    "column",
    "relation",
    "table",
    "constraint",
    "index",
    "view",
    "sequence",
    "schema",
    "trigger",
    "type",
    "domain",
    "function",
];

/// Replaces every `"..."` and `'...'` of `message` whose content `sql` does not contain with
/// `"…"` (`'…'`).
pub fn mask_read_values(message: &str, sql: &str) -> String {
    mask_values(message, sql, false)
}

/// `mask_read_values`, keeping the names PostgreSQL quotes after an object's kind when
/// `names` (an integrity violation's message).
fn mask_values(message: &str, sql: &str, names: bool) -> String {
    let known = sql.to_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else {
            if quote == '\'' {
                // An apostrophe ("can't"), not a quote.
                continue;
            }
            // An unterminated quote: whatever follows came from the server.
            out.push('…');
            return out;
        };
        let value = &rest[..close];
        // A name PostgreSQL quotes after the kind of object it names (`column "email"`,
        // `of relation "users"`, `constraint "users_pkey"`) is the schema's, which the agent
        // may read anyway (`inspect`): kept. A value read from rows never comes so.
        let named = names
            && quote == '"'
            && out[..out.len() - 1]
                .split_whitespace()
                .next_back()
                .is_some_and(|w| OBJECT_WORDS.contains(&w.to_lowercase().as_str()));
        if !value.is_empty() && (named || known.contains(&value.to_lowercase())) {
            out.push_str(value);
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    crate::redact::redact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_of_schema_objects_stay_in_a_masked_message_and_values_do_not() {
        let m = super::mask_values(
            "null value in column \"email\" of relation \"users\" violates not-null constraint \"users_email_nn\"",
            "INSERT INTO users SELECT * FROM staged",
            true,
        );
        assert_eq!(
            m,
            "null value in column \"email\" of relation \"users\" violates not-null constraint \"users_email_nn\""
        );
        assert_eq!(
            super::mask_values(
                "invalid input syntax for type integer: \"db-host-7\"",
                "SELECT 1",
                true
            ),
            "invalid input syntax for type integer: \"…\""
        );
        // Outside an integrity violation a quoted name may be a value cast to one.
        assert_eq!(
            super::mask_read_values(
                "relation \"s3cret\" does not exist",
                "SELECT (SELECT v FROM t)::regclass"
            ),
            "relation \"…\" does not exist"
        );
    }

    #[test]
    fn values_the_server_read_are_cut_from_errors() {
        let sql = "SELECT pg_read_file('/etc/hostname')::int = 1";
        assert_eq!(
            mask_read_values("invalid input syntax for type integer: \"db-host-7\"", sql),
            "invalid input syntax for type integer: \"…\""
        );
        assert_eq!(
            mask_read_values(
                "relation \"acct1\" does not exist",
                "SELECT ('acct' || id)::regclass"
            ),
            "relation \"…\" does not exist"
        );
        // Names the agent wrote stay.
        assert_eq!(
            mask_read_values(
                "column \"tier\" of relation \"Users\" already exists",
                "ALTER TABLE \"Users\" ADD COLUMN tier text"
            ),
            "column \"tier\" of relation \"Users\" already exists"
        );
        assert_eq!(
            mask_read_values("unterminated \"secret", "SELECT 1"),
            "unterminated \"…"
        );
        // Single quotes too; an apostrophe is not one.
        assert_eq!(
            mask_read_values("bad value 'user1@example.com' here", "SELECT 1"),
            "bad value '…' here"
        );
        assert_eq!(
            mask_read_values("can't do that to \"t\"", "ALTER TABLE t"),
            "can't do that to \"t\""
        );
    }
}
