//! The boundary tried with hostile payloads and ordinary migrations.

use super::plpgsql::plpgsql_queries;
use super::*;

fn refused(sql: &str) -> Forbidden {
    postgres(sql, Use::Step).expect_err(sql)
}

fn refused_check(sql: &str) -> Forbidden {
    postgres(sql, Use::Check).expect_err(sql)
}

#[test]
fn hostile_postgres_steps_are_refused() {
    let payloads = [
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'",
        "COPY users FROM '/etc/passwd'",
        "COPY users TO '/tmp/out'",
        "/* harmless */ COPY (SELECT 1) TO PROGRAM $$touch /tmp/x$$",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT pg_catalog.pg_read_binary_file('/etc/hostname')",
        "SELECT \"pg_read_file\"('/etc/hostname')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT pg_cancel_backend(1)",
        "SELECT pg_reload_conf()",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT dblink_exec('host=x', 'DROP TABLE t')",
        "SELECT query_to_xml('select pg_read_file(''/x'')', true, true, '')",
        "SELECT * FROM ts_stat('select 1')",
        "SELECT pg_advisory_lock(1)",
        "WITH x AS (SELECT pg_read_file('/etc/hostname') AS f) SELECT * FROM x",
        "ALTER TABLE users ADD COLUMN h text DEFAULT pg_read_file('/etc/hostname')",
        "CREATE VIEW v AS SELECT pg_ls_dir('.')",
        "CREATE TABLE t AS SELECT * FROM pg_authid",
        "SELECT rolpassword FROM pg_catalog.pg_authid",
        "UPDATE pg_settings SET setting = 'x' WHERE name = 'work_mem'",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "CREATE ROLE evil SUPERUSER LOGIN",
        "ALTER ROLE drydock NOSUPERUSER",
        "DROP ROLE app",
        "GRANT pg_read_server_files TO app",
        "GRANT pg_execute_server_program TO public",
        "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO public",
        "SET ROLE postgres",
        "SET LOCAL ROLE postgres",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION postgres",
        "RESET ALL",
        "DISCARD ALL",
        "SET search_path = evil, public",
        "LOAD 'auto_explain'",
        "CREATE EXTENSION dblink",
        "CREATE EXTENSION plpython3u",
        "CREATE EXTENSION file_fdw",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS $$ return 1 $$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'libc', 'system'",
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('/x') $$",
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT pg_read_file('/x'); END",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = 'postgres' AS $$ SELECT 1 $$",
        "ALTER FUNCTION f() SECURITY DEFINER",
        "ALTER TABLE users OWNER TO postgres",
        "ALTER FUNCTION f() OWNER TO postgres",
        "DO $$ BEGIN PERFORM pg_read_file('/etc/hostname'); END $$",
        "DO $$ BEGIN COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'; END $$",
        "DO LANGUAGE plperlu $$ system('touch /tmp/x') $$",
        "DO $$ DECLARE r text; BEGIN r := pg_read_file('/x'); END $$",
        "DO $$ BEGIN CREATE ROLE evil SUPERUSER; END $$",
        "DO $$ BEGIN SET ROLE postgres; END $$",
        "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(1); RETURN NEW; END $$",
        "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
        "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
        "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
        "CREATE TABLESPACE t LOCATION '/tmp'",
        "CREATE DATABASE x",
        "CHECKPOINT",
        "CALL p()",
        "PREPARE p AS SELECT 1",
        "COMMIT",
        "BEGIN",
        "CREATE SCHEMA s CREATE TABLE t (a int) GRANT pg_read_server_files TO app",
        "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT pg_read_file('/x')",
        "EXPLAIN ANALYZE SELECT pg_read_file('/x')",
        "SELECT 1; COPY (SELECT 1) TO PROGRAM 'x'",
        "INSERT INTO pg_catalog.pg_class DEFAULT VALUES",
        "DELETE FROM pg_proc",
        "SELECT U&\"pg\\005fread_file\"('/x')",
        "CREATE OPERATOR ### (LEFTARG = text, FUNCTION = pg_read_file)",
        // Other sessions' queries, by a function of the family the name check once missed.
        "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
        "SELECT pg_catalog.pg_stat_get_backend_client_addr(1)",
        // SQL given as text, built in or from a trusted extension (tablefunc).
        "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
        "SELECT * FROM crosstab('SELECT 1, 2, 3') AS t(a int, b int)",
        "SELECT * FROM connectby('t', 'id', 'parent', '1', 0) AS t(id int, parent int, level int)",
        // Large objects of any owner.
        "SELECT lo_get(16384)",
        "SELECT lo_from_bytea(0, 'x')",
        // A function named as text.
        "SELECT 'pg_catalog.pg_read_file'::regproc",
        // Default privileges on every schema or function made later.
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO PUBLIC",
        "ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC",
    ];
    for p in payloads {
        let f = refused(p);
        assert!(!f.construct.is_empty() && !f.reason.is_empty(), "{p}");
    }
}

