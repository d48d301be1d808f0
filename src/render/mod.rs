//! Templates (Tera, from `templates/`) rendered with typed parameters into plan steps, and the one
//! place where identifiers and values are made safe to splice into SQL. Templates escape through
//! our filters — `ident` (validate + quote), `literal` (escape a value), `sqltype`, `comment` —
//! never through autoescape, which Tera applies only to HTML. Imports `analysis` (the privilege
//! boundary for expression parameters), `db` (a column's
//! dependents, as data), `plan`, `config` and the leaves; never `engine` or `store`.
//!
//! A rendered template is a readable migration script whose `-- drydock:` markers delimit steps,
//! their `up`/`down`, and checks; `parse_script` turns it back into structured steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tera::{Kwargs, State, Tera, TeraResult, Value};

mod carry;
mod data;
mod lookup;
mod rebuild;
mod removals;

pub use carry::{Move, Views};
mod templates;
pub mod views;

use crate::db::{Catalog, ColumnDependents};
use crate::error::{Error, Result};
use crate::plan::{Check, Expect, Gate, Step};

pub use crate::sql::{literal_value, quote_ident, quote_literal, validate_ident, validate_type};

fn tera_err(msg: String) -> tera::Error {
    tera::Error::message(msg)
}

fn engine() -> &'static Tera {
    static TERA: std::sync::OnceLock<Tera> = std::sync::OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = Tera::new();
        t.register_filter(
            "ident",
            |v: &str, _: Kwargs, _: &State| -> TeraResult<String> {
                validate_ident(v).map_err(tera_err)?;
                Ok(quote_ident(v))
            },
        );
        t.register_filter(
            "ident_bare",
            |v: &str, _: Kwargs, _: &State| -> TeraResult<String> {
                // Step and check names in markers: validated, unquoted (dashes allowed).
                let ok = !v.is_empty()
                    && v.len() <= 63
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if ok {
                    Ok(v.to_string())
                } else {
                    Err(tera_err(format!("{v:?} is not a valid step or check name")))
                }
            },
        );
        t.register_filter(
            "literal",
            |v: Value, _: Kwargs, _: &State| -> TeraResult<String> {
                let json = serde_json::to_value(&v).map_err(|e| tera_err(e.to_string()))?;
                literal_value(&json).map_err(tera_err)
            },
        );
        t.register_filter(
            "sqltype",
            |v: &str, _: Kwargs, _: &State| -> TeraResult<String> {
                validate_type(v).map_err(tera_err)
            },
        );
        t.register_filter("comment", |v: &str, _: Kwargs, _: &State| -> String {
            // Keeps free text inside a `--` comment: no newline can end it early.
            v.split_whitespace().collect::<Vec<_>>().join(" ")
        });
        t.register_filter(
            "json",
            |v: Value, _: Kwargs, _: &State| -> TeraResult<String> {
                // Through serde_json's sorted maps: the same script, byte for byte, every time.
                let sorted = serde_json::to_value(&v).map_err(|e| tera_err(e.to_string()))?;
                serde_json::to_string(&sorted).map_err(|e| tera_err(e.to_string()))
            },
        );
        t.register_filter(
            "expect",
            |v: &str, _: Kwargs, _: &State| -> TeraResult<String> {
                v.parse::<Expect>().map(|e| e.to_string()).map_err(tera_err)
            },
        );
        for (name, source) in PARTIALS {
            t.add_raw_template(name, source)
                .expect("embedded partials compile");
        }
        for tpl in TEMPLATES {
            t.add_raw_template(tpl.name, tpl.source)
                .expect("embedded templates compile");
        }
        t
    })
}

/// Pieces the templates share (`{% include "name" %}`), from `templates/_partials/`.
const PARTIALS: &[(&str, &str)] = &[
    (
        "rename-column-sync",
        include_str!("../../templates/_partials/rename-column-sync.sql"),
    ),
    (
        "change-column-type-sync",
        include_str!("../../templates/_partials/change-column-type-sync.sql"),
    ),
    (
        "carry-indexes-step",
        include_str!("../../templates/_partials/carry-indexes-step.sql"),
    ),
    (
        "carry-guard",
        include_str!("../../templates/_partials/carry-guard.sql"),
    ),
    (
        "carry-sequence",
        include_str!("../../templates/_partials/carry-sequence.sql"),
    ),
    (
        "carry-names",
        include_str!("../../templates/_partials/carry-names.sql"),
    ),
    (
        "carry-names-back",
        include_str!("../../templates/_partials/carry-names-back.sql"),
    ),
    (
        "carry-restore",
        include_str!("../../templates/_partials/carry-restore.sql"),
    ),
    (
        "carry-views-drop",
        include_str!("../../templates/_partials/carry-views-drop.sql"),
    ),
    (
        "move-data-sync",
        include_str!("../../templates/_partials/move-data-sync.sql"),
    ),
    (
        "move-data-unsync",
        include_str!("../../templates/_partials/move-data-unsync.sql"),
    ),
    (
        "carry-views-create",
        include_str!("../../templates/_partials/carry-views-create.sql"),
    ),
];

