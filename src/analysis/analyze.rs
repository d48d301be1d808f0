//! The analysis of a whole plan: its steps in order, each statement read with what earlier
//! statements established (tables created, columns added, NOT NULL proven), the rules run on
//! each statement and each step, gated steps capped, and the impact on the catalog.

use std::collections::BTreeSet;

use super::{
    Action, Analysis, Context, Hazard, Rule, Severity, StatementFacts, StatementKind, TableImpact,
    backfill_sql, classify, pg, privilege, rules, statements,
};
use crate::config::Policy;
use crate::db::Catalog;
use crate::error::{Error, Part, Result};
use crate::plan::{Backfill, BackfillMode, Body, Gate, Step};
use crate::sql::{Dialect, LockMode};

/// Analyses a plan body against a target's catalog.
/// `production`: the plan's target is a production database (size then never lowers the
/// severity of lost data or broken code).
pub fn analyze(
    body: &Body,
    catalog: &Catalog,
    policy: &Policy,
    production: bool,
) -> Result<Analysis> {
    let mut walk = Walk {
        catalog,
        policy,
        production,
        created: BTreeSet::new(),
        emptied: BTreeSet::new(),
        added: BTreeSet::new(),
        renamed: BTreeSet::new(),
        gone: BTreeSet::new(),
        dropped_views: BTreeSet::new(),
        replaced_functions: BTreeSet::new(),
        touched: BTreeSet::new(),
        pg_state: pg::PlanState::new(catalog),
        facts: Vec::new(),
        hazards: Vec::new(),
        opaque: false,
    };
    for step in &body.steps {
        walk.step(step)?;
    }
    let mut hazards = walk.hazards;
    hazards.extend(privileged(body, catalog.engine));
    let risk = hazards
        .iter()
        .map(|h| h.severity)
        .max()
        .unwrap_or(Severity::Low);
    Ok(Analysis {
        engine: catalog.engine,
        statements: walk.facts,
        impact: walk.touched.iter().map(|t| impact(t, catalog)).collect(),
        hazards,
        risk,
    })
}

/// What the analysis has seen so far, statement by statement.
struct Walk<'a> {
    catalog: &'a Catalog,
    policy: &'a Policy,
    production: bool,
    /// Tables created by earlier statements of this plan.
    created: BTreeSet<String>,
    /// Tables emptied by earlier statements of this plan.
    emptied: BTreeSet<String>,
    /// `table.column` added by earlier statements of this plan.
    added: BTreeSet<String>,
    /// Tables renamed by earlier statements of this plan, under their new names.
    renamed: BTreeSet<String>,
    /// Tables earlier statements of this plan renamed away or dropped.
    gone: BTreeSet<String>,
    /// Views dropped by earlier statements of this plan and not created again since.
    dropped_views: BTreeSet<String>,
    /// Functions the step being read creates or replaces.
    replaced_functions: BTreeSet<String>,
    touched: BTreeSet<String>,
    pg_state: pg::PlanState,
    facts: Vec<StatementFacts>,
    hazards: Vec<Hazard>,
    /// An earlier statement did what the analysis cannot see (a DO block): the catalog may no
    /// longer say which tables and columns exist.
    opaque: bool,
}

