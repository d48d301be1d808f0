//! `irreversible`: a step has no `down`, so it cannot be rolled back.

use super::{Hazard, Rule, Severity, StatementFacts};
use crate::analysis::{Action, StatementKind};
use crate::plan::Step;

pub fn check(step: &Step, name: &str, facts: &[StatementFacts]) -> Option<Hazard> {
    if step.is_final() {
        return Some(Hazard {
            code: Rule::Irreversible,
            severity: Severity::High,
            statement: format!("step `{name}`"),
            table: None,
            message: format!(
                "step `{name}` is final: it has no `down`, runs after the rollback window, and the plan cannot be rolled back once it has run"
            ),
            fix: "keep a verified backup until it runs; release it only when rollback is no longer wanted".into(),
        });
    }
    if step.down.is_none() && step.backfill.is_none() {
        return Some(Hazard {
            code: Rule::Irreversible,
            severity: Severity::High,
            statement: format!("step `{name}`"),
            table: None,
            message: format!("step `{name}` has no `down`; once applied it cannot be rolled back"),
            fix: "write a `down` that restores the schema exactly as it was before `up` (the dry-run verifies it)".into(),
        });
    }
    let lossy = facts.iter().find(|f| {
        (matches!(
            f.kind,
            StatementKind::DropTable | StatementKind::Truncate | StatementKind::DropColumn
        ) && !f.actions.contains(&Action::Recreated))
            || (f.kind == StatementKind::Delete && !f.has_where)
            || f.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::ChangeType {
                        narrowing: true,
                        ..
                    }
                )
            })
    })?;
    Some(Hazard {
        code: Rule::Irreversible,
        severity: Severity::High,
        statement: lossy.sql.clone(),
        table: lossy.tables.first().cloned(),
        message: format!(
            "step `{name}` loses data in statement {}; its `down` can restore the schema but not the data",
            lossy.index
        ),
        fix: "keep the data: copy it aside in the step (or keep the old column until the rollback window passes) so `down` can put it back".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_missing_down() {
        let s = Step {
            name: None,
            up: Some("SELECT 1".into()),
            down: None,
            backfill: None,
            gate: None,
            restore: None,
        };
        assert!(check(&s, "s", &[]).is_some());
    }

    #[test]
    fn err_down_cannot_restore_dropped_data() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        assert!(
            pg("ALTER TABLE users DROP COLUMN name")
                .iter()
                .any(|h| h.code == Rule::Irreversible)
        );
    }

    #[test]
    fn ok_with_down() {
        let s = Step {
            name: None,
            up: Some("SELECT 1".into()),
            down: Some("SELECT 1".into()),
            backfill: None,
            gate: None,
            restore: None,
        };
        assert!(check(&s, "s", &[]).is_none());
    }
}
