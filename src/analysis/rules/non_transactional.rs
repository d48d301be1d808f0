//! `non-transactional`: the statement cannot run inside a transaction (CONCURRENTLY, VACUUM), so a
//! failure half-way leaves debris that must be cleaned up.

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};

pub fn check(f: &StatementFacts, _ctx: &Context) -> Option<Hazard> {
    if f.transactional {
        return None;
    }
    Some(hazard(
        Rule::NonTransactional,
        Severity::Medium,
        f,
        "cannot run inside a transaction; a failure leaves partial state behind".to_string(),
        "put it alone in its own step, and make `down` remove whatever a failed run leaves (e.g. DROP INDEX IF EXISTS)",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_vacuum() {
        assert!(run(check, "VACUUM").is_some());
    }

    #[test]
    fn ok_plain_ddl() {
        assert!(run(check, "CREATE TABLE x(a int)").is_none());
    }
}