impl Walk<'_> {
    fn context(&self) -> Context<'_> {
        Context {
            catalog: self.catalog,
            policy: self.policy,
            created: &self.created,
            emptied: &self.emptied,
            added: &self.added,
            renamed: &self.renamed,
            gone: &self.gone,
            dropped_views: &self.dropped_views,
            replaced_functions: &self.replaced_functions,
            production: self.production,
        }
    }

    fn step(&mut self, step: &Step) -> Result<()> {
        let name = step.name.as_deref().unwrap_or("step");
        let first_hazard = self.hazards.len();
        let mut step_facts = Vec::new();
        let mut facts = Vec::new();
        for (i, st) in statements(name, step.up.as_deref().unwrap_or(""))?
            .iter()
            .enumerate()
        {
            facts.push(if self.catalog.engine == Dialect::Postgres {
                pg::facts(name, i + 1, &st.sql, self.catalog, &mut self.pg_state)?
            } else {
                let mut f = classify(name, i + 1, st, self.catalog.engine);
                self.sqlite_names(&mut f);
                f
            });
        }
        mark_recreated_views(&mut facts);
        mark_rebuilt_tables(&mut facts);
        self.replaced_functions = facts
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    StatementKind::CreateFunction | StatementKind::CreateProcedure
                )
            })
            .filter_map(|f| f.detail.clone())
            .collect();
        for f in facts {
            self.hazards
                .extend(rules::check_statement(&f, &self.context()));
            self.learn(&f);
            step_facts.push(f);
        }
        if let Some(b) = &step.backfill {
            let f = self.backfill(name, b)?;
            self.hazards
                .extend(rules::check_statement(&f, &self.context()));
            step_facts.push(f);
        }
        self.parse_down(name, step.down.as_deref())?;
        self.hazards
            .extend(rules::check_step(step, name, &step_facts, &self.context()));
        if let Some(gate) = &step.gate {
            cap_gated(&mut self.hazards[first_hazard..], name, gate);
        }
        self.facts.extend(step_facts);
        Ok(())
    }

    /// SQLite's names are case-insensitive: each table a statement names, spelled as the
    /// catalog (or an earlier statement of the plan) spells it.
    fn sqlite_names(&self, f: &mut StatementFacts) {
        let spelled: Vec<&String> = (self.catalog.tables.keys())
            .chain(&self.created)
            .chain(&self.renamed)
            .collect();
        // A name spelled exactly as known stays; else it takes the known spelling it matches.
        let respell = |t: &mut String| {
            if spelled.iter().any(|k| *k == t) {
                return;
            }
            if let Some(k) = spelled.iter().find(|k| k.eq_ignore_ascii_case(t)) {
                *t = (*k).clone();
            }
        };
        f.tables.iter_mut().for_each(respell);
        for a in &mut f.actions {
            if let Action::RenameTable { to } = a {
                respell(to);
            }
        }
    }

    /// What a statement establishes for the ones after it.
    fn learn(&mut self, f: &StatementFacts) {
        // A DO block or a statement the analysis does not model may change anything.
        self.opaque |=
            f.lock == LockMode::NotPredicted && (f.kind == StatementKind::DoBlock || f.unmodelled);
        self.touched.extend(f.tables.iter().cloned());
        if f.kind.creates_table() {
            self.created.extend(f.tables.iter().cloned());
            f.tables.iter().for_each(|t| {
                self.gone.remove(t);
            });
        }
        if f.kind == StatementKind::DropTable {
            self.gone.extend(f.tables.iter().cloned());
        }
        if f.kind == StatementKind::Truncate {
            self.emptied.extend(f.tables.iter().cloned());
        }
        if f.kind.drops_view() {
            self.dropped_views.extend(f.tables.iter().cloned())
        }
        if f.kind.creates_view()
            && let Some(v) = &f.detail
        {
            self.dropped_views.remove(v);
        }
        let table = f.tables.first();
        for a in &f.actions {
            match (a, table) {
                (Action::AddColumn { column }, Some(t))
                | (Action::RenameColumn { to: column, .. }, Some(t)) => {
                    self.added.insert(format!("{t}.{column}"));
                }
                (Action::RenameTable { to }, Some(t)) => {
                    // The new name has the old one's columns, and those this plan added.
                    let old = format!("{t}.");
                    let carried: Vec<String> = self
                        .added
                        .iter()
                        .filter_map(|c| c.strip_prefix(&old).map(|col| format!("{to}.{col}")))
                        .chain(self.catalog.tables.get(t).into_iter().flat_map(|info| {
                            info.columns.iter().map(|c| format!("{to}.{}", c.name))
                        }))
                        .collect();
                    self.added.extend(carried);
                    self.gone.insert(t.clone());
                    self.gone.remove(to);
                    self.renamed.insert(to.clone());
                    if self.created.contains(t) {
                        self.created.insert(to.clone());
                    }
                }
                _ => {}
            }
        }
    }

    /// A backfill, analysed as the UPDATE it runs in batches.
    fn backfill(&mut self, name: &str, b: &Backfill) -> Result<StatementFacts> {
        self.touched.insert(b.table.clone());
        let mut tables = vec![b.table.clone()];
        let (named, what) = match b.mode() {
            BackfillMode::Update(set) => {
                let overwrites =
                    pg::assigned_columns(set).map_err(|e| Error::invalid(Part::Backfill, e))?;
                let what = format!(
                    "overwrites {} (old values saved for rollback)",
                    overwrites.join(", ")
                );
                (overwrites, what)
            }
            BackfillMode::Copy(c) => {
                self.touched.insert(c.table.clone());
                tables.push(c.table.clone());
                let what = format!(
                    "copies {} into `{}` (rollback deletes the copied rows)",
                    c.columns.join(", "),
                    c.table
                );
                (c.columns.clone(), what)
            }
            BackfillMode::Delete => (
                vec![],
                "deletes the rows (saved whole for rollback)".to_string(),
            ),
        };
        self.backfill_names_exist(name, b, &named)?;
        Ok(StatementFacts {
            step: name.to_string(),
            index: 1,
            sql: format!(
                "{} -- in keyset batches, each its own transaction; {what}",
                backfill_sql(b),
            ),
            kind: StatementKind::Backfill,
            tables,
            lock: LockMode::RowExclusive,
            locks_on: Default::default(),
            rewrites: false,
            scans: false,
            transactional: true,
            has_where: true,
            detail: None,
            actions: vec![],
            unmodelled: false,
        })
    }

    /// A backfill's table, key and assigned columns exist (in the catalog or earlier in the
    /// plan): found now, not when the apply reaches the step.
    fn backfill_names_exist(&self, name: &str, b: &Backfill, assigned: &[String]) -> Result<()> {
        let table = b.table.strip_prefix("public.").unwrap_or(&b.table);
        if self.opaque || self.created.contains(table) {
            return Ok(());
        }
        let refuse = |what: String| {
            Err(Error::invalid(
                Part::Backfill,
                format!("step `{name}`: {what}"),
            ))
        };
        let Some(info) = self.catalog.tables.get(table) else {
            return refuse(format!("table `{table}` does not exist on the target"));
        };
        let known = |c: &str| {
            info.columns.iter().any(|col| col.name == c)
                || self.added.contains(&format!("{table}.{c}"))
        };
        let columns = || {
            info.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &b.key {
            Some(key) if !known(key) => {
                return refuse(format!(
                    "`{table}` has no column `{key}` to walk by (its columns: {})",
                    columns()
                ));
            }
            // SQLite walks a table without a single-column primary key by its rowid.
            None if self.catalog.engine == Dialect::Postgres
                && info.columns.iter().filter(|c| c.primary_key).count() != 1 =>
            {
                return refuse(format!(
                    "`{table}` has no single-column primary key: name a unique, ordered column as `key` (its columns: {})",
                    columns()
                ));
            }
            _ => {}
        }
        if let Some(missing) = assigned.iter().find(|c| !known(c)) {
            let names = if b.copy_into.is_some() {
                "`copy_into.columns` names"
            } else {
                "`set` assigns"
            };
            return refuse(format!(
                "{names} `{missing}`, which `{table}` does not have (its columns: {})",
                columns()
            ));
        }
        Ok(())
    }

    /// `down` must parse too; its facts do not feed the plan's state.
    fn parse_down(&self, name: &str, down: Option<&str>) -> Result<()> {
        let Some(down) = down else { return Ok(()) };
        for (i, st) in statements(name, down)?.iter().enumerate() {
            if self.catalog.engine == Dialect::Postgres {
                pg::facts(
                    name,
                    i + 1,
                    &st.sql,
                    self.catalog,
                    &mut pg::PlanState::new(self.catalog),
                )?;
            }
        }
        Ok(())
    }
}

