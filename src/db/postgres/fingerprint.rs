//! A schema's fingerprint: one line per object, hashed.

use super::*;

/// A fingerprint's column lines, of the relations `and` admits (`""`: all of them).
fn column_lines(and: &str) -> String {
    // language=SQL
    format!(
        "SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
                || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA}{and}"
    )
}

/// The fingerprint's column lines of `tables` alone: what the drift check compares, read
/// without the rest of the schema.
pub(super) async fn column_lines_on(
    conn: &mut PgConnection,
    tables: &[String],
) -> sqlx::Result<BTreeSet<String>> {
    let names: Vec<String> = tables.iter().map(|t| relation(t)).collect();
    let query =
        column_lines(" AND c.oid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)");
    let lines = pinned(conn, async |c| {
        sqlx::query_scalar::<_, String>(AssertSqlSafe(query))
            .persistent(false)
            .bind(&names)
            .fetch_all(&mut *c)
            .await
    })
    .await?;
    Ok(lines.into_iter().collect())
}

/// The fingerprint's queries, each one text column (the extensions' objects apart: `owned_queries`).
fn schema_queries() -> Vec<String> {
    vec![
        column_lines(""),
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
        // What a migration can leave behind that reaches beyond its tables: operators and casts
        // (resolved by every later query that compares or converts those types), event triggers
        // (run on every later DDL), default privileges (granted on every object made later).
        format!(
            "SELECT 'operator ' || n.nspname || '.' || o.oprname || '(' || coalesce(format_type(o.oprleft, NULL), 'none') || ', '
                    || coalesce(format_type(o.oprright, NULL), 'none') || ') ' || o.oprcode::regprocedure::text
             FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_SCHEMA}"
        ),
        "SELECT 'cast ' || format_type(c.castsource, NULL) || ' as ' || format_type(c.casttarget, NULL) || ' '
                || CASE WHEN c.castfunc = 0 THEN c.castmethod::text ELSE c.castfunc::regprocedure::text END || ' ' || c.castcontext::text
         FROM pg_cast c WHERE c.oid >= 16384"
            .to_string(),
        "SELECT 'event trigger ' || e.evtname || ' on ' || e.evtevent || ' ' || e.evtfoid::regprocedure::text || ' ' || e.evtenabled::text
         FROM pg_event_trigger e"
            .to_string(),
        "SELECT 'default privileges ' || pg_get_userbyid(d.defaclrole) || ' in ' || coalesce(n.nspname, '*') || ' on '
                || d.defaclobjtype::text || ' ' || d.defaclacl::text
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace"
            .to_string(),
    ]
}

/// The fingerprint's queries and those of the extensions' objects (`OWNED`).
fn whole_schema() -> Vec<String> {
    let mut queries = schema_queries();
    queries.extend(owned_queries());
    queries
}

pub(super) async fn fingerprint_on(conn: &mut PgConnection) -> sqlx::Result<Fingerprint> {
    read_lines(conn, &whole_schema()).await
}

/// The lines of objects an extension owns (functions, operators, casts), each as `OWNED` +
/// the extension + a tab + the line as the fingerprint has it: read in the same round trip.
const OWNED: &str = "owned by ";

fn owned_queries() -> [String; 3] {
    // Driven from the extensions (a handful) through `pg_depend`'s index on what is depended on.
    // language=SQL
    let owned = |catalog: &str| {
        format!(
            "pg_extension e JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
             AND d.deptype = 'e' AND d.classid = '{catalog}'::regclass"
        )
    };
    [
        format!(
            "SELECT '{OWNED}' || e.extname || E'\t' || 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc)
             FROM {} JOIN pg_proc p ON p.oid = d.objid JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA}",
            owned("pg_proc")
        ),
        format!(
            "SELECT '{OWNED}' || e.extname || E'\t' || 'operator ' || n.nspname || '.' || o.oprname || '(' || coalesce(format_type(o.oprleft, NULL), 'none') || ', '
                    || coalesce(format_type(o.oprright, NULL), 'none') || ') ' || o.oprcode::regprocedure::text
             FROM {} JOIN pg_operator o ON o.oid = d.objid JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_SCHEMA}",
            owned("pg_operator")
        ),
        format!(
            "SELECT '{OWNED}' || e.extname || E'\t' || 'cast ' || format_type(c.castsource, NULL) || ' as ' || format_type(c.casttarget, NULL) || ' '
                    || CASE WHEN c.castfunc = 0 THEN c.castmethod::text ELSE c.castfunc::regprocedure::text END || ' ' || c.castcontext::text
             FROM {} JOIN pg_cast c ON c.oid = d.objid WHERE c.oid >= 16384",
            owned("pg_cast")
        ),
    ]
}

