//! PostgreSQL agent SQL, parsed with PostgreSQL's own parser: the statement-kind allowlist, the
//! conditions some kinds carry, and the names that reach beyond the database.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, Node, ObjectType, RangeVar, VariableSetKind};
use serde_json::Value;

use super::{Forbidden, Use, Verdict, first_words};

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
const TRUSTED_EXTENSIONS: &[&str] = &[
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
const SESSION_SETTINGS: &[&str] = &[
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

const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "pg_toast", "information_schema"];

/// Admits one piece of PostgreSQL agent SQL (one or more statements) for `usage`.
pub fn postgres(sql: &str, usage: Use) -> Verdict {
    let parsed = pg_query::parse(sql, 0).map_err(|e| {
        Forbidden::new(
            first_words(sql),
            format!("does not parse, so drydock cannot tell what it does ({e})"),
        )
    })?;
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        // The whole tree, once: every name in it is checked, and a check's tree for writes. A
        // tree that cannot be read is refused, never passed unread.
        let tree = serde_json::to_value(node).map_err(|e| {
            Forbidden::new(
                first_words(sql),
                format!("could not be read after parsing ({e})"),
            )
        })?;
        match usage {
            Use::Step | Use::TemplateStep => statement(node, usage)?,
            Use::Check => check(node, &tree)?,
        }
        names(&tree)?;
    }
    Ok(())
}

/// A check is one plain query: a SELECT (with CTEs) that writes nothing and locks no rows.
fn check(node: &NodeEnum, tree: &Value) -> Verdict {
    let NodeEnum::SelectStmt(s) = node else {
        return Err(Forbidden::new(
            kind_name(node),
            "is not a query; a check is one SELECT that reads",
        ));
    };
    if s.into_clause.is_some() {
        return Err(Forbidden::new(
            "SELECT INTO",
            "creates a table; a check only reads",
        ));
    }
    if !s.locking_clause.is_empty() {
        return Err(Forbidden::new(
            "FOR UPDATE/SHARE",
            "locks rows; a check only reads",
        ));
    }
    for write in ["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"] {
        if has_key(tree, write) {
            return Err(Forbidden::new(
                write.trim_end_matches("Stmt").to_uppercase(),
                "writes data; a check only reads",
            ));
        }
    }
    Ok(())
}