/// A gated step runs only after an engineer releases it, or after the rollback window: its
/// hazards stay visible, but a human decision and the passage of time stand between them and
/// production, so none is above medium.
fn cap_gated(hazards: &mut [Hazard], name: &str, gate: &Gate) {
    let why = match gate {
        Gate::Manual => "an engineer releases it (`drydock release`)".to_string(),
        Gate::After { duration } => format!("{duration} has passed, or an engineer overrides"),
    };
    for h in hazards {
        if h.severity > Severity::Medium {
            h.severity = Severity::Medium;
            h.message
                .push_str(&format!(" (gated: step `{name}` waits until {why})"));
        }
    }
}

/// Agent SQL that reaches beyond the database: critical whatever the table, never capped by a
/// gate, and refused by every verb that would run it.
fn privileged(body: &Body, engine: Dialect) -> Vec<Hazard> {
    let dynamic = match engine {
        Dialect::Postgres => privilege::dynamic_sql(body),
        Dialect::Sqlite => vec![],
    };
    privilege::violations(body, engine)
        .into_iter()
        .map(|v| Hazard {
            code: Rule::Privileged,
            severity: Severity::Critical,
            statement: v.place.clone(),
            table: None,
            message: format!(
                "{}: {}; drydock refuses to run it (forbidden-statement) in dry-run, apply and validate",
                v.place, v.forbidden
            ),
            fix: "keep agent SQL inside the database; if the change truly needs this, an engineer runs that part by hand".into(),
        })
        .chain(dynamic.into_iter().map(|place| Hazard {
            code: Rule::Privileged,
            severity: Severity::Medium,
            statement: place.clone(),
            table: None,
            message: format!(
                "{place} runs SQL built at run time (PL/pgSQL `EXECUTE`), which no analysis reads ahead: it runs as the target's least-privilege role, whose privileges bound it, and drydock refuses it on a target where that role may call a function reaching beyond the database"
            ),
            fix: "review the SQL the `EXECUTE` builds; write the statements out where the change allows".into(),
        }))
        .collect()
}

