//! Reading the catalog: tables, columns, indexes, constraints, row estimates and sizes for the
//! analysis; row counts; integrity problems.

use super::*;

impl Postgres {
    /// Invalid indexes and unvalidated constraints, as sentences.
    pub async fn integrity(&self) -> Result<Vec<IntegrityProblem>> {
        let mut conn = self.connect().await?;
        // Each problem carries the object's fingerprint line, so that one the schema had before
        // the plan is told apart from one the plan left: read under the fingerprint's pinned
        // search path, so that the line renders as the fingerprint's does.
        // language=SQL
        let invalid = format!(
            "SELECT n.nspname::text, c.relname::text, 'index ' || pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {USER_SCHEMA}"
        );
        // language=SQL
        let unvalidated = format!(
            "SELECT co.conname::text, tn.nspname::text, t.relname::text,
                    'constraint ' || co.conrelid::regclass::text || '.' || co.conname || ' '
             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
             JOIN pg_class t ON t.oid = co.conrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
             WHERE NOT co.convalidated AND {USER_SCHEMA}"
        );
        type Rows = (
            Vec<(String, String, String)>,
            Vec<(String, String, String, String)>,
        );
        let read: sqlx::Result<Rows> = pinned(&mut conn, async |c| {
            let invalid = sqlx::query_as(AssertSqlSafe(invalid))
                .persistent(false)
                .fetch_all(&mut *c)
                .await?;
            let unvalidated = sqlx::query_as(AssertSqlSafe(unvalidated))
                .persistent(false)
                .fetch_all(&mut *c)
                .await?;
            Ok((invalid, unvalidated))
        })
        .await;
        conn.close().await.ok();
        let (invalid, unvalidated) = read.map_err(|e| self.err(e))?;
        Ok(invalid
            .into_iter()
            .map(|(schema, i, line)| IntegrityProblem {
                detail: format!(
                    "index `{}` is INVALID (a failed CONCURRENTLY build?); drop and rebuild it",
                    qualified(&schema, &i)
                ),
                fingerprint: Some((line, " INVALID".into())),
            })
            .chain(
                unvalidated
                    .into_iter()
                    .map(|(c, schema, table, line)| {
                        let t = qualified(&schema, &table);
                        IntegrityProblem {
                            detail: format!("constraint `{c}` on `{t}` is NOT VALID; run ALTER TABLE {t} VALIDATE CONSTRAINT {c}"),
                            fingerprint: Some((line, " NOT VALID".into())),
                        }
                    }),
            )
            .collect())
    }
}

pub(super) async fn row_counts_on(
    conn: &mut PgConnection,
    tables: &[String],
) -> sqlx::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for t in tables {
        // An unpopulated materialized view holds no rows (and cannot be counted); a partitioned
        // table's rows are its partitions' (its own estimate stays -1 until it is analysed).
        // language=SQL
        let row: Option<(f64, i64, bool)> = sqlx::query_as(
            "SELECT CASE WHEN c.relkind = 'p' THEN coalesce((SELECT sum(greatest(p.reltuples, 0))
                                                            FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                                                            WHERE i.inhparent = c.oid), 0)
                         ELSE c.reltuples END::float8,
                    c.relpages::int8, c.relkind = 'm' AND NOT c.relispopulated
             FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')",
        )
        .persistent(false)
        .bind(t)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((estimate, pages, unpopulated)) = row else {
            continue;
        };
        let rows = if unpopulated {
            0
        } else if estimate >= 0.0 {
            estimate as u64
        } else if pages < 10_000 {
            // Never analysed: count small tables exactly.
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*)::int8 FROM {}",
                qualified_ident(t)
            )))
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
            n as u64
        } else {
            0
        };
        out.insert(t.clone(), rows);
    }
    Ok(out)
}

