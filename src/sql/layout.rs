//! SQL laid out for a reader: a long one-line statement is broken before its clauses (`FROM`,
//! `WHERE`, `SET`, …) and after the commas between an `ALTER TABLE`'s actions; statements
//! written on one line go on lines of their own. Only whitespace changes, never inside a string,
//! a quoted identifier or a function body; SQL already laid out on several lines is kept as
//! written. For display only: what runs and what is checksummed is the SQL as written.

use super::lexer::{Token, tokenize};

/// A statement longer than this on one line is broken before its clauses.
const WIDTH: usize = 100;

/// Clauses a long statement is broken before, at parenthesis depth 0.
const CLAUSES: &[&str] = &[
    "FROM",
    "WHERE",
    "SET",
    "VALUES",
    "RETURNING",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "UNION",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "FULL",
    "CROSS",
    "ON",
    "SELECT",
];

pub fn readable(sql: &str) -> String {
    let Ok(tokens) = tokenize(sql) else {
        return sql.to_string();
    };
    // Byte offsets to start a new line at (the whitespace before each is replaced).
    let mut breaks: Vec<usize> = Vec::new();
    let mut statement_start = 0usize;
    let mut first: Option<String> = None;
    let mut previous: Option<&Token> = None;
    let mut depth = 0i32;
    let mut pending: Vec<usize> = Vec::new();
    let flush = |start: usize, end: usize, pending: &mut Vec<usize>, breaks: &mut Vec<usize>| {
        let text = sql[start..end].trim();
        if text.len() > WIDTH && !text.contains('\n') {
            breaks.append(pending);
        }
        pending.clear();
    };
    for (i, (pos, token)) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Semicolon if depth == 0 => {
                flush(statement_start, *pos, &mut pending, &mut breaks);
                // The next statement on a line of its own.
                if let Some((next, _)) = tokens.get(i + 1)
                    && !sql[*pos..*next].contains('\n')
                {
                    breaks.push(*next);
                }
                statement_start = pos + 1;
                first = None;
                previous = Some(token);
                continue;
            }
            _ => {}
        }
        if first.is_none()
            && let Token::Word(w) = token
        {
            first = Some(w.clone());
        }
        let lead = first.as_deref().unwrap_or_default();
        if depth == 0 && i > 0 {
            if let Token::Word(w) = token {
                let after = |p: &str| previous.is_some_and(|t| t.is_word(p));
                let clause = CLAUSES.contains(&w.as_str())
                    && !(w == "FROM" && after("DELETE"))
                    && !(w == "SET" && lead != "UPDATE" && lead != "WITH")
                    && !(w == "JOIN"
                        && previous.is_some_and(|t| {
                            ["LEFT", "RIGHT", "INNER", "FULL", "CROSS", "OUTER"]
                                .iter()
                                .any(|j| t.is_word(j))
                        }))
                    && !(w == "SELECT" && !after("UNION") && !after("ALL"))
                    && !(w == "ON"
                        && lead != "SELECT"
                        && lead != "WITH"
                        && lead != "INSERT"
                        && lead != "UPDATE"
                        && lead != "DELETE");
                if clause && lead != "CREATE" {
                    pending.push(*pos);
                }
            }
            if *token == Token::Punct(',')
                && lead == "ALTER"
                && let Some((next, _)) = tokens.get(i + 1)
            {
                pending.push(*next);
            }
        }
        previous = Some(token);
    }
    flush(statement_start, sql.len(), &mut pending, &mut breaks);
    breaks.sort_unstable();
    breaks.dedup();
    let mut out = String::with_capacity(sql.len() + breaks.len() * 3);
    let mut at = 0;
    for b in breaks {
        let before = sql[at..b].trim_end_matches([' ', '\t']);
        out.push_str(before);
        let statement_break = before.ends_with(';');
        out.push('\n');
        if !statement_break {
            out.push_str("  ");
        }
        at = b;
    }
    out.push_str(&sql[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_update_is_broken_before_its_clauses() {
        let sql = "UPDATE customer SET email = lower(email), last_update = now() WHERE store_id = 1 AND email IS NOT NULL AND active = 1";
        assert_eq!(
            readable(sql),
            "UPDATE customer\n  SET email = lower(email), last_update = now()\n  WHERE store_id = 1 AND email IS NOT NULL AND active = 1"
        );
    }

    #[test]
    fn alter_table_actions_go_one_per_line_and_statements_on_their_own() {
        let sql = "ALTER TABLE payment ADD COLUMN note text, ADD COLUMN cents bigint, ALTER COLUMN amount SET NOT NULL, DROP COLUMN old; SELECT 1";
        assert_eq!(
            readable(sql),
            "ALTER TABLE payment ADD COLUMN note text,\n  ADD COLUMN cents bigint,\n  ALTER COLUMN amount SET NOT NULL,\n  DROP COLUMN old;\nSELECT 1"
        );
    }

    #[test]
    fn short_or_laid_out_sql_and_bodies_are_kept() {
        let short = "UPDATE t SET a = 1 WHERE b = 2";
        assert_eq!(readable(short), short);
        let laid = format!("UPDATE t\nSET a = '{}'\nWHERE b = 2", "x".repeat(120));
        assert_eq!(readable(&laid), laid);
        let body = format!(
            "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET a = 1 WHERE b = '{}'; RETURN NEW; END $$",
            "y".repeat(100)
        );
        assert_eq!(readable(&body), body, "never inside a body");
        let literal = format!("SELECT '{} FROM x WHERE y' AS a", "z".repeat(120));
        assert_eq!(readable(&literal), literal);
    }
}
