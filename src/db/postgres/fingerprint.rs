//! A schema's fingerprint: one line per object, hashed.

use super::*;

pub(super) async fn fingerprint_on(conn: &mut PgConnection) -> sqlx::Result<Fingerprint> {
    let queries = [
        // language=SQL
        format!(
            "SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                    || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
                    || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'constraint ' || co.conrelid::regclass::text || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)

             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'view ' || n.nspname || '.' || c.relname || ': ' || pg_get_viewdef(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'enum ' || n.nspname || '.' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
             FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE {USER_SCHEMA} GROUP BY n.nspname, t.typname"
        ),
        format!(
            "SELECT 'sequence ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'S' AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'comment ' || n.nspname || '.' || c.relname || coalesce('.' || a.attname, '') || ' ' || d.description
             FROM pg_description d JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
             WHERE {USER_SCHEMA}"
        ),
        format!("SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE {USER_SCHEMA}"),
    ];
    let mut lines = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_all(&mut *conn)
            .await?;
        lines.extend(rows);
    }
    Ok(Fingerprint::from_lines(lines))
}