/// Parameters of `migration`, the general skeleton for a custom change.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationParams {
    /// What the change achieves and why.
    pub goal: String,
    /// Tables, rows and services affected.
    pub impact: Option<String>,
    /// Risk level and the reason for it.
    pub risk: Option<String>,
    /// How the change is undone, and for how long that stays possible.
    pub rollback_strategy: Option<String>,
    /// The step's name (letters, digits, `-`, `_`); defaults to `migration`.
    pub step_name: Option<String>,
    /// SQL of the change.
    pub up: String,
    /// SQL that undoes `up` exactly.
    pub down: String,
    /// Validation queries run after `up`.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// Parameters of `add-column`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddColumnParams {
    /// Table to extend (an identifier: letters, digits, `_`).
    pub table: String,
    /// The new column's name.
    pub column: String,
    /// Column type, e.g. `integer`, `text`, `varchar(64)`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Default for existing and new rows (string, number, boolean or null).
    pub default: Option<serde_json::Value>,
}

/// Reads, from a template's params, the column it moves.
pub(crate) type MovesFn = fn(&serde_json::Value) -> std::result::Result<Move, String>;

/// Completes a template's render context from the target's catalog (an index's definition, a
/// table's columns and keys), refusing what the catalog shows cannot be done.
/// How a template reads the target's catalog.
#[derive(Clone, Copy)]
pub(crate) enum Reads {
    Nothing,
    /// It cannot be rendered without (its `down` is written from what it reads).
    Required(CatalogFn),
    /// It is rendered for what it reads when a target is given (a partitioned table), and as
    /// for a plain table without one.
    IfGiven(CatalogFn),
}

pub(crate) type CatalogFn = fn(
    &mut serde_json::Value,
    &Catalog,
    Option<&ColumnDependents>,
) -> std::result::Result<(), String>;

/// What a template read from its target before rendering.
#[derive(Default, Clone, Copy)]
pub struct Facts<'a> {
    /// The moved column's dependents (see `moved_column`).
    pub deps: Option<&'a ColumnDependents>,
    /// The target's catalog (see `reads_catalog`).
    pub catalog: Option<&'a Catalog>,
}

pub(crate) struct TemplateDef {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) source: &'static str,
    pub(crate) schema: fn() -> schemars::Schema,
    /// Parses and validates the params, returning the render context.
    pub(crate) context: fn(serde_json::Value) -> std::result::Result<serde_json::Value, String>,
    /// For a template that moves a column (expand/contract): which column, from its params.
    /// Rendering it needs the column's dependents, carried to its successor as `carry`.
    pub(crate) moves: Option<MovesFn>,
    /// Whether and how it reads the target's catalog.
    pub(crate) catalog: Reads,
    /// How it runs on a SQLite target.
    pub(crate) sqlite: rebuild::Sqlite,
}

fn typed<T: for<'de> Deserialize<'de> + Serialize>(
    v: serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

impl Serialize for MigrationParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "goal": self.goal,
            "impact": self.impact.as_deref().unwrap_or("(not stated)"),
            "risk": self.risk.as_deref().unwrap_or("(not stated)"),
            "rollback_strategy": self.rollback_strategy.as_deref().unwrap_or("run the down script below"),
            "step_name": self.step_name.clone().unwrap_or_else(|| "migration".into()),
            "up": self.up.trim_end().trim_end_matches(';'), "down": self.down.trim_end().trim_end_matches(';'),
            "checks": self.checks.iter().map(|c| serde_json::json!({"name": c.name, "sql": c.sql.trim().trim_end_matches(';'), "expect": c.expect.to_string()})).collect::<Vec<_>>(),
        })
        .serialize(s)
    }
}

impl Serialize for AddColumnParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m =
            serde_json::json!({"table": self.table, "column": self.column, "type": self.ty});
        if let Some(d) = &self.default {
            m["default"] = d.clone();
        }
        m.serialize(s)
    }
}

