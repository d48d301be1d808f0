//! What a template that moves a column (expand/contract) carries to the column's successor: each
//! index and constraint on the column, rewritten by PostgreSQL's own parser to use the successor
//! under a temporary name (the contract step gives the original names back), and each one's
//! original definition for the downs that bring the old column back. Definitions come from the
//! catalog (`pg_get_indexdef`, `pg_get_constraintdef`) and leave as pg_query deparses them: no
//! string surgery on SQL.

use pg_query::NodeEnum;
use pg_query::protobuf::Node;
use serde::Serialize;

use super::{quote_ident, templates::derived};
use crate::db::{ColumnDependents, ColumnShape};

/// An index or constraint and the statements that move it.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    /// The original name, which the successor's copy takes at the contract step.
    pub name: String,
    /// The copy's name until then.
    pub temp: String,
    /// Creates the copy on the successor (`CREATE INDEX CONCURRENTLY`, or `ADD CONSTRAINT …
    /// NOT VALID`).
    pub create: String,
    /// Recreates the original on the old column (for the contract step's down).
    pub restore: String,
    /// A constraint that was validated (the copy is validated after it is added).
    pub valid: bool,
}

/// The template context's `carry`.
#[derive(Debug, Clone, Serialize)]
pub struct Carried {
    pub column: ColumnShape,
    pub indexes: Vec<Moved>,
    pub constraints: Vec<Moved>,
    /// The views on the column, dropped and created again around the swap (templates that
    /// do so only: `Move::views`), in creation order.
    pub views: Vec<CarriedView>,
}

/// A view on the moved column: its definition as it is, and reading the successor instead.
#[derive(Debug, Clone, Serialize)]
pub struct CarriedView {
    pub name: String,
    pub create: String,
    /// `create` reading the successor column where it read the moved one, each of the view's
    /// columns keeping its name (the same as `create` when the successor takes the name).
    pub renamed: String,
    pub after: Vec<String>,
}

/// What a template does with the views that read the column it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    /// It cannot carry them: the column is refused.
    Refuse,
    /// It drops them and creates them again as they are (the successor takes the column's
    /// name).
    Recreate,
    /// It drops them and creates them reading the successor under its own name.
    Repoint,
}

/// Which column moves where: `from` is carried to `to`; the contract step's down brings the old
/// column back as `restore_as`.
pub struct Move {
    pub table: String,
    pub from: String,
    pub to: String,
    pub restore_as: String,
    /// What the template does with the views that read the column.
    pub views: Views,
}

