//! SQLite agent SQL, admitted by leading keyword and a pragma allowlist: no other database
//! files, no extensions, no file-touching functions, no durability or schema-storage pragmas.

use super::{Forbidden, Use, Verdict, first_words};
use crate::analysis::lexer::{self, Token};

/// Read-only pragmas an agent may use (introspection and integrity).
const SQLITE_PRAGMAS: &[&str] = &[
    "TABLE_INFO",
    "TABLE_XINFO",
    "TABLE_LIST",
    "INDEX_LIST",
    "INDEX_INFO",
    "INDEX_XINFO",
    "FOREIGN_KEY_LIST",
    "FOREIGN_KEY_CHECK",
    "INTEGRITY_CHECK",
    "QUICK_CHECK",
    "DEFER_FOREIGN_KEYS",
];

/// SQLite functions and tables that reach files or the database's raw pages.
const SQLITE_BEYOND: &[(&str, &str)] = &[
    ("LOAD_EXTENSION", "loads a shared library into the process"),
    ("READFILE", "reads a file of the server"),
    ("WRITEFILE", "writes a file on the server"),
    ("EDIT", "runs an editor program"),
    ("FTS3_TOKENIZER", "can register native code pointers"),
    ("SQLITE_DBPAGE", "writes the database's raw pages"),
    ("FSDIR", "lists the server's directories"),
    ("ZIPFILE", "reads and writes archive files"),
];

/// Admits one piece of SQLite agent SQL for `usage`.
pub fn sqlite(sql: &str, usage: Use) -> Verdict {
    let statements = lexer::split(sql).map_err(|e| Forbidden::new(first_words(sql), e.0))?;
    for st in &statements {
        let t = &st.tokens;
        let word = |i: usize| match t.get(i) {
            Some(Token::Word(w)) => w.as_str(),
            _ => "",
        };
        match word(0) {
            "ATTACH" | "DETACH" => {
                return Err(Forbidden::new(
                    word(0),
                    "opens or closes another database file",
                ));
            }
            "VACUUM" if t.iter().any(|x| x.is_word("INTO")) => {
                return Err(Forbidden::new("VACUUM INTO", "writes a file on the server"));
            }
            "PRAGMA" => {
                let name = match (t.get(1), t.get(2)) {
                    (Some(_), Some(Token::Punct('.'))) => word(3),
                    _ => word(1),
                };
                let assigns = t.contains(&Token::Punct('='));
                let ok = SQLITE_PRAGMAS.contains(&name)
                    && (!assigns || name == "DEFER_FOREIGN_KEYS")
                    && usage == Use::Step
                    || (usage == Use::Check && SQLITE_PRAGMAS.contains(&name) && !assigns);
                if !ok {
                    return Err(Forbidden::new(
                        format!("PRAGMA {}", name.to_lowercase()),
                        "changes files, durability or the schema's storage; only read-only introspection pragmas are admitted",
                    ));
                }
            }
            "CREATE"
                if t.iter().any(|x| x.is_word("VIRTUAL"))
                    && !t.iter().any(|x| {
                        ["FTS3", "FTS4", "FTS5", "RTREE"]
                            .iter()
                            .any(|m| x.is_word(m))
                    }) =>
            {
                return Err(Forbidden::new(
                    "CREATE VIRTUAL TABLE",
                    "uses a module other than fts3/fts4/fts5/rtree",
                ));
            }
            _ => {}
        }
        for tok in t {
            let name = match tok {
                Token::Word(w) => w.clone(),
                Token::Ident(i) => i.to_ascii_uppercase(),
                _ => continue,
            };
            if let Some((_, why)) = SQLITE_BEYOND.iter().find(|(n, _)| *n == name) {
                return Err(Forbidden::new(name.to_lowercase(), *why));
            }
        }
    }
    Ok(())
}
