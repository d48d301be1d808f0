//! A table's attachments — indexes, CHECKs, foreign keys — compared: those `desired` adds,
//! each with its template (or built as written), and those it no longer has.

use serde_json::json;

use super::diff::{Change, short_ident, stem, unsupported};
use super::qualified;
use super::schema::{CheckC, ForeignKey, Index, Table};
use crate::error::Result;
use crate::sql::quote_ident;

/// What changes among a table's attachments.
#[derive(Default)]
pub(super) struct Attachments {
    pub added: Vec<Change>,
    pub removed: Vec<Change>,
}

/// Indexes, CHECKs and foreign keys: those to add, and (as a result) those to remove.
pub(super) fn attachments(want: &Table, have: &Table) -> Result<Attachments> {
    let mut out = Attachments::default();
    indexes(want, have, &mut out)?;
    checks(want, have, &mut out);
    foreign_keys(want, have, &mut out)?;
    Ok(out)
}

fn indexes(want: &Table, have: &Table, out: &mut Attachments) -> Result<()> {
    let t = &want.name;
    let same = |a: &Index, b: &Index| a.shape == b.shape;
    for i in want
        .indexes
        .iter()
        .filter(|i| !have.indexes.iter().any(|h| same(i, h)))
    {
        out.added.push(match (&i.columns, i.name.as_deref()) {
            (Some(cols), name) => Change::Template {
                name: "add-index",
                params: json!({"table": t, "columns": cols, "name": name, "unique": i.unique}),
            },
            // Over expressions, partial, with an operator class: built as written, alone.
            (None, _) => Change::Step {
                name: format!("index-{}", stem(&i.built_as)),
                up: i.create.clone(),
                down: format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    quote_ident(&i.built_as)
                ),
            },
        });
    }
    for i in have
        .indexes
        .iter()
        .filter(|h| !want.indexes.iter().any(|i| same(i, h)))
    {
        let Some(name) = &i.name else { continue };
        if want.indexes.iter().any(|w| w.name.as_ref() == Some(name)) {
            return Err(unsupported(
                format!("index `{name}` of `{t}` changes its definition"),
                "build the new index under another name in `desired`, then remove the old one in a later plan",
            ));
        }
        if i.constraint {
            return Err(unsupported(
                format!("unique constraint `{name}` of `{t}` removed"),
                "drop the constraint with `steps` (`ALTER TABLE … DROP CONSTRAINT`), its down re-adding it",
            ));
        }
        out.removed.push(Change::Template {
            name: "drop-index",
            params: json!({"name": name}),
        });
    }
    Ok(())
}

fn checks(want: &Table, have: &Table, out: &mut Attachments) {
    let t = &want.name;
    let same = |a: &CheckC, b: &CheckC| a.expr.key == b.expr.key;
    for (n, c) in want
        .checks
        .iter()
        .filter(|c| !have.checks.iter().any(|h| same(c, h)))
        .enumerate()
    {
        let name = c.name.clone().unwrap_or_else(|| {
            short_ident(&format!("{}_check_{}", stem(t), have.checks.len() + n))
        });
        out.added.push(Change::Template {
            name: "add-check-constraint",
            params: json!({"table": t, "name": name, "expression": c.expr.sql}),
        });
    }
    for c in have
        .checks
        .iter()
        .filter(|h| !want.checks.iter().any(|c| same(c, h)))
    {
        if let Some(name) = &c.name {
            out.removed
                .push(drop_constraint(t, name, &format!("CHECK ({})", c.expr.sql)));
        }
    }
}

/// A referential action: PostgreSQL's code, `add-foreign-key`'s name for it, its SQL.
const ACTIONS: &[(char, &str, &str)] = &[
    ('r', "restrict", "RESTRICT"),
    ('c', "cascade", "CASCADE"),
    ('n', "set_null", "SET NULL"),
    ('d', "set_default", "SET DEFAULT"),
];

fn action(code: Option<char>) -> Option<(&'static str, &'static str)> {
    ACTIONS
        .iter()
        .find(|(c, ..)| Some(*c) == code)
        .map(|(_, param, sql)| (*param, *sql))
}

fn foreign_keys(want: &Table, have: &Table, out: &mut Attachments) -> Result<()> {
    let t = &want.name;
    let same = |a: &ForeignKey, b: &ForeignKey| {
        (&a.columns, &a.ref_table, &a.ref_columns, &a.actions)
            == (&b.columns, &b.ref_table, &b.ref_columns, &b.actions)
    };
    for f in want
        .foreign_keys
        .iter()
        .filter(|f| !have.foreign_keys.iter().any(|h| same(f, h)))
    {
        let mut codes = f.actions.chars();
        let (on_update, on_delete) = (action(codes.next()), action(codes.next()));
        if codes.next() != Some('s') {
            return Err(unsupported(
                format!("foreign key of `{t}` with a MATCH type"),
                "add it with `steps`: `ADD CONSTRAINT … NOT VALID`, then `VALIDATE CONSTRAINT` in its own step",
            ));
        }
        out.added.push(Change::Template {
            name: "add-foreign-key",
            params: json!({"table": t, "columns": f.columns, "ref_table": f.ref_table,
                           "ref_columns": f.ref_columns, "name": f.name,
                           "on_update": on_update.map(|a| a.0), "on_delete": on_delete.map(|a| a.0)}),
        });
    }
    for f in have
        .foreign_keys
        .iter()
        .filter(|h| !want.foreign_keys.iter().any(|f| same(f, h)))
    {
        let Some(name) = &f.name else { continue };
        let cols = |c: &[String]| {
            c.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut codes = f.actions.chars();
        let mut actions = String::new();
        if let Some((_, sql)) = action(codes.next()) {
            actions.push_str(&format!(" ON UPDATE {sql}"));
        }
        if let Some((_, sql)) = action(codes.next()) {
            actions.push_str(&format!(" ON DELETE {sql}"));
        }
        let definition = format!(
            "FOREIGN KEY ({}) REFERENCES {} ({}){actions}",
            cols(&f.columns),
            qualified(&f.ref_table),
            cols(&f.ref_columns),
        );
        out.removed.push(drop_constraint(t, name, &definition));
    }
    Ok(())
}

/// A constraint removed; its down adds it back `NOT VALID` and validates it.
fn drop_constraint(t: &str, name: &str, definition: &str) -> Change {
    let (table, n) = (qualified(t), quote_ident(name));
    Change::Step {
        name: format!("drop-{}", stem(name)),
        up: format!("ALTER TABLE {table} DROP CONSTRAINT {n}"),
        down: format!(
            "ALTER TABLE {table} ADD CONSTRAINT {n} {definition} NOT VALID;\nALTER TABLE {table} VALIDATE CONSTRAINT {n}"
        ),
    }
}