#[test]
fn ordinary_migrations_pass() {
    let ok = [
        "ALTER TABLE users ADD COLUMN tier text DEFAULT 'free'",
        "CREATE INDEX CONCURRENTLY users_email ON users (email)",
        "CREATE UNIQUE INDEX i ON orders (id)",
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        "ALTER TABLE orders VALIDATE CONSTRAINT fk",
        "UPDATE users SET tier = 'free' WHERE tier IS NULL",
        "DELETE FROM sessions WHERE expires_at < now()",
        "INSERT INTO t (a) SELECT a FROM s",
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text NOT NULL)",
        "DROP TABLE old",
        "CREATE VIEW v AS SELECT id FROM users",
        "SET lock_timeout = '2s'",
        "SET LOCAL statement_timeout = 0",
        "RESET lock_timeout",
        "COMMENT ON COLUMN users.tier IS 'plan tier'",
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",
        "ALTER TYPE mood ADD VALUE 'happy'",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "GRANT SELECT ON users TO app_reader",
        "VACUUM ANALYZE users",
        "CREATE FUNCTION sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.b := NEW.a::bigint; IF NEW.c IS NULL THEN NEW.c := now(); END IF; RETURN NEW; END $$",
        "CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$",
        "CREATE TRIGGER s BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION sync()",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'x') THEN CREATE TABLE x (a int); END IF; END $$",
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'",
        "ALTER TABLE users RENAME COLUMN a TO b",
        "LOCK TABLE users IN SHARE MODE",
        // Application names that only share a prefix with a denied function are the
        // application's (exact names are matched; prefixes only of PostgreSQL's `pg_` families).
        "ALTER TABLE jobs ADD COLUMN ts_status text, ADD COLUMN lo_limit int, ADD COLUMN dblink_id int",
        "UPDATE jobs SET ts_status = 'done' WHERE lo_limit > 0",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app_reader",
        // PL/pgSQL functions that return something, as real projects' helpers do.
        "CREATE FUNCTION next_no() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT coalesce(max(no), 0) + 1 FROM invoices); END $$",
        "CREATE FUNCTION open_ids() RETURNS SETOF bigint LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT id FROM invoices WHERE paid IS NULL; END $$",
        "CREATE FUNCTION evens(n int) RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP IF i % 2 = 0 THEN RETURN NEXT i; END IF; END LOOP; RETURN; END $$",
        "CREATE FUNCTION totals() RETURNS TABLE (customer bigint, total numeric) LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT c, sum(a) FROM t GROUP BY c; END $$",
        "CREATE FUNCTION split(s text, OUT head text, OUT tail text) LANGUAGE plpgsql AS $$ BEGIN head := split_part(s, ',', 1); tail := split_part(s, ',', 2); RETURN; END $$",
    ];
    for sql in ok {
        assert_eq!(postgres(sql, Use::Step), Ok(()), "{sql}");
    }
}