/// The statement-kind allowlist, with the conditions some kinds carry.
fn statement(node: &NodeEnum, usage: Use) -> Verdict {
    use NodeEnum as N;
    match node {
        N::SelectStmt(_)
        | N::CreateStmt(_)
        | N::ViewStmt(_)
        | N::CreateTableAsStmt(_)
        | N::CreateSeqStmt(_)
        | N::AlterSeqStmt(_)
        | N::CommentStmt(_)
        | N::CreateEnumStmt(_)
        | N::AlterEnumStmt(_)
        | N::CreateRangeStmt(_)
        | N::CompositeTypeStmt(_)
        | N::CreateDomainStmt(_)
        | N::AlterDomainStmt(_)
        | N::AlterTypeStmt(_)
        | N::DefineStmt(_)
        | N::DropStmt(_)
        | N::AlterObjectSchemaStmt(_)
        | N::CreatePolicyStmt(_)
        | N::AlterPolicyStmt(_)
        | N::CreateStatsStmt(_)
        | N::AlterStatsStmt(_)
        | N::ClusterStmt(_)
        | N::VacuumStmt(_)
        | N::ReindexStmt(_)
        | N::RefreshMatViewStmt(_)
        | N::LockStmt(_)
        | N::ConstraintsSetStmt(_)
        | N::VariableShowStmt(_)
        | N::AlterCollationStmt(_)
        | N::ReplicaIdentityStmt(_) => Ok(()),
        // Default privileges reach every object made later, by anyone the role makes objects
        // as: admitted for what GRANT is admitted for (tables, sequences), nothing wider.
        N::AlterDefaultPrivilegesStmt(s) => match s.action.as_ref() {
            Some(g)
                if g.objtype == ObjectType::ObjectTable as i32
                    || g.objtype == ObjectType::ObjectSequence as i32 =>
            {
                Ok(())
            }
            _ => Err(Forbidden::new(
                "ALTER DEFAULT PRIVILEGES",
                "grants privileges on objects other than tables or sequences (schemas, functions, types) to every later one; an engineer manages those",
            )),
        },
        N::InsertStmt(s) => writable(s.relation.as_ref()),
        N::UpdateStmt(s) => writable(s.relation.as_ref()),
        N::DeleteStmt(s) => writable(s.relation.as_ref()),
        N::MergeStmt(s) => writable(s.relation.as_ref()),
        N::TruncateStmt(s) => s.relations.iter().try_for_each(|r| match &r.node {
            Some(N::RangeVar(r)) => writable(Some(r)),
            _ => Ok(()),
        }),
        N::IndexStmt(s) => writable(s.relation.as_ref()),
        N::CreateTrigStmt(s) => writable(s.relation.as_ref()),
        N::RuleStmt(s) => {
            writable(s.relation.as_ref())?;
            s.actions.iter().try_for_each(|n| nested(n, usage))
        }
        N::RenameStmt(s) => writable(s.relation.as_ref()),
        N::AlterTableStmt(s) => {
            writable(s.relation.as_ref())?;
            for cmd in &s.cmds {
                if let Some(N::AlterTableCmd(c)) = &cmd.node
                    && c.subtype == AlterTableType::AtChangeOwner as i32
                {
                    return Err(Forbidden::new(
                        "OWNER TO",
                        "changes an object's owner (privilege management); objects keep the migration role as owner",
                    ));
                }
            }
            Ok(())
        }
        N::CreateSchemaStmt(s) => s.schema_elts.iter().try_for_each(|n| nested(n, usage)),
        N::ExplainStmt(s) => s.query.as_deref().map_or(Ok(()), |n| nested(n, usage)),
        N::GrantStmt(s) => {
            let object = s.objtype == ObjectType::ObjectTable as i32
                || s.objtype == ObjectType::ObjectSequence as i32;
            if !object {
                return Err(Forbidden::new(
                    if s.is_grant { "GRANT" } else { "REVOKE" },
                    "manages privileges on something other than a table or sequence",
                ));
            }
            s.objects.iter().try_for_each(|o| match &o.node {
                Some(N::RangeVar(r)) => writable(Some(r)),
                _ => Ok(()),
            })
        }
        N::CreateExtensionStmt(s) => {
            if TRUSTED_EXTENSIONS.contains(&s.extname.as_str()) {
                Ok(())
            } else {
                Err(Forbidden::new(
                    format!("CREATE EXTENSION {}", s.extname),
                    "is not a trusted extension: it can run code outside the database",
                ))
            }
        }
        N::AlterExtensionStmt(s) if TRUSTED_EXTENSIONS.contains(&s.extname.as_str()) => Ok(()),
        N::VariableSetStmt(s) => setting(s),
        N::CreateFunctionStmt(s) => function(s, usage),
        N::AlterFunctionStmt(s) => s.actions.iter().try_for_each(function_option),
        N::DoStmt(s) => do_block(s, usage),
        N::TransactionStmt(_) => Err(Forbidden::new(
            "transaction control",
            "would end drydock's own transaction; drydock opens and commits it",
        )),
        N::CopyStmt(s) => Err(Forbidden::new(
            if s.is_program {
                "COPY ... PROGRAM"
            } else if !s.filename.is_empty() {
                "COPY ... FILE"
            } else {
                "COPY"
            },
            if s.is_program {
                "runs a program on the database server"
            } else if !s.filename.is_empty() {
                "reads or writes a file on the database server"
            } else {
                "streams data drydock does not carry; write INSERT ... SELECT"
            },
        )),
        other => Err(Forbidden::new(kind_name(other), refusal_reason(other))),
    }
}

/// A statement nested in another (CREATE SCHEMA elements, rule actions, EXPLAIN).
fn nested(n: &Node, usage: Use) -> Verdict {
    n.node.as_ref().map_or(Ok(()), |n| statement(n, usage))
}