const TEMPLATES: &[TemplateDef] = &[
    TemplateDef {
        name: "migration",
        description: "The general skeleton for a custom change: goal, impact, risk, rollback strategy, up, down and validation queries in one step.",
        source: include_str!("../../templates/migration.sql"),
        schema: || schemars::schema_for!(MigrationParams),
        context: typed::<MigrationParams>,
        moves: None,
        catalog: Reads::Nothing,
        sqlite: rebuild::Sqlite::Same,
    },
    TemplateDef {
        name: "add-column",
        description: "Add a nullable column with an optional constant default; down drops it.",
        source: include_str!("../../templates/add-column.sql"),
        schema: || schemars::schema_for!(AddColumnParams),
        context: typed::<AddColumnParams>,
        moves: None,
        catalog: Reads::Nothing,
        sqlite: rebuild::Sqlite::Same,
    },
    templates::ADD_NOT_NULL_COLUMN,
    templates::RENAME_COLUMN,
    templates::CHANGE_COLUMN_TYPE,
    templates::BACKFILL,
    templates::ADD_INDEX,
    templates::ADD_FOREIGN_KEY,
    templates::REBUILD_TABLE,
    templates::ADD_CHECK_CONSTRAINT,
    removals::DROP_INDEX,
    removals::DROP_COLUMN,
    removals::DROP_TABLE,
    data::MOVE_DATA,
    data::SPLIT_TABLE,
    data::MERGE_TABLES,
];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateInfo {
    pub name: String,
    pub description: String,
    /// The parameters' JSON schema.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub params: serde_json::Value,
}

/// A rendered template: the script, and the steps and checks it defines.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rendered {
    pub template: String,
    /// The parameters that are the agent's SQL expressions (see `agent_expressions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_sql: Vec<String>,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    /// The whole script, readable as a migration file.
    pub script: String,
}

pub fn list() -> Vec<TemplateInfo> {
    TEMPLATES
        .iter()
        .map(|t| TemplateInfo {
            name: t.name.into(),
            description: t.description.into(),
            params: serde_json::to_value((t.schema)()).unwrap_or_default(),
        })
        .collect()
}

/// A template's source and schema, for the `drydock://templates/{name}` resource.
pub fn source(name: &str) -> Result<(String, TemplateInfo)> {
    let t = TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::UnknownTemplate(name.into()))?;
    let info = list().into_iter().find(|i| i.name == name).expect("listed");
    Ok((t.source.to_string(), info))
}

/// The `(table, column)` a template moves, when it moves one: its dependents must be read from
/// the target and passed to `render`.
pub fn moved_column(name: &str, params: &serde_json::Value) -> Option<(String, String)> {
    let t = TEMPLATES.iter().find(|t| t.name == name)?;
    let m = (t.moves?)(params).ok()?;
    Some((m.table, m.from))
}

/// Whether a template reads the target's catalog (pass it in `Facts::catalog`).
pub fn reads_catalog(name: &str) -> bool {
    TEMPLATES
        .iter()
        .any(|t| t.name == name && !matches!(t.catalog, Reads::Nothing))
}

