//! What hangs off one column in PostgreSQL's catalog — the indexes, constraints, sequence,
//! identity and comment that a template moving the column (expand/contract) must carry to its
//! successor — and what it cannot carry (views, policies, inbound foreign keys, ...), read from
//! `pg_depend` so that nothing that depends on the column goes unseen.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::db::{ColumnDependents, ColumnShape, Dependent};
use crate::sql::{quote_ident, quote_literal};

pub(super) async fn read(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
) -> sqlx::Result<Option<ColumnDependents>> {
    let rel = quote_literal(&quote_ident(table));
    // language=SQL
    let col = sqlx::query(AssertSqlSafe(format!(
        "SELECT a.attnum::int4, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, col_description(a.attrelid, a.attnum),
                pg_get_serial_sequence({rel}, a.attname)
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = to_regclass({rel}) AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped"
    )))
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
    .bind(attnum)
    .fetch_all(&mut *conn)
    .await?;
    let mut deps = ColumnDependents {
        column: shape,
        ..ColumnDependents::default()
    };
    for row in rows {
        let (class, oid, described): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
        match class.as_str() {
            "pg_class" => {
                // language=SQL
                let r = sqlx::query(
                    "SELECT c.relkind::text, c.relname, pg_get_indexdef(c.oid)
                     FROM pg_class c WHERE c.oid = $1::oid",
                )
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
            _ => deps.blocking.push(described),
        }
    }
    Ok(Some(deps))
}