/// Why a statement kind outside the allowlist is refused.
fn refusal_reason(node: &NodeEnum) -> &'static str {
    use NodeEnum as N;
    match node {
        N::CreateRoleStmt(_)
        | N::AlterRoleStmt(_)
        | N::AlterRoleSetStmt(_)
        | N::DropRoleStmt(_)
        | N::GrantRoleStmt(_)
        | N::ReassignOwnedStmt(_)
        | N::DropOwnedStmt(_)
        | N::AlterOwnerStmt(_) => "manages roles or ownership (privilege management)",
        N::AlterSystemStmt(_) => "writes the server's configuration file",
        N::LoadStmt(_) => "loads a shared library into the server",
        N::CreatePlangStmt(_) | N::CreateTransformStmt(_) => {
            "installs a procedural language: code drydock cannot analyse"
        }
        N::CreateEventTrigStmt(_) | N::AlterEventTrigStmt(_) => {
            "installs code that runs on every later DDL, whoever runs it"
        }
        N::CreateFdwStmt(_)
        | N::AlterFdwStmt(_)
        | N::CreateForeignServerStmt(_)
        | N::AlterForeignServerStmt(_)
        | N::CreateForeignTableStmt(_)
        | N::CreateUserMappingStmt(_)
        | N::AlterUserMappingStmt(_)
        | N::DropUserMappingStmt(_)
        | N::ImportForeignSchemaStmt(_)
        | N::CreateSubscriptionStmt(_)
        | N::AlterSubscriptionStmt(_)
        | N::DropSubscriptionStmt(_)
        | N::CreatePublicationStmt(_)
        | N::AlterPublicationStmt(_) => "reaches other servers",
        N::CreateTableSpaceStmt(_)
        | N::DropTableSpaceStmt(_)
        | N::AlterTableSpaceOptionsStmt(_)
        | N::AlterTableMoveAllStmt(_) => "manages the server's directories",
        N::CreatedbStmt(_)
        | N::DropdbStmt(_)
        | N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_) => "manages whole databases",
        N::DiscardStmt(_) => "resets the session (its role among it)",
        N::CheckPointStmt(_) => "forces a server checkpoint",
        N::CallStmt(_) => "runs a procedure drydock cannot see; inline its statements",
        N::PrepareStmt(_)
        | N::ExecuteStmt(_)
        | N::DeallocateStmt(_)
        | N::DeclareCursorStmt(_)
        | N::FetchStmt(_)
        | N::ClosePortalStmt(_) => "is session machinery drydock does not carry",
        N::SecLabelStmt(_) => "changes security labels",
        _ => "is not a statement kind drydock runs for agents",
    }
}

/// A statement's kind as an engineer would name it (`CreateRoleStmt` → `CREATE ROLE`).
fn kind_name(node: &NodeEnum) -> String {
    let json = serde_json::to_value(node).unwrap_or(Value::Null);
    let raw = json
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_else(|| "statement".into());
    let raw = raw.trim_end_matches("Stmt");
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Writes and DDL never target the system catalogs.
fn writable(r: Option<&RangeVar>) -> Verdict {
    let Some(r) = r else { return Ok(()) };
    if SYSTEM_SCHEMAS.contains(&r.schemaname.as_str())
        || (r.schemaname.is_empty() && r.relname.starts_with("pg_"))
    {
        return Err(Forbidden::new(
            if r.schemaname.is_empty() {
                r.relname.clone()
            } else {
                format!("{}.{}", r.schemaname, r.relname)
            },
            "is a system catalog; changing it bypasses every rule of the database",
        ));
    }
    Ok(())
}

fn setting(s: &pg_query::protobuf::VariableSetStmt) -> Verdict {
    let name = s.name.to_lowercase();
    let kind = VariableSetKind::try_from(s.kind).unwrap_or(VariableSetKind::Undefined);
    let allowed = matches!(
        kind,
        VariableSetKind::VarSetValue | VariableSetKind::VarSetDefault | VariableSetKind::VarReset
    ) && (SESSION_SETTINGS.contains(&name.as_str()) || name.starts_with("enable_"));
    if allowed {
        return Ok(());
    }
    let construct = match kind {
        VariableSetKind::VarResetAll => "RESET ALL".to_string(),
        VariableSetKind::VarSetMulti => format!("SET {}", s.name.to_uppercase()),
        _ => format!("SET {}", s.name),
    };
    let reason = match name.as_str() {
        "role" | "session_authorization" => "changes the session's identity",
        _ => {
            "changes a setting outside the ones a migration may set (lock_timeout, statement_timeout, work_mem, ...)"
        }
    };
    Err(Forbidden::new(construct, reason))
}

/// A `CREATE FUNCTION`'s language (lower case; `sql` when unsaid) and body (none: `BEGIN ATOMIC`,
/// whose statements are part of the tree).
fn source(s: &pg_query::protobuf::CreateFunctionStmt) -> (String, Option<String>) {
    let mut language = None;
    let mut body = None;
    for opt in &s.options {
        let Some(NodeEnum::DefElem(d)) = &opt.node else {
            continue;
        };
        match d.defname.as_str() {
            "language" => language = d.arg.as_deref().and_then(string_of),
            "as" => {
                if let Some(NodeEnum::List(l)) = d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                    body = l.items.first().and_then(string_of);
                }
            }
            _ => {}
        }
    }
    let language = language
        .map(|l| l.to_lowercase())
        .unwrap_or_else(|| "sql".into());
    (language, body)
}

fn function(s: &pg_query::protobuf::CreateFunctionStmt, usage: Use) -> Verdict {
    for opt in &s.options {
        if let Some(NodeEnum::DefElem(d)) = &opt.node
            && !matches!(d.defname.as_str(), "language" | "as")
        {
            function_option(opt)?;
        }
    }
    let (language, body) = source(s);
    match (language.as_str(), body) {
        ("sql", Some(body)) => postgres(&body, usage),
        ("sql", None) => Ok(()), // BEGIN ATOMIC: its statements are part of the tree
        ("plpgsql", Some(_)) => super::plpgsql::function(&as_written(s), usage),
        ("plpgsql", None) => Ok(()),
        (other, _) => Err(Forbidden::new(
            format!("LANGUAGE {other}"),
            "is code drydock cannot analyse (only SQL and PL/pgSQL are admitted)",
        )),
    }
}