impl Carried {
    pub fn new(m: &Move, deps: &ColumnDependents) -> std::result::Result<Carried, String> {
        let mut blocking = deps.blocking.clone();
        if m.views == Views::Refuse {
            blocking.extend(deps.views.iter().map(|v| format!("view {}", v.name)));
        }
        if !blocking.is_empty() {
            let deps = ColumnDependents {
                blocking,
                ..ColumnDependents::default()
            };
            let views = deps.blocking.iter().any(|b| b.contains("view "));
            return Err(format!(
                "{}.{} is used by {} this template cannot carry over ({}); change {} first{}, or write the whole change as `steps` with the `migration` template",
                m.table,
                m.from,
                if deps.blocking.len() == 1 {
                    "an object"
                } else {
                    "objects"
                },
                deps.blocking.join("; "),
                if deps.blocking.len() == 1 {
                    "it"
                } else {
                    "them"
                },
                if views {
                    " (a view: `DROP VIEW` and `CREATE VIEW` in one step of a `migration` plan — `CREATE OR REPLACE VIEW` cannot drop or retype a view's column; `inspect` with `table` gives its definition)"
                } else {
                    ""
                },
            ));
        }
        let indexes = deps
            .indexes
            .iter()
            .map(|d| {
                let temp = derived(&[&d.name], "dd");
                Ok(Moved {
                    create: index(&d.definition, &temp, &m.from, &m.to)?,
                    restore: index(&d.definition, &d.name, &m.from, &m.restore_as)?,
                    name: d.name.clone(),
                    temp,
                    valid: true,
                })
            })
            .collect::<std::result::Result<_, String>>()?;
        let constraints = deps
            .constraints
            .iter()
            .map(|d| {
                let temp = derived(&[&d.name], "dd");
                let (create, valid) = constraint(&m.table, &temp, &d.definition, &m.from, &m.to)?;
                let (restore, _) =
                    constraint(&m.table, &d.name, &d.definition, &m.from, &m.restore_as)?;
                Ok(Moved {
                    name: d.name.clone(),
                    temp,
                    create,
                    restore,
                    valid,
                })
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(Carried {
            column: deps.column.clone(),
            indexes,
            constraints,
            views: match m.views {
                Views::Refuse => vec![],
                Views::Recreate | Views::Repoint => deps
                    .views
                    .iter()
                    .map(|v| {
                        Ok(CarriedView {
                            name: v.name.clone(),
                            renamed: if m.views == Views::Repoint {
                                super::views::reading(&v.create, &m.table, &m.from, &m.to)?
                            } else {
                                v.create.clone()
                            },
                            create: v.create.clone(),
                            after: v.after.clone(),
                        })
                    })
                    .collect::<std::result::Result<_, String>>()?,
            },
        })
    }
}

/// `CREATE INDEX CONCURRENTLY name …` of the catalog's definition with `from` read as `to`.
pub(super) fn index(
    def: &str,
    name: &str,
    from: &str,
    to: &str,
) -> std::result::Result<String, String> {
    let mut parsed = parse_one(def)?;
    let Some(NodeEnum::IndexStmt(ix)) = first(&mut parsed) else {
        return Err(format!("{def:?} is not an index definition"));
    };
    ix.idxname = name.to_string();
    ix.concurrent = true;
    for elem in ix
        .index_params
        .iter_mut()
        .chain(ix.index_including_params.iter_mut())
    {
        rename(elem, from, to);
    }
    if let Some(w) = ix.where_clause.as_deref_mut() {
        rename(w, from, to);
    }
    deparse(&parsed, def, (from != to).then_some(from))
}

/// The name an index definition (`CREATE INDEX name ON …`) gives its index.
pub(super) fn index_name(def: &str) -> Option<String> {
    let mut parsed = parse_one(def).ok()?;
    match first(&mut parsed) {
        Some(NodeEnum::IndexStmt(ix)) => Some(ix.idxname.clone()),
        _ => None,
    }
}

/// `ALTER TABLE table ADD CONSTRAINT name <def> NOT VALID` with `from` read as `to`, and whether
/// the original was validated.
fn constraint(
    table: &str,
    name: &str,
    def: &str,
    from: &str,
    to: &str,
) -> std::result::Result<(String, bool), String> {
    let sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {def}",
        quote_ident(table),
        quote_ident(name)
    );
    let mut parsed = parse_one(&sql)?;
    let Some(NodeEnum::AlterTableStmt(alter)) = first(&mut parsed) else {
        return Err(format!("{def:?} is not a constraint definition"));
    };
    let con = alter
        .cmds
        .first_mut()
        .and_then(|c| c.node.as_mut())
        .and_then(|c| match c {
            NodeEnum::AlterTableCmd(cmd) => cmd.def.as_deref_mut(),
            _ => None,
        })
        .and_then(|d| d.node.as_mut());
    let Some(NodeEnum::Constraint(con)) = con else {
        return Err(format!("{def:?} is not a constraint definition"));
    };
    let valid = !con.skip_validation;
    con.skip_validation = true;
    con.initially_valid = false;
    if let Some(e) = con.raw_expr.as_deref_mut() {
        rename(e, from, to);
    }
    for n in con.fk_attrs.iter_mut().chain(con.keys.iter_mut()) {
        if let Some(NodeEnum::String(s)) = n.node.as_mut()
            && s.sval == from
        {
            s.sval = to.to_string();
        }
    }
    Ok((deparse(&parsed, def, (from != to).then_some(from))?, valid))
}

fn parse_one(sql: &str) -> std::result::Result<pg_query::protobuf::ParseResult, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| format!("{sql:?} does not parse: {e}"))?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err(format!("{sql:?} is not one statement"));
    }
    Ok(parsed.protobuf)
}

fn first(parsed: &mut pg_query::protobuf::ParseResult) -> Option<&mut NodeEnum> {
    parsed.stmts[0].stmt.as_mut().and_then(|s| s.node.as_mut())
}

/// Deparses, refusing a result that still reads `from` somewhere as a column: an expression
/// form the rename below does not reach would otherwise keep the old column alive.
fn deparse(
    parsed: &pg_query::protobuf::ParseResult,
    def: &str,
    renamed_away: Option<&str>,
) -> std::result::Result<String, String> {
    let tree = serde_json::to_value(parsed).map_err(|e| e.to_string())?;
    if let Some(from) = renamed_away
        && mentions_column(&tree, from, false)
    {
        return Err(format!(
            "{def:?} uses {from} in a form drydock cannot move; recreate it by hand in a `migration` plan"
        ));
    }
    pg_query::deparse(parsed, pg_query::DeparseOptions::default())
        .map_err(|e| format!("{def:?} does not deparse: {e}"))
}

