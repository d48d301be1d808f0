//! PostgreSQL agent SQL, parsed with PostgreSQL's own parser: the statement-kind allowlist, the
//! conditions some kinds carry, and the names that reach beyond the database.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, Node, ObjectType, RangeVar, VariableSetKind};
use serde_json::Value;

use super::pg_names::{SESSION_SETTINGS, SYSTEM_SCHEMAS, TRUSTED_EXTENSIONS, beyond_the_database};
use super::{Forbidden, Use, Verdict, first_words};

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
        N::AlterDefaultPrivilegesStmt(s) => default_privileges(s),
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
        N::AlterTableStmt(s) => alter_table(s),
        N::CreateSchemaStmt(s) => s.schema_elts.iter().try_for_each(|n| nested(n, usage)),
        N::ExplainStmt(s) => s.query.as_deref().map_or(Ok(()), |n| nested(n, usage)),
        N::GrantStmt(s) => grant(s),
        N::CreateExtensionStmt(s) => create_extension(s),
        N::AlterExtensionStmt(s) if TRUSTED_EXTENSIONS.contains(&s.extname.as_str()) => Ok(()),
        N::VariableSetStmt(s) => setting(s),
        N::CreateFunctionStmt(s) => function(s, usage),
        N::AlterFunctionStmt(s) => s.actions.iter().try_for_each(function_option),
        N::DoStmt(s) => do_block(s, usage),
        N::TransactionStmt(_) => Err(Forbidden::new(
            "transaction control",
            "would end drydock's own transaction; drydock opens and commits it",
        )),
        N::CopyStmt(s) => Err(copy(s)),
        other => Err(Forbidden::new(kind_name(other), refusal_reason(other))),
    }
}

/// Default privileges reach every object made later, by anyone the role makes objects as:
/// admitted for what GRANT is admitted for (tables, sequences), nothing wider.
fn default_privileges(s: &pg_query::protobuf::AlterDefaultPrivilegesStmt) -> Verdict {
    match s.action.as_ref() {
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
    }
}

/// `ALTER TABLE`: never of a system catalog, never a change of owner.
fn alter_table(s: &pg_query::protobuf::AlterTableStmt) -> Verdict {
    writable(s.relation.as_ref())?;
    for cmd in &s.cmds {
        if let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node
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

/// `GRANT`/`REVOKE` on tables and sequences only, never a system catalog.
fn grant(s: &pg_query::protobuf::GrantStmt) -> Verdict {
    let object = s.objtype == ObjectType::ObjectTable as i32
        || s.objtype == ObjectType::ObjectSequence as i32;
    if !object {
        return Err(Forbidden::new(
            if s.is_grant { "GRANT" } else { "REVOKE" },
            "manages privileges on something other than a table or sequence",
        ));
    }
    s.objects.iter().try_for_each(|o| match &o.node {
        Some(NodeEnum::RangeVar(r)) => writable(Some(r)),
        _ => Ok(()),
    })
}

/// `CREATE EXTENSION` of a trusted extension only.
fn create_extension(s: &pg_query::protobuf::CreateExtensionStmt) -> Verdict {
    if TRUSTED_EXTENSIONS.contains(&s.extname.as_str()) {
        Ok(())
    } else {
        Err(Forbidden::new(
            format!("CREATE EXTENSION {}", s.extname),
            "is not a trusted extension: it can run code outside the database",
        ))
    }
}

/// Why a `COPY` is refused: a program or a file on the database server, or a stream drydock
/// does not carry.
fn copy(s: &pg_query::protobuf::CopyStmt) -> Forbidden {
    let (construct, reason) = if s.is_program {
        ("COPY ... PROGRAM", "runs a program on the database server")
    } else if !s.filename.is_empty() {
        (
            "COPY ... FILE",
            "reads or writes a file on the database server",
        )
    } else {
        (
            "COPY",
            "streams data drydock does not carry; write INSERT ... SELECT",
        )
    };
    Forbidden::new(construct, reason)
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
/// SQL that cannot be read is refused, never taken to call nothing (the gate refuses it too, so
/// only a plan it admitted gets here).
pub fn called(sql: &str) -> Result<std::collections::BTreeSet<String>, Forbidden> {
    let mut out = std::collections::BTreeSet::new();
    let parsed = pg_query::parse(sql, 0).map_err(|e| {
        Forbidden::new(
            first_words(sql),
            format!("does not parse, so drydock cannot tell which functions it calls ({e})"),
        )
    })?;
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let tree = serde_json::to_value(node).map_err(|e| {
            Forbidden::new(
                first_words(sql),
                format!("could not be read after parsing ({e})"),
            )
        })?;
        let mut names = Vec::new();
        crate::analysis::pg::last_names_in(&tree, "FuncCall", "funcname", &mut names);
        out.extend(names);
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
            out.extend(called(&body)?);
        }
    }
    Ok(out)
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

fn has_key(tree: &Value, key: &str) -> bool {
    match tree {
        Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| has_key(v, key)),
        _ => false,
    }
}
