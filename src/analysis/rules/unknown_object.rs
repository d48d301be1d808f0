//! `unknown-object`: a statement names a table or column that does not exist on the target and
//! is not created earlier in the plan — a typo, or a plan written against another database. It
//! fails at best in the dry-run and at worst (`IF EXISTS` aside) does nothing the agent meant.

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::{Action, StatementKind};

const FIX: &str = "run `inspect` on the target and name the table and column exactly as it has them, or create them earlier in the plan";

/// The fix, with the nearest existing name when there is one.
fn fix(nearest: Option<String>) -> String {
    match nearest {
        Some(n) => format!("did you mean `{n}`? {FIX}"),
        None => FIX.to_string(),
    }
}

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    // Types and schemas: found while reading the statement, against the catalog and the plan.
    if let Some((what, name, nearest)) = f.actions.iter().find_map(|a| match a {
        Action::UnknownName {
            what,
            name,
            nearest,
        } => Some((what, name, nearest)),
        _ => None,
    }) {
        return Some(hazard(
            Rule::UnknownObject,
            Severity::High,
            f,
            format!(
                "{what} `{name}` does not exist on the target and is not created earlier in the plan"
            ),
            &fix(nearest.clone()),
        ));
    }
    let names_existing = f.kind.is_alter_table()
        || f.kind == StatementKind::CreateIndex
        || f.kind.writes_rows()
        || matches!(
            f.kind,
            StatementKind::Truncate | StatementKind::DropTable | StatementKind::Backfill
        );
    if !names_existing || f.sql.to_uppercase().contains("IF EXISTS") {
        return None;
    }
    for t in &f.tables {
        if ctx.gone.contains(t) {
            return Some(hazard(
                Rule::UnknownObject,
                Severity::High,
                f,
                format!(
                    "table `{t}` is gone by this statement: an earlier statement of the plan renamed or dropped it"
                ),
                &fix(None),
            ));
        }
        if ctx.created.contains(t) || ctx.renamed.contains(t) {
            continue;
        }
        let Some(info) = ctx.catalog.tables.get(t) else {
            return Some(hazard(
                Rule::UnknownObject,
                Severity::High,
                f,
                format!(
                    "table `{t}` does not exist on the target and is not created earlier in the plan"
                ),
                &fix(crate::analysis::nearest(
                    t,
                    ctx.catalog
                        .tables
                        .keys()
                        .map(String::as_str)
                        .chain(ctx.created.iter().map(String::as_str)),
                )),
            ));
        };
        // The statement's columns are its own table's (the first named): never looked up on a
        // table it references or on its partitions.
        if Some(t) != f.tables.first() {
            continue;
        }
        if let Some(h) = unknown_column(f, ctx, t, info) {
            return Some(h);
        }
    }
    None
}

/// The first column the statement names on its own table `t` that neither the target nor the
/// plan before it has.
fn unknown_column(
    f: &StatementFacts,
    ctx: &Context,
    t: &str,
    info: &crate::db::TableInfo,
) -> Option<Hazard> {
    let mut columns: Vec<&str> = f
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::DropColumn { column }
            | Action::RenameColumn { column, .. }
            | Action::ChangeType { column, .. }
            | Action::SetNotNull { column, .. } => vec![column.as_str()],
            Action::UsesColumns { columns } => columns.iter().map(String::as_str).collect(),
            _ => vec![],
        })
        .collect();
    if f.kind == StatementKind::DropColumn
        && let Some(c) = f.detail.as_deref()
    {
        columns.push(c);
    }
    for c in columns {
        let known = info.columns.iter().any(|col| col.name == c)
            || ctx.added.contains(&format!("{t}.{c}"))
            || f.actions
                .iter()
                .any(|a| matches!(a, Action::AddColumn { column } if column == c));
        if !known {
            return Some(hazard(
                Rule::UnknownObject,
                Severity::High,
                f,
                format!(
                    "column `{t}.{c}` does not exist on the target and is not added earlier in the plan"
                ),
                &fix(crate::analysis::nearest(
                    c,
                    info.columns.iter().map(|col| col.name.as_str()),
                )),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::pg;
    use crate::analysis::Rule;

    #[test]
    fn columns_an_update_or_delete_names_must_exist() {
        let unknown = |sql: &str| {
            pg(sql)
                .into_iter()
                .filter(|h| h.code == Rule::UnknownObject)
                .map(|h| h.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unknown("UPDATE users SET name = 'x' WHERE nickname IS NULL").len(),
            1
        );
        assert_eq!(unknown("UPDATE users SET nick = 'x' WHERE id = 1").len(), 1);
        assert_eq!(
            unknown("DELETE FROM users u WHERE u.nickname = 'x'").len(),
            1
        );
        // Names of the statement's own table only: a subquery's and another table's are theirs.
        assert!(
            unknown("UPDATE users SET name = 'x' WHERE id IN (SELECT nickname FROM flags)")
                .is_empty()
        );
        assert!(
            unknown("DELETE FROM users USING flags f WHERE f.nickname = users.name").is_empty()
        );
        // A table renamed away earlier in the plan is gone, whatever the catalog says.
        assert_eq!(
            unknown("ALTER TABLE users RENAME TO members; ALTER TABLE users ADD COLUMN at date")
                .len(),
            1
        );
        // A foreign key's column is its own table's, never the referenced one's.
        assert!(
            unknown("ALTER TABLE flags ADD COLUMN owner int REFERENCES users (id), ALTER COLUMN owner SET NOT NULL")
                .is_empty()
        );
    }

    #[test]
    fn err_missing_table_and_column() {
        assert!(
            pg("ALTER TABLE userz ADD COLUMN a int")
                .iter()
                .any(|h| h.code == Rule::UnknownObject && h.message.contains("userz"))
        );
        assert!(
            pg("ALTER TABLE users DROP COLUMN nickname")
                .iter()
                .any(|h| h.code == Rule::UnknownObject && h.message.contains("users.nickname"))
        );
        assert!(
            pg("UPDATE ghosts SET a = 1 WHERE id = 1")
                .iter()
                .any(|h| h.code == Rule::UnknownObject)
        );
    }

    #[test]
    fn ok_existing_created_or_added_earlier() {
        for sql in [
            "ALTER TABLE users ADD COLUMN a int",
            "ALTER TABLE users DROP COLUMN name",
            "CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN b int; CREATE INDEX ON t (b)",
            "ALTER TABLE users ADD COLUMN nick text; ALTER TABLE users ALTER COLUMN nick SET NOT NULL",
            "DROP TABLE IF EXISTS ghosts",
        ] {
            assert!(
                !pg(sql).iter().any(|h| h.code == Rule::UnknownObject),
                "{sql}: {:?}",
                pg(sql)
            );
        }
    }
}
