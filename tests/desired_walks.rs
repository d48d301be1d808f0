//! Desired state, generated: proptest draws changes from a grammar (a column added, nullable or
//! NOT NULL with a default, of several types; an index, a unique one; a CHECK; a NOT NULL
//! dropped; a default set; a new table referencing an old one) to Chinook's tables as their
//! author wrote them; for each draw, desired = the author's DDL + the changes. The plan walks
//! through dry-run, approval, apply and validate; then the catalog is what was asked (planning
//! the same `desired` again is `nothing_to_change`), and after rollback it is what it was
//! (the author's DDL is `nothing_to_change` again). The draw is reproducible; set
//! `DRYDOCK_DESIRED_SEED` and `DRYDOCK_DESIRED_CASES` to explore others.

mod common;

use common::walk::{answer, run_sql, there_and_back};
use common::{PgProject, plan_id};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const CHINOOK: &str = include_str!("fixtures/chinook/chinook.sql");
const SEED: u64 = 20_261_207;
const CASES: u32 = 8;

/// Chinook's tables with columns a change may touch: (table, NOT NULL columns that are no key,
/// columns to index, CHECKs its rows satisfy).
/// (table, its NOT NULL columns that are no key, columns to index, CHECKs its rows satisfy).
type Table = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const TABLES: &[Table] = &[
    ("album", &["title"], &["title"], &["length(title) > 0"]),
    (
        "customer",
        &["first_name", "email"],
        &["email", "country"],
        &["country IN ('USA', 'Canada') OR country IS NOT NULL"],
    ),
    (
        "invoice",
        &["invoice_date", "total"],
        &["invoice_date", "billing_country"],
        &["total >= 0"],
    ),
    (
        "invoice_line",
        &["unit_price", "quantity"],
        &["track_id"],
        &["quantity > 0", "unit_price >= 0"],
    ),
    (
        "track",
        &["name", "milliseconds"],
        &["composer", "name"],
        &["milliseconds > 0", "bytes IS NULL OR bytes > 0"],
    ),
];

/// The author's statements for Chinook's tables (`CREATE TABLE`, `ALTER TABLE … ADD
/// CONSTRAINT`, `CREATE INDEX`), comments and data left out.
fn author_ddl() -> String {
    common::walk::table_ddl(CHINOOK)
}

#[derive(Debug, Clone)]
enum Change {
    AddColumn {
        table: usize,
        ty: usize,
        not_null: bool,
    },
    AddIndex {
        table: usize,
        column: usize,
        unique: bool,
    },
    AddCheck {
        table: usize,
        check: usize,
    },
    DropNotNull {
        table: usize,
        column: usize,
    },
    SetDefault {
        table: usize,
        column: usize,
    },
    Comment {
        table: usize,
        column: Option<usize>,
    },
    /// An index over an expression, or a partial one.
    OddIndex(usize),
    /// A second foreign key with referential actions.
    ActionKey(usize),
    NewTable,
}

/// (table, index definition after `ON table`).
const ODD_INDEXES: &[(&str, &str)] = &[
    ("album", "(lower(title))"),
    ("customer", "(email) WHERE country IS NOT NULL"),
    ("track", "(album_id, genre_id DESC NULLS LAST)"),
];

/// (table, foreign key after `FOREIGN KEY`).
const ACTION_KEYS: &[(&str, &str)] = &[
    (
        "invoice",
        "(customer_id) REFERENCES customer (customer_id) ON DELETE CASCADE",
    ),
    (
        "track",
        "(genre_id) REFERENCES genre ON UPDATE CASCADE ON DELETE SET NULL",
    ),
];

/// A type and a constant default of it.
const TYPES: &[(&str, &str)] = &[
    ("text", "'none'"),
    ("integer", "7"),
    ("bigint", "0"),
    ("varchar(30)", "'n/a'"),
    ("boolean", "true"),
    ("numeric(8,2)", "1.5"),
    ("timestamp with time zone", "'2020-01-01 00:00:00+00'"),
];

