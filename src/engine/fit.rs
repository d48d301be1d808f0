//! Results that fit an agent's context. An MCP client reads every tool result into its context
//! window (Claude Code cuts one at 25,000 tokens), and a plan over a table with 59 partitions
//! has 119 statements, 59 hazards and 60 tables to list: `plan` answered 86 KB and `dry-run`
//! 202 KB. The tools answer at most `LISTED` of each list — the most significant, in their
//! order — and count what they left out (`omitted`); the full lists are in the state store,
//! read through `status` with `detail`, the `drydock://plans/{id}` resource, `drydock show` and
//! the review page.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::report::{ApplyReport, DryRunReport, PlanOutcome};
use crate::checklist::ChecklistItem;
use crate::plan::evidence::StatementRun;

/// Items of one list a result names at most.
pub const LISTED: usize = 20;
/// Locks listed per statement at most (the strongest it took first).
const LOCKS: usize = 8;
/// Characters of one evidence, message or error kept.
const TEXT: usize = 300;

/// What a result left out of its lists, by list; zero for a list given whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Omitted {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub statements: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hazards: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tables: usize,
    /// Locks left out of the listed statements' `locks`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub locks: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probes: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disagreements: usize,
    /// Where the whole lists are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

pub(super) fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Omitted {
    pub fn is_empty(&self) -> bool {
        self == &Omitted::default()
    }

    fn says_where(mut self, plan_id: &str) -> Omitted {
        if !self.is_empty() {
            self.detail = format!("every item: {}", full_report(plan_id));
        }
        self
    }
}

/// Where a plan's full report is read.
pub(super) fn full_report(plan_id: &str) -> String {
    format!(
        "`status` with `detail: true`, the resource drydock://plans/{plan_id}, or `drydock show {plan_id}`"
    )
}

/// `s` cut to `TEXT` characters, saying so.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(TEXT) {
        Some((at, _)) => format!("{}… ({} characters in all)", &s[..at], s.chars().count()),
        None => s.to_string(),
    }
}

/// The `LISTED` items of `items` that rank highest by `rank`, kept in their order; and how
/// many were left out.
fn most<T, K: Ord>(items: Vec<T>, rank: impl Fn(&T) -> K) -> (Vec<T>, usize) {
    if items.len() <= LISTED {
        return (items, 0);
    }
    let left = items.len() - LISTED;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rank(&items[i])));
    let mut keep = vec![false; items.len()];
    for &i in order.iter().take(LISTED) {
        keep[i] = true;
    }
    let kept = items
        .into_iter()
        .zip(keep)
        .filter_map(|(item, k)| k.then_some(item))
        .collect();
    (kept, left)
}

/// Statements measured, the ones that rewrote, locked hardest, scanned or took longest first;
/// each with its strongest locks (taken before held).
fn statement_runs(runs: Vec<StatementRun>, omitted: &mut Omitted) -> Vec<StatementRun> {
    let (mut runs, left) = most(runs, |r| {
        (
            !r.rewritten.is_empty(),
            r.locks.iter().filter(|l| l.acquired).map(|l| l.mode).max(),
            !r.scanned.is_empty(),
            (r.duration_ms * 1000.0) as u64,
        )
    });
    omitted.statements += left;
    for r in &mut runs {
        if r.locks.len() > LOCKS {
            r.locks
                .sort_by_key(|l| std::cmp::Reverse((l.acquired, l.mode)));
            omitted.locks += r.locks.len() - LOCKS;
            r.locks.truncate(LOCKS);
        }
        r.sql = clip(&r.sql);
    }
    runs
}

fn checklist(items: Vec<ChecklistItem>) -> Vec<ChecklistItem> {
    items
        .into_iter()
        .map(|i| ChecklistItem {
            evidence: i.evidence.as_deref().map(clip),
            ..i
        })
        .collect()
}

impl PlanOutcome {
    /// As the `plan` tool answers it (see the module's doc).
    pub fn fit(mut self) -> PlanOutcome {
        let mut omitted = Omitted::default();
        let a = &mut self.analysis;
        let (statements, left) = most(std::mem::take(&mut a.statements), |f| {
            (f.rewrites, f.lock, f.scans, !f.transactional)
        });
        a.statements = statements
            .into_iter()
            .map(|mut f| {
                f.sql = clip(&f.sql);
                f
            })
            .collect();
        omitted.statements = left;
        let (hazards, left) = most(std::mem::take(&mut a.hazards), |h| h.severity);
        a.hazards = hazards;
        omitted.hazards = left;
        let (impact, left) = most(std::mem::take(&mut a.impact), |t| t.rows);
        a.impact = impact;
        omitted.tables = left;
        self.checklist = checklist(self.checklist);
        self.omitted = omitted.says_where(&self.plan_id);
        self
    }
}

impl DryRunReport {
    /// As the `dry-run` tool answers it (see the module's doc).
    pub fn fit(mut self) -> DryRunReport {
        let mut omitted = Omitted::default();
        self.statements = statement_runs(std::mem::take(&mut self.statements), &mut omitted);
        let (tables, left) = most(std::mem::take(&mut self.tables), |t| t.production_rows);
        self.tables = tables;
        omitted.tables = left;
        let (probes, left) = most(std::mem::take(&mut self.probes), |p| {
            p.outcome == crate::plan::evidence::ProbeOutcome::Failed
        });
        self.probes = probes;
        omitted.probes = left;
        let (disagreements, left) = most(std::mem::take(&mut self.disagreements), |_| 0);
        self.disagreements = disagreements;
        omitted.disagreements = left;
        self.omitted = omitted.says_where(&self.plan_id);
        self
    }
}

impl ApplyReport {
    /// As the `apply` tool answers it (see the module's doc).
    pub fn fit(mut self) -> ApplyReport {
        let mut omitted = Omitted::default();
        self.statements = statement_runs(std::mem::take(&mut self.statements), &mut omitted);
        self.checklist = checklist(self.checklist);
        self.omitted = omitted.says_where(&self.plan_id);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_ranked_are_kept_in_their_order_and_the_rest_counted() {
        let items: Vec<usize> = (0..30).collect();
        let (kept, left) = most(items, |&i| i % 10 == 3);
        assert_eq!(left, 10);
        assert_eq!(kept.len(), LISTED);
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");
        assert!(kept.contains(&3) && kept.contains(&13) && kept.contains(&23));
        let (all, none) = most(vec![1, 2, 3], |&i| i);
        assert_eq!((all, none), (vec![1, 2, 3], 0));
    }

    #[test]
    fn long_text_is_cut_and_says_how_long_it_was() {
        let long = "é".repeat(TEXT + 5);
        let cut = clip(&long);
        assert!(
            cut.ends_with(&format!("({} characters in all)", TEXT + 5)),
            "{cut}"
        );
        assert_eq!(clip("short"), "short");
    }
}