/// A `CREATE FUNCTION` statement as SQL again (deparsed), for PostgreSQL's PL/pgSQL parser.
fn as_written(s: &pg_query::protobuf::CreateFunctionStmt) -> String {
    NodeEnum::CreateFunctionStmt(Box::new(s.clone()))
        .deparse(pg_query::DeparseOptions::default())
        .unwrap_or_default()
}

/// `SECURITY DEFINER` and function-level `SET`s.
fn function_option(opt: &Node) -> Verdict {
    let Some(NodeEnum::DefElem(d)) = &opt.node else {
        return Ok(());
    };
    match d.defname.as_str() {
        "security" => match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::Boolean(b)) if b.boolval => Err(Forbidden::new(
                "SECURITY DEFINER",
                "runs with its owner's privileges, whoever calls it",
            )),
            _ => Ok(()),
        },
        "set" => match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::VariableSetStmt(v)) => setting(v),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// A `DO` block's language (lower case) and body.
fn do_source(s: &pg_query::protobuf::DoStmt) -> (String, String) {
    let mut language = "plpgsql".to_string();
    let mut body = String::new();
    for a in &s.args {
        let Some(NodeEnum::DefElem(d)) = &a.node else {
            continue;
        };
        let value = d.arg.as_deref().and_then(string_of).unwrap_or_default();
        match d.defname.as_str() {
            "language" => language = value.to_lowercase(),
            "as" => body = value,
            _ => {}
        }
    }
    (language, body)
}

/// Every function agent SQL calls, by its last name, however deep: in statements, defaults,
/// views, SQL and PL/pgSQL bodies, DO blocks. What each is, the target's catalog says
/// (`Target::beyond_the_database`): the gate's names are the part no catalog is needed for.
pub fn called(sql: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return out;
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        if let Ok(tree) = serde_json::to_value(node) {
            let mut names = Vec::new();
            crate::analysis::pg::last_names_in(&tree, "FuncCall", "funcname", &mut names);
            out.extend(names);
        }
        let bodies = match node {
            NodeEnum::CreateFunctionStmt(s) => match source(s) {
                (language, Some(body)) if language == "sql" => vec![body],
                (language, Some(_)) if language == "plpgsql" => {
                    super::plpgsql::function_statements(&as_written(s))
                }
                _ => vec![],
            },
            NodeEnum::DoStmt(s) => super::plpgsql::statements(&do_source(s).1),
            _ => vec![],
        };
        for body in bodies {
            out.extend(called(&body));
        }
    }
    out
}

/// Whether `sql` runs SQL built at run time: a PL/pgSQL `DO` block or function whose body uses
/// `EXECUTE` (see `plpgsql::dynamic`).
pub fn runs_dynamic_sql(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().any(
        |raw| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::CreateFunctionStmt(s)) => {
                source(s).0 == "plpgsql" && super::plpgsql::dynamic(&as_written(s), false)
            }
            Some(NodeEnum::DoStmt(s)) => {
                let (language, body) = do_source(s);
                language == "plpgsql" && super::plpgsql::dynamic(&body, true)
            }
            _ => false,
        },
    )
}

fn do_block(s: &pg_query::protobuf::DoStmt, usage: Use) -> Verdict {
    let (language, body) = do_source(s);
    if language != "plpgsql" {
        return Err(Forbidden::new(
            format!("DO LANGUAGE {language}"),
            "is code drydock cannot analyse (only PL/pgSQL is admitted)",
        ));
    }
    super::plpgsql::plpgsql(&body, usage)
}

fn string_of(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// Every string in the tree (names, literals) checked against what reaches beyond the database.
fn names(tree: &Value) -> Verdict {
    match tree {
        Value::String(s) => match beyond_the_database(s) {
            Some(why) => Err(Forbidden::new(s.clone(), why)),
            None => Ok(()),
        },
        Value::Array(items) => items.iter().try_for_each(names),
        Value::Object(map) => map.values().try_for_each(names),
        _ => Ok(()),
    }
}

/// Why `name` (a function's or catalog's, bare or schema-qualified, any case) reaches beyond the
/// database, if it does.
fn beyond_the_database(name: &str) -> Option<&'static str> {
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

fn has_key(tree: &Value, key: &str) -> bool {
    match tree {
        Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| has_key(v, key)),
        _ => false,
    }
}