/// A table the plan touches, with what hangs off it in the catalog.
fn impact(table: &str, catalog: &Catalog) -> TableImpact {
    match catalog.tables.get(table) {
        Some(info) => TableImpact {
            table: table.to_string(),
            exists: true,
            rows: Some(info.rows),
            bytes: info.bytes,
            indexes: info.indexes.clone(),
            views: info.views.clone(),
            foreign_keys: info.foreign_keys_in.clone(),
            triggers: info.triggers.clone(),
        },
        None => TableImpact {
            table: table.to_string(),
            exists: false,
            rows: None,
            bytes: None,
            indexes: vec![],
            views: vec![],
            foreign_keys: vec![],
            triggers: vec![],
        },
    }
}

/// Marks the `DROP TABLE` and the `RENAME` of a table rebuilt in one step (`Action::Recreated`):
/// SQLite's rebuild — a new table created and filled, the old one dropped, the new one renamed
/// to the old name — in one transaction: no row is lost and running code never sees the table
/// missing; the copy is a rewrite of the whole table under the write lock.
fn mark_rebuilt_tables(facts: &mut [StatementFacts]) {
    let first = |f: &StatementFacts| f.tables.first().cloned().unwrap_or_default();
    for i in 0..facts.len() {
        if facts[i].kind != StatementKind::DropTable {
            continue;
        }
        let old = first(&facts[i]);
        let rename = facts[i + 1..].iter().position(|f| {
            f.actions
                .iter()
                .any(|a| matches!(a, Action::RenameTable { to } if *to == old))
        });
        let Some(rename) = rename.map(|r| r + i + 1) else {
            continue;
        };
        let new = first(&facts[rename]);
        let made = facts[..i]
            .iter()
            .any(|f| f.kind.creates_table() && first(f) == new);
        let reads_old = |sql: &str| {
            let tokens = crate::sql::lexer::tokenize(sql).unwrap_or_default();
            tokens.windows(2).any(|w| {
                w[0].1.is_word("FROM")
                    && w[1].1.name().is_some_and(|n| n.eq_ignore_ascii_case(&old))
            })
        };
        let filled = facts[..i]
            .iter()
            .any(|f| f.kind == StatementKind::Insert && first(f) == new && reads_old(&f.sql));
        if made && filled {
            // Every row copied while the database's write lock is held.
            facts[i].rewrites = true;
            facts[i].actions.push(Action::Recreated);
            facts[rename].actions.push(Action::Recreated);
        }
    }
}

/// Marks each `DROP VIEW` of a step whose every view a later statement of the same step creates
/// again (`Action::Recreated`): the common "drop the view, change the table, re-create the view"
/// in one transaction.
fn mark_recreated_views(facts: &mut [StatementFacts]) {
    for i in 0..facts.len() {
        let dropped = facts[i].kind.drops_view();
        if !dropped || facts[i].tables.is_empty() {
            continue;
        }
        let recreated = facts[i].tables.iter().all(|v| {
            facts[i + 1..]
                .iter()
                .any(|later| later.kind.creates_view() && later.detail.as_ref() == Some(v))
        });
        if recreated {
            facts[i].actions.push(Action::Recreated);
        }
    }
}
