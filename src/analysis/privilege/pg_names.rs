//! The names PostgreSQL agent SQL may not reach: functions and catalogs beyond the database, the
//! extensions trusted to create, the settings a migration may change, the system schemas.

/// A name that reaches beyond the database: one function or catalog, or a family of them.
enum Name {
    /// Exactly this name (`ts_stat`, not a column `ts_status`).
    Exact(&'static str),
    /// Every name starting so: only families whose prefix is PostgreSQL's own (`pg_ls_`), which no
    /// application object can take (PostgreSQL reserves `pg_` for system schemas, and drydock
    /// refuses to write system catalogs).
    Family(&'static str),
}

use Name::{Exact, Family};

/// Functions that read or write the server's files, run programs, signal or read other sessions,
/// change settings, run SQL given as a string (built in, or from a trusted extension), reach
/// other databases, touch large objects of any owner or take drydock's own advisory locks; and
/// catalogs holding other roles' secrets or the server's files. Matched against every name in the
/// parse tree (function calls, and names given as text to `CREATE OPERATOR`, `CREATE AGGREGATE`,
/// `::regproc` casts), schema-qualified or not.
const BEYOND_THE_DATABASE: &[(Name, &str)] = &[
    (Family("pg_read_"), "reads the database server's files"),
    (Family("pg_ls_"), "lists the database server's directories"),
    (Exact("pg_stat_file"), "reads the database server's files"),
    (
        Family("pg_file_"),
        "reads or writes the database server's files",
    ),
    (
        Exact("pg_logdir_ls"),
        "lists the database server's log directory",
    ),
    (
        Exact("pg_current_logfile"),
        "reads the server's log configuration",
    ),
    (Exact("lo_import"), "reads a file of the database server"),
    (Exact("lo_export"), "writes a file on the database server"),
    (
        Exact("lo_from_bytea"),
        "creates a large object outside any table",
    ),
    (Exact("lo_put"), "writes a large object, whoever's it is"),
    (Exact("lo_get"), "reads a large object, whoever's it is"),
    (Exact("lo_open"), "opens a large object, whoever's it is"),
    (
        Exact("lo_creat"),
        "creates a large object outside any table",
    ),
    (
        Exact("lo_create"),
        "creates a large object outside any table",
    ),
    (
        Exact("lo_unlink"),
        "deletes a large object, whoever's it is",
    ),
    (
        Exact("lo_truncate"),
        "truncates a large object, whoever's it is",
    ),
    (
        Exact("lo_truncate64"),
        "truncates a large object, whoever's it is",
    ),
    (Exact("loread"), "reads a large object, whoever's it is"),
    (Exact("lowrite"), "writes a large object, whoever's it is"),
    (Exact("pg_terminate_backend"), "terminates other sessions"),
    (
        Exact("pg_cancel_backend"),
        "cancels other sessions' queries",
    ),
    (Exact("pg_signal_backend"), "signals other sessions"),
    (
        Exact("pg_reload_conf"),
        "reloads the server's configuration",
    ),
    (Exact("pg_rotate_logfile"), "rotates the server's log"),
    (Exact("pg_promote"), "promotes a standby server"),
    (Exact("pg_switch_wal"), "forces a WAL switch"),
    (
        Exact("pg_create_restore_point"),
        "writes to the server's WAL",
    ),
    (Family("pg_backup_"), "drives the server's backups"),
    (Exact("pg_start_backup"), "drives the server's backups"),
    (Exact("pg_stop_backup"), "drives the server's backups"),
    (
        Family("pg_create_physical_replication_slot"),
        "manages replication",
    ),
    (
        Family("pg_create_logical_replication_slot"),
        "manages replication",
    ),
    (Exact("pg_drop_replication_slot"), "manages replication"),
    (
        Family("pg_copy_physical_replication_slot"),
        "manages replication",
    ),
    (
        Family("pg_copy_logical_replication_slot"),
        "manages replication",
    ),
    (Family("pg_replication_"), "manages replication"),
    (Family("pg_logical_"), "manages replication"),
    (Family("pg_wal_replay_"), "controls WAL replay"),
    (
        Exact("pg_log_backend_memory_contexts"),
        "writes other sessions' state to the server log",
    ),
    (Family("pg_stat_reset"), "resets the server's statistics"),
    (
        Family("pg_advisory_"),
        "takes advisory locks (drydock's own one-migration-at-a-time lock among them)",
    ),
    (
        Family("pg_try_advisory_"),
        "takes advisory locks (drydock's own one-migration-at-a-time lock among them)",
    ),
    (
        Exact("set_config"),
        "changes server settings (`role` and `session_authorization` among them)",
    ),
    (
        Exact("query_to_xml"),
        "runs SQL given as a string, which drydock cannot analyse",
    ),
    (
        Exact("query_to_xmlschema"),
        "runs SQL given as a string, which drydock cannot analyse",
    ),
    (
        Exact("query_to_xml_and_xmlschema"),
        "runs SQL given as a string, which drydock cannot analyse",
    ),
    (
        Exact("cursor_to_xml"),
        "reads a cursor drydock cannot analyse",
    ),
    (
        Exact("cursor_to_xmlschema"),
        "reads a cursor drydock cannot analyse",
    ),
    (
        Exact("ts_stat"),
        "runs SQL given as a string, which drydock cannot analyse",
    ),
    (
        Exact("ts_rewrite"),
        "runs SQL given as a string (its query form), which drydock cannot analyse",
    ),
    (
        Exact("crosstab"),
        "runs SQL given as a string (tablefunc), which drydock cannot analyse",
    ),
    (
        Exact("crosstab2"),
        "runs SQL given as a string (tablefunc), which drydock cannot analyse",
    ),
    (
        Exact("crosstab3"),
        "runs SQL given as a string (tablefunc), which drydock cannot analyse",
    ),
    (
        Exact("crosstab4"),
        "runs SQL given as a string (tablefunc), which drydock cannot analyse",
    ),
    (
        Exact("connectby"),
        "runs SQL given as a string (tablefunc), which drydock cannot analyse",
    ),
    (Exact("dblink"), "connects to other databases"),
    (Exact("dblink_exec"), "connects to other databases"),
    (Exact("dblink_connect"), "connects to other databases"),
    (Exact("dblink_connect_u"), "connects to other databases"),
    (Exact("dblink_disconnect"), "connects to other databases"),
    (Exact("dblink_open"), "connects to other databases"),
    (Exact("dblink_fetch"), "connects to other databases"),
    (Exact("dblink_close"), "connects to other databases"),
    (Exact("dblink_send_query"), "connects to other databases"),
    (Exact("dblink_get_result"), "connects to other databases"),
    (Exact("dblink_is_busy"), "connects to other databases"),
    (Exact("dblink_cancel_query"), "connects to other databases"),
    (Exact("dblink_error_message"), "connects to other databases"),
    (
        Exact("dblink_get_connections"),
        "connects to other databases",
    ),
    (Exact("dblink_get_notify"), "connects to other databases"),
    (
        Exact("pg_show_all_file_settings"),
        "reads the server's configuration files",
    ),
    (
        Exact("pg_file_settings"),
        "reads the server's configuration files",
    ),
    (
        Family("pg_hba_file_rules"),
        "reads the server's authentication configuration",
    ),
    (
        Family("pg_ident_file_mappings"),
        "reads the server's authentication configuration",
    ),
    (
        Family("pg_config"),
        "reads the server's build and file locations",
    ),
    (Family("pg_control_"), "reads the server's control file"),
    (Family("binary_upgrade_"), "is reserved for pg_upgrade"),
    (
        Exact("pg_import_system_collations"),
        "reads the server's operating-system locales",
    ),
    (
        Exact("pg_stat_get_activity"),
        "reads other sessions' queries",
    ),
    (
        Family("pg_stat_get_backend_"),
        "reads other sessions' queries and connections",
    ),
    (Family("pg_stat_activity"), "reads other sessions' queries"),
    (Exact("pg_blocking_pids"), "reads other sessions' locks"),
    (
        Exact("pg_safe_snapshot_blocking_pids"),
        "reads other sessions' locks",
    ),
    (Family("pg_authid"), "holds the roles' password hashes"),
    (Exact("pg_shadow"), "holds the roles' password hashes"),
    (
        Family("pg_user_mapping"),
        "holds credentials for other servers",
    ),
    (
        Family("pg_subscription"),
        "holds connection strings of other servers",
    ),
    (
        Family("pg_statistic"),
        "holds sampled values of every table, whatever the reader's privileges",
    ),
    (Family("pg_settings"), "reads and changes server settings"),
    (
        Family("pg_largeobject"),
        "holds large objects of every owner",
    ),
    (Family("pg_replication_slots"), "manages replication"),
];

/// Trusted extensions (PostgreSQL marks them trusted: they can run no code outside the database).
pub(super) const TRUSTED_EXTENSIONS: &[&str] = &[
    "btree_gin",
    "btree_gist",
    "citext",
    "cube",
    "dict_int",
    "fuzzystrmatch",
    "hstore",
    "intarray",
    "isn",
    "lo",
    "ltree",
    "pg_trgm",
    "pgcrypto",
    "seg",
    "tablefunc",
    "tcn",
    "tsm_system_rows",
    "tsm_system_time",
    "unaccent",
    "uuid-ossp",
    "plpgsql",
];

/// Settings a migration may change for its own session (`SET`, `SET LOCAL`, `RESET`).
pub(super) const SESSION_SETTINGS: &[&str] = &[
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "maintenance_work_mem",
    "work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers_per_gather",
    "client_min_messages",
    "check_function_bodies",
    "timezone",
    "datestyle",
    "intervalstyle",
    "extra_float_digits",
    "constraint_exclusion",
];

pub(super) const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "pg_toast", "information_schema"];

/// Why `name` (a function's or catalog's, bare or schema-qualified, any case) reaches beyond the
/// database, if it does.
pub(super) fn beyond_the_database(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("pg_catalog.").unwrap_or(&lower);
    BEYOND_THE_DATABASE.iter().find_map(|(n, why)| {
        let hit = match n {
            Exact(n) => bare == *n,
            Family(n) => bare.starts_with(n),
        };
        hit.then_some(*why)
    })
}
