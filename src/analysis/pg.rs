//! Statement facts for PostgreSQL, read from PostgreSQL's own parser (`pg_query`) and the
//! target's catalog: the lock each statement takes, whether it rewrites or scans a table (a type
//! change that is not binary-coercible, a volatile default, SET NOT NULL not proven by a
//! validated CHECK, a constraint without NOT VALID), and whether it can run in a transaction.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ColumnDef, ConstrType, Constraint, Node, ObjectType, RangeVar,
    TypeName,
};

mod alter;
mod data;
mod maintenance;
mod objects;
mod types;

use types::catalog_name;
pub use types::{PgType, type_change};

use super::{Action, StatementFacts, StatementKind};
use crate::db::Catalog;
use crate::error::{Error, Part, Result};
use crate::sql::LockMode;

/// What earlier statements of the same plan established.
#[derive(Default)]
pub struct PlanState {
    pub created: BTreeSet<String>,
    /// `table.column` proven NOT NULL by a validated CHECK (from the catalog or this plan).
    pub proven_not_null: BTreeSet<String>,
    /// NOT VALID `CHECK (col IS NOT NULL)` constraints added by this plan: name → `table.column`.
    pub pending_not_null: BTreeMap<String, String>,
    /// `table.column` this plan made NOT NULL (true) or dropped its NOT NULL (false): what holds
    /// now, over the catalog.
    pub not_null: BTreeMap<String, bool>,
    /// Constraints validated by this plan (added without NOT VALID, or validated): validating
    /// one again reads nothing.
    pub validated: BTreeSet<String>,
    /// `table.column` named by a validated CHECK constraint this plan added (a type change
    /// validates it again); NOT VALID ones wait in `unvalidated_checks` (name → columns).
    pub checked_columns: BTreeSet<String>,
    pub unvalidated_checks: BTreeMap<String, Vec<String>>,
    /// Tables given an index by this plan.
    pub indexed: BTreeSet<String>,
    /// `table.column` → its type after an earlier `ALTER COLUMN ... TYPE` of this plan.
    pub column_types: BTreeMap<String, PgType>,
    /// Types and schemas created by earlier statements of this plan.
    pub created_types: BTreeSet<String>,
    pub created_schemas: BTreeSet<String>,
    /// Tables this plan made UNLOGGED (true) or LOGGED (false): setting it again does nothing.
    pub persistence: BTreeMap<String, bool>,
}

impl PlanState {
    pub fn new(catalog: &Catalog) -> PlanState {
        PlanState {
            proven_not_null: catalog.proven_not_null.clone(),
            ..PlanState::default()
        }
    }
}

fn rel_name(r: &RangeVar) -> String {
    if r.schemaname.is_empty() || r.schemaname == "public" {
        r.relname.clone()
    } else {
        format!("{}.{}", r.schemaname, r.relname)
    }
}

fn sval(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

const VOLATILE_FALLBACK: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "clock_timestamp",
    "nextval",
    "timeofday",
    "txid_current",
];

fn is_volatile(catalog: &Catalog, function: &str) -> bool {
    let f = function.rsplit('.').next().unwrap_or(function);
    if catalog.volatile_functions.is_empty() {
        VOLATILE_FALLBACK.contains(&f)
    } else {
        catalog.volatile_functions.contains(f)
    }
}

