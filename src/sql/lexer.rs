//! A small SQL lexer: enough to split a script into statements and read each statement's leading
//! keywords, respecting quotes, comments, PostgreSQL dollar quotes and trigger bodies. It never
//! decides safety on its own: it feeds the statement classifier and the single-query check.

/// One lexical token. Comments and whitespace are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word, upper-cased (keywords and bare identifiers).
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unquoted.
    Ident(String),
    /// A string literal or dollar-quoted body.
    Str,
    Number,
    Punct(char),
    Semicolon,
}

impl Token {
    pub fn is_word(&self, w: &str) -> bool {
        matches!(self, Token::Word(x) if x == w)
    }

    /// The name this token denotes when used as an identifier.
    pub fn name(&self) -> Option<String> {
        match self {
            Token::Word(w) => Some(w.to_lowercase()),
            Token::Ident(i) => Some(i.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError(pub String);

/// Tokenises `sql`, returning each token with the byte offset where it starts.
pub fn tokenize(sql: &str) -> Result<Vec<(usize, Token)>, LexError> {
    Ok(spans(sql)?
        .into_iter()
        .map(|(at, t)| (at.start, t))
        .collect())
}

/// Tokenises `sql`, returning each token with the bytes it spans (a literal's text is
/// `&sql[span]`).
pub fn spans(sql: &str) -> Result<Vec<(std::ops::Range<usize>, Token)>, LexError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let before = out.len();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .ok_or_else(|| LexError("unterminated /* comment".into()))?;
                i += 2 + end + 2;
            }
            b'\'' => {
                i = quoted_end(b, i, b'\'')
                    .ok_or_else(|| LexError("unterminated string literal".into()))?;
                out.push((start, Token::Str));
            }
            b'"' | b'`' => {
                let end = quoted_end(b, i, c)
                    .ok_or_else(|| LexError("unterminated quoted identifier".into()))?;
                let inner = &sql[i + 1..end - 1];
                let q = c as char;
                out.push((
                    start,
                    Token::Ident(inner.replace(&format!("{q}{q}"), &q.to_string())),
                ));
                i = end;
            }
            b'[' => {
                let end = sql[i..]
                    .find(']')
                    .ok_or_else(|| LexError("unterminated [identifier]".into()))?;
                out.push((start, Token::Ident(sql[i + 1..i + end].to_string())));
                i += end + 1;
            }
            b'$' => {
                let (end, token) = dollar(sql, i)?;
                out.push((start, token));
                i = end;
            }
            b';' => {
                out.push((start, Token::Semicolon));
                i += 1;
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push((start, Token::Number));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
                out.push((start, Token::Word(sql[start..i].to_ascii_uppercase())));
            }
            _ => {
                let ch = sql[i..].chars().next().unwrap_or('?');
                out.push((start, Token::Punct(ch)));
                i += ch.len_utf8();
            }
        }
        if out.len() > before {
            ends.push(i);
        }
    }
    Ok(out
        .into_iter()
        .zip(ends)
        .map(|((start, t), end)| (start..end, t))
        .collect())
}

/// At a `$`: a `$tag$ … $tag$` body (PostgreSQL), or a `$1` parameter; its end and token.
fn dollar(sql: &str, i: usize) -> Result<(usize, Token), LexError> {
    let b = sql.as_bytes();
    let tag_end = sql[i + 1..]
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .map(|n| i + 1 + n);
    match tag_end {
        Some(te) if b[te] == b'$' && !b[i + 1..te].first().is_some_and(u8::is_ascii_digit) => {
            let tag = &sql[i..=te];
            let body_end = sql[te + 1..]
                .find(tag)
                .ok_or_else(|| LexError(format!("unterminated dollar quote {tag}")))?;
            Ok((te + 1 + body_end + tag.len(), Token::Str))
        }
        _ => {
            let mut end = i + 1;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            Ok((end, Token::Number))
        }
    }
}

/// End (exclusive) of a quoted run starting at `i`, where a doubled quote escapes itself.
fn quoted_end(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    i += 1;
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// One statement of a script: its text (without the trailing `;`) and its tokens.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub tokens: Vec<Token>,
}

/// Splits a script into statements. Semicolons inside trigger bodies (`BEGIN ... END`) and
/// `CASE ... END` do not split.
pub fn split(sql: &str) -> Result<Vec<Statement>, LexError> {
    let tokens = tokenize(sql)?;
    let mut out = Vec::new();
    let mut cur: Vec<Token> = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth = 0i32;
    let mut is_trigger = false;
    for (pos, tok) in tokens {
        if tok == Token::Semicolon && depth <= 0 {
            if let Some(s) = start.take() {
                out.push(Statement {
                    sql: sql[s..pos].trim().to_string(),
                    tokens: std::mem::take(&mut cur),
                });
            }
            depth = 0;
            is_trigger = false;
            continue;
        }
        if start.is_none() {
            start = Some(pos);
        }
        if cur.len() < 4 && tok.is_word("TRIGGER") {
            is_trigger = true;
        }
        if tok.is_word("CASE") || (is_trigger && tok.is_word("BEGIN")) {
            depth += 1;
        } else if tok.is_word("END") {
            depth -= 1;
        }
        cur.push(tok);
    }
    if let Some(s) = start {
        out.push(Statement {
            sql: sql[s..].trim().trim_end_matches(';').trim().to_string(),
            tokens: cur,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = split(
            "CREATE TABLE a(x text default ';'); -- c;\n/* ; */ INSERT INTO \"a;b\" VALUES (1);",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].sql, "CREATE TABLE a(x text default ';')");
        assert_eq!(s[1].tokens[2], Token::Ident("a;b".into()));
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let s = split(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = CASE WHEN 1 THEN 2 END; DELETE FROM b; END; SELECT 1",
        )
        .unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].sql.ends_with("END"));
    }

    #[test]
    fn dollar_quotes_hide_semicolons() {
        let s = split("DO $body$ BEGIN PERFORM 1; END $body$; SELECT $1").unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(split("SELECT 'oops").is_err());
    }
}
