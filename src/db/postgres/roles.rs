//! The least-privilege roles a target needs, made for the engineer (`drydock doctor --fix`): a
//! migrator that owns the application's objects and a checker that reads them, the login a member
//! of both, the objects' previous owners keeping their access. Every statement is written out
//! from the catalog, for the engineer to read, and run in one transaction.

use super::*;

/// The objects a role setup hands over (kind, name, owner, whether a relation), the schemas,
/// and the login.
type Owned = (Vec<(String, String, String, bool)>, Vec<String>, String);

/// The SQL that sets a target's roles up, statement by statement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleSetup {
    pub migrator: String,
    pub checker: String,
    pub statements: Vec<String>,
}

impl Postgres {
    /// The statements that make `migrator` own the application's objects and `checker` read
    /// them, as this target's catalog stands.
    pub async fn role_setup(&self, migrator: &str, checker: &str) -> Result<RoleSetup> {
        let (m, c) = (quote_ident(migrator), quote_ident(checker));
        let (objects, schemas, login) = self.owned_elsewhere(migrator).await?;
        let mut out = vec![
            // Roles belong to the cluster: one setup at a time, and a role another database's
            // setup made first is the same role.
            "SELECT pg_advisory_xact_lock(hashtext('drydock role setup'))".to_string(),
            format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {ml}) THEN CREATE ROLE {m} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF;
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {cl}) THEN CREATE ROLE {c} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$",
                ml = crate::sql::quote_literal(migrator),
                cl = crate::sql::quote_literal(checker),
            ),
            format!("GRANT {m}, {c} TO {}", quote_ident(&login)),
        ];
        for s in &schemas {
            out.push(format!("GRANT USAGE, CREATE ON SCHEMA {s} TO {m}"));
            out.push(format!("GRANT USAGE ON SCHEMA {s} TO {c}"));
        }
        let mut previous: Vec<&str> = Vec::new();
        for (kind, name, owner, _) in &objects {
            out.push(format!("ALTER {kind} {name} OWNER TO {m}"));
            if owner != &login && owner != migrator && !previous.contains(&owner.as_str()) {
                previous.push(owner);
            }
        }
        // Who owned the objects keeps using them (the application's role, typically), now and on
        // what the migrator makes later; the checker reads.
        for s in &schemas {
            for o in &previous {
                let o = quote_ident(o);
                out.push(format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {s} TO {o}"
                ));
                out.push(format!(
                    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {o}"
                ));
                out.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {o}"
                ));
                out.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {o}"
                ));
            }
            out.push(format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {c}"));
            out.push(format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {m} IN SCHEMA {s} GRANT SELECT ON TABLES TO {c}"
            ));
        }
        Ok(RoleSetup {
            migrator: migrator.to_string(),
            checker: checker.to_string(),
            statements: out,
        })
    }

    /// What the setup changes: the application's objects `migrator` does not own yet (kind,
    /// name, owner, whether a relation), the application's schemas, and the login's name.
    async fn owned_elsewhere(&self, migrator: &str) -> Result<Owned> {
        // language=SQL
        let objects = format!(
            "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                    c.oid::regclass::text, pg_get_userbyid(c.relowner)::text, c.relkind IN ('r', 'p', 'v', 'm', 'f')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMA}
               AND c.relowner <> coalesce(to_regrole($1)::oid, 0::oid)
               -- extension members stay the extension's; a serial or identity sequence follows its table
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                 AND d.deptype IN ('e', 'a', 'i'))
             UNION ALL
             SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                    p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text, false
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE {USER_SCHEMA} AND p.proowner <> coalesce(to_regrole($1)::oid, 0::oid)
               -- what a SECURITY DEFINER function runs as is the application's decision: its
               -- owner stays (and agent SQL calling a privileged one is refused by the catalog)
               AND NOT p.prosecdef
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
             UNION ALL
             SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                    format_type(t.oid, NULL), pg_get_userbyid(t.typowner)::text, false
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE {USER_SCHEMA} AND t.typowner <> coalesce(to_regrole($1)::oid, 0::oid)
               AND (t.typtype IN ('e', 'd', 'r')
                    OR (t.typtype = 'c' AND EXISTS (SELECT FROM pg_class k WHERE k.oid = t.typrelid AND k.relkind = 'c')))
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
             ORDER BY 1, 2"
        );
        // language=SQL
        let schemas = format!(
            "SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE {USER_SCHEMA} ORDER BY 1"
        );
        let mut conn = self.connect().await?;
        let read = pinned(&mut conn, async |conn| {
            let objects: Vec<(String, String, String, bool)> =
                sqlx::query_as(AssertSqlSafe(objects))
                    .persistent(false)
                    .bind(migrator)
                    .fetch_all(&mut *conn)
                    .await?;
            let schemas: Vec<String> = sqlx::query_scalar(AssertSqlSafe(schemas))
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            let login: String = sqlx::query_scalar("SELECT current_user::text")
                .persistent(false)
                .fetch_one(&mut *conn)
                .await?;
            Ok((objects, schemas, login))
        })
        .await;
        conn.close().await.ok();
        read.map_err(|e| self.err(e))
    }

    /// Runs a role setup in one transaction, as the login.
    pub async fn run_role_setup(&self, setup: &RoleSetup) -> Result<()> {
        let mut conn = self.connect().await?;
        let mut sql = String::from("BEGIN;\n");
        for s in &setup.statements {
            sql.push_str(s);
            sql.push_str(";\n");
        }
        sql.push_str("COMMIT;");
        let done = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
        if done.is_err() {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
        }
        conn.close().await.ok();
        done.map(|_| ()).map_err(|e| self.err(e))
    }
}
