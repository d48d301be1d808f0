//! `breaking-change`: running application code breaks (rename, drop, type change).

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::{Action, StatementKind};

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    let table = f.tables.first().map(String::as_str);
    // A view built on the column makes DROP COLUMN and ALTER TYPE fail outright.
    let dependent = f.actions.iter().find_map(|a| {
        let column = match a {
            Action::DropColumn { column } | Action::ChangeType { column, .. } => column,
            _ => return None,
        };
        // Views this plan dropped earlier depend on nothing any more.
        let views: Vec<&str> = ctx
            .catalog
            .column_views
            .get(&format!("{}.{column}", table?))?
            .iter()
            .filter(|v| !ctx.dropped_views.contains(*v))
            .map(String::as_str)
            .collect();
        (!views.is_empty()).then(|| (column.clone(), views.join(", ")))
    });
    if let Some((column, views)) = dependent {
        return Some(hazard(
            Rule::BreakingChange,
            Severity::High,
            f,
            format!(
                "view(s) {views} depend on `{column}`: the statement fails, and with CASCADE it would drop them"
            ),
            "drop and recreate the dependent views around the change in the same step, or change the views first",
        ));
    }
    if let Some(h) = trigger_function_breaks(f, ctx) {
        return Some(h);
    }
    if let Some((ty, from, to)) = f.actions.iter().find_map(|a| match a {
        Action::RenameEnumValue { ty, from, to } => Some((ty, from, to)),
        _ => None,
    }) {
        return Some(hazard(
            Rule::BreakingChange,
            if ctx.production {
                Severity::High
            } else {
                Severity::Medium
            },
            f,
            format!(
                "renames label '{from}' of enum `{ty}` to '{to}': running code that writes '{from}' fails (invalid input value for enum)"
            ),
            &format!(
                "expand/contract: ADD VALUE '{to}', move the code to write '{to}', UPDATE the rows in batches, and only then stop accepting '{from}'"
            ),
        ));
    }
    use StatementKind::*;
    let what = match f.kind {
        DropTable | RenameTable if f.actions.contains(&Action::Recreated) => return None,
        RenameColumn => "renames a column that running code still reads and writes",
        RenameTable => "renames a table that running code still queries",
        DropColumn => "drops a column that running code may still select or insert",
        AlterColumn | AlterColumnType => "changes a column's type that running code depends on",
        DropView | DropMaterializedView if f.actions.contains(&Action::Recreated) => {
            return None;
        }
        DropTable | DropView | DropMaterializedView => {
            "removes a relation that running code may still query"
        }
        _ => return None,
    };
    Some(hazard(
        Rule::BreakingChange,
        ctx.data_severity(table, Severity::Medium),
        f,
        what.to_string(),
        "use expand/contract: add the new shape, dual-write, backfill, switch reads, then drop the old shape in a later gated step",
    ))
}

/// A column renamed or dropped that a trigger function of its table names in its body: the
/// statement succeeds, and every write that fires the trigger fails afterwards (PostgreSQL
/// does not track names inside function bodies). Not when the same step replaces the function.
fn trigger_function_breaks(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    let table = f.tables.first()?;
    let (column, what) = f.actions.iter().find_map(|a| match a {
        Action::RenameColumn { column, .. } => Some((column, "renamed")),
        Action::DropColumn { column } => Some((column, "dropped")),
        _ => None,
    })?;
    let info = ctx.catalog.tables.get(table)?;
    let broken: Vec<String> = info
        .trigger_functions
        .iter()
        .filter(|t| t.uses(column))
        .filter(|t| {
            let name = t.function.split('(').next().unwrap_or_default();
            let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
            !ctx.replaced_functions.contains(&name.to_lowercase())
        })
        .map(|t| format!("trigger `{}` runs `{}`", t.trigger, t.function))
        .collect();
    if broken.is_empty() {
        return None;
    }
    Some(hazard(
        Rule::BreakingChange,
        if ctx.production {
            Severity::High
        } else {
            Severity::Medium
        },
        f,
        format!(
            "`{table}.{column}` is {what} while code inside the database still names it: {} on `{table}`, whose body or arguments use `{column}`; every write that fires it fails afterwards",
            broken.join("; ")
        ),
        "replace the function in the same step (`CREATE OR REPLACE FUNCTION` with the new name), or keep the column with expand/contract (the `rename-column` template) until the code moves",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_rename_column() {
        assert_eq!(
            run(check, "ALTER TABLE users RENAME COLUMN a TO b")
                .unwrap()
                .severity,
            Severity::Medium
        );
    }

    #[test]
    fn err_and_ok_on_postgres() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        assert!(
            pg("ALTER TABLE users RENAME COLUMN name TO full_name")
                .iter()
                .any(|h| h.code == Rule::BreakingChange)
        );
        assert!(
            pg("ALTER TABLE users ALTER COLUMN id TYPE bigint")
                .iter()
                .any(|h| h.code == Rule::BreakingChange)
        );
        assert!(
            !pg("ALTER TABLE users ADD COLUMN nickname text")
                .iter()
                .any(|h| h.code == Rule::BreakingChange)
        );
    }

    #[test]
    fn err_column_used_by_a_view() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        let h = pg("ALTER TABLE users DROP COLUMN email");
        assert!(
            h.iter().any(|h| h.code == Rule::BreakingChange
                && h.severity == Severity::High
                && h.message.contains("active_users")),
            "{h:?}"
        );
        let h = pg("ALTER TABLE users DROP COLUMN name");
        assert!(
            h.iter()
                .any(|h| h.code == Rule::BreakingChange && h.severity == Severity::Medium),
            "{h:?}"
        );
    }

    #[test]
    fn size_never_lowers_lost_data_or_broken_code_on_production() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        // `flags` holds 3 rows, far below large_table_rows.
        let h = pg("ALTER TABLE flags RENAME COLUMN id TO flag_id");
        assert!(
            h.iter()
                .any(|h| h.code == Rule::BreakingChange && h.severity == Severity::Medium),
            "{h:?}"
        );
        let h = pg("DROP TABLE flags");
        assert!(
            h.iter()
                .any(|h| h.code == Rule::Destructive && h.severity >= Severity::High),
            "{h:?}"
        );
    }

    #[test]
    fn ok_add_column() {
        assert!(run(check, "ALTER TABLE users ADD COLUMN a int").is_none());
    }
}
