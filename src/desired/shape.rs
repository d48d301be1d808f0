//! What two spellings of the same schema have in common: types, expressions and index shapes
//! read through PostgreSQL's own parser (pg_query) and printed back by its deparser, so that
//! `int` and `integer`, `'x'` and `'x'::text`, `s IN ('a')` and `s = ANY (ARRAY['a'::text])`
//! compare equal — the desired DDL as the agent wrote it, the catalog as PostgreSQL prints it.

use pg_query::NodeEnum;
use pg_query::protobuf::{AArrayExpr, AExprKind, IndexStmt, Node, TypeCast, TypeName, a_const};

fn node(n: NodeEnum) -> Node {
    Node { node: Some(n) }
}

/// The names of a node list of `String`s (`["pg_catalog", "int4"]`).
pub fn names(list: &[Node]) -> Vec<String> {
    list.iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// A type as a comparable key: its canonical name without `pg_catalog.`, its modifiers and
/// array dimensions (`varchar(20)` and `character varying(20)` are both `varchar(20)`).
pub fn type_key(t: &TypeName) -> String {
    let mut n = names(&t.names);
    // Built-in types and the application's own (`public.year`, as the catalog prints `year`).
    if n.len() > 1 && (n[0] == "pg_catalog" || n[0] == "public") {
        n.remove(0);
    }
    let mut key = n.join(".");
    if !t.typmods.is_empty() {
        let mods: Vec<String> = t.typmods.iter().map(expression).collect();
        key.push_str(&format!("({})", mods.join(",")));
    }
    for _ in &t.array_bounds {
        key.push_str("[]");
    }
    key
}

/// A type as SQL a template accepts (`varchar(20)`, `timestamp with time zone`).
pub fn type_sql(t: &TypeName) -> String {
    let cast = NodeEnum::TypeCast(Box::new(TypeCast {
        arg: Some(Box::new(node(NodeEnum::AConst(
            pg_query::protobuf::AConst {
                isnull: true,
                ..Default::default()
            },
        )))),
        type_name: Some(t.clone()),
        location: 0,
    }));
    let text = printed(node(cast));
    text.strip_prefix("NULL::").unwrap_or(&text).to_string()
}

/// A serial type (`serial`, `bigserial`, `smallserial`): the integer type it stands for.
pub fn serial(t: &TypeName) -> Option<&'static str> {
    match names(&t.names).last().map(String::as_str) {
        Some("serial" | "serial4") => Some("int4"),
        Some("bigserial" | "serial8") => Some("int8"),
        Some("smallserial" | "serial2") => Some("int2"),
        _ => None,
    }
}

/// An expression as PostgreSQL's deparser prints it, as written: what drydock runs.
pub fn sql(n: &Node) -> String {
    printed(n.clone())
}

/// An expression as PostgreSQL's deparser prints it, normalised (see `normalise`): what
/// compares, never what runs.
pub fn expression(n: &Node) -> String {
    let mut n = n.clone();
    normalise(&mut n);
    printed(n)
}

/// The first statement `sql` parses to; `None` when it does not parse or is empty.
pub fn first_statement(sql: &str) -> Option<NodeEnum> {
    pg_query::parse(sql, 0)
        .ok()?
        .protobuf
        .stmts
        .into_iter()
        .next()?
        .stmt?
        .node
}

/// An expression as the deparser prints it.
fn printed(n: Node) -> String {
    // A parsed `SELECT 1` is the frame: its enums hold values the deparser accepts.
    let mut select = first_statement("SELECT 1").expect("SELECT 1 parses");
    if let NodeEnum::SelectStmt(s) = &mut select
        && let Some(NodeEnum::ResTarget(t)) = s.target_list[0].node.as_mut()
    {
        t.val = Some(Box::new(n));
    }
    let text = select
        .deparse(pg_query::DeparseOptions::default())
        .unwrap_or_default();
    text.strip_prefix("SELECT ").unwrap_or(&text).to_string()
}