/// Renders a template with what it read from the target (see `moved_column`, `reads_catalog`).
pub fn render(name: &str, params: serde_json::Value, facts: Facts<'_>) -> Result<Rendered> {
    let t = TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::UnknownTemplate(name.into()))?;
    let refuse = |reason: String| Error::TemplateParams {
        template: name.into(),
        reason,
    };
    forbid_in_params(name, &params)?;
    if let Some(catalog) = facts
        .catalog
        .filter(|c| c.engine == crate::sql::Dialect::Sqlite)
    {
        match t.sqlite {
            rebuild::Sqlite::Same => {}
            rebuild::Sqlite::No => {
                return Err(refuse(format!(
                    "`{name}` is a PostgreSQL procedure; on this SQLite target write the change as `steps` (templates for SQLite: {})",
                    TEMPLATES
                        .iter()
                        .filter(|t| !matches!(t.sqlite, rebuild::Sqlite::No))
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            rebuild::Sqlite::Own(own) => {
                let agent_sql = agent_expressions(&params);
                let script = own(params, catalog).map_err(refuse)?;
                let (steps, checks) = parse_script(&script).map_err(refuse)?;
                return Ok(Rendered {
                    template: name.into(),
                    agent_sql,
                    steps,
                    checks,
                    script,
                });
            }
        }
    }
    let agent_sql = agent_expressions(&params);
    let moved = t.moves.map(|m| m(&params)).transpose().map_err(refuse)?;
    let mut ctx_value = (t.context)(params).map_err(refuse)?;
    // A template whose SQL is SQLite's too may still say some things SQLite's way.
    ctx_value["sqlite"] = serde_json::json!(
        facts
            .catalog
            .is_some_and(|c| c.engine == crate::sql::Dialect::Sqlite)
    );
    if let Some(m) = moved {
        let deps = facts.deps.ok_or_else(|| {
            refuse(format!(
                "`{name}` carries {}.{}'s indexes, constraints, identity and comment to its successor and reads them from the database: give `target`",
                m.table, m.from
            ))
        })?;
        let carried = carry::Carried::new(&m, deps).map_err(refuse)?;
        ctx_value["carry"] = serde_json::to_value(carried).map_err(|e| refuse(e.to_string()))?;
    }
    match (t.catalog, facts.catalog) {
        (Reads::Nothing, _) | (Reads::IfGiven(_), None) => {}
        (Reads::Required(_), None) => {
            return Err(refuse(format!(
                "`{name}` reads the target's catalog (definitions, keys, dependents) to write its `down`: give `target`"
            )));
        }
        (Reads::Required(complete) | Reads::IfGiven(complete), Some(catalog)) => {
            complete(&mut ctx_value, catalog, facts.deps).map_err(refuse)?;
        }
    }
    let ctx = tera::Context::from_serialize(&ctx_value).map_err(|e| refuse(e.to_string()))?;
    let script = engine()
        .render(t.name, &ctx)
        .map_err(|e| refuse(tera_message(&e)))?;
    let (steps, checks) = parse_script(&script).map_err(refuse)?;
    Ok(Rendered {
        template: name.into(),
        agent_sql,
        steps,
        checks,
        script,
    })
}

/// The string parameters that are SQL expressions the agent wrote (`price * 100`,
/// `email <> lower(email)`, `numeric(12,2)`): those that parse as one and are no plain name (a
/// table, a column, a type like `bigint`), which drydock quotes or validates itself.
fn agent_expressions(params: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut leaves = vec![params];
    while let Some(v) = leaves.pop() {
        match v {
            serde_json::Value::String(s) => {
                let s = s.trim();
                if crate::sql::validate_ident(s).is_err()
                    && pg_query::parse(&format!("SELECT ({s})"), 0).is_ok()
                    && !out.iter().any(|o| o == s)
                {
                    out.push(s.to_string());
                }
            }
            serde_json::Value::Array(items) => leaves.extend(items),
            serde_json::Value::Object(map) => leaves.extend(map.values()),
            _ => {}
        }
    }
    out
}

/// A parameter that is an expression (a backfill's `set`, a `using`, a CHECK) lands in SQL that
/// drydock's own PL/pgSQL may run at run time, where the parse-time boundary cannot see it: so
/// every parameter that reads as an expression is admitted like agent SQL first.
fn forbid_in_params(template: &str, params: &serde_json::Value) -> Result<()> {
    use crate::analysis::privilege::{Use, postgres};
    let mut leaves = vec![params];
    while let Some(v) = leaves.pop() {
        match v {
            serde_json::Value::String(s) => {
                let sql = format!("SELECT ({s})");
                if pg_query::parse(&sql, 0).is_err() {
                    continue;
                }
                if let Err(f) = postgres(&sql, Use::Step) {
                    return Err(Error::Forbidden {
                        place: format!("template `{template}` parameter {s:?}"),
                        construct: format!("`{}`", f.construct),
                        reason: f.reason,
                    });
                }
            }
            serde_json::Value::Array(items) => leaves.extend(items),
            serde_json::Value::Object(map) => leaves.extend(map.values()),
            _ => {}
        }
    }
    Ok(())
}

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Reads `-- drydock:step NAME [manual|after=DURATION]`, `-- drydock:up`, `-- drydock:down`,
/// `-- drydock:backfill` (a JSON backfill spec), `-- drydock:restore` (a JSON restore spec, for
/// the step's `down`) and `-- drydock:check NAME EXPECT` markers.
pub fn parse_script(script: &str) -> std::result::Result<(Vec<Step>, Vec<Check>), String> {
    enum Section {
        None,
        Up,
        Down,
        Backfill,
        Restore,
        Check(String, Expect),
    }
    fn flush(
        section: &Section,
        buf: &mut String,
        steps: &mut [Step],
        checks: &mut Vec<Check>,
    ) -> std::result::Result<(), String> {
        let text = std::mem::take(buf).trim().to_string();
        let last = steps.last_mut();
        match (section, last) {
            (Section::Up, Some(s)) => s.up = (!text.is_empty()).then_some(text),
            (Section::Down, Some(s)) => s.down = (!text.is_empty()).then_some(text),
            (Section::Backfill, Some(s)) => {
                s.backfill = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| format!("a backfill section is not a backfill spec: {e}"))?,
                )
            }
            (Section::Restore, Some(s)) if !text.is_empty() => {
                s.restore = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| format!("a restore section is not a restore spec: {e}"))?,
                )
            }
            (Section::Check(name, expect), _) => checks.push(Check {
                name: name.clone(),
                sql: text,
                expect: *expect,
            }),
            _ => {}
        }
        Ok(())
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut checks = Vec::new();
    let mut section = Section::None;
    let mut buf = String::new();
    for line in script.lines() {
        let Some(marker) = line.trim().strip_prefix("-- drydock:") else {
            buf.push_str(line);
            buf.push('\n');
            continue;
        };
        flush(&section, &mut buf, &mut steps, &mut checks)?;
        let mut parts = marker.split_whitespace();
        section = match parts.next() {
            Some("step") => {
                let name = parts
                    .next()
                    .ok_or("a step marker needs a name")?
                    .to_string();
                let gate = match parts.next() {
                    None => None,
                    Some("manual") => Some(Gate::Manual),
                    Some(g) => match g.strip_prefix("after=") {
                        Some(d) => Some(Gate::After {
                            duration: d.to_string(),
                        }),
                        None => return Err(format!("unknown gate {g:?}")),
                    },
                };
                steps.push(Step {
                    name: Some(name),
                    up: None,
                    down: None,
                    backfill: None,
                    gate,
                    restore: None,
                });
                Section::None
            }
            Some("up") if !steps.is_empty() => Section::Up,
            Some("down") if !steps.is_empty() => Section::Down,
            Some("backfill") if !steps.is_empty() => Section::Backfill,
            Some("restore") if !steps.is_empty() => Section::Restore,
            Some("check") => {
                let name = parts
                    .next()
                    .ok_or("a check marker needs a name")?
                    .to_string();
                let expect = parts
                    .next()
                    .ok_or("a check marker needs an expectation")?
                    .parse()?;
                Section::Check(name, expect)
            }
            other => return Err(format!("unexpected marker {other:?}")),
        };
    }
    flush(&section, &mut buf, &mut steps, &mut checks)?;
    Ok((steps, checks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quoting_neutralises_hostile_names() {
        assert_eq!(
            quote_ident(r#"users"; DROP TABLE users; --"#),
            r#""users""; DROP TABLE users; --""#
        );
        assert!(validate_ident(r#"users"; DROP TABLE users; --"#).is_err());
        assert!(validate_ident("users_2").is_ok());
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn add_column_renders_quoted_sql_and_a_down() {
        let r = render(
            "add-column",
            json!({"table": "users", "column": "plan", "type": "text", "default": "free's"}),
            Facts::default(),
        )
        .unwrap();
        assert_eq!(r.steps.len(), 1);
        assert_eq!(
            r.steps[0].up.as_deref(),
            Some(r#"ALTER TABLE "users" ADD COLUMN "plan" text DEFAULT 'free''s';"#)
        );
        assert_eq!(
            r.steps[0].down.as_deref(),
            Some(r#"ALTER TABLE "users" DROP COLUMN "plan";"#)
        );
        assert_eq!(r.checks.len(), 2);
    }

    #[test]
    fn hostile_parameters_are_refused() {
        for params in [
            json!({"table": "users\"; DROP TABLE users; --", "column": "c", "type": "int"}),
            json!({"table": "users", "column": "c", "type": "int; DROP TABLE users"}),
            json!({"table": "users", "column": "c", "type": "int", "default": {"a": 1}}),
            json!({"table": "users", "column": "c", "type": "int", "extra": 1}),
        ] {
            let e = render("add-column", params.clone(), Facts::default()).unwrap_err();
            assert_eq!(e.code(), "invalid-template-params", "{params}");
        }
    }

    #[test]
    fn migration_skeleton_keeps_free_text_in_comments() {
        let r = render(
            "migration",
            json!({"goal": "x\nDROP TABLE users;", "up": "CREATE TABLE t(a int);", "down": "DROP TABLE t;",
                   "checks": [{"name": "t-exists", "sql": "SELECT count(*) = 0 FROM t", "expect": "true"}]}),
            Facts::default(),
        )
        .unwrap();
        assert!(r.script.contains("-- Migration: x DROP TABLE users;"));
        assert_eq!(r.steps[0].up.as_deref(), Some("CREATE TABLE t(a int)"));
        assert_eq!(r.checks[0].name, "t-exists");
    }

    #[test]
    fn types_are_validated() {
        assert!(validate_type("numeric(10, 2)").is_ok());
        assert!(validate_type("double precision").is_ok());
        assert!(validate_type("text[]").is_ok());
        assert!(validate_type("int) ; drop").is_err());
    }
}