fn change() -> impl Strategy<Value = Change> {
    let t = 0..TABLES.len();
    prop_oneof![
        (t.clone(), 0..TYPES.len(), any::<bool>()).prop_map(|(table, ty, not_null)| {
            Change::AddColumn {
                table,
                ty,
                not_null,
            }
        }),
        (t.clone(), 0..2usize, any::<bool>()).prop_map(|(table, column, unique)| {
            Change::AddIndex {
                table,
                column,
                unique,
            }
        }),
        (t.clone(), 0..2usize).prop_map(|(table, check)| Change::AddCheck { table, check }),
        (t.clone(), 0..2usize).prop_map(|(table, column)| Change::DropNotNull { table, column }),
        (t.clone(), 0..2usize).prop_map(|(table, column)| Change::SetDefault { table, column }),
        (t, prop::option::of(0..2usize))
            .prop_map(|(table, column)| Change::Comment { table, column }),
        (0..ODD_INDEXES.len()).prop_map(Change::OddIndex),
        (0..ACTION_KEYS.len()).prop_map(Change::ActionKey),
        Just(Change::NewTable),
    ]
}

/// The author's DDL with `changes` made to it, as an engineer would edit the file.
fn desired(changes: &[Change]) -> String {
    let mut ddl = author_ddl();
    for (n, c) in changes.iter().enumerate() {
        let pick = |list: &[&'static str], i: usize| list[i % list.len()];
        match c {
            Change::AddColumn { table, ty, not_null } => {
                let (t, (ty, default)) = (TABLES[*table].0, TYPES[*ty]);
                let column = if *not_null {
                    format!("gen_c{n} {ty} NOT NULL DEFAULT {default}")
                } else {
                    format!("gen_c{n} {ty}")
                };
                ddl = in_table(&ddl, t, |body| format!("{body},\n    {column}"));
            }
            Change::AddIndex { table, column, unique } => {
                let (t, _, cols, _) = TABLES[*table];
                let col = pick(cols, *column);
                // Unique over the key and a column: true of every row.
                let key = format!("{t}_id");
                let (kw, list) = if *unique && t != "invoice_line" && t != "track" {
                    ("UNIQUE INDEX", format!("{key}, {col}"))
                } else {
                    ("INDEX", col.to_string())
                };
                ddl.push_str(&format!("\nCREATE {kw} gen_i{n} ON {t} ({list});"));
            }
            Change::AddCheck { table, check } => {
                let (t, _, _, checks) = TABLES[*table];
                ddl.push_str(&format!(
                    "\nALTER TABLE {t} ADD CONSTRAINT gen_k{n} CHECK ({});",
                    pick(checks, *check)
                ));
            }
            Change::DropNotNull { table, column } => {
                let (t, not_null, _, _) = TABLES[*table];
                let col = pick(not_null, *column);
                ddl = in_table(&ddl, t, |body| {
                    body.lines()
                        .map(|l| {
                            if l.trim_start().starts_with(&format!("{col} ")) {
                                l.replace(" NOT NULL", "")
                            } else {
                                l.to_string()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            Change::SetDefault { table, column } => {
                let (t, _, cols, _) = TABLES[*table];
                let col = pick(cols, *column);
                let value = if col.ends_with("_id") {
                    "0"
                } else if col.contains("date") {
                    "now()"
                } else {
                    "'unknown'"
                };
                ddl.push_str(&format!("\nALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {value};"));
            }
            Change::Comment { table, column } => {
                let (t, _, cols, _) = TABLES[*table];
                let on = match column {
                    Some(c) => format!("COLUMN {t}.{}", pick(cols, *c)),
                    None => format!("TABLE {t}"),
                };
                ddl.push_str(&format!("\nCOMMENT ON {on} IS 'generated {n}: it''s kept';"));
            }
            Change::OddIndex(i) => {
                let (t, def) = ODD_INDEXES[*i];
                ddl.push_str(&format!("\nCREATE INDEX gen_x{n} ON {t} {def};"));
            }
            Change::ActionKey(i) => {
                let (t, def) = ACTION_KEYS[*i];
                ddl.push_str(&format!(
                    "\nALTER TABLE {t} ADD CONSTRAINT gen_f{n} FOREIGN KEY {def};"
                ));
            }
            Change::NewTable => ddl.push_str(&format!(
                "\nCREATE TABLE gen_t{n} (id integer PRIMARY KEY, album_id integer REFERENCES album (album_id), note text NOT NULL DEFAULT '', track_id int);\nCREATE INDEX gen_t{n}_album ON gen_t{n} (album_id);\nALTER TABLE ONLY gen_t{n} ADD CONSTRAINT gen_t{n}_track FOREIGN KEY (track_id) REFERENCES track (track_id);\nALTER TABLE gen_t{n} ADD CONSTRAINT gen_t{n}_note CHECK (length(note) < 100);\nCOMMENT ON COLUMN gen_t{n}.note IS 'free text';"
            )),
        }
    }
    ddl
}

/// `ddl` with the body of table `t`'s `CREATE TABLE ( … )` rewritten by `f`.
fn in_table(ddl: &str, t: &str, f: impl FnOnce(&str) -> String) -> String {
    let head = format!("CREATE TABLE {t}\n(");
    let start = ddl.find(&head).unwrap_or_else(|| panic!("no {head}")) + head.len();
    let end = start + ddl[start..].find("\n);").expect("the table's end");
    format!("{}{}{}", &ddl[..start], f(&ddl[start..end]), &ddl[end..])
}

/// A change whose template waits at gates: a manual release, then the rollback window.
#[derive(Debug, Clone)]
enum Gated {
    Rename(usize),
    Retype(usize),
    Drop(usize),
}

/// (table, column, its type as written, the new name or type).
const RENAMES: &[(&str, &str, &str)] = &[
    ("customer", "company", "company_name"),
    ("track", "composer", "composers"),
    ("employee", "title", "job_title"),
];
const RETYPES: &[(&str, &str, &str, &str)] = &[
    ("customer", "fax", "VARCHAR(24)", "VARCHAR(40)"),
    ("track", "bytes", "INT", "BIGINT"),
    ("invoice", "billing_city", "VARCHAR(40)", "TEXT"),
];
const DROPS: &[(&str, &str)] = &[
    ("customer", "fax"),
    ("employee", "fax"),
    ("invoice", "billing_postal_code"),
];

/// Changes of one kind of gated change (0: renames, 1: type changes, 2: drops).
fn gated(kind: usize) -> BoxedStrategy<Gated> {
    match kind {
        0 => (0..RENAMES.len()).prop_map(Gated::Rename).boxed(),
        1 => (0..RETYPES.len()).prop_map(Gated::Retype).boxed(),
        _ => (0..DROPS.len()).prop_map(Gated::Drop).boxed(),
    }
}

/// `ddl` with column `col` of table `t`'s line rewritten by `f` (`None` removes it).
fn column_line(ddl: &str, t: &str, col: &str, f: impl Fn(&str) -> Option<String>) -> String {
    in_table(ddl, t, |body| {
        body.lines()
            .filter_map(|l| {
                if l.trim_start().starts_with(&format!("{col} ")) {
                    f(l)
                } else {
                    Some(l.to_string())
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The plan's arguments for a gated change (with `others` on top): desired, renames, consent.
fn gated_args(g: &Gated, others: &[Change]) -> Value {
    let ddl = desired(others);
    let mut args = plan_args("");
    let ddl = match g {
        Gated::Rename(i) => {
            let (t, col, new) = RENAMES[*i];
            args["renames"] = json!({format!("{t}.{col}"): new});
            column_line(&ddl, t, col, |l| Some(l.replacen(col, new, 1)))
        }
        Gated::Retype(i) => {
            let (t, col, old, new) = RETYPES[*i];
            column_line(&ddl, t, col, |l| Some(l.replacen(old, new, 1)))
        }
        Gated::Drop(i) => {
            let (t, col) = DROPS[*i];
            args["allow_drop"] = json!(true);
            column_line(&ddl, t, col, |_| None)
        }
    };
    args["desired"] = json!(ddl);
    args
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A project whose production and staging hold Chinook, analysed.
async fn chinook() -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, CHINOOK).await;
        run_sql(db, "ANALYZE").await;
    }
    p
}

fn plan_args(sql: &str) -> Value {
    json!({"goal": "chinook as wanted", "target": "production", "desired": sql})
}

struct Walks {
    rt: tokio::runtime::Runtime,
    p: PgProject,
}

impl Walks {
    async fn case(&self, changes: &[Change]) -> Result<(), String> {
        let c = self.p.project.connect().await;
        let wanted = desired(changes);
        let r = self.walk(&c, &wanted).await;
        c.close().await;
        r
    }

    async fn walk(&self, c: &common::Client, wanted: &str) -> Result<(), String> {
        there_and_back(
            &self.p.project,
            c,
            plan_args(wanted),
            plan_args(&author_ddl()),
        )
        .await
    }
}

/// Walks a gated plan to its end, releasing each gate (the rollback window overridden): then
/// the catalog is what was asked, the old column gone.
async fn walk_gated(p: &PgProject, args: Value) -> Result<(), String> {
    let c = p.project.connect().await;
    let planned = answer(&c, "plan", args.clone()).await?;
    let id = plan_id(&planned);
    let dry = answer(&c, "dry-run", json!({"plan_id": id})).await?;
    if dry["rollback_verified"] != true {
        return Err(format!("dry-run: {dry}"));
    }
    p.project.approve(&id, "alice");
    let mut done = false;
    for _ in 0..12 {
        let r = answer(&c, "apply", json!({"plan_id": id})).await?;
        if r["status"] == "applied" {
            done = true;
            break;
        }
        let Some(step) = r["gated"]["step"].as_str() else {
            return Err(format!("neither applied nor gated: {r}"));
        };
        let mut release = vec!["release", id.as_str(), step, "--by", "bob"];
        if r["gated"]["gate"]["kind"] == "after" {
            release.extend([
                "--override-window",
                "--reason",
                "the walk goes through the window",
            ]);
        }
        let out = p.project.cli(&release);
        if !out.status.success() {
            return Err(format!("release: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    if !done {
        return Err("still gated after twelve releases".into());
    }
    let v = answer(&c, "validate", json!({"plan_id": id})).await?;
    if v["ok"] != true {
        return Err(format!("validate: {v}"));
    }
    let again = answer(&c, "plan", args).await?;
    c.close().await;
    if again["nothing_to_change"] != true {
        return Err(format!("a difference left after the whole plan: {again}"));
    }
    Ok(())
}

/// Renames, type changes and drops, each with a change or two beside it, walked through their
/// gates on a fresh Chinook (a step after the rollback window is not undone).
#[test]
fn generated_gated_changes_walk_through_their_gates_on_chinook() {
    let rt = runtime();
    // Each kind of gated change, with what proptest draws beside it.
    for kind in 0..3 {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(SEED + kind as u64).to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            RunnerConfig {
                cases: std::env::var("DRYDOCK_DESIRED_GATED_CASES")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1),
                max_shrink_iters: 4,
                failure_persistence: None,
                ..RunnerConfig::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
        );
        // The others touch tables the gated change does not.
        let others = prop::collection::vec(change(), 0..3);
        let outcome = runner.run(&(gated(kind), others), |(g, others)| {
            let t = match &g {
                Gated::Rename(i) => RENAMES[*i].0,
                Gated::Retype(i) => RETYPES[*i].0,
                Gated::Drop(i) => DROPS[*i].0,
            };
            let others: Vec<Change> = others
                .into_iter()
                .filter(|c| touched(c) != Some(t))
                .collect();
            rt.block_on(async {
                let p = chinook().await;
                eprintln!("gated walk: {g:?} with {others:?}");
                walk_gated(&p, gated_args(&g, &others)).await
            })
            .map_err(TestCaseError::fail)
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}

/// The table a change touches (`None` for a new table).
fn touched(c: &Change) -> Option<&'static str> {
    match c {
        Change::AddColumn { table, .. }
        | Change::AddIndex { table, .. }
        | Change::AddCheck { table, .. }
        | Change::DropNotNull { table, .. }
        | Change::SetDefault { table, .. }
        | Change::Comment { table, .. } => Some(TABLES[*table].0),
        Change::OddIndex(i) => Some(ODD_INDEXES[*i].0),
        Change::ActionKey(i) => Some(ACTION_KEYS[*i].0),
        Change::NewTable => None,
    }
}

#[test]
fn generated_desired_schemas_walk_there_and_back_on_chinook() {
    let rt = runtime();
    let p = rt.block_on(async { chinook().await });
    let walks = Walks { rt, p };
    let seed: u64 = std::env::var("DRYDOCK_DESIRED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases: u32 = std::env::var("DRYDOCK_DESIRED_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            max_shrink_iters: 16,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let outcome = runner.run(&prop::collection::vec(change(), 1..4), |changes| {
        walks
            .rt
            .block_on(walks.case(&changes))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = outcome {
        panic!("seed {seed}: {e}");
    }
}

/// Each index over an expression (or partial) and each foreign key with actions, walked alone.
#[test]
fn odd_indexes_and_keys_with_actions_walk_there_and_back() {
    let rt = runtime();
    let p = rt.block_on(async { chinook().await });
    let walks = Walks { rt, p };
    let changes = (0..ODD_INDEXES.len())
        .map(Change::OddIndex)
        .chain((0..ACTION_KEYS.len()).map(Change::ActionKey));
    for c in changes {
        if let Err(e) = walks.rt.block_on(walks.case(std::slice::from_ref(&c))) {
            panic!("{c:?}: {e}");
        }
    }
}
