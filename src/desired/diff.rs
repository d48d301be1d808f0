//! The differences between the desired tables and the catalog's, each as the change that makes
//! it without downtime, in an order each can run in: new tables (referenced ones first), then
//! per table its renames, new columns, retyped columns, defaults and NULLs; then indexes,
//! CHECKs and foreign keys; then what is removed (constraints, indexes, columns, tables).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::schema::{Col, ColDefault, Table};
use super::{Options, qualified};
use crate::error::{Error, Part, Result};
use crate::sql::quote_ident;

/// One difference, said as what makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A drydock template with its parameters.
    Template {
        name: &'static str,
        params: serde_json::Value,
    },
    /// A step drydock writes itself: its name's stem, `up` and `down`.
    Step {
        name: String,
        up: String,
        down: String,
    },
}

/// The changes that take `current` (the catalog's tables the desired DDL names, or all of them
/// with `whole_schema`) to `desired`; empty when there is nothing to change.
pub fn changes(
    desired: &BTreeMap<String, Table>,
    current: &BTreeMap<String, Table>,
    options: &Options,
) -> Result<Vec<Change>> {
    let pending = pending_renames(desired, current, options)?;
    let options = &Options {
        renames: pending,
        ..options.clone()
    };
    let resolved = referenced_keys(desired, current);
    let desired = &resolved;
    let mut early = Vec::new();
    let mut middle = Vec::new();
    let mut removals = Vec::new();
    for t in creation_order(desired, current) {
        let mut up = vec![t.create.clone().unwrap_or_default()];
        up.extend(t.after_create.iter().cloned());
        early.push(Change::Step {
            name: format!("create-{}", stem(&t.name)),
            up: up.join(";\n"),
            down: format!("DROP TABLE {}", qualified(&t.name)),
        });
    }
    for (name, want) in desired {
        let Some(have) = current.get(name) else {
            continue;
        };
        if want.partitioning || have.partitioning {
            // A partition takes its keys, indexes and NOT NULLs from its parent: its columns'
            // names and types are what a schema file says of it.
            let shape = |t: &Table| -> Vec<(String, String)> {
                t.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone()))
                    .collect()
            };
            if shape(want) != shape(have) {
                return Err(unsupported(
                    format!("partitioned table `{name}`"),
                    "change a partitioned table as `steps` (`add-index` handles its indexes)",
                ));
            }
            continue;
        }
        if want.primary_key != have.primary_key {
            return Err(unsupported(
                format!(
                    "`{name}`'s primary key ({:?} → {:?})",
                    have.primary_key, want.primary_key
                ),
                "a new primary key is a unique index built CONCURRENTLY, then `ADD CONSTRAINT … PRIMARY KEY USING INDEX`: write it as `steps`",
            ));
        }
        let marks = (early.len(), middle.len(), removals.len());
        early.extend(columns(want, have, options)?);
        if want.comment != have.comment {
            early.push(comment(
                format!("comment-{}", stem(name)),
                format!("TABLE {}", qualified(name)),
                &want.comment,
                &have.comment,
            ));
        }
        let attached = super::attach::attachments(want, have)?;
        middle.extend(attached.added);
        removals.extend(attached.removed);
        removals.extend(dropped_columns(want, have, options)?);
        outside_the_path(
            name,
            early[marks.0..]
                .iter()
                .chain(&middle[marks.1..])
                .chain(&removals[marks.2..]),
        )?;
    }
    if options.whole_schema {
        for name in current.keys().filter(|n| !desired.contains_key(*n)) {
            if !options.allow_drop {
                return Err(Error::DropNeedsConsent {
                    what: format!(
                        "table `{name}` (it is not in `desired`, and `scope` is the schema)"
                    ),
                });
            }
            removals.push(Change::Template {
                name: "drop-table",
                params: json!({"table": name}),
            });
        }
    }
    early.extend(middle);
    early.extend(removals);
    Ok(early)
}