#[test]
fn checks_only_read() {
    assert_eq!(
        postgres(
            "SELECT count(*) = 0 FROM users WHERE tier IS NULL",
            Use::Check
        ),
        Ok(())
    );
    assert_eq!(
        postgres(
            "WITH x AS (SELECT id FROM users) SELECT count(*) > 0 FROM x",
            Use::Check
        ),
        Ok(())
    );
    for p in [
        "SELECT pg_read_file('/etc/hostname')::int = 1",
        "WITH d AS (DELETE FROM users RETURNING 1) SELECT count(*) = 0 FROM d",
        "SELECT * INTO t2 FROM users",
        "SELECT * FROM users FOR UPDATE",
        "UPDATE users SET a = 1",
        "SELECT 1; SELECT 2; COPY (SELECT 1) TO PROGRAM 'x'",
        "SELECT nextval('s') > 0 FROM pg_stat_activity",
    ] {
        refused_check(p);
    }
}

#[test]
fn hostile_sqlite_is_refused() {
    for p in [
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "DETACH DATABASE x",
        "VACUUM INTO '/tmp/copy.db'",
        "SELECT load_extension('/tmp/evil.so')",
        "PRAGMA writable_schema = ON",
        "PRAGMA main.journal_mode = OFF",
        "PRAGMA synchronous = OFF",
        "pragma temp_store_directory = '/tmp'",
        "/* x */ ATTACH '/tmp/x.db' AS y",
        "SELECT writefile('/tmp/x', 'y')",
        "CREATE VIRTUAL TABLE f USING fsdir('/')",
    ] {
        sqlite(p, Use::Step).expect_err(p);
    }
    for ok in [
        "ALTER TABLE users ADD COLUMN tier TEXT DEFAULT 'free'",
        "CREATE INDEX i ON users (email)",
        "PRAGMA foreign_key_check",
        "CREATE VIRTUAL TABLE docs USING fts5(body)",
        "SELECT 'ATTACH' FROM users",
    ] {
        assert_eq!(sqlite(ok, Use::Step), Ok(()), "{ok}");
    }
    sqlite("PRAGMA foreign_keys = OFF", Use::Check).expect_err("pragma write");
}

#[test]
fn plpgsql_queries_are_read_from_malformed_output() {
    let json = r#"[{"datums":[{}},{}}],"x":{"PLpgSQL_expr":{"query":"NEW.a := lower(\"b\")","parseMode":4}}}]"#;
    assert_eq!(
        plpgsql_queries(json),
        vec![("NEW.a := lower(\"b\")".to_string(), 4)]
    );
}

#[test]
fn refusals_name_the_construct() {
    let f = refused("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'");
    assert_eq!(f.construct, "COPY ... PROGRAM");
    assert!(f.reason.contains("program"), "{f}");
    assert_eq!(
        refused("SELECT pg_read_file('/x')").construct,
        "pg_read_file"
    );
    assert_eq!(refused("SET ROLE postgres").construct, "SET role");
    assert_eq!(refused("CREATE ROLE evil").construct, "CREATE ROLE");
    assert_eq!(refused("ALTER SYSTEM SET a = 1").construct, "ALTER SYSTEM");
}

/// SQL built at run time cannot be read ahead: the gate admits it (PostgreSQL's roles bound
/// it) and names it, for the target to judge what it could reach (`Target::dynamic_reach`).
#[test]
fn statements_built_at_run_time_are_admitted_and_named() {
    let body = "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN %I int', 't', 'c'); END $$";
    assert_eq!(postgres(body, Use::Step), Ok(()));
    assert_eq!(postgres(body, Use::TemplateStep), Ok(()));
    assert!(super::postgres::runs_dynamic_sql(body));
    // Diesel's helper, as every Diesel project's first migration writes it.
    let helper = "CREATE OR REPLACE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$
        BEGIN EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', _tbl); END;
        $$ LANGUAGE plpgsql";
    assert_eq!(postgres(helper, Use::Step), Ok(()));
    assert!(super::postgres::runs_dynamic_sql(helper));
    assert!(!super::postgres::runs_dynamic_sql(
        "DO $$ BEGIN PERFORM 1; END $$"
    ));
    // A template's static SQL is still held to every other rule.
    assert!(
        postgres(
            "DO $$ BEGIN PERFORM pg_read_file('/x'); EXECUTE 'x'; END $$",
            Use::TemplateStep
        )
        .is_err()
    );
}

