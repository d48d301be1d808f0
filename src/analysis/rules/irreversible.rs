//! `irreversible`: a step has no `down`, so it cannot be rolled back.

use super::{Hazard, Severity};
use crate::plan::Step;

pub fn check(step: &Step, name: &str) -> Option<Hazard> {
    if step.down.is_some() {
        return None;
    }
    Some(Hazard {
        code: "irreversible".into(),
        severity: Severity::High,
        statement: format!("step `{name}`"),
        table: None,
        message: format!("step `{name}` has no `down`; once applied it cannot be rolled back"),
        fix: "write a `down` that restores the schema exactly as it was before `up` (the dry-run verifies it)".into(),
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
        };
        assert!(check(&s, "s").is_some());
    }

    #[test]
    fn ok_with_down() {
        let s = Step {
            name: None,
            up: Some("SELECT 1".into()),
            down: Some("SELECT 1".into()),
            backfill: None,
            gate: None,
        };
        assert!(check(&s, "s").is_none());
    }
}
