//! A SQLite `CREATE TABLE` statement read at its column list (SQLite keeps each table's
//! statement as written): its items (columns and table constraints, as written), and a form of
//! any piece of SQL fit to compare (`normal`). What the table rebuild and the desired schema's
//! comparison read a SQLite table with.

use super::lexer::{Token, spans, tokenize};

/// A `CREATE TABLE` statement split at its column list.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The columns and table constraints, as written.
    pub items: Vec<String>,
    /// The text from the list's `(` to the end.
    pub body: String,
    /// What follows the list (`WITHOUT ROWID`, `STRICT`), as written.
    pub options: String,
}

impl Definition {
    /// The column items, by the column each defines.
    pub fn columns(&self) -> impl Iterator<Item = (String, &str)> {
        self.items
            .iter()
            .filter_map(|i| column_of(i).map(|c| (c, i.as_str())))
    }

    /// The table constraints (`PRIMARY KEY (…)`, `CHECK (…)`, `FOREIGN KEY …`), as written.
    pub fn constraints(&self) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .filter(|i| column_of(i).is_none())
            .map(String::as_str)
    }
}

/// Reads `sql`, a `CREATE TABLE` statement with a column list.
pub fn definition(sql: &str) -> Result<Definition, String> {
    let tokens = tokenize(sql).map_err(|e| e.0)?;
    let (mut depth, mut start, mut open) = (0usize, 0usize, None);
    let mut items = Vec::new();
    for (at, t) in &tokens {
        match t {
            Token::Punct('(') => {
                depth += 1;
                if depth == 1 {
                    open = Some(*at);
                    start = at + 1;
                }
            }
            Token::Punct(')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    items.push(sql[start..*at].trim().to_string());
                    let open = open.ok_or("no column list")?;
                    return Ok(Definition {
                        items,
                        body: sql[open..].to_string(),
                        options: sql[at + 1..]
                            .trim()
                            .trim_end_matches(';')
                            .trim()
                            .to_string(),
                    });
                }
            }
            Token::Punct(',') if depth == 1 => {
                items.push(sql[start..*at].trim().to_string());
                start = at + 1;
            }
            _ => {}
        }
    }
    Err(format!("{sql:?} has no column list drydock can read"))
}

/// The column item `item` names, if it is a column (not a table constraint).
pub fn column_of(item: &str) -> Option<String> {
    let tokens = tokenize(item).ok()?;
    let (_, first) = tokens.first()?;
    if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
        .iter()
        .any(|w| first.is_word(w))
    {
        return None;
    }
    first.name()
}