#[test]
fn the_migration_template_is_agent_sql() {
    use crate::plan::{Body, Step};
    let dynamic = "DO $$ BEGIN COPY (SELECT 1) TO PROGRAM 'id'; END $$";
    let mut body = Body::new(
        "prod",
        vec![Step {
            name: Some("s".into()),
            up: Some(dynamic.into()),
            down: Some("SELECT 1".into()),
            backfill: None,
            gate: None,
            restore: None,
        }],
        vec![],
    )
    .unwrap();
    // The gate holds every template's SQL to the same rules as a step's.
    for (template, refused) in [
        (None, true),
        (Some("migration"), true),
        (Some("add-column"), true),
    ] {
        body.template = template.map(String::from);
        assert_eq!(
            !violations(&body, crate::sql::Dialect::Postgres).is_empty(),
            refused,
            "{template:?}"
        );
    }
}

#[test]
fn violations_name_every_place() {
    use crate::plan::{Backfill, Body, Check, Expect, Step};
    let step = |name: &str, up: &str, down: &str| Step {
        name: Some(name.into()),
        up: Some(up.into()),
        down: Some(down.into()),
        backfill: None,
        gate: None,
        restore: None,
    };
    let mut fill = step("fill", "SELECT 1", "SELECT 1");
    fill.up = None;
    fill.backfill = Some(Backfill {
        table: "t".into(),
        set: "a = pg_read_file('/x')".into(),
        ..Default::default()
    });
    let body = Body::new(
        "prod",
        vec![
            step(
                "ok",
                "ALTER TABLE t ADD COLUMN a text",
                "ALTER TABLE t DROP COLUMN a",
            ),
            step("evil", "SELECT 1", "COPY t TO PROGRAM 'x'"),
            fill,
        ],
        vec![Check {
            name: "c".into(),
            sql: "SELECT pg_ls_dir('.') IS NOT NULL".into(),
            expect: Expect::True,
        }],
    )
    .unwrap();
    let places: Vec<String> = violations(&body, crate::sql::Dialect::Postgres)
        .into_iter()
        .map(|v| v.place)
        .collect();
    assert_eq!(
        places,
        vec!["step `evil` down", "step `fill` backfill", "check `c`"]
    );
}

#[test]
fn the_functions_sql_calls_are_read_everywhere_and_unreadable_sql_is_refused() {
    let called = |sql: &str| postgres::called(sql).expect(sql);
    // A column's DEFAULT, a CHECK, a subquery in a view, a SQL body and a PL/pgSQL body.
    let names = called(
        "ALTER TABLE users ADD COLUMN token text DEFAULT gen_token() CHECK (valid(token));
         CREATE VIEW v AS SELECT (SELECT lo_export(1, '/tmp/x')) AS x;
         CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT pg_read_file('x')::int $$;
         DO $$ BEGIN PERFORM dblink_exec('x'); END $$;",
    );
    for f in [
        "gen_token",
        "valid",
        "lo_export",
        "pg_read_file",
        "dblink_exec",
    ] {
        assert!(names.contains(f), "{f} in {names:?}");
    }
    // SQL that cannot be read calls nothing drydock knows of: refused, never taken as none.
    let e = postgres::called("SELECT pg_read_file('x' FROM").expect_err("unparsable");
    assert!(e.reason.contains("does not parse"), "{e}");
}