pub(super) async fn catalog_on(conn: &mut PgConnection) -> sqlx::Result<Catalog> {
    let mut tables = tables_on(conn).await?;
    attachments_on(conn, &mut tables).await?;
    // language=SQL
    let checks: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT n.nspname::text, c.relname::text, pg_get_constraintdef(co.oid)
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE co.contype = 'c' AND co.convalidated AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let proven_not_null = checks
        .iter()
        .filter_map(|(schema, table, def)| {
            not_null_check(def).map(|col| format!("{}.{col}", qualified(schema, table)))
        })
        .collect();
    let volatile_functions = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT proname::text FROM pg_proc WHERE provolatile = 'v'",
    )
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let partitions = partitions_on(conn, &mut tables).await?;
    // language=SQL
    let schemas = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
        "SELECT n.nspname::text FROM pg_namespace n WHERE {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let types = sqlx::query_scalar::<_, String>("SELECT DISTINCT typname::text FROM pg_type")
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    Ok(Catalog {
        engine: crate::sql::Dialect::Postgres,
        tables,
        proven_not_null,
        volatile_functions,
        column_views: column_views_on(conn).await?,
        partitions,
        schemas,
        types,
    })
}

/// Each partitioned table's partitions; the parent's rows and bytes become its partitions'
/// sums (PostgreSQL keeps no estimate for the parent, and the partitions are what a statement
/// on the parent reads, locks and builds on).
async fn partitions_on(
    conn: &mut PgConnection,
    tables: &mut BTreeMap<String, TableInfo>,
) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
    // language=SQL
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT pn.nspname, p.relname, n.nspname, c.relname
         FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE p.relkind = 'p' AND {USER_SCHEMA} ORDER BY 1, 2, 3, 4"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        out.entry(qualified(r.get(0), r.get(1)))
            .or_default()
            .push(qualified(r.get(2), r.get(3)));
    }
    for (parent, children) in &out {
        let (rows, bytes) = children
            .iter()
            .filter_map(|c| tables.get(c))
            .fold((0, 0), |(r, b), t| (r + t.rows, b + t.bytes.unwrap_or(0)));
        if let Some(t) = tables.get_mut(parent) {
            t.rows = rows;
            t.bytes = Some(bytes);
        }
    }
    Ok(out)
}

/// The application's tables with their row estimates (counted where never analysed) and sizes.
async fn tables_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, TableInfo>> {
    // language=SQL
    let rels = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, c.reltuples::float8, c.relpages::int8, pg_total_relation_size(c.oid)::int8, c.relkind::text,
                obj_description(c.oid, 'pg_class')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = BTreeMap::new();
    let mut unknown = Vec::new();
    for r in &rels {
        let name = qualified(r.get(0), r.get(1));
        let estimate: f64 = r.get(2);
        if estimate < 0.0 {
            unknown.push(name.clone());
        }
        tables.insert(
            name,
            TableInfo {
                kind: crate::db::describe::RelationKind::of_relkind(&r.get::<String, _>(5)),
                rows: estimate.max(0.0) as u64,
                bytes: Some(r.get::<i64, _>(4) as u64),
                comment: r.get(6),
                ..TableInfo::default()
            },
        );
    }
    for (t, n) in row_counts_on(conn, &unknown).await? {
        if let Some(info) = tables.get_mut(&t) {
            info.rows = n;
        }
    }
    Ok(tables)
}

/// Each table's columns, indexes, constraints (and the foreign keys pointing at it), dependent
/// views and triggers.
async fn attachments_on(
    conn: &mut PgConnection,
    tables: &mut BTreeMap<String, TableInfo>,
) -> sqlx::Result<()> {
    // language=SQL
    let cols = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum),
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey))
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA}
         ORDER BY a.attnum"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    for r in &cols {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.columns.push(Column {
                name: r.get(2),
                ty: r.get(3),
                nullable: r.get(4),
                default: r.get(5),
                comment: r.get(6),
                primary_key: r.get(7),
            });
        }
    }
    // language=SQL
    let idx = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    for r in &idx {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.indexes.push(r.get(2));
        }
    }
    constraints_on(conn, tables).await?;
    // language=SQL
    let deps = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT n.nspname, c.relname, vn.nspname, v.relname
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
         JOIN pg_namespace vn ON vn.oid = v.relnamespace
         JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classid = 'pg_rewrite'::regclass AND c.oid <> v.oid AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    for r in &deps {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.views.push(qualified(r.get(2), r.get(3)));
        }
    }
    triggers_on(conn, tables).await
}

