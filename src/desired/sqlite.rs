//! Desired state on SQLite, read in SQLite's own DDL. SQLite keeps each table's `CREATE TABLE`
//! as written, and SQLite itself reads the desired one (the engine runs the desired DDL in a
//! database in memory and reads it back as a target's catalog is read): so both sides are the
//! same kind of catalog, compared column by column and constraint by constraint in a normal
//! form (`sql::definition::normal`: case, quotes and spacing aside, literals as written).
//!
//! What SQLite's `ALTER TABLE` does in place is planned so (a new column SQLite can add:
//! `ADD COLUMN` as written); anything else about a table (types, NOT NULL, defaults, CHECKs,
//! keys, collations, options) is one `rebuild-table` of it to the desired definition, every row
//! copied. Indexes are created and dropped as written. Renames and drops of columns and tables
//! have no SQLite procedure with a way back: refused as `unsupported-change` (after the
//! ambiguity and consent questions, as on PostgreSQL).

use std::collections::BTreeMap;

use serde_json::json;

use super::Options;
use super::diff::{Change, ambiguous, stem, unsupported};
use crate::db::{Catalog, TableInfo};
use crate::error::{Error, Part, Result};
use crate::sql::definition::{self, Definition, created, index_of, needs_a_value, normal};
use crate::sql::lexer::{Token, split};
use crate::sql::quote_ident;

/// A desired SQLite schema as read: the statements SQLite is to read, and the rest.
#[derive(Debug, Default)]
pub struct SqliteRead {
    /// Its `CREATE TABLE`s, then the `CREATE INDEX`es on those tables, as written: what the
    /// engine runs in memory to read it, and what is admitted as agent SQL first.
    pub ddl: Vec<String>,
    /// Statements beside its tables (views, triggers, anything else), described: never run.
    pub skipped: Vec<String>,
    /// `CREATE INDEX`es on tables it does not create, by table.
    pub orphans: BTreeMap<String, Vec<String>>,
}

impl SqliteRead {
    /// What is set aside, never run: the statements beside the tables, and indexes on relations
    /// that are not tables of the target (`changes` refuses those on its tables).
    pub fn set_aside(self) -> Vec<String> {
        let mut out = self.skipped;
        for (rel, statements) in self.orphans {
            out.extend(statements.iter().map(|s| super::not_a_table(s, &rel)));
        }
        out
    }
}

/// Reads a desired SQLite schema: its `CREATE TABLE` and `CREATE [UNIQUE] INDEX` statements,
/// everything else set aside.
pub fn read(sql: &str) -> Result<SqliteRead> {
    let invalid = |d: String| Error::invalid(Part::Plan, format!("`desired`: {d}"));
    let statements = split(sql).map_err(|e| invalid(format!("does not read as SQL: {}", e.0)))?;
    let mut out = SqliteRead::default();
    let mut tables: Vec<String> = Vec::new();
    let mut indexes: Vec<(String, String)> = Vec::new();
    for st in statements {
        // `CREATE TABLE` (a `CREATE TEMP TABLE` or `CREATE VIRTUAL TABLE` is set aside).
        let words = |a: &str, b: &str| matches!(st.tokens.as_slice(), [x, y, ..] if x.is_word(a) && y.is_word(b));
        if words("CREATE", "TABLE") {
            let name = created(&st.sql).map_err(|e| invalid(format!("{e}: {}", brief(&st.sql))))?;
            if name.starts_with("sqlite_") || name.starts_with("_drydock") {
                return Err(invalid(format!(
                    "`{name}` is SQLite's or drydock's own table, never the application's"
                )));
            }
            if definition::definition(&st.sql).is_err() || as_select(&st.tokens) {
                return Err(invalid(format!(
                    "`{name}` is created without a column list (`AS SELECT`): write its columns"
                )));
            }
            if tables.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
                return Err(invalid(format!("table `{name}` is created twice")));
            }
            tables.push(name);
            out.ddl.push(st.sql);
        } else if let Some((_, table)) = index_of(&st.sql) {
            indexes.push((table, st.sql));
        } else {
            out.skipped.push(brief(&st.sql));
        }
    }
    for (table, sql) in indexes {
        if tables.iter().any(|t| t.eq_ignore_ascii_case(&table)) {
            out.ddl.push(sql);
        } else {
            out.orphans.entry(table).or_default().push(brief(&sql));
        }
    }
    Ok(out)
}

/// `CREATE TABLE t AS SELECT …`: its columns come from a query, not a list.
fn as_select(tokens: &[Token]) -> bool {
    tokens
        .iter()
        .find(|t| t.is_word("AS") || **t == Token::Punct('('))
        .is_some_and(|t| t.is_word("AS"))
}

fn brief(sql: &str) -> String {
    crate::sql::first_words(sql, 8)
}