/// A dry-run session's temporary objects: any is a plan's leftover (a temporary view named like
/// a table shadows it for the session). Outside a dry-run's transaction a session has none, so
/// only the sandbox reads them.
// language=SQL
const TEMPORARY: &str = "SELECT 'temporary ' || CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index' WHEN 'c' THEN 'type' ELSE 'relation' END || ' ' || c.relname
     FROM pg_class c WHERE c.relnamespace = pg_my_temp_schema()
     UNION ALL
     SELECT 'temporary function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
     FROM pg_proc p WHERE p.pronamespace = pg_my_temp_schema()
     UNION ALL
     SELECT 'temporary operator ' || o.oprname FROM pg_operator o WHERE o.oprnamespace = pg_my_temp_schema()
     UNION ALL
     SELECT 'temporary type ' || t.typname FROM pg_type t WHERE t.typnamespace = pg_my_temp_schema() AND t.typrelid = 0 AND t.typcategory <> 'A'";

/// A sandbox's schema read: the fingerprint's lines and the session's temporary objects (the
/// latter start `temporary `), in one statement prepared once per session and executed again
/// for each read. Planning this union of some twenty catalog queries is most of what a read
/// costs, and a dry-run reads the schema three times.
///
/// The session runs agent SQL, which can reach its prepared statements: a PL/pgSQL `EXECUTE
/// 'DEALLOCATE …'` and then `'PREPARE …'` under the same name would have drydock run a
/// statement whose names the agent's search path resolved. So before each execution the
/// statement is checked to be the one drydock prepared, by the microsecond it was prepared at:
/// a statement prepared again, by anyone, is prepared later. A statement gone or replaced is an
/// error, never a read.
pub(super) struct SchemaRead {
    name: String,
    prepared_at: i64,
}

impl SchemaRead {
    /// The session's schema read, prepared on the first call into `slot` (as the session is
    /// then: drydock prepares it before any agent SQL runs).
    pub(super) async fn lines(
        slot: &mut Option<SchemaRead>,
        conn: &mut PgConnection,
    ) -> sqlx::Result<Fingerprint> {
        let rows = match slot.take() {
            Some(read) => {
                let (read, rows) = read.execute_checked(conn).await?;
                *slot = Some(read);
                rows
            }
            None => {
                pinned(conn, async |c| {
                    let read = SchemaRead::prepare(c).await?;
                    let rows = sqlx::raw_sql(AssertSqlSafe(format!("EXECUTE {}", read.name)))
                        .fetch_all(&mut *c)
                        .await?;
                    *slot = Some(read);
                    Ok(rows)
                })
                .await?
            }
        };
        rows.iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<sqlx::Result<Vec<_>>>()
            .map(split_owned)
    }

    /// The check and the execution in one round trip ([`pinned_batch_until_error`]): the
    /// check's answer is judged first, so a statement replaced or gone is the error said even
    /// though the batch ran (or failed to run) what stood under drydock's name — as the role and
    /// in the transaction of the plan's own SQL, which could have run it itself — and its rows
    /// are never read.
    async fn execute_checked(
        self,
        conn: &mut PgConnection,
    ) -> sqlx::Result<(SchemaRead, Vec<sqlx::postgres::PgRow>)> {
        let check = format!("SELECT ({})", SchemaRead::prepared_at_sql(&self.name));
        let execute = format!("EXECUTE {}", self.name);
        let (reads, done) = pinned_batch_until_error(conn, &[&check, &execute]).await;
        let [checked, rows] = <[_; 2]>::try_from(reads).unwrap_or_default();
        let Some(checked) = checked.first() else {
            return Err(done.err().unwrap_or_else(|| {
                sqlx::Error::Protocol("the schema read's check returned no row".into())
            }));
        };
        let read = self.checked_at(prepared_at_of(checked)?)?;
        done?;
        Ok((read, rows))
    }

