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
/// rendered from one of drydock's own templates may also build statements at run time in
/// PL/pgSQL (`EXECUTE format(...)` with quoted identifiers), which the template vouches for.
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

/// Every place of a plan where agent SQL is refused, in plan order: each step's `up`, backfill
/// and `down`, then each check.
pub fn violations(body: &crate::plan::Body, engine: crate::sql::Dialect) -> Vec<Violation> {
    let step_use = if body.vouched_template().is_some() {
        Use::TemplateStep
    } else {
        Use::Step
    };
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
    let mut out = Vec::new();
    let mut push = |place: String, verdict: Verdict| {
        if let Err(forbidden) = verdict {
            out.push(Violation { place, forbidden });
        }
    };
    for step in &body.steps {
        let name = step.name.as_deref().unwrap_or("step");
        if let Some(up) = &step.up {
            push(format!("step `{name}` up"), admit(up, step_use));
        }
        if let Some(b) = &step.backfill {
            push(
                format!("step `{name}` backfill"),
                admit(&super::backfill_sql(b), step_use),
            );
        }
        if let Some(down) = &step.down {
            push(format!("step `{name}` down"), admit(down, step_use));
        }
    }
    for c in &body.checks {
        push(format!("check `{}`", c.name), admit(&c.sql, Use::Check));
    }
    out
}

/// Every function a plan's PostgreSQL agent SQL calls (steps, backfills, checks), by name.
pub fn called_functions(body: &crate::plan::Body) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for step in &body.steps {
        let backfill = step.backfill.as_ref().map(super::backfill_sql);
        for sql in [
            step.up.as_deref(),
            step.down.as_deref(),
            backfill.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            out.extend(called(sql));
        }
    }
    for c in &body.checks {
        out.extend(called(&c.sql));
    }
    out
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