/// `REFERENCES t` without columns references `t`'s primary key, as the catalog then prints it.
fn referenced_keys(
    desired: &BTreeMap<String, Table>,
    current: &BTreeMap<String, Table>,
) -> BTreeMap<String, Table> {
    let key_of = |t: &str| {
        desired
            .get(t)
            .or_else(|| current.get(t))
            .and_then(|t| t.primary_key.clone())
    };
    let mut out = desired.clone();
    for t in out.values_mut() {
        for f in &mut t.foreign_keys {
            if f.ref_columns.is_empty()
                && let Some(key) = key_of(&f.ref_table)
            {
                f.ref_columns = key;
            }
        }
    }
    out
}

pub(super) fn stem(name: &str) -> String {
    name.replace('.', "-")
}

pub(super) fn unsupported(what: String, manual: &str) -> Error {
    Error::UnsupportedChange {
        what,
        manual: manual.to_string(),
    }
}

/// The renames still to make: each names a column the catalog has and `desired` does not, and
/// a new name that `desired` has and the catalog does not. One the catalog shows made (the old
/// name gone, the new one there) is done, not refused: the same `desired` planned again after
/// its apply is nothing to change.
fn pending_renames(
    desired: &BTreeMap<String, Table>,
    current: &BTreeMap<String, Table>,
    options: &Options,
) -> Result<BTreeMap<String, String>> {
    let mut pending = BTreeMap::new();
    for (from, to) in &options.renames {
        let bad = |why: String| {
            Error::invalid(
                Part::Plan,
                format!("`renames` {{\"{from}\": \"{to}\"}}: {why}"),
            )
        };
        let Some((table, column)) = from.rsplit_once('.') else {
            return Err(bad("the key is `table.column`".into()));
        };
        let (Some(want), Some(have)) = (desired.get(table), current.get(table)) else {
            return Err(bad(format!(
                "`{table}` is not both in `desired` and on the target"
            )));
        };
        if want.column(column).is_some() || want.column(to).is_none() {
            return Err(bad(format!(
                "`{table}.{to}` must be in `desired`, and `{table}.{column}` not"
            )));
        }
        match (have.column(column), have.column(to)) {
            (None, Some(_)) => continue,
            (Some(_), None) => {
                pending.insert(from.clone(), to.clone());
            }
            (None, None) => {
                return Err(bad(format!("the target has no column `{table}.{column}`")));
            }
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "the target has both `{table}.{column}` and `{table}.{to}` (a rename under way: finish or roll back its plan first)"
                )));
            }
        }
    }
    Ok(pending)
}

/// The tables of `desired` the catalog does not have, each after the new tables it references.
fn creation_order<'a>(
    desired: &'a BTreeMap<String, Table>,
    current: &BTreeMap<String, Table>,
) -> Vec<&'a Table> {
    let mut new: Vec<&Table> = desired
        .values()
        .filter(|t| !current.contains_key(&t.name))
        .collect();
    let mut out: Vec<&Table> = Vec::new();
    while !new.is_empty() {
        let placed: BTreeSet<&str> = out.iter().map(|t| t.name.as_str()).collect();
        let ready = new.iter().position(|t| {
            t.foreign_keys.iter().all(|f| {
                f.ref_table == t.name
                    || placed.contains(f.ref_table.as_str())
                    || !new.iter().any(|n| n.name == f.ref_table)
            })
        });
        // A cycle of references: the rest in name order (the dry-run says what fails).
        out.push(new.remove(ready.unwrap_or(0)));
    }
    out
}

