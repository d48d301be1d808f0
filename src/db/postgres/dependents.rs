//! What hangs off one column in PostgreSQL's catalog — the indexes, constraints, sequence,
//! identity and comment that a template moving the column (expand/contract) must carry to its
//! successor — and what it cannot carry (views, policies, inbound foreign keys, ...), read from
//! `pg_depend` so that nothing that depends on the column goes unseen.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::db::{ColumnDependents, ColumnShape, Dependent, ViewDefinition};
use crate::sql::{quote_ident, quote_literal};

pub(super) async fn read(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
) -> sqlx::Result<Option<ColumnDependents>> {
    let rel = quote_literal(&quote_ident(table));
    let Some((attnum, shape)) = shape(conn, &rel, column).await? else {
        return Ok(None);
    };
    // Every object that depends on the column, and every foreign key of another table that
    // references it (those depend on the referenced column, from their own table).
    // language=SQL
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT d.classid::regclass::text, d.objid::int8, pg_describe_object(d.classid, d.objid, 0)
         FROM pg_depend d
         WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass({rel}) AND d.refobjsubid = $1
           AND d.deptype IN ('n', 'a')
         ORDER BY 1, 3"
    )))
    .persistent(false)
    .bind(attnum)
    .fetch_all(&mut *conn)
    .await?;
    let mut deps = ColumnDependents {
        column: shape,
        ..ColumnDependents::default()
    };
    let mut view_oids: Vec<i64> = Vec::new();
    for row in rows {
        let (class, oid, described): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
        match class.as_str() {
            "pg_class" => {
                // language=SQL
                let r = sqlx::query(
                    "SELECT c.relkind::text, c.relname, pg_get_indexdef(c.oid)
                     FROM pg_class c WHERE c.oid = $1::oid",
                )
                .persistent(false)
                .bind(oid)
                .fetch_one(&mut *conn)
                .await?;
                let kind: String = r.get(0);
                match kind.as_str() {
                    "i" => deps.indexes.push(Dependent {
                        name: r.get(1),
                        definition: r.get(2),
                    }),
                    // The column's own sequence (serial): carried through `column.sequence`.
                    "S" => {}
                    _ => deps.blocking.push(described),
                }
            }
            "pg_constraint" => {
                // language=SQL
                let r = sqlx::query(
                    "SELECT co.contype::text, co.conname, pg_get_constraintdef(co.oid), co.conrelid = to_regclass($2)
                     FROM pg_constraint co WHERE co.oid = $1::oid",
                )
                .persistent(false)
                .bind(oid)
                .bind(quote_ident(table))
                .fetch_one(&mut *conn)
                .await?;
                let (kind, own): (String, bool) = (r.get(0), r.get(3));
                let dep = Dependent {
                    name: r.get(1),
                    definition: r.get(2),
                };
                match (kind.as_str(), own) {
                    ("c" | "f", true) => deps.constraints.push(dep),
                    // NOT NULL is carried through `column.not_null` (PostgreSQL 18 records it here).
                    ("n", true) => {}
                    _ => deps.blocking.push(described),
                }
            }
            // The column's default is carried through `column.default`.
            "pg_attrdef" => {}
            // A plain view's rule: the view (and those reading it) can be created again.
            "pg_rewrite" if is_plain_view(conn, oid).await? => view_oids.push(oid),
            _ => deps.blocking.push(described),
        }
    }
    deps.views = views(conn, &view_oids).await?;
    Ok(Some(deps))
}

/// The column's number and shape (type, NOT NULL, default, identity, comment, sequence); none
/// when the table has no such column.
async fn shape(
    conn: &mut PgConnection,
    rel: &str,
    column: &str,
) -> sqlx::Result<Option<(i32, ColumnShape)>> {
    // language=SQL
    let col = sqlx::query(AssertSqlSafe(format!(
        "SELECT a.attnum::int4, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, col_description(a.attrelid, a.attnum),
                pg_get_serial_sequence({rel}, a.attname)
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = to_regclass({rel}) AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped"
    )))
    .persistent(false)
    .bind(column)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(col) = col else { return Ok(None) };
    let attnum: i32 = col.get(0);
    let identity: String = col.get(4);
    let shape = ColumnShape {
        ty: col.get(1),
        not_null: col.get(2),
        default: col.get(3),
        identity: match identity.as_str() {
            "a" => Some("ALWAYS".into()),
            "d" => Some("BY DEFAULT".into()),
            _ => None,
        },
        comment: col.get(5),
        sequence: col.get(6),
    };
    Ok(Some((attnum, shape)))
}

/// Whether the rule `oid` is a plain view's (not a materialized view's, not a rule of a table).
async fn is_plain_view(conn: &mut PgConnection, rule: i64) -> sqlx::Result<bool> {
    // language=SQL
    sqlx::query_scalar(
        "SELECT c.relkind = 'v' FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = $1::oid",
    )
    .persistent(false)
    .bind(rule)
    .fetch_optional(&mut *conn)
    .await
    .map(|v: Option<bool>| v.unwrap_or(false))
}

/// The views of `rules` and every view that reads them, deepest last, each with what it takes
/// to create it again as it is.
async fn views(conn: &mut PgConnection, rules: &[i64]) -> sqlx::Result<Vec<ViewDefinition>> {
    if rules.is_empty() {
        return Ok(vec![]);
    }
    // language=SQL
    let rows = sqlx::query(
        "WITH RECURSIVE found(oid, depth) AS (
             SELECT r.ev_class, 0 FROM pg_rewrite r WHERE r.oid = ANY ($1::int8[]::oid[])
             UNION ALL
             SELECT w.ev_class, f.depth + 1 FROM found f
             JOIN pg_depend d ON d.refobjid = f.oid AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_rewrite'::regclass
             JOIN pg_rewrite w ON w.oid = d.objid
             WHERE w.ev_class <> f.oid AND f.depth < 20)
         SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text,
                pg_get_viewdef(c.oid, true), array_to_string(c.reloptions, ', '),
                obj_description(c.oid, 'pg_class'),
                (SELECT array_agg(format('GRANT %s ON %I.%I TO %s', a.privilege_type, n.nspname, c.relname,
                                         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
                                  ORDER BY a.grantee, a.privilege_type)
                 FROM aclexplode(c.relacl) AS a WHERE a.grantee <> c.relowner),
                max(f.depth)
         FROM found f JOIN pg_class c ON c.oid = f.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relacl, c.relowner
         ORDER BY max(f.depth), 1",
    )
    .persistent(false)
    .bind(rules)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let (name, kind, definition): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if kind != "v" {
            // A materialized view on a view on the column: not created again here.
            continue;
        }
        let options: Option<String> = r.get(3);
        let comment: Option<String> = r.get(4);
        let grants: Option<Vec<String>> = r.get(5);
        let with = options
            .filter(|o| !o.is_empty())
            .map(|o| format!(" WITH ({o})"))
            .unwrap_or_default();
        let mut after: Vec<String> = comment
            .map(|c| {
                format!(
                    "COMMENT ON VIEW {name} IS {}",
                    crate::sql::quote_literal(&c)
                )
            })
            .into_iter()
            .collect();
        after.extend(grants.unwrap_or_default());
        out.push(ViewDefinition {
            create: format!(
                "CREATE VIEW {name}{with} AS {}",
                definition.trim().trim_end_matches(';')
            ),
            name,
            after,
        });
    }
    Ok(out)
}