/// The plain value of a constant (`'x'`, `42`, `true`, `'x'::text`), for templates that take a
/// default as a value; `None` for anything computed.
pub fn constant(n: &Node) -> Option<serde_json::Value> {
    match &n.node {
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().and_then(constant),
        Some(NodeEnum::AConst(c)) if c.isnull => Some(serde_json::Value::Null),
        Some(NodeEnum::AConst(c)) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i.ival.into()),
            a_const::Val::Fval(f) => f
                .fval
                .parse::<f64>()
                .ok()
                .filter(|v| v.to_string() == f.fval)
                .map(Into::into),
            a_const::Val::Boolval(b) => Some(b.boolval.into()),
            a_const::Val::Sval(s) => Some(s.sval.clone().into()),
            a_const::Val::Bsval(_) => None,
        },
        _ => None,
    }
}

/// Removes what the catalog adds and the author leaves out: casts of constants and casts to a
/// text type (a `varchar` column compared as `(c)::text`, its list as `(ARRAY[…])::text[]`),
/// `IN (…)` written as `= ANY (ARRAY[…])` (and `NOT IN` as `<> ALL`).
fn normalise(n: &mut Node) {
    let Some(inner) = n.node.as_mut() else {
        return;
    };
    match inner {
        NodeEnum::TypeCast(c)
            if c.arg
                .as_deref()
                .is_some_and(|a| matches!(a.node, Some(NodeEnum::AConst(_))))
                || c.type_name.as_ref().is_some_and(textual) =>
        {
            let arg = c.arg.take().map(|a| *a);
            if let Some(arg) = arg {
                *n = arg;
                normalise(n);
            }
        }
        NodeEnum::TypeCast(c) => each(c.arg.as_deref_mut()),
        NodeEnum::AExpr(e) => {
            if e.kind == AExprKind::AexprIn as i32 {
                let negated = names(&e.name).first().is_some_and(|o| o == "<>");
                e.kind = if negated {
                    AExprKind::AexprOpAll as i32
                } else {
                    AExprKind::AexprOpAny as i32
                };
                if let Some(NodeEnum::List(l)) = e.rexpr.as_deref().and_then(|r| r.node.clone()) {
                    e.rexpr = Some(Box::new(node(NodeEnum::AArrayExpr(AArrayExpr {
                        elements: l.items,
                        ..Default::default()
                    }))));
                }
            }
            each(e.lexpr.as_deref_mut());
            each(e.rexpr.as_deref_mut());
        }
        NodeEnum::BoolExpr(b) => b.args.iter_mut().for_each(normalise),
        NodeEnum::FuncCall(f) => f.args.iter_mut().for_each(normalise),
        NodeEnum::AArrayExpr(a) => a.elements.iter_mut().for_each(normalise),
        NodeEnum::List(l) => l.items.iter_mut().for_each(normalise),
        NodeEnum::NullTest(t) => each(t.arg.as_deref_mut()),
        NodeEnum::CoalesceExpr(c) => c.args.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// `text`, `varchar`, `char` and their arrays.
fn textual(t: &TypeName) -> bool {
    matches!(
        names(&t.names).last().map(String::as_str),
        Some("text" | "varchar" | "bpchar")
    )
}

fn each(n: Option<&mut Node>) {
    if let Some(n) = n {
        normalise(n);
    }
}

/// An index's shape, whatever its name and schema: `UNIQUE … USING btree (lower(email)) WHERE …`.
pub fn index_shape(i: &IndexStmt) -> String {
    let mut i = i.clone();
    i.idxname.clear();
    i.concurrent = false;
    i.if_not_exists = false;
    if i.access_method.is_empty() {
        i.access_method = "btree".into();
    }
    if let Some(r) = i.relation.as_mut() {
        if r.schemaname == "public" {
            r.schemaname.clear();
        }
        r.inh = true;
        r.location = 0;
    }
    for p in &mut i.index_params {
        if let Some(NodeEnum::IndexElem(e)) = p.node.as_mut()
            && let Some(expr) = e.expr.as_deref_mut()
        {
            normalise(expr);
        }
    }
    if let Some(w) = i.where_clause.as_deref_mut() {
        normalise(w);
    }
    NodeEnum::IndexStmt(Box::new(i))
        .deparse(pg_query::DeparseOptions::default())
        .unwrap_or_default()
}

/// The plain columns of a plain index (a b-tree over columns alone: no expression, no
/// predicate, no INCLUDE, no options), in order; `None` otherwise.
pub fn index_columns(i: &IndexStmt) -> Option<Vec<String>> {
    let plain = i.where_clause.is_none()
        && i.index_including_params.is_empty()
        && i.options.is_empty()
        && i.table_space.is_empty()
        && !i.nulls_not_distinct
        && matches!(i.access_method.as_str(), "" | "btree");
    if !plain {
        return None;
    }
    i.index_params
        .iter()
        .map(|p| match &p.node {
            Some(NodeEnum::IndexElem(e))
                if e.expr.is_none()
                    && !e.name.is_empty()
                    && e.opclass.is_empty()
                    && e.collation.is_empty()
                    && e.ordering == 1
                    && e.nulls_ordering == 1 =>
            {
                Some(e.name.clone())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_of(sql: &str) -> String {
        let Some(NodeEnum::SelectStmt(s)) = first_statement(&format!("SELECT {sql}")) else {
            panic!("{sql}")
        };
        let Some(NodeEnum::ResTarget(t)) = s.target_list[0].node.clone() else {
            panic!()
        };
        expression(t.val.as_deref().unwrap())
    }

    fn type_of(sql: &str) -> (String, String) {
        let Some(NodeEnum::CreateStmt(c)) = first_statement(&format!("CREATE TABLE t (c {sql})"))
        else {
            panic!("{sql}")
        };
        let Some(NodeEnum::ColumnDef(d)) = c.table_elts[0].node.clone() else {
            panic!()
        };
        let t = d.type_name.unwrap();
        (type_key(&t), type_sql(&t))
    }

    #[test]
    fn two_spellings_of_a_type_are_one_key() {
        for (a, b) in [
            ("int", "integer"),
            ("varchar(20)", "character varying(20)"),
            ("timestamp with time zone", "timestamptz"),
            ("numeric(12, 2)", "decimal(12,2)"),
            ("bool", "boolean"),
            ("text[]", "text ARRAY"),
        ] {
            assert_eq!(type_of(a).0, type_of(b).0, "{a} / {b}");
        }
        assert_ne!(type_of("varchar(20)").0, type_of("varchar(30)").0);
        assert_ne!(type_of("int").0, type_of("bigint").0);
        assert_eq!(type_of("character varying(20)").1, "varchar(20)");
    }

    #[test]
    fn the_catalogs_casts_and_any_arrays_read_as_the_authors_text() {
        assert_eq!(default_of("'x'::text"), default_of("'x'"));
        assert_eq!(default_of("0"), "0");
        assert_eq!(
            default_of("(status = ANY (ARRAY['a'::text, 'b'::text]))"),
            default_of("status IN ('a', 'b')")
        );
        assert_eq!(default_of("((balance >= 0))"), default_of("balance >= 0"));
        assert_ne!(default_of("balance >= 0"), default_of("balance > 0"));
        // A varchar column's list, as PostgreSQL stores it.
        assert_eq!(
            default_of(
                "((country)::text = ANY ((ARRAY['USA'::character varying, 'Canada'::character varying])::text[]))"
            ),
            default_of("country IN ('USA', 'Canada')")
        );
        assert_ne!(default_of("(n)::integer > 0"), default_of("n > 0"));
        assert_eq!(default_of("now()"), "now()");
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    fn shape(sql: &str) -> String {
        let Some(NodeEnum::IndexStmt(i)) = first_statement(sql) else {
            panic!("{sql}")
        };
        index_shape(&i)
    }

    #[test]
    fn an_index_as_written_and_as_the_catalog_prints_it_are_one_shape() {
        for (written, printed) in [
            (
                "CREATE INDEX gen_x0 ON customer (email) WHERE country IS NOT NULL",
                "CREATE INDEX gen_x0 ON public.customer USING btree (email) WHERE (country IS NOT NULL)",
            ),
            (
                "CREATE INDEX a ON album (lower(title))",
                "CREATE INDEX a ON public.album USING btree (lower((title)::text))",
            ),
            (
                "CREATE INDEX t ON track (album_id, genre_id DESC NULLS LAST)",
                "CREATE INDEX t ON public.track USING btree (album_id, genre_id DESC NULLS LAST)",
            ),
        ] {
            assert_eq!(shape(written), shape(printed), "{written}");
        }
    }
}