/// Renamed, added and changed columns of one table.
fn columns(want: &Table, have: &Table, options: &Options) -> Result<Vec<Change>> {
    let t = &want.name;
    let renamed: BTreeMap<&str, &str> = options
        .renames
        .iter()
        .filter_map(|(k, v)| {
            let (table, col) = k.rsplit_once('.')?;
            (table == t).then_some((col, v.as_str()))
        })
        .collect();
    let gone: Vec<&Col> = have
        .columns
        .iter()
        .filter(|c| want.column(&c.name).is_none() && !renamed.contains_key(c.name.as_str()))
        .collect();
    let new: Vec<&Col> = want
        .columns
        .iter()
        .filter(|c| have.column(&c.name).is_none() && !renamed.values().any(|v| *v == c.name))
        .collect();
    if !gone.is_empty() && !new.is_empty() && !options.allow_drop {
        let name = |c: &&Col| c.name.clone();
        return Err(ambiguous(
            t,
            &gone.iter().map(name).collect::<Vec<_>>(),
            &new.iter().map(name).collect::<Vec<_>>(),
        ));
    }
    let mut out = Vec::new();
    for (from, to) in &renamed {
        let (old, new) = (
            have.column(from).expect("checked"),
            want.column(to).expect("checked"),
        );
        if old.ty != new.ty
            || old.not_null != new.not_null
            || old.default != new.default
            || old.comment != new.comment
        {
            return Err(unsupported(
                format!("`{t}.{from}` renamed to `{to}` and changed at once"),
                "rename in one plan, change the column in the next",
            ));
        }
        out.push(Change::Template {
            name: "rename-column",
            params: json!({"table": t, "column": from, "new_name": to}),
        });
    }
    for c in new {
        out.push(added_column(t, c)?);
        if c.comment.is_some() {
            out.push(column_comment(t, c, &None));
        }
    }
    for w in &want.columns {
        if let Some(h) = have.column(&w.name) {
            out.extend(changed_column(t, w, h)?);
        }
    }
    Ok(out)
}

/// drydock's templates take a table by its plain name (the search path's schema): a change of
/// a table in another schema that needs one is refused by name, not as a template's parameter.
fn outside_the_path<'a>(name: &str, changes: impl Iterator<Item = &'a Change>) -> Result<()> {
    let mut changes = changes;
    if name.contains('.') && changes.any(|c| matches!(c, Change::Template { .. })) {
        return Err(unsupported(
            format!("`{name}`, a table outside the search path's schema"),
            "drydock's templates name a table of the search path's schema: change this one with `steps` in a plan of its own (drydock's own steps — new tables, defaults, comments — are planned in any schema)",
        ));
    }
    Ok(())
}