/// `CHECK (col IS NOT NULL)` → `col`.
fn not_null_check_column(c: &Constraint) -> Option<String> {
    match c.raw_expr.as_ref()?.node.as_ref()? {
        NodeEnum::NullTest(t)
            if t.nulltesttype == pg_query::protobuf::NullTestType::IsNotNull as i32 =>
        {
            match t.arg.as_ref()?.node.as_ref()? {
                NodeEnum::ColumnRef(c) => c.fields.last().and_then(sval).map(String::from),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The columns a backfill's `set` assigns (`a = 1, (b, c) = (2, 3)` → `a, b, c`): the values it
/// overwrites, which drydock saves before overwriting them.
pub fn assigned_columns(set: &str) -> std::result::Result<Vec<String>, String> {
    let parsed = pg_query::parse(&format!("UPDATE drydock_t SET {set}"), 0)
        .map_err(|e| format!("backfill `set` {set:?} is not a list of assignments: {e}"))?;
    let Some(NodeEnum::UpdateStmt(u)) = first_statement(&parsed) else {
        return Err(format!(
            "backfill `set` {set:?} is not a list of assignments"
        ));
    };
    let mut out: Vec<String> = Vec::new();
    for t in &u.target_list {
        if let Some(NodeEnum::ResTarget(r)) = t.node.as_ref()
            && !out.contains(&r.name)
        {
            out.push(r.name.clone());
        }
    }
    Ok(out)
}

pub use crate::plan::input::validate_backfill;
pub use crate::sql::single_expression;

/// The columns an expression names (every `ColumnRef`'s last name, however deeply nested).
fn referenced_columns(node: &Node) -> Vec<String> {
    last_names_of(node, "ColumnRef", "fields")
}

/// The functions an expression calls (every `FuncCall`'s last name, however deeply nested).
fn called_functions(node: &Node) -> Vec<String> {
    last_names_of(node, "FuncCall", "funcname")
}

/// A statement the analysis does not model, named in PostgreSQL's words from its parse node
/// (`CreateSeqStmt` → `create sequence`, `VariableSetStmt` → `set`): what an engineer reads,
/// never the parser's name.
pub(super) fn postgres_words(node: &str) -> String {
    match node {
        "VariableSetStmt" => return "set".into(),
        "VariableShowStmt" => return "show".into(),
        "AlterObjectSchemaStmt" => return "alter set schema".into(),
        "AlterOwnerStmt" => return "alter owner to".into(),
        "DefineStmt" => return "create aggregate, operator or type".into(),
        "RuleStmt" => return "create rule".into(),
        "" => return "statement".into(),
        _ => {}
    }
    let mut words: Vec<String> = Vec::new();
    for c in node.trim_end_matches("Stmt").chars() {
        if c.is_uppercase() || words.is_empty() {
            words.push(c.to_lowercase().collect());
        } else if let Some(w) = words.last_mut() {
            w.push(c);
        }
    }
    words
        .into_iter()
        .map(|w| match w.as_str() {
            "seq" => "sequence".to_string(),
            "trig" => "trigger".to_string(),
            "stats" => "statistics".to_string(),
            "func" => "function".to_string(),
            "op" | "opr" => "operator".to_string(),
            "fdw" => "foreign data wrapper".to_string(),
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Walks a parse tree's serialised form for every `kind` node and collects the last name of its
/// `names` list (`public.lower` → `lower`, `t.col` → `col`). `facts` refused a statement whose
/// tree cannot be read, so a subtree of it always can.
fn last_names_of(node: &Node, kind: &str, names: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(node) {
        last_names_in(&v, kind, names, &mut out);
    }
    out
}

/// `last_names_of` over a tree already serialised.
pub(crate) fn last_names_in(v: &serde_json::Value, kind: &str, names: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(last) = m.get(kind).and_then(|k| {
                k[names]
                    .as_array()?
                    .iter()
                    .rev()
                    .find_map(|p| p["node"]["String"]["sval"].as_str())
            }) {
                out.push(last.to_string());
            }
            m.values().for_each(|x| last_names_in(x, kind, names, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| last_names_in(x, kind, names, out)),
        _ => {}
    }
}

/// The last name of a qualified name (`public.mood` → `mood`).
fn last_name(names: &[Node]) -> String {
    names
        .iter()
        .rev()
        .find_map(sval)
        .unwrap_or_default()
        .to_string()
}

/// Parses one statement and reads its facts.
pub fn facts(
    step: &str,
    index: usize,
    sql: &str,
    catalog: &Catalog,
    state: &mut PlanState,
) -> Result<StatementFacts> {
    let parsed = parse_one(step, index, sql)?;
    let stmt = first_statement(&parsed).expect("parse_one returns a statement");
    let mut f = StatementFacts {
        step: step.to_string(),
        index,
        sql: sql.to_string(),
        kind: StatementKind::Other(String::new()),
        tables: vec![],
        lock: LockMode::AccessShare,
        locks_on: Default::default(),
        rewrites: false,
        scans: false,
        transactional: true,
        has_where: false,
        detail: None,
        actions: vec![],
        unmodelled: false,
    };
    match stmt {
        NodeEnum::AlterTableStmt(a) => alter::alter_table(&mut f, a, catalog, state),
        NodeEnum::RenameStmt(r) => alter::rename(&mut f, r),
        NodeEnum::IndexStmt(i) => objects::create_index(&mut f, i, catalog, state),
        NodeEnum::RefreshMatViewStmt(r) => objects::refresh(&mut f, r),
        NodeEnum::AlterDomainStmt(d) => objects::alter_domain(&mut f, d, catalog, state),
        NodeEnum::AlterEnumStmt(e) => objects::alter_enum(&mut f, e, catalog, state),
        NodeEnum::CreateStmt(c) => objects::create_table(&mut f, c, catalog, state),
        NodeEnum::DropStmt(d) => objects::drop(&mut f, d, catalog, state),
        NodeEnum::CreateEnumStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::CreateSchemaStmt(_) => {
            objects::create_type_or_schema(&mut f, stmt, catalog, state)
        }
        NodeEnum::CreateTrigStmt(t) => objects::create_trigger(&mut f, t),
        NodeEnum::ViewStmt(v) => objects::create_view(&mut f, v),
        NodeEnum::CreateTableAsStmt(c) => objects::create_table_as(&mut f, c, state),
        NodeEnum::CreateFunctionStmt(c) => {
            // A function is no relation: nothing is locked that writes wait on.
            f.kind = if c.is_procedure {
                StatementKind::CreateProcedure
            } else {
                StatementKind::CreateFunction
            };
            f.detail = c.funcname.last().and_then(sval).map(str::to_lowercase);
        }
        NodeEnum::UpdateStmt(u) => data::update(&mut f, u),
        NodeEnum::DeleteStmt(d) => data::delete(&mut f, d),
        NodeEnum::InsertStmt(i) => data::insert(&mut f, i),
        NodeEnum::TruncateStmt(t) => data::truncate(&mut f, t),
        NodeEnum::VacuumStmt(v) => maintenance::vacuum(&mut f, v),
        NodeEnum::ClusterStmt(c) => maintenance::cluster(&mut f, c),
        NodeEnum::ReindexStmt(r) => maintenance::reindex(&mut f, r),
        NodeEnum::SelectStmt(_) => f.kind = StatementKind::Select,
        NodeEnum::TransactionStmt(_) => {
            return Err(Error::invalid(
                Part::Statement,
                format!(
                    "step `{step}` statement {index} is transaction control (`{}`): drydock opens and commits transactions itself",
                    short(sql)
                ),
            ));
        }
        NodeEnum::CreatedbStmt(_) | NodeEnum::DropdbStmt(_) | NodeEnum::AlterSystemStmt(_) => {
            f.kind = StatementKind::DatabaseLevel;
            f.transactional = false;
        }
        NodeEnum::DoStmt(_) => {
            // What a DO block locks depends on what it runs: only the dry-run can say.
            f.kind = StatementKind::DoBlock;
            f.lock = LockMode::NotPredicted;
        }
        other => {
            f.kind = StatementKind::Other(postgres_words(
                format!("{other:?}").split('(').next().unwrap_or(""),
            ));
            f.unmodelled = true;
            f.lock = LockMode::NotPredicted;
        }
    }
    Ok(f)
}

/// The first statement of what was parsed, if there is one.
pub(super) fn first_statement(parsed: &pg_query::ParseResult) -> Option<&NodeEnum> {
    parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref())
}

/// One statement of a step, parsed; refused when it does not parse, is empty, or its tree
/// cannot be read.
fn parse_one(step: &str, index: usize, sql: &str) -> Result<pg_query::ParseResult> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| {
        Error::invalid(
            Part::Statement,
            format!(
                "step `{step}` statement {index} does not parse as PostgreSQL: {e} — in `{}`",
                short(sql)
            ),
        )
    })?;
    let stmt = first_statement(&parsed).ok_or_else(|| {
        Error::invalid(
            Part::Statement,
            format!("step `{step}` statement {index} is empty"),
        )
    })?;
    // The walks for the columns and functions an expression names read the tree in serde's
    // form, every field of every node (no hand-written walk covers them all: pg_query's own
    // skips a column's DEFAULT, where a volatile call makes ADD COLUMN rewrite the table). A
    // tree that cannot be read is refused here, so no walk below takes one to name nothing.
    serde_json::to_value(stmt).map_err(|e| {
        Error::invalid(
            Part::Statement,
            format!(
                "step `{step}` statement {index} parsed but could not be read ({e}) — in `{}`",
                short(sql)
            ),
        )
    })?;
    Ok(parsed)
}

/// Whether `sql` spells a special date/time input (`'now'`, `'today'`, `'tomorrow'`,
/// `'yesterday'`) as a string constant: cast in a view's definition, it is frozen into the view
/// at the instant the view is created.
pub fn freezes_time(sql: &str) -> bool {
    let Ok(scanned) = pg_query::scan(sql) else {
        return false;
    };
    scanned.tokens.iter().any(|t| {
        t.token == pg_query::protobuf::Token::Sconst as i32
            && sql
                .get(t.start as usize..t.end as usize)
                .map(|s| s.trim_matches('\'').to_ascii_lowercase())
                .is_some_and(|s| matches!(s.as_str(), "now" | "today" | "tomorrow" | "yesterday"))
    })
}

/// Notes a type name the catalog and the plan do not know (`unknown-object`). Serial
/// pseudo-types are not in `pg_type`; a catalog read without types (SQLite) knows nothing.
fn check_type(f: &mut StatementFacts, name: &str, catalog: &Catalog, state: &PlanState) {
    let serial = matches!(
        name,
        "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
    );
    if catalog.types.is_empty()
        || serial
        || catalog.types.contains(name)
        || state.created_types.contains(name)
    {
        return;
    }
    f.actions.push(Action::UnknownName {
        what: "type",
        name: name.to_string(),
        nearest: super::nearest(name, catalog.types.iter().map(String::as_str)),
    });
}

/// Notes a schema the catalog and the plan do not know.
fn check_schema(f: &mut StatementFacts, name: &str, catalog: &Catalog, state: &PlanState) {
    if catalog.schemas.is_empty()
        || matches!(name, "" | "public" | "pg_catalog" | "pg_temp")
        || catalog.schemas.contains(name)
        || state.created_schemas.contains(name)
    {
        return;
    }
    f.actions.push(Action::UnknownName {
        what: "schema",
        name: name.to_string(),
        nearest: super::nearest(name, catalog.schemas.iter().map(String::as_str)),
    });
}

fn short(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}…", one.chars().take(120).collect::<String>())
    } else {
        one
    }
}

fn object_word(o: ObjectType) -> String {
    format!("{o:?}").trim_start_matches("Object").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PgType {
        PgType::from_formatted(s)
    }

    #[test]
    fn drop_trigger_and_do_blocks_are_not_access_share() {
        let catalog = Catalog::default();
        let mut state = PlanState::new(&catalog);
        let f = facts(
            "s",
            1,
            "DROP TRIGGER sync ON accounts",
            &catalog,
            &mut state,
        )
        .unwrap();
        assert_eq!(f.kind, StatementKind::DropTrigger);
        assert_eq!(f.tables, vec!["accounts"]);
        assert_eq!(f.lock, LockMode::AccessExclusive);
        let f = facts(
            "s",
            1,
            "DO $$ BEGIN PERFORM 1; END $$",
            &catalog,
            &mut state,
        )
        .unwrap();
        assert_eq!(f.kind, StatementKind::DoBlock);
        assert_ne!(f.lock, LockMode::AccessShare);
    }

    #[test]
    fn statements_not_modelled_are_named_in_postgresqls_words() {
        let catalog = crate::analysis::rules::test_support::pg_catalog();
        let mut state = PlanState::new(&catalog);
        for (sql, kind) in [
            ("SET lock_timeout = '1s'", "set"),
            ("CREATE SEQUENCE order_numbers", "create sequence"),
            ("ALTER SEQUENCE order_numbers RESTART", "alter sequence"),
            ("COMMENT ON TABLE users IS 'people'", "comment"),
            ("GRANT SELECT ON users TO reporting", "grant"),
            ("CREATE EXTENSION IF NOT EXISTS citext", "create extension"),
            ("ALTER TABLE users OWNER TO app", "alter table owner to"),
            (
                "ALTER TABLE users SET WITHOUT OIDS",
                "alter table drop oids",
            ),
            ("ALTER FUNCTION f() OWNER TO app", "alter owner to"),
        ] {
            let f = facts("s", 1, sql, &catalog, &mut state).unwrap();
            assert_eq!(f.kind.to_string(), kind, "{sql}");
            assert!(!f.kind.to_string().contains("stmt"), "{sql}: {}", f.kind);
        }
        assert_eq!(
            postgres_words("CreateForeignTableStmt"),
            "create foreign table"
        );
        assert_eq!(postgres_words("CreateTrigStmt"), "create trigger");
    }

    /// Statements seen in public schemas and migration histories, with the facts PostgreSQL
    /// measurably has (locks per `pg_locks`).
    #[test]
    fn statements_of_real_migrations_have_their_measured_facts() {
        let catalog = crate::analysis::rules::test_support::pg_catalog();
        let mut state = PlanState::new(&catalog);
        let mut run = |sql: &str| facts("s", 1, sql, &catalog, &mut state).unwrap();

        let f = run("ALTER TABLE users DISABLE TRIGGER USER");
        assert_eq!(
            (f.kind, f.lock),
            (StatementKind::DisableTrigger, LockMode::ShareRowExclusive)
        );
        let f = run("ALTER TABLE users ENABLE TRIGGER users_audit");
        assert_eq!(f.lock, LockMode::ShareRowExclusive);

        let f = run("DROP MATERIALIZED VIEW user_stats");
        assert_eq!(
            (f.kind, f.lock, f.tables.clone()),
            (
                StatementKind::DropMaterializedView,
                LockMode::AccessExclusive,
                vec!["user_stats".to_string()]
            )
        );

        // A foreign key takes SHARE ROW EXCLUSIVE on the table it references, whatever the
        // statement takes on its own.
        let f = run("CREATE TABLE sessions (id int, user_id int REFERENCES users (id))");
        assert_eq!(f.lock_on("sessions"), LockMode::NewTable);
        assert_eq!(f.lock_on("users"), LockMode::ShareRowExclusive);
        let f = run("ALTER TABLE flags ADD COLUMN owner int REFERENCES users (id)");
        assert_eq!(f.lock_on("flags"), LockMode::AccessExclusive);
        assert_eq!(f.lock_on("users"), LockMode::ShareRowExclusive);
        let f = run(
            "ALTER TABLE flags ADD CONSTRAINT flags_owner FOREIGN KEY (owner) REFERENCES users (id) NOT VALID",
        );
        assert_eq!(f.lock_on("users"), LockMode::ShareRowExclusive);

        // A type's rename names no table.
        let f = run("ALTER TYPE mood RENAME TO feeling");
        assert!(f.tables.is_empty(), "{:?}", f.tables);
        assert_eq!(f.kind.to_string(), "alter type rename");

        // A column added earlier in the plan retyped to its own type: no rewrite.
        run("ALTER TABLE flags ADD COLUMN label varchar(20)");
        let f = run("ALTER TABLE flags ALTER COLUMN label TYPE varchar(20)");
        assert!(!f.rewrites);

        let f = run("CREATE TABLE archived AS SELECT * FROM users");
        assert_eq!(f.kind, StatementKind::CreateTableAs);
        assert!(state_created(
            &catalog,
            "CREATE TABLE archived AS SELECT 1",
            "archived"
        ));

        let f = run("ALTER INDEX events_at ATTACH PARTITION events_2025_at");
        assert!(f.tables.is_empty());
        assert_eq!(f.kind, StatementKind::AlterIndexAttachPartition);
    }

    fn state_created(catalog: &Catalog, sql: &str, table: &str) -> bool {
        let mut state = PlanState::new(catalog);
        facts("s", 1, sql, catalog, &mut state).unwrap();
        state.created.contains(table)
    }

    #[test]
    fn names_a_plan_gives_are_known_to_its_later_statements() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        let unknown = |sql: &str| {
            pg(sql)
                .into_iter()
                .filter(|h| h.code == Rule::UnknownObject)
                .map(|h| h.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unknown(
                "ALTER TABLE users RENAME COLUMN name TO full_name; ALTER TABLE users ALTER COLUMN full_name SET NOT NULL"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            unknown(
                "ALTER TABLE users RENAME TO members; ALTER TABLE members ALTER COLUMN name SET NOT NULL"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            unknown(
                "CREATE TABLE archived AS SELECT * FROM users; ALTER TABLE archived ADD COLUMN at date"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_view_dropped_and_created_again_in_one_step_breaks_nothing() {
        use crate::analysis::rules::test_support::pg;
        use crate::analysis::{Rule, Severity};
        let breaking = |sql: &str| {
            pg(sql)
                .into_iter()
                .filter(|h| h.code == Rule::BreakingChange)
                .map(|h| (h.severity, h.message))
                .collect::<Vec<_>>()
        };
        // The view is replaced around the column's change: neither the drop nor the change
        // "fails because a view depends on it".
        let found = breaking(
            "DROP VIEW active_users; ALTER TABLE users ALTER COLUMN email TYPE text; CREATE VIEW active_users AS SELECT id, email FROM users",
        );
        assert!(
            found
                .iter()
                .all(|(s, m)| *s != Severity::High && !m.contains("view")),
            "{found:?}"
        );
        // Dropped and never created again: running code that reads it breaks.
        assert!(
            breaking("DROP VIEW active_users")
                .iter()
                .any(|(_, m)| m.contains("removes a relation")),
        );
    }

    #[test]
    fn a_column_a_trigger_function_names_breaks_writes_when_renamed() {
        use crate::analysis::{Rule, Severity};
        let mut catalog = crate::analysis::rules::test_support::pg_catalog();
        catalog
            .tables
            .get_mut("users")
            .unwrap()
            .trigger_functions
            .push(crate::db::TriggerFunction {
                trigger: "users_touch".into(),
                function: "touch()".into(),
                names: ["begin", "new", "name", "lower", "return", "end"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                arguments: vec![],
            });
        let hazards = |sql: &str| {
            crate::analysis::rules::test_support::pg_on(&catalog, sql)
                .into_iter()
                .filter(|h| h.code == Rule::BreakingChange && h.message.contains("users_touch"))
                .collect::<Vec<_>>()
        };
        let found = hazards("ALTER TABLE users RENAME COLUMN name TO full_name");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::High);
        assert!(found[0].message.contains("touch()"), "{found:?}");
        assert!(hazards("ALTER TABLE users DROP COLUMN name").len() == 1);
        // A column the body does not name, and the function replaced in the same step.
        assert!(hazards("ALTER TABLE users RENAME COLUMN email TO mail").is_empty());
        assert!(hazards(
            "ALTER TABLE users RENAME COLUMN name TO full_name; CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.full_name := lower(NEW.full_name); RETURN NEW; END $$"
        )
        .is_empty());
    }

    #[test]
    fn an_index_on_a_partitioned_table_is_never_told_to_go_concurrently_on_the_parent() {
        use crate::analysis::Rule;
        let mut catalog = crate::analysis::rules::test_support::pg_catalog();
        let mut events = catalog.tables["users"].clone();
        events.rows = 2_000_000;
        catalog.tables.insert("events".into(), events.clone());
        catalog.tables.insert("events_2025".into(), events);
        catalog
            .partitions
            .insert("events".into(), vec!["events_2025".into()]);
        let h = crate::analysis::rules::test_support::pg_on(
            &catalog,
            "CREATE INDEX events_name ON events (name)",
        )
        .into_iter()
        .find(|h| h.code == Rule::BlockingIndexBuild)
        .expect("a blocking build");
        assert!(
            h.fix.contains("ON ONLY") && h.fix.contains("refuses CONCURRENTLY"),
            "{h:?}"
        );
    }

    #[test]
    fn binary_coercible_changes_are_not_rewrites() {
        assert_eq!(
            type_change(&t("character varying(50)"), &t("character varying(100)")),
            (true, false)
        );
        assert_eq!(
            type_change(&t("character varying(50)"), &t("text")),
            (true, false)
        );
        assert_eq!(
            type_change(&t("numeric(10,2)"), &t("numeric(12,2)")),
            (true, false)
        );
        assert_eq!(type_change(&t("integer"), &t("bigint")), (false, false));
        assert_eq!(type_change(&t("bigint"), &t("integer")), (false, true));
        assert_eq!(
            type_change(&t("character varying(100)"), &t("character varying(50)")),
            (false, true)
        );
    }

    #[test]
    fn expressions_cannot_smuggle_statements() {
        assert!(single_expression("e", "lower(email) || 'x'").is_ok());
        assert!(single_expression("e", "1); DROP TABLE users; SELECT (1").is_err());
        assert!(single_expression("e", "1 FROM users").is_err());
        assert!(single_expression("e", "'a'; DELETE FROM t").is_err());
    }

    #[test]
    fn backfills_are_assignments_only() {
        let b = |set: &str, filter: Option<&str>| crate::plan::Backfill {
            table: "users".into(),
            set: set.into(),
            filter: filter.map(String::from),
            key: Some("id".into()),
            ..Default::default()
        };
        assert!(validate_backfill("s", &b("counter = counter + 1", Some("counter < 10"))).is_ok());
        // Exactly one of update, copy, delete; a copy carries its key, by which rollback
        // finds the copied rows.
        let mut delete = b("", None);
        delete.delete = true;
        assert!(validate_backfill("s", &delete).is_ok());
        let mut both = b("a = 1", None);
        both.delete = true;
        assert!(validate_backfill("s", &both).is_err());
        let mut copy = b("", None);
        copy.copy_into = Some(crate::plan::CopyInto {
            table: "users_archive".into(),
            columns: vec!["id".into(), "email".into()],
            skip_existing: false,
        });
        assert!(validate_backfill("s", &copy).is_ok());
        copy.key = Some("email2".into());
        assert!(validate_backfill("s", &copy).is_err());
        assert!(validate_backfill("s", &b("", None)).is_err());
        assert!(validate_backfill("s", &b("a = 1; DROP TABLE users", None)).is_err());
        assert!(validate_backfill("s", &b("a = 1 WHERE true", None)).is_err());
        assert!(validate_backfill("s", &b("id = id + 1", None)).is_err());
        assert!(validate_backfill("s", &b("a = 1", Some("true; DROP TABLE users"))).is_err());
    }

    #[test]
    fn formatted_types_parse() {
        assert_eq!(t("numeric(10,2)").mods, vec![10, 2]);
        assert_eq!(t("character varying(50)").base, "character varying");
        assert!(t("integer[]").array);
    }
}
