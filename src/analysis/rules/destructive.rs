//! `destructive`: the statement loses data (DROP TABLE/COLUMN, TRUNCATE, DELETE without WHERE).

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::{Action, StatementKind};

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    if f.kind == StatementKind::DropSchema {
        return drop_schema(f, ctx);
    }
    let table = f.tables.first().map(String::as_str);
    let what = match f.kind {
        StatementKind::DropTable if f.actions.contains(&Action::Recreated) => return None,
        StatementKind::DropTable => "drops the table and every row in it".to_string(),
        StatementKind::Truncate => "deletes every row of the table".to_string(),
        StatementKind::DropColumn => format!(
            "drops column `{}` and its data",
            f.detail.as_deref().unwrap_or("?")
        ),
        StatementKind::Delete if !f.has_where => {
            "deletes every row of the table (no WHERE)".to_string()
        }
        _ => f.actions.iter().find_map(|a| match a {
            Action::ChangeType {
                column,
                from,
                to,
                narrowing: true,
                ..
            } => Some(format!(
                "narrows `{column}` from {} to {to}; values that do not fit fail or are truncated",
                from.as_deref().unwrap_or("its type")
            )),
            _ => None,
        })?,
    };
    let rows = table.map(|t| ctx.rows(t)).unwrap_or(0);
    let severity = ctx.data_severity(
        table,
        if rows > 0 {
            Severity::Critical
        } else {
            Severity::High
        },
    );
    Some(hazard(
        Rule::Destructive,
        severity,
        f,
        format!("{what}; ~{rows} row(s) are lost unless `down` restores them"),
        "copy the data aside first (or keep the old column until the rollback window passes, as a gated contract step), and make `down` restore it",
    ))
}

/// `DROP SCHEMA s [CASCADE]`: every table in it (named, rows counted) and every column of
/// another table typed by one of its types goes with it.
fn drop_schema(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    let schema = f.detail.as_deref()?;
    let prefix = format!("{schema}.");
    let tables: Vec<(&String, u64)> = ctx
        .catalog
        .tables
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, t)| (name, t.rows))
        .collect();
    let rows: u64 = tables.iter().map(|(_, r)| r).sum();
    let cascade = f.sql.to_uppercase().contains("CASCADE");
    let what = if tables.is_empty() {
        format!("drops schema `{schema}` and whatever else is in it (functions, types, sequences)")
    } else {
        let named: Vec<String> = tables
            .iter()
            .take(20)
            .map(|(t, r)| format!("`{t}` (~{r} rows)"))
            .collect();
        format!(
            "drops schema `{schema}` with {} table(s): {}{}; ~{rows} row(s) in all are lost{}",
            tables.len(),
            named.join(", "),
            if tables.len() > 20 { ", …" } else { "" },
            if cascade {
                ", with every view, function, type and the columns of other schemas' tables typed by its types"
            } else {
                " (without CASCADE the statement fails while the schema holds anything)"
            }
        )
    };
    let severity = if ctx.production || rows > 0 {
        Severity::Critical
    } else {
        Severity::High
    };
    Some(Hazard {
        code: Rule::Destructive,
        severity,
        statement: f.sql.clone(),
        table: None,
        message: what,
        fix: "move what must survive out of the schema first, copy the data aside, and drop the schema in a gated step after the rollback window".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_drop_column_on_large_table_is_critical() {
        let h = run(check, "ALTER TABLE users DROP COLUMN email").unwrap();
        assert_eq!(h.severity, Severity::Critical);
        assert!(h.message.contains("email"));
    }

    #[test]
    fn err_delete_without_where() {
        assert!(run(check, "DELETE FROM users").is_some());
    }

    #[test]
    fn err_narrowing_and_truncate_on_postgres() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        assert!(
            pg("ALTER TABLE users ALTER COLUMN email TYPE varchar(10)")
                .iter()
                .any(|h| h.code == Rule::Destructive)
        );
        assert!(
            pg("TRUNCATE users")
                .iter()
                .any(|h| h.code == Rule::Destructive)
        );
        assert!(
            !pg("ALTER TABLE users ALTER COLUMN email TYPE varchar(500)")
                .iter()
                .any(|h| h.code == Rule::Destructive)
        );
    }

    #[test]
    fn ok_delete_with_where_and_small_tables() {
        assert!(run(check, "DELETE FROM users WHERE id = 1").is_none());
        assert_eq!(
            run(check, "DROP TABLE flags").unwrap().severity,
            Severity::Low
        );
    }
}