/// `ambiguous-change`: `t` loses the columns `gone` and gains `new` — renamed, or dropped and
/// added? Each reading listed with the answer that says it.
pub(super) fn ambiguous(t: &str, gone: &[String], new: &[String]) -> Error {
    let names = |cols: &[String]| {
        cols.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut readings = Vec::new();
    for g in gone {
        for n in new {
            readings.push(format!(
                "`{t}.{g}` renamed to `{n}`: answer `renames: {{\"{t}.{g}\": \"{n}\"}}`"
            ));
        }
    }
    readings.push(format!(
        "{} dropped (its data lost) and {} added: answer `allow_drop: true`",
        names(gone),
        names(new)
    ));
    Error::AmbiguousChange {
        what: format!("`{t}` loses {} and gains {}", names(gone), names(new)),
        readings,
    }
}

fn added_column(t: &str, c: &Col) -> Result<Change> {
    let value = match &c.default {
        Some(ColDefault::Value(v, _)) => Some(v.clone()),
        _ => None,
    };
    Ok(match (c.not_null, &c.default, value) {
        (false, None, _) => Change::Template {
            name: "add-column",
            params: json!({"table": t, "column": c.name, "type": c.ty_sql}),
        },
        (false, Some(_), Some(v)) => Change::Template {
            name: "add-column",
            params: json!({"table": t, "column": c.name, "type": c.ty_sql, "default": v}),
        },
        (true, Some(_), Some(v)) if !v.is_null() => Change::Template {
            name: "add-not-null-column",
            params: json!({"table": t, "column": c.name, "type": c.ty_sql, "default": v}),
        },
        (true, None, _) => {
            return Err(unsupported(
                format!("`{t}.{}` is NOT NULL without a default", c.name),
                "existing rows need a value: give the column a DEFAULT in `desired` (or add it nullable, backfill it, then make it NOT NULL)",
            ));
        }
        (not_null, Some(d), _) => {
            // Computed or sequence defaults: drydock's own ALTER, the analysis judges it.
            if matches!(d, ColDefault::Sequence) {
                return Err(unsupported(
                    format!("new serial or identity column `{t}.{}`", c.name),
                    "numbering existing rows is a backfill: add the column with `steps`",
                ));
            }
            let col = quote_ident(&c.name);
            let mut up = format!(
                "ALTER TABLE {} ADD COLUMN {col} {} DEFAULT {}",
                qualified(t),
                c.ty_sql,
                d.sql()
            );
            if not_null {
                up.push_str(" NOT NULL");
            }
            Change::Step {
                name: format!("add-{}-{}", stem(t), c.name),
                up,
                down: format!("ALTER TABLE {} DROP COLUMN {col}", qualified(t)),
            }
        }
    })
}

/// A column on both sides: its type, default and NULL-ness as `desired` says.
fn changed_column(t: &str, w: &Col, h: &Col) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let (table, col) = (qualified(t), quote_ident(&w.name));
    if w.comment != h.comment {
        out.push(column_comment(t, w, &h.comment));
    }
    if w.ty != h.ty {
        out.push(Change::Template {
            name: "change-column-type",
            params: json!({"table": t, "column": w.name, "new_type": w.ty_sql}),
        });
        return Ok(out);
    }
    let sequence = |d: &Option<ColDefault>| matches!(d, Some(ColDefault::Sequence));
    if w.default != h.default
        && !(sequence(&w.default) && (sequence(&h.default) || h.default.is_none()))
    {
        let set = |d: &Option<ColDefault>| match d {
            Some(d) => format!(
                "ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {}",
                d.sql()
            ),
            None => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"),
        };
        if sequence(&w.default) || sequence(&h.default) {
            return Err(unsupported(
                format!("`{t}.{}`'s numbering (serial or identity)", w.name),
                "change a sequence default as `steps`",
            ));
        }
        out.push(Change::Step {
            name: format!("default-{}-{}", stem(t), w.name),
            up: set(&w.default),
            down: set(&h.default),
        });
    }
    match (w.not_null, h.not_null) {
        (false, true) => out.push(Change::Step {
            name: format!("nullable-{}-{}", stem(t), w.name),
            up: format!("ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL"),
            down: format!("ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"),
        }),
        (true, false) => {
            // A validated CHECK lets SET NOT NULL skip its scan under the exclusive lock.
            let check = short_ident(&format!("{}_{}_not_null", stem(t), w.name));
            out.push(Change::Template {
                name: "add-check-constraint",
                params: json!({"table": t, "name": check, "expression": format!("{col} IS NOT NULL")}),
            });
            out.push(Change::Step {
                name: format!("not-null-{}-{}", stem(t), w.name),
                up: format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;\nALTER TABLE {table} DROP CONSTRAINT {}",
                    quote_ident(&check)
                ),
                down: format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {} CHECK ({col} IS NOT NULL) NOT VALID;\nALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL",
                    quote_ident(&check)
                ),
            });
        }
        _ => {}
    }
    Ok(out)
}

/// `COMMENT ON … IS` the wanted text, its down the comment it had (or none).
fn comment(name: String, on: String, want: &Option<String>, had: &Option<String>) -> Change {
    let text = |c: &Option<String>| match c {
        Some(c) => crate::sql::quote_literal(c),
        None => "NULL".into(),
    };
    Change::Step {
        name,
        up: format!("COMMENT ON {on} IS {}", text(want)),
        down: format!("COMMENT ON {on} IS {}", text(had)),
    }
}

fn column_comment(t: &str, c: &Col, had: &Option<String>) -> Change {
    comment(
        format!("comment-{}-{}", stem(t), c.name),
        format!("COLUMN {}.{}", qualified(t), quote_ident(&c.name)),
        &c.comment,
        had,
    )
}

fn dropped_columns(want: &Table, have: &Table, options: &Options) -> Result<Vec<Change>> {
    let t = &want.name;
    let mut out = Vec::new();
    for c in &have.columns {
        let renamed = options.renames.contains_key(&format!("{t}.{}", c.name));
        if want.column(&c.name).is_some() || renamed {
            continue;
        }
        if !options.allow_drop {
            return Err(Error::DropNeedsConsent {
                what: format!("column `{t}.{}`", c.name),
            });
        }
        out.push(Change::Template {
            name: "drop-column",
            params: json!({"table": t, "column": c.name}),
        });
    }
    Ok(out)
}

/// A name drydock makes up, cut to PostgreSQL's 63 bytes.
pub(super) fn short_ident(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    out
}