/// The changes that take `current` (the target's catalog) to `wanted` (the desired DDL as
/// SQLite read it): the tables `wanted` has, or every table with `whole_schema`.
pub fn changes(
    read: &SqliteRead,
    wanted: &Catalog,
    current: &Catalog,
    options: &Options,
) -> Result<Vec<Change>> {
    let find = |name: &str| -> Option<(&String, &TableInfo)> {
        current
            .tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    for rel in read.orphans.keys() {
        if find(rel).is_some() {
            return Err(Error::invalid(
                Part::Plan,
                format!(
                    "`desired`: `{rel}` is indexed but not created: give its CREATE TABLE as you want it (the whole table: what it leaves out would be removed)"
                ),
            ));
        }
    }
    let (mut created, mut altered, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for (name, want) in &wanted.tables {
        match find(name) {
            None => created.push(create_table(name, want)?),
            Some((have_name, have)) => {
                altered.extend(table_changes(have_name, want, have, options)?);
                altered.extend(index_changes(want, have));
            }
        }
    }
    if options.whole_schema {
        for name in current
            .tables
            .keys()
            .filter(|n| !wanted.tables.keys().any(|w| w.eq_ignore_ascii_case(n)))
        {
            if !options.allow_drop {
                return Err(Error::DropNeedsConsent {
                    what: format!(
                        "table `{name}` (it is not in `desired`, and `scope` is the schema)"
                    ),
                });
            }
            removed.push(unsupported(
                format!("dropping table `{name}` on SQLite"),
                "SQLite has no procedure that keeps a dropped table until the rollback window passes: back the database up, then drop it with `steps` in a plan of its own",
            ));
        }
    }
    if let Some(e) = removed.into_iter().next() {
        return Err(e);
    }
    Ok(created.into_iter().chain(altered).collect())
}

/// A new table: its `CREATE TABLE` and indexes as written, in one step.
fn create_table(name: &str, want: &TableInfo) -> Result<Change> {
    let mut up = vec![want.definition.clone().unwrap_or_default()];
    up.extend(indexes(want).into_values().map(|(_, sql)| sql));
    Ok(Change::Step {
        name: format!("create-{}", stem(name)),
        up: up.join(";\n"),
        down: format!("DROP TABLE {}", quote_ident(name)),
    })
}

/// A table's own indexes (not those SQLite makes for its keys), by lower-cased name: the name
/// as written and the statement.
fn indexes(t: &TableInfo) -> BTreeMap<String, (String, String)> {
    t.recreate
        .iter()
        .filter_map(|sql| index_of(sql).map(|(name, _)| (name.to_lowercase(), (name, sql.clone()))))
        .collect()
}

/// A table that both sides have: its columns and constraints.
fn table_changes(
    t: &str,
    want: &TableInfo,
    have: &TableInfo,
    options: &Options,
) -> Result<Vec<Change>> {
    let read = |info: &TableInfo| -> Result<Definition> {
        definition::definition(info.definition.as_deref().unwrap_or_default())
            .map_err(|e| Error::invalid(Part::Plan, format!("`desired`: `{t}`: {e}")))
    };
    let (wd, hd) = (read(want)?, read(have)?);
    let wcols: Vec<(String, &str)> = wd.columns().collect();
    let hcols: Vec<(String, &str)> = hd.columns().collect();
    let has =
        |cols: &[(String, &str)], n: &str| cols.iter().any(|(c, _)| c.eq_ignore_ascii_case(n));
    let gone: Vec<String> = hcols
        .iter()
        .filter(|(c, _)| !has(&wcols, c))
        .map(|(c, _)| c.clone())
        .collect();
    let new: Vec<(String, &str)> = wcols
        .iter()
        .filter(|(c, _)| !has(&hcols, c))
        .cloned()
        .collect();
    let renamed: Vec<(&String, &String)> = options
        .renames
        .iter()
        .filter(|(k, _)| {
            k.rsplit_once('.')
                .is_some_and(|(tt, _)| tt.eq_ignore_ascii_case(t))
        })
        .collect();
    asked(t, &gone, &new, &renamed, options)?;
    for (c, item) in &new {
        if needs_a_value(item) {
            return Err(unsupported(
                format!("`{t}.{c}` is NOT NULL without a default"),
                "existing rows need a value: give the column a DEFAULT in `desired` (or add it nullable, backfill it, then make it NOT NULL)",
            ));
        }
    }
    let item_of = |cols: &[(String, &str)], n: &str| {
        cols.iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(n))
            .map(|(_, i)| normal(i))
    };
    let sorted = |d: &Definition| {
        let mut v: Vec<String> = d.constraints().map(normal).collect();
        v.sort();
        v
    };
    let columns_changed = hcols
        .iter()
        .any(|(c, i)| item_of(&wcols, c) != Some(normal(i)));
    let reshaped = columns_changed
        || sorted(&wd) != sorted(&hd)
        || normal(&wd.options) != normal(&hd.options)
        || new.iter().any(|(c, item)| {
            let col = want.columns.iter().find(|x| x.name.eq_ignore_ascii_case(c));
            !addable(item, col.and_then(|x| x.default.as_deref()))
        });
    if reshaped {
        return Ok(vec![Change::Template {
            name: "rebuild-table",
            params: json!({"table": t, "definition": want.definition}),
        }]);
    }
    Ok(new
        .iter()
        .map(|(c, item)| Change::Step {
            name: format!("add-{}-{}", stem(t), stem(c)),
            up: format!("ALTER TABLE {} ADD COLUMN {item}", quote_ident(t)),
            down: format!(
                "ALTER TABLE {} DROP COLUMN {}",
                quote_ident(t),
                quote_ident(c)
            ),
        })
        .collect())
}

/// What `table_changes` asks before it plans: a column gone and one added (a rename?), a
/// rename, a drop — none of which SQLite can do with a way back.
fn asked(
    t: &str,
    gone: &[String],
    new: &[(String, &str)],
    renamed: &[(&String, &String)],
    options: &Options,
) -> Result<()> {
    if !gone.is_empty() && !new.is_empty() && !options.allow_drop && renamed.is_empty() {
        let new_names: Vec<String> = new.iter().map(|(c, _)| c.clone()).collect();
        return Err(ambiguous(t, gone, &new_names));
    }
    if let Some((from, to)) = renamed.first() {
        return Err(unsupported(
            format!("renaming `{from}` to `{to}` on SQLite"),
            "SQLite renames a column in place and at once (`ALTER TABLE t RENAME COLUMN old TO new`, SQLite 3.25+), with no expand/contract: write it as `steps` in a plan of its own, applied when the application reads the new name",
        ));
    }
    if let Some(c) = gone.first() {
        if !options.allow_drop {
            return Err(Error::DropNeedsConsent {
                what: format!("column `{t}.{c}`"),
            });
        }
        return Err(unsupported(
            format!("dropping column `{t}.{c}` on SQLite"),
            "SQLite has no procedure that keeps a dropped column until the rollback window passes: back the database up, then drop it with `steps` (`ALTER TABLE t DROP COLUMN c`, SQLite 3.35+) in a plan of its own",
        ));
    }
    Ok(())
}

/// Whether SQLite's `ALTER TABLE … ADD COLUMN` takes the column `item` (with the default the
/// catalog read): no key, no stored generated column, a constant default (none but NULL for a
/// foreign key). A NOT NULL column without one was refused before.
fn addable(item: &str, default: Option<&str>) -> bool {
    let tokens = crate::sql::lexer::tokenize(item).unwrap_or_default();
    let has = |w: &str| tokens.iter().any(|(_, t)| t.is_word(w));
    if has("PRIMARY") || has("UNIQUE") || has("STORED") {
        return false;
    }
    match default {
        None => true,
        Some(d) => constant(d) && (!has("REFERENCES") || d.eq_ignore_ascii_case("NULL")),
    }
}

/// A default SQLite's `ADD COLUMN` accepts: a literal, a signed number, NULL, TRUE or FALSE.
fn constant(default: &str) -> bool {
    let tokens: Vec<Token> = crate::sql::lexer::tokenize(default)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    match tokens.as_slice() {
        [Token::Str | Token::Number] => true,
        [Token::Punct('-' | '+'), Token::Number] => true,
        [w] => ["NULL", "TRUE", "FALSE"].iter().any(|k| w.is_word(k)),
        _ => false,
    }
}

/// A table's indexes: each one new, gone or changed is a step, as written.
fn index_changes(want: &TableInfo, have: &TableInfo) -> Vec<Change> {
    let (w, h) = (indexes(want), indexes(have));
    let drop = |name: &str| format!("DROP INDEX {}", quote_ident(name));
    let mut out = Vec::new();
    for (key, (name, sql)) in &w {
        match h.get(key) {
            None => out.push(Change::Step {
                name: format!("index-{}", stem(name)),
                up: sql.clone(),
                down: drop(name),
            }),
            Some((old_name, old)) if normal(old) != normal(sql) => out.push(Change::Step {
                name: format!("replace-index-{}", stem(name)),
                up: format!("{};\n{sql}", drop(old_name)),
                down: format!("{};\n{old}", drop(name)),
            }),
            Some(_) => {}
        }
    }
    for (key, (name, sql)) in &h {
        if !w.contains_key(key) {
            out.push(Change::Step {
                name: format!("drop-index-{}", stem(name)),
                up: drop(name),
                down: sql.clone(),
            });
        }
    }
    out
}