/// Whether a serialized parse tree still has a column reference (or index column) named `name`.
fn mentions_column(v: &serde_json::Value, name: &str, in_column: bool) -> bool {
    match v {
        serde_json::Value::String(s) => in_column && s == name,
        serde_json::Value::Array(items) => {
            items.iter().any(|i| mentions_column(i, name, in_column))
        }
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| match k.as_str() {
            "ColumnRef" => mentions_column(v, name, true),
            "IndexElem" => {
                v.get("name").is_some_and(|n| n == name) || mentions_column(v, name, in_column)
            }
            _ => mentions_column(v, name, in_column),
        }),
        _ => false,
    }
}

/// Renames column references `from` → `to` in an expression or index element.
fn rename(node: &mut Node, from: &str, to: &str) {
    fn each(nodes: &mut [Node], from: &str, to: &str) {
        nodes.iter_mut().for_each(|n| rename(n, from, to));
    }
    fn one(node: &mut Option<Box<Node>>, from: &str, to: &str) {
        if let Some(n) = node.as_deref_mut() {
            rename(n, from, to);
        }
    }
    let Some(n) = node.node.as_mut() else { return };
    match n {
        NodeEnum::ColumnRef(c) => {
            if let Some(NodeEnum::String(s)) = c.fields.last_mut().and_then(|f| f.node.as_mut())
                && s.sval == from
            {
                s.sval = to.to_string();
            }
        }
        NodeEnum::IndexElem(e) => {
            if e.name == from {
                e.name = to.to_string();
            }
            one(&mut e.expr, from, to);
        }
        NodeEnum::AExpr(e) => {
            one(&mut e.lexpr, from, to);
            one(&mut e.rexpr, from, to);
        }
        NodeEnum::BoolExpr(e) => each(&mut e.args, from, to),
        NodeEnum::FuncCall(f) => {
            each(&mut f.args, from, to);
            each(&mut f.agg_order, from, to);
            one(&mut f.agg_filter, from, to);
        }
        NodeEnum::TypeCast(t) => one(&mut t.arg, from, to),
        NodeEnum::NullTest(t) => one(&mut t.arg, from, to),
        NodeEnum::BooleanTest(t) => one(&mut t.arg, from, to),
        NodeEnum::CaseExpr(c) => {
            one(&mut c.arg, from, to);
            each(&mut c.args, from, to);
            one(&mut c.defresult, from, to);
        }
        NodeEnum::CaseWhen(c) => {
            one(&mut c.expr, from, to);
            one(&mut c.result, from, to);
        }
        NodeEnum::CoalesceExpr(c) => each(&mut c.args, from, to),
        NodeEnum::MinMaxExpr(c) => each(&mut c.args, from, to),
        NodeEnum::NullIfExpr(c) => each(&mut c.args, from, to),
        NodeEnum::List(l) => each(&mut l.items, from, to),
        NodeEnum::RowExpr(r) => each(&mut r.args, from, to),
        NodeEnum::CollateClause(c) => one(&mut c.arg, from, to),
        NodeEnum::AArrayExpr(a) => each(&mut a.elements, from, to),
        NodeEnum::SortBy(s) => one(&mut s.node, from, to),
        NodeEnum::AIndirection(a) => one(&mut a.arg, from, to),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dependent;

    fn deps(indexes: &[(&str, &str)], constraints: &[(&str, &str)]) -> ColumnDependents {
        let d = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(n, d)| Dependent {
                    name: n.to_string(),
                    definition: d.to_string(),
                })
                .collect()
        };
        ColumnDependents {
            indexes: d(indexes),
            constraints: d(constraints),
            ..ColumnDependents::default()
        }
    }

    fn mv() -> Move {
        Move {
            table: "ledger".into(),
            from: "account_id".into(),
            to: "owner_id".into(),
            restore_as: "account_id".into(),
            views: Views::Refuse,
        }
    }

    #[test]
    fn indexes_move_to_the_successor_concurrently_under_a_temporary_name() {
        let c = Carried::new(
            &mv(),
            &deps(
                &[(
                    "ledger_account",
                    "CREATE UNIQUE INDEX ledger_account ON public.ledger USING btree (account_id, lower((note)::text)) INCLUDE (amount) WHERE (account_id > 0)",
                )],
                &[],
            ),
        )
        .unwrap();
        let ix = &c.indexes[0];
        assert_eq!(ix.temp, "ledger_account_dd");
        assert_eq!(
            ix.create,
            "CREATE UNIQUE INDEX CONCURRENTLY ledger_account_dd ON public.ledger USING btree (owner_id, lower(note::text)) INCLUDE (amount) WHERE owner_id > 0"
        );
        assert!(ix.restore.starts_with(
            "CREATE UNIQUE INDEX CONCURRENTLY ledger_account ON public.ledger USING btree (account_id,"
        ));
    }

    #[test]
    fn constraints_move_not_valid_and_remember_whether_they_were_validated() {
        let c = Carried::new(
            &mv(),
            &deps(
                &[],
                &[
                    (
                        "ledger_account_id_fkey",
                        "FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE",
                    ),
                    (
                        "ledger_positive",
                        "CHECK (((account_id > 0) AND (CASE WHEN (amount > 0) THEN account_id ELSE NULL::bigint END IS NOT NULL))) NOT VALID",
                    ),
                ],
            ),
        )
        .unwrap();
        let (fk, check) = (&c.constraints[0], &c.constraints[1]);
        assert_eq!(
            fk.create,
            "ALTER TABLE ledger ADD CONSTRAINT ledger_account_id_fkey_dd FOREIGN KEY (owner_id) REFERENCES accounts (id) ON DELETE CASCADE NOT VALID"
        );
        assert!(fk.valid && !check.valid);
        assert!(check.create.contains("owner_id > 0") && !check.create.contains("account_id"));
        assert!(
            check
                .restore
                .contains("ADD CONSTRAINT ledger_positive CHECK (account_id > 0")
        );
    }

    #[test]
    fn what_cannot_move_is_named_and_refused() {
        let mut d = deps(&[], &[]);
        d.blocking = vec!["view rich_accounts".into()];
        let e = Carried::new(&mv(), &d).unwrap_err();
        assert!(e.contains("view rich_accounts"), "{e}");
        // A column reference the rename does not reach keeps the old column alive: refused.
        let e = Carried::new(
            &mv(),
            &deps(
                &[],
                &[(
                    "odd",
                    "CHECK ((xmlelement(name x, account_id) IS NOT NULL))",
                )],
            ),
        )
        .unwrap_err();
        assert!(e.contains("cannot move"), "{e}");
    }

    #[test]
    fn rename_column_renders_its_carry() {
        let mut d = deps(
            &[(
                "ledger_account",
                "CREATE INDEX ledger_account ON public.ledger USING btree (account_id)",
            )],
            &[(
                "ledger_account_id_fkey",
                "FOREIGN KEY (account_id) REFERENCES accounts(id)",
            )],
        );
        d.column.comment = Some("who owns it's row".into());
        d.column.identity = Some("BY DEFAULT".into());
        let r = super::super::render(
            "rename-column",
            serde_json::json!({"table": "ledger", "column": "account_id", "new_name": "owner_id"}),
            super::super::Facts {
                deps: Some(&d),
                catalog: None,
            },
        )
        .unwrap();
        // The new column gets the old one's comment, a copy of its index (built concurrently)
        // and of its foreign key (NOT VALID, validated later), and, at the contract, its
        // identity and the index's own name; rollback's contract down gives them all back.
        for carried in [
            r#"COMMENT ON COLUMN "ledger"."owner_id" IS 'who owns it''s row';"#,
            "CREATE INDEX CONCURRENTLY ledger_account_dd ON public.ledger USING btree (owner_id);",
            "ADD CONSTRAINT ledger_account_id_fkey_dd FOREIGN KEY (owner_id) REFERENCES accounts (id) NOT VALID;",
            "'ledger', 'owner_id', next);",
            r#"ALTER INDEX "ledger_account_dd" RENAME TO "ledger_account";"#,
            "ADD CONSTRAINT ledger_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;",
            r#"COMMENT ON COLUMN "ledger"."account_id" IS 'who owns it''s row';"#,
        ] {
            assert!(
                r.script.contains(carried),
                "rename-column lacks {carried}:\n{}",
                r.script
            );
        }
        let r = super::super::render(
            "change-column-type",
            serde_json::json!({"table": "ledger", "column": "account_id", "new_type": "numeric(20,0)"}),
            super::super::Facts {
                deps: Some(&d),
                catalog: None,
            },
        )
        .unwrap();
        for carried in [
            r#"COMMENT ON COLUMN "ledger"."account_id_new" IS 'who owns it''s row';"#,
            "CREATE INDEX CONCURRENTLY ledger_account_dd ON public.ledger USING btree (account_id_new);",
            "ADD CONSTRAINT ledger_account_id_fkey_dd FOREIGN KEY (account_id_new) REFERENCES accounts (id) NOT VALID;",
            "'ledger', 'account_id', next);",
            "CREATE INDEX CONCURRENTLY ledger_account ON public.ledger USING btree (account_id_old);",
        ] {
            assert!(
                r.script.contains(carried),
                "change-column-type lacks {carried}:\n{}",
                r.script
            );
        }
    }
}