/// `sql` as a sequence of tokens to compare: keywords and names lower-cased and unquoted
/// (SQLite's names are case-insensitive), literals as written, comments and spacing gone.
/// Two texts with the same `normal` say the same thing to SQLite.
pub fn normal(sql: &str) -> String {
    let Ok(tokens) = spans(sql) else {
        return sql.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    tokens
        .into_iter()
        .map(|(at, t)| match t {
            Token::Word(w) => w.to_lowercase(),
            Token::Ident(i) => i.to_lowercase(),
            Token::Str | Token::Number => sql[at].to_string(),
            Token::Punct(c) => c.to_string(),
            Token::Semicolon => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table a `CREATE TABLE` statement creates (a temporary table, or one in another
/// database than `main`, refused).
pub fn created(sql: &str) -> Result<String, String> {
    let tokens: Vec<Token> = tokenize(sql)
        .map_err(|e| e.0)?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut at = 0;
    let mut word = |w: &str| {
        let is = tokens.get(at).is_some_and(|t| t.is_word(w));
        at += usize::from(is);
        is
    };
    if !(word("CREATE") && word("TABLE")) {
        return Err("not a `CREATE TABLE` statement of a lasting table".into());
    }
    if word("IF") && !(word("NOT") && word("EXISTS")) {
        return Err("`CREATE TABLE IF` without `NOT EXISTS`".into());
    }
    if let [schema, Token::Punct('.'), name, ..] = &tokens[at..]
        && schema.name().is_some_and(|s| s != "main")
    {
        return Err(format!(
            "`{}.{}` is in another database than the target's own (`main`)",
            schema.name().unwrap_or_default(),
            name.name().unwrap_or_default()
        ));
    }
    qualified_name(&tokens[at..]).ok_or_else(|| "a `CREATE TABLE` that names no table".into())
}

/// The index a `CREATE [UNIQUE] INDEX` statement creates, and its table.
pub fn index_of(sql: &str) -> Option<(String, String)> {
    let tokens: Vec<Token> = tokenize(sql).ok()?.into_iter().map(|(_, t)| t).collect();
    let mut at = usize::from(tokens.get(1).is_some_and(|t| t.is_word("UNIQUE"))) + 1;
    if !(tokens.first()?.is_word("CREATE") && tokens.get(at)?.is_word("INDEX")) {
        return None;
    }
    at += 1;
    if tokens.get(at)?.is_word("IF") {
        at += 3;
    }
    let index = qualified_name(tokens.get(at..)?)?;
    let on = tokens.iter().skip(at).position(|t| t.is_word("ON"))? + at;
    Some((index, qualified_name(tokens.get(on + 1..)?)?))
}

/// `name` or `main.name` at the start of `tokens`: the name (another database's: none).
fn qualified_name(tokens: &[Token]) -> Option<String> {
    match tokens {
        [schema, Token::Punct('.'), name, ..] => {
            (schema.name()? == "main").then_some(())?;
            name.name()
        }
        [name, ..] => name.name(),
        [] => None,
    }
}

/// A column item that gives a table's existing rows no value: NOT NULL without a default (or
/// with `DEFAULT NULL`). SQLite fills a key's rowid alias and a generated column itself.
pub fn needs_a_value(item: &str) -> bool {
    let tokens: Vec<Token> = tokenize(item)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let pair = |a: &str, b: &str| {
        tokens
            .windows(2)
            .any(|w| w[0].is_word(a) && w[1].is_word(b))
    };
    let defaulted = tokens.iter().any(|t| t.is_word("DEFAULT")) && !pair("DEFAULT", "NULL");
    let filled = tokens
        .iter()
        .any(|t| t.is_word("AS") || t.is_word("PRIMARY"));
    pair("NOT", "NULL") && !defaulted && !filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_split_at_top_level_commas() {
        let d = definition(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC(10, 2) NOT NULL DEFAULT 0, note TEXT, CHECK (price >= 0)) WITHOUT ROWID;",
        )
        .unwrap();
        assert_eq!(
            d.items,
            [
                "id INTEGER PRIMARY KEY",
                "price NUMERIC(10, 2) NOT NULL DEFAULT 0",
                "note TEXT",
                "CHECK (price >= 0)"
            ]
        );
        assert!(d.body.starts_with("(id INTEGER"));
        assert_eq!(d.options, "WITHOUT ROWID");
        assert_eq!(column_of(&d.items[3]), None);
        assert_eq!(column_of(&d.items[2]).as_deref(), Some("note"));
        assert_eq!(d.constraints().collect::<Vec<_>>(), ["CHECK (price >= 0)"]);
        assert_eq!(d.columns().count(), 3);
    }

    #[test]
    fn normal_forms_ignore_case_quotes_and_spacing_but_not_literals() {
        assert_eq!(
            normal("\"Name\"  TEXT   NOT NULL -- who\n DEFAULT 'A'"),
            normal("name text not null default 'A'")
        );
        assert_ne!(normal("s TEXT DEFAULT 'A'"), normal("s TEXT DEFAULT 'a'"));
        assert_ne!(normal("n INT DEFAULT 1"), normal("n INT DEFAULT 2"));
        assert_eq!(normal("[odd name] INT"), normal("`odd name` int"));
    }

    #[test]
    fn a_not_null_column_without_a_default_needs_a_value() {
        assert!(needs_a_value("c TEXT NOT NULL"));
        assert!(needs_a_value("c TEXT NOT NULL DEFAULT NULL"));
        assert!(!needs_a_value("c TEXT NOT NULL DEFAULT ''"));
        assert!(!needs_a_value("c TEXT"));
        assert!(!needs_a_value("id INTEGER PRIMARY KEY NOT NULL"));
        assert!(!needs_a_value("c INT NOT NULL AS (a + 1)"));
    }

    #[test]
    fn created_tables_and_indexes_are_named() {
        assert_eq!(created("CREATE TABLE [Album] (id INT)").unwrap(), "Album");
        assert_eq!(
            created("create table if not exists main.t (id INT)").unwrap(),
            "t"
        );
        assert!(created("CREATE TEMP TABLE t (id INT)").is_err());
        assert!(created("CREATE TABLE other.t (id INT)").is_err());
        assert_eq!(
            index_of("CREATE UNIQUE INDEX IF NOT EXISTS \"ix\" ON t (a) WHERE a > 0"),
            Some(("ix".into(), "t".into()))
        );
        assert_eq!(
            index_of("CREATE INDEX ix ON main.T (a)"),
            Some(("ix".into(), "t".into()))
        );
        assert_eq!(index_of("CREATE TABLE t (a)"), None);
    }
}