/// Each table's constraints, and on each table the foreign keys pointing at it.
async fn constraints_on(
    conn: &mut PgConnection,
    tables: &mut BTreeMap<String, TableInfo>,
) -> sqlx::Result<()> {
    // language=SQL
    let cons = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, co.conname::text, pg_get_constraintdef(co.oid), co.contype::text, co.confrelid::regclass::text, co.convalidated
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    for r in &cons {
        let table = qualified(r.get(0), r.get(1));
        let (name, def, kind, referenced, valid): (String, String, String, String, bool) =
            (r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
        if let Some(t) = tables.get_mut(&table) {
            t.constraints.push(format!(
                "{name}: {def}{}",
                if valid { "" } else { " (NOT VALID)" }
            ));
        }
        if kind == "f" {
            let referenced = referenced.trim_start_matches("public.").to_string();
            if let Some(t) = tables.get_mut(&referenced) {
                t.foreign_keys_in.push(format!("{table}.{name}: {def}"));
            }
        }
    }
    Ok(())
}

/// Each table's triggers, with what their functions name: a body's words (SQL, PL/pgSQL) and
/// the trigger's arguments.
async fn triggers_on(
    conn: &mut PgConnection,
    tables: &mut BTreeMap<String, TableInfo>,
) -> sqlx::Result<()> {
    // language=SQL
    let trg = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, t.tgname::text, p.oid::regprocedure::text,
                CASE WHEN l.lanname IN ('plpgsql', 'sql') THEN p.prosrc END, t.tgargs
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
         WHERE NOT t.tgisinternal AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    for r in &trg {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.triggers.push(r.get(2));
            let body = r.get::<Option<String>, _>(4);
            // A trigger's arguments name columns for functions written in C
            // (`tsvector_update_trigger('fulltext', 'pg_catalog.english', 'title')`).
            let arguments: Vec<String> = r
                .get::<Vec<u8>, _>(5)
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if body.is_some() || !arguments.is_empty() {
                t.trigger_functions.push(crate::db::TriggerFunction {
                    trigger: r.get(2),
                    function: r.get(3),
                    names: body.as_deref().map(names_in).unwrap_or_default(),
                    arguments,
                });
            }
        }
    }
    Ok(())
}

/// Every name a function body uses (its identifiers and keywords, lower-cased unless quoted).
pub(super) fn names_in(body: &str) -> BTreeSet<String> {
    crate::sql::lexer::tokenize(body)
        .map(|tokens| tokens.iter().filter_map(|(_, t)| t.name()).collect())
        .unwrap_or_default()
}

/// `table.column` → the views whose definition uses that column.
async fn column_views_on(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
    // language=SQL
    let column_deps: Vec<(String, String, String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT DISTINCT n.nspname::text, c.relname::text, a.attname::text, vn.nspname::text, v.relname::text
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
         JOIN pg_namespace vn ON vn.oid = v.relnamespace
         JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjsubid > 0 AND c.oid <> v.oid AND {USER_SCHEMA}"
    )))
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let mut column_views: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (schema, table, column, vschema, view) in column_deps {
        column_views
            .entry(format!("{}.{column}", qualified(&schema, &table)))
            .or_default()
            .push(qualified(&vschema, &view));
    }
    Ok(column_views)
}

/// `CHECK ((email IS NOT NULL))` (as `pg_get_constraintdef` prints it) → `email`.
pub(super) fn not_null_check(def: &str) -> Option<String> {
    let inner = def
        .strip_prefix("CHECK ")?
        .trim_matches(|c| c == '(' || c == ')')
        .trim();
    let col = inner.strip_suffix(" IS NOT NULL")?.trim();
    let col = col
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(col);
    (!col.is_empty() && !col.contains(' ')).then(|| col.to_string())
}
