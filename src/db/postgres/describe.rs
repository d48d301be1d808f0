//! What `inspect` reads beyond the catalog: relation kinds and partition bounds, the functions
//! written in SQL or PL/pgSQL, views' definitions, enums and domains.

use super::catalog::names_in;
use super::*;
use crate::db::describe::{
    Described, FunctionDef, PartitionOf, Relation, RelationKind, UserType, ViewDef,
};

pub(super) async fn describe_on(conn: &mut PgConnection) -> sqlx::Result<Described> {
    Ok(Described {
        relations: relations_on(conn).await?,
        functions: functions_on(conn).await?,
        views: views_on(conn).await?,
        types: types_on(conn).await?,
    })
}

async fn relations_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, Relation>> {
    // language=SQL
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, c.relkind::text, c.relispopulated,
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                pn.nspname, p.relname, pg_get_expr(c.relpartbound, c.oid)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
         LEFT JOIN pg_class p ON p.oid = i.inhparent LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind = RelationKind::of_relkind(&r.get::<String, _>(2));
            let parent = r
                .get::<Option<String>, _>(5)
                .zip(r.get::<Option<String>, _>(6));
            let relation = Relation {
                kind,
                partition_key: r.get(4),
                partition_of: parent.map(|(schema, name)| PartitionOf {
                    parent: qualified(&schema, &name),
                    bound: r.get::<Option<String>, _>(7).unwrap_or_default(),
                }),
                populated: (kind == RelationKind::MaterializedView).then(|| r.get(3)),
            };
            (qualified(r.get(0), r.get(1)), relation)
        })
        .collect())
}

/// Functions and procedures in SQL or PL/pgSQL that no extension owns (an extension's are its
/// own business), with their whole definitions.
async fn functions_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, FunctionDef>> {
    // language=SQL
    // The names are the body's: `prosrc` (a quoted body is one string in the definition), and
    // the definition's for a body written in SQL-standard form (`BEGIN ATOMIC`, no `prosrc`).
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosrc
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE p.prokind IN ('f', 'p') AND l.lanname IN ('sql', 'plpgsql') AND {USER_SCHEMA}
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                           AND d.objid = p.oid AND d.deptype = 'e')"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, definition, body)| {
            let mut names = names_in(&body);
            names.extend(names_in(&definition));
            (name, FunctionDef { definition, names })
        })
        .collect())
}

async fn views_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, ViewDef>> {
    // language=SQL
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, c.relkind = 'm', c.relispopulated, pg_get_viewdef(c.oid)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let materialized: bool = r.get(2);
            let view = ViewDef {
                materialized,
                populated: materialized.then(|| r.get(3)),
                definition: r.get::<Option<String>, _>(4).unwrap_or_default(),
            };
            (qualified(r.get(0), r.get(1)), view)
        })
        .collect())
}

/// Enums and domains, keyed by `format_type` (how a column's type is printed).
async fn types_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, UserType>> {
    // language=SQL
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT format_type(t.oid, NULL), t.typtype::text,
                ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
                format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                ARRAY(SELECT pg_get_constraintdef(co.oid) FROM pg_constraint co WHERE co.contypid = t.oid ORDER BY co.conname)
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typtype IN ('e', 'd') AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let ty = if r.get::<String, _>(1) == "e" {
                UserType::Enum { labels: r.get(2) }
            } else {
                UserType::Domain {
                    base: r.get(3),
                    not_null: r.get(4),
                    default: r.get(5),
                    checks: r.get(6),
                }
            };
            (r.get(0), ty)
        })
        .collect())
}