    /// The schema read prepared on `conn` and its plan made (`EXPLAIN EXECUTE` plans it without
    /// running it: running it would lock the tables whose expressions it renders, and wait
    /// behind a dry-run holding them).
    pub(super) async fn warm(conn: &mut PgConnection) -> sqlx::Result<SchemaRead> {
        pinned(conn, async |c| {
            let read = SchemaRead::prepare(c).await?;
            sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN EXECUTE {}", read.name)))
                .execute(&mut *c)
                .await?;
            Ok(read)
        })
        .await
    }

    async fn prepare(conn: &mut PgConnection) -> sqlx::Result<SchemaRead> {
        let name = format!(
            "drydock_schema_read_{}",
            crate::identity::random_hex(8).map_err(sqlx::Error::Io)?
        );
        let mut queries = whole_schema();
        queries.push(TEMPORARY.to_string());
        sqlx::raw_sql(AssertSqlSafe(format!(
            "PREPARE {name} AS {}",
            union(&queries)
        )))
        .execute(&mut *conn)
        .await?;
        let prepared_at = SchemaRead::prepared_at(conn, &name).await?.ok_or_else(|| {
            sqlx::Error::InvalidArgument(format!("drydock's schema read `{name}` was not prepared"))
        })?;
        Ok(SchemaRead { name, prepared_at })
    }

    /// `self`, when the session's statement of that name (prepared at `found`) is still the one
    /// drydock prepared.
    fn checked_at(self, found: Option<i64>) -> sqlx::Result<SchemaRead> {
        match found {
            Some(at) if at == self.prepared_at => Ok(self),
            found => Err(sqlx::Error::InvalidArgument(format!(
                "drydock's prepared schema read `{}` was {} by the plan's SQL (DEALLOCATE or PREPARE in dynamic SQL): the schema was not read",
                self.name,
                if found.is_some() {
                    "replaced"
                } else {
                    "deallocated"
                }
            ))),
        }
    }

    /// When the session's prepared statement `name` was prepared, in microseconds (an integer:
    /// its text does not depend on the session's settings, which agent SQL changes).
    async fn prepared_at(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<i64>> {
        let row = sqlx::raw_sql(AssertSqlSafe(SchemaRead::prepared_at_sql(name)))
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(prepared_at_of)
            .transpose()
            .map(Option::flatten)
    }

    fn prepared_at_sql(name: &str) -> String {
        // language=SQL
        format!(
            "SELECT (pg_catalog.date_part('epoch', p.prepare_time) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8::pg_catalog.text
             FROM pg_catalog.pg_prepared_statements p WHERE p.name OPERATOR(pg_catalog.=) {}",
            escaped(name)
        )
    }
}

/// [`SchemaRead::prepared_at_sql`]'s answer (none: no such statement).
fn prepared_at_of(row: &sqlx::postgres::PgRow) -> sqlx::Result<Option<i64>> {
    row.try_get::<Option<String>, _>(0)?
        .map(|at| {
            at.parse()
                .map_err(|_| sqlx::Error::Protocol(format!("prepare_time `{at}`")))
        })
        .transpose()
}

/// The lines of `queries` (each one text column), in one round trip: names render according to
/// the search path (`regclass`, `pg_get_viewdef`), so it is pinned — they render the same on
/// every session, and no agent object is resolved by these reads.
async fn read_lines(conn: &mut PgConnection, queries: &[String]) -> sqlx::Result<Fingerprint> {
    let union = union(queries);
    let lines = pinned(conn, async |c| {
        sqlx::query_scalar::<_, String>(AssertSqlSafe(union))
            .persistent(false)
            .fetch_all(&mut *c)
            .await
    })
    .await?;
    Ok(split_owned(lines))
}

/// `queries` as one statement.
fn union(queries: &[String]) -> String {
    queries
        .iter()
        .map(|q| format!("(SELECT * FROM ({q}) AS q)"))
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n")
}

/// A fingerprint of `lines`, those of an extension's objects (`OWNED`) set apart as its owners.
fn split_owned(lines: Vec<String>) -> Fingerprint {
    let (owned_lines, lines): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.starts_with(OWNED));
    let owners = owned_lines
        .iter()
        .filter_map(|l| l[OWNED.len()..].split_once('\t'))
        .map(|(extension, line)| (line.to_string(), extension.to_string()))
        .collect();
    Fingerprint::from_lines(lines).owned_by(owners)
}
