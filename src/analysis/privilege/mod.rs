//! The boundary of agent SQL: what drydock will run on the agent's behalf before an engineer has
//! approved anything (dry-run steps, checks, backfill expressions) and, by the same rule, after.
//! Agent SQL stays inside the database: no server files or programs, no roles, privileges or
//! settings of the cluster, no other sessions, no opaque code.
//!
//! PostgreSQL statements are parsed with PostgreSQL's own parser and admitted by an allowlist of
//! statement kinds (anything not listed is refused); every name anywhere in the parse tree —
//! functions, relations, in CTEs, defaults, views, triggers, SQL function bodies and PL/pgSQL
//! bodies (parsed too) — is checked against the functions and catalogs that reach beyond the
//! database. Functions cannot be allowlisted (applications define their own), so that part is a
//! denylist; the least-privilege roles of `[targets.X] dry_run_role`/`check_role` are the second
//! wall behind it. SQLite statements are admitted by leading keyword and pragma allowlists.

mod pg_names;
mod plpgsql;
mod postgres;
mod sqlite;

pub use postgres::{called, postgres};
pub use sqlite::sqlite;

/// Why a statement is refused: the construct, named as the agent wrote it, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub construct: String,
    pub reason: String,
}

impl Forbidden {
    fn new(construct: impl Into<String>, reason: impl Into<String>) -> Forbidden {
        Forbidden {
            construct: construct.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {}", self.construct, self.reason)
    }
}

/// Where agent SQL is used: a step may change the schema and data; a check only reads. A step
/// rendered from one of drydock's own templates is admitted as a step is (statements built at
/// run time are admitted for both, and judged by the target: `dynamic_sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Step,
    TemplateStep,
    Check,
}

pub(crate) type Verdict = Result<(), Forbidden>;

/// One refusal in a plan: where the SQL sits, and what is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub place: String,
    pub forbidden: Forbidden,
}

impl From<Violation> for crate::error::Error {
    fn from(v: Violation) -> crate::error::Error {
        crate::error::Error::Forbidden {
            place: v.place,
            construct: format!("`{}`", v.forbidden.construct),
            reason: v.forbidden.reason,
        }
    }
}

/// One place of a plan where agent SQL sits: where it is (as a refusal names it), the SQL, and
/// how it is used.
struct Place {
    place: String,
    sql: String,
    usage: Use,
}

/// Every place of a plan's agent SQL, in plan order: each step's `up`, backfill and `down`, then
/// each check.
fn places(body: &crate::plan::Body) -> Vec<Place> {
    let step_use = if body.vouched_template().is_some() {
        Use::TemplateStep
    } else {
        Use::Step
    };
    let mut out = Vec::new();
    for step in &body.steps {
        let name = step.name.as_deref().unwrap_or("step");
        let backfill = step.backfill.as_ref().map(super::backfill_sql);
        let restore = step.restore.as_ref().map(|r| r.prepare.clone());
        for (part, sql) in [
            ("up", step.up.clone()),
            ("backfill", backfill),
            ("down", step.down.clone()),
            ("restore", restore),
        ] {
            if let Some(sql) = sql {
                out.push(Place {
                    place: format!("step `{name}` {part}"),
                    sql,
                    usage: step_use,
                });
            }
        }
    }
    for c in &body.checks {
        out.push(Place {
            place: format!("check `{}`", c.name),
            sql: c.sql.clone(),
            usage: Use::Check,
        });
    }
    out
}

/// Every place of a plan where agent SQL is refused, in plan order: each step's `up`, backfill
/// and `down`, then each check.
pub fn violations(body: &crate::plan::Body, engine: crate::sql::Dialect) -> Vec<Violation> {
    let one = move |sql: &str, usage: Use| match engine {
        crate::sql::Dialect::Postgres => postgres(sql, usage),
        crate::sql::Dialect::Sqlite => sqlite(sql, usage),
    };
    // drydock executes a script statement by statement as its own splitter cuts it: each piece
    // is admitted as well as the whole, so that a splitter that disagreed with the server's
    // parser (a quote or comment read differently) could not run a piece the whole hid.
    let admit = move |sql: &str, usage: Use| {
        one(sql, usage)?;
        match super::lexer::split(sql) {
            Ok(pieces) if pieces.len() > 1 => pieces.iter().try_for_each(|p| one(&p.sql, usage)),
            _ => Ok(()),
        }
    };
    places(body)
        .into_iter()
        .filter_map(|p| {
            admit(&p.sql, p.usage).err().map(|forbidden| Violation {
                place: p.place,
                forbidden,
            })
        })
        .collect()
}

/// The places of a plan whose PostgreSQL agent SQL runs SQL built at run time (`EXECUTE` in
/// PL/pgSQL): admitted only where the target shows nothing such SQL could reach beyond the
/// database (`Target::dynamic_reach`).
pub fn dynamic_sql(body: &crate::plan::Body) -> Vec<String> {
    places(body)
        .into_iter()
        .filter(|p| postgres::runs_dynamic_sql(&p.sql))
        .map(|p| p.place)
        .collect()
}

/// Every function a plan's PostgreSQL agent SQL calls (steps, backfills, checks), by name; the
/// place whose SQL could not be read, if any (refused: a call unread is a call unchecked).
pub fn called_functions(
    body: &crate::plan::Body,
) -> Result<std::collections::BTreeSet<String>, Violation> {
    let mut out = std::collections::BTreeSet::new();
    for p in places(body) {
        out.extend(called(&p.sql).map_err(|forbidden| Violation {
            place: p.place,
            forbidden,
        })?);
    }
    Ok(out)
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
