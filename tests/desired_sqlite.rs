//! Desired state on SQLite, on a schema nobody here wrote (Chinook's SQLite script, as its
//! author publishes it: bracketed names, `NVARCHAR`, table-level keys, foreign keys, indexes):
//! SQLite itself reads the desired DDL, drydock plans what SQLite's ALTER TABLE does in place
//! and one table rebuild for the rest; after apply the database is what was asked, after
//! rollback what it was, every row kept.

mod common;

use std::path::Path;

use common::{Project, plan_id, step_names};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

const CHINOOK: &str = include_str!("fixtures/chinook/chinook_sqlite.sql");

async fn sqlite(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap()
}

async fn scalar(path: &Path, sql: &str) -> String {
    let mut c = sqlite(path).await;
    let v: String = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
    v
}

/// A project whose production and staging are Chinook alone.
async fn chinook() -> Project {
    let p = Project::new().await;
    for db in ["prod.db", "staging.db"] {
        let path = p.path(db);
        std::fs::remove_file(&path).unwrap();
        let mut c = sqlite(&path).await;
        sqlx::raw_sql(AssertSqlSafe(CHINOOK.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.ok();
    }
    p
}

/// Chinook's statements that create `tables` and their indexes, as its script has them.
fn ddl_of(tables: &[&str]) -> String {
    let mut out = String::new();
    for t in tables {
        let start = CHINOOK
            .find(&format!("CREATE TABLE [{t}]"))
            .unwrap_or_else(|| panic!("{t}"));
        let end = start + CHINOOK[start..].find(");").unwrap() + 2;
        out.push_str(&CHINOOK[start..end]);
        out.push('\n');
    }
    for line in CHINOOK.lines().filter(|l| l.starts_with("CREATE INDEX")) {
        if tables.iter().any(|t| line.contains(&format!("ON [{t}]"))) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn desired(sql: &str) -> Value {
    json!({"goal": "the catalogue as wanted", "target": "production", "desired": sql})
}

/// What Track's rows hold, to compare before and after.
const TRACKS: &str = "SELECT count(*) || '/' || sum(TrackId) || '/' || sum(length(Name)) || '/' || total(UnitPrice) || '/' || count(Composer) FROM Track";

#[tokio::test]
async fn chinook_on_sqlite_walks_to_validated_and_back_with_every_row() {
    let p = chinook().await;
    let prod = p.path("prod.db");
    let c = p.connect().await;
    let mut whole = desired(CHINOOK);
    whole["scope"] = json!("schema");
    let same = c.ok("plan", whole).await;
    assert_eq!(
        same["nothing_to_change"], true,
        "Chinook's own script, its DROPs and INSERTs set aside, is the database: {same}"
    );
    let original = ddl_of(&["Album", "Track"]);
    let same = c.ok("plan", desired(&original)).await;
    assert_eq!(same["nothing_to_change"], true, "{same}");

    let rows = scalar(&prod, TRACKS).await;
    // A column SQLite adds in place; a retype, a CHECK and a default that need a rebuild; an
    // index made, one dropped, one changed.
    let wanted = original
        .replace(
            "[Title] NVARCHAR(160)  NOT NULL,",
            "[Title] NVARCHAR(160)  NOT NULL,\n    [Label] TEXT DEFAULT 'none',",
        )
        .replace("[UnitPrice] NUMERIC(10,2)  NOT NULL,", "[UnitPrice] REAL  NOT NULL DEFAULT 0.99,")
        .replace("[Milliseconds] INTEGER  NOT NULL,", "[Milliseconds] INTEGER  NOT NULL CHECK ([Milliseconds] > 0),")
        .replace("CREATE INDEX [IFK_TrackGenreId] ON [Track] ([GenreId]);\n", "")
        .replace(
            "CREATE INDEX [IFK_TrackMediaTypeId] ON [Track] ([MediaTypeId]);",
            "CREATE INDEX [IFK_TrackMediaTypeId] ON [Track] ([MediaTypeId], [GenreId]);\nCREATE INDEX track_name ON Track (Name COLLATE NOCASE);",
        );
    let planned = c.ok("plan", desired(&wanted)).await;
    assert_eq!(planned["source"], "desired", "{planned}");
    for h in planned["analysis"]["hazards"].as_array().unwrap() {
        assert!(
            !matches!(h["severity"].as_str(), Some("high" | "critical")),
            "the rebuild keeps every row, the indexes name a table that is there: {h}"
        );
    }
    let id = plan_id(&planned);
    let status = c.ok("status", json!({"plan_id": id})).await;
    let steps = step_names(&status);
    assert_eq!(
        steps,
        [
            "1-add-Album-Label",
            "2-rebuild",
            "3-replace-index-IFK_TrackMediaTypeId",
            "4-index-track_name",
            "5-drop-index-IFK_TrackGenreId"
        ],
        "{status}"
    );
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        scalar(
            &prod,
            "SELECT type FROM pragma_table_info('Track') WHERE name = 'UnitPrice'"
        )
        .await,
        "REAL"
    );
    assert_eq!(
        scalar(&prod, TRACKS).await,
        rows,
        "every track kept, each value as it was"
    );
    let after = c.ok("plan", desired(&wanted)).await;
    assert_eq!(
        after["nothing_to_change"], true,
        "the database is what was asked: {after}"
    );

    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "round trip"}))
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    let back = c.ok("plan", desired(&original)).await;
    assert_eq!(
        back["nothing_to_change"], true,
        "the database is what it was: {back}"
    );
    assert_eq!(scalar(&prod, TRACKS).await, rows);
    c.close().await;
}

#[tokio::test]
async fn what_sqlite_cannot_do_safely_is_asked_or_refused_and_nothing_runs() {
    let p = chinook().await;
    let c = p.connect().await;
    let artist = ddl_of(&["Artist"]);

    let swapped = artist.replace("[Name] NVARCHAR(120)", "[FullName] NVARCHAR(120)");
    let r = c.refused("plan", desired(&swapped)).await;
    assert_eq!(r["code"], "ambiguous-change", "{r}");
    let mut renamed = desired(&swapped);
    renamed["renames"] = json!({"Artist.Name": "FullName"});
    let r = c.refused("plan", renamed).await;
    assert_eq!(r["code"], "unsupported-change", "{r}");
    assert!(r["fix"].as_str().unwrap().contains("RENAME COLUMN"), "{r}");

    let gone = artist.replace(",\n    [Name] NVARCHAR(120)", "");
    let r = c.refused("plan", desired(&gone)).await;
    assert_eq!(r["code"], "drop-needs-consent", "{r}");
    let mut dropped = desired(&gone);
    dropped["allow_drop"] = json!(true);
    let r = c.refused("plan", dropped).await;
    assert_eq!(r["code"], "unsupported-change", "{r}");

    let strict = artist.replace(
        "[Name] NVARCHAR(120),",
        "[Name] NVARCHAR(120),\n    [Country] TEXT NOT NULL,",
    );
    let r = c.refused("plan", desired(&strict)).await;
    assert_eq!(r["code"], "unsupported-change", "{r}");
    assert!(r["fix"].as_str().unwrap().contains("DEFAULT"), "{r}");

    let mut partial = desired(&artist);
    partial["scope"] = json!("schema");
    let r = c.refused("plan", partial).await;
    assert_eq!(r["code"], "drop-needs-consent", "{r}");

    let broken = artist.replace("INTEGER  NOT NULL,", "INTEGER  NOT NULL REFERENCES,");
    let r = c.refused("plan", desired(&broken)).await;
    assert!(
        r["message"].as_str().unwrap().contains("SQLite refuses"),
        "SQLite's own reading of the DDL: {r}"
    );

    // What SQLite is asked to read is admitted as agent SQL first; the rest never runs.
    let reads = artist.replace(
        "[Name] NVARCHAR(120),",
        "[Name] NVARCHAR(120),\n    [Bio] TEXT DEFAULT (readfile('/etc/passwd')),",
    );
    let r = c.refused("plan", desired(&reads)).await;
    assert_eq!(r["code"], "forbidden-statement", "{r}");
    let elsewhere = p.path("elsewhere.db");
    let attach = format!(
        "ATTACH DATABASE '{}' AS e; CREATE TABLE e.t (a INT);\n{artist}",
        elsewhere.display()
    );
    let r = c.refused("plan", desired(&attach)).await;
    assert!(
        r["message"].as_str().unwrap().contains("another database"),
        "{r}"
    );
    let attach = format!("ATTACH DATABASE '{}' AS e;\n{artist}", elsewhere.display());
    let r = c.ok("plan", desired(&attach)).await;
    assert_eq!(r["nothing_to_change"], true, "{r}");
    assert!(!elsewhere.exists(), "the ATTACH in `desired` never ran");

    let v = p.cli_json(&["plans", "--format", "json"]);
    assert_eq!(v["plans"].as_array().map(Vec::len), Some(0), "{v}");
    c.close().await;
}

#[tokio::test]
async fn drydock_diff_on_sqlite_prints_the_rebuild_and_saves_nothing() {
    let p = chinook().await;
    let file = p.dir.path().join("genre.sql");
    std::fs::write(
        &file,
        ddl_of(&["Genre"]).replace(
            "[Name] NVARCHAR(120)",
            "[Name] NVARCHAR(120) NOT NULL DEFAULT ''",
        ),
    )
    .unwrap();
    let v = p.cli_json(&[
        "diff",
        "--desired",
        file.to_str().unwrap(),
        "--target",
        "production",
        "--format",
        "json",
    ]);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{v}");
    let up = steps[0]["up"].as_str().unwrap();
    assert!(
        up.contains("CREATE TABLE \"_drydock_rebuild_Genre\""),
        "{up}"
    );
    assert!(
        steps[0]["down"]
            .as_str()
            .unwrap()
            .contains("[Name] NVARCHAR(120),"),
        "the down rebuilds the definition as it was: {v}"
    );
    let v = p.cli_json(&["plans", "--format", "json"]);
    assert_eq!(v["plans"].as_array().map(Vec::len), Some(0), "{v}");
}

/// Sakila's SQLite port (jOOQ/sakila): `customer` has two triggers that write it and a view
/// (`customer_list`) that reads it, and is referenced by `payment` and `rental`.
const SAKILA: &str = include_str!("fixtures/sakila_sqlite/schema.sql");

/// Rows for `customer` and what it references, each key present (a rebuild's
/// `foreign_key_check` holds).
const SAKILA_ROWS: &str = "PRAGMA foreign_keys = OFF;
    INSERT INTO country VALUES (1, 'Utopia', '2020-01-01');
    INSERT INTO city VALUES (1, 'Town', 1, '2020-01-01');
    INSERT INTO address (address_id, address, district, city_id, phone, last_update) VALUES (1, '1 Road', 'D', 1, '555', '2020-01-01');
    INSERT INTO staff (staff_id, first_name, last_name, address_id, store_id, active, username, last_update) VALUES (1, 'S', 'T', 1, 1, 1, 'st', '2020-01-01');
    INSERT INTO store VALUES (1, 1, 1, '2020-01-01');
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500)
        INSERT INTO customer SELECT n, 1, 'F' || n, 'L' || n, 'c' || n || '@example.com', 1, 'Y', '2020-01-01', '2020-01-01' FROM g;";

/// `customer`'s statements as Sakila's script has them.
fn sakila_customer() -> String {
    let start = SAKILA.find("CREATE TABLE customer (").unwrap();
    let end = start + SAKILA[start..].find("\n;").unwrap() + 2;
    let indexes: Vec<&str> = SAKILA
        .lines()
        .filter(|l| l.starts_with("CREATE  INDEX idx_customer"))
        .collect();
    format!("{};\n{};", &SAKILA[start..end - 2], indexes.join(";\n"))
}

/// The objects that hang off `customer`, as SQLite stores them (spacing aside: a statement
/// run again is stored without the trailing newline Sakila's script left in it).
async fn around_customer(path: &Path) -> String {
    let text = scalar(
        path,
        "SELECT group_concat(type || ' ' || name || ': ' || sql, char(10)) FROM (SELECT * FROM sqlite_master WHERE type IN ('trigger', 'view', 'index') AND sql IS NOT NULL AND (tbl_name = 'customer' OR sql LIKE '%customer%') ORDER BY type, name)",
    )
    .await;
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn sakila_customer_with_its_triggers_and_views_walks_there_and_back() {
    let p = Project::new().await;
    for db in ["prod.db", "staging.db"] {
        let path = p.path(db);
        std::fs::remove_file(&path).unwrap();
        let mut c = sqlite(&path).await;
        sqlx::raw_sql(AssertSqlSafe(format!("{SAKILA}\n{SAKILA_ROWS}")))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.ok();
    }
    let prod = p.path("prod.db");
    let original = sakila_customer();
    let (hanging, rows) = (
        around_customer(&prod).await,
        scalar(
            &prod,
            "SELECT count(*) || '/' || group_concat(email, ',') FROM customer",
        )
        .await,
    );
    assert!(hanging.contains("trigger customer_trigger_au"), "{hanging}");
    assert!(hanging.contains("view customer_list"), "{hanging}");
    let c = p.connect().await;
    let same = c.ok("plan", desired(&original)).await;
    assert_eq!(same["nothing_to_change"], true, "{same}");

    let wanted = original
        .replace(
            "  email VARCHAR(50) DEFAULT NULL,",
            "  email VARCHAR(100) DEFAULT NULL,\n  loyalty INTEGER NOT NULL DEFAULT 0,",
        )
        .replace(
            "  PRIMARY KEY  (customer_id),",
            "  PRIMARY KEY  (customer_id),\n  CONSTRAINT customer_active CHECK (active IN ('Y', 'N')),",
        )
        + "\nCREATE UNIQUE INDEX customer_email ON customer (email);";
    let planned = c.ok("plan", desired(&wanted)).await;
    let id = plan_id(&planned);
    let status = c.ok("status", json!({"plan_id": id})).await;
    let steps = step_names(&status);
    assert_eq!(steps, ["1-rebuild", "2-index-customer_email"], "{status}");
    there_and_back_sakila(&p, &c, &wanted, &original).await;
    assert_eq!(
        around_customer(&prod).await,
        hanging,
        "triggers, views and indexes as they were"
    );
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) || '/' || group_concat(email, ',') FROM customer"
        )
        .await,
        rows
    );
    c.close().await;
}

/// The walk, then the triggers still fire on the table rebuilt under them.
async fn there_and_back_sakila(p: &Project, c: &common::Client, wanted: &str, original: &str) {
    let prod = p.path("prod.db");
    let r = common::walk::there_and_back(p, c, desired(wanted), desired(original)).await;
    r.unwrap();
    let mut conn = sqlite(&prod).await;
    sqlx::raw_sql("UPDATE customer SET first_name = first_name WHERE customer_id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    assert_ne!(
        scalar(
            &prod,
            "SELECT last_update FROM customer WHERE customer_id = 1"
        )
        .await,
        "2020-01-01",
        "customer_trigger_au fired on the table as rolled back"
    );
}

/// Generated: proptest draws 1–3 changes from a grammar (a column SQLite adds in place, of
/// several types, nullable or NOT NULL with a default; a CHECK; a NOT NULL dropped; a default
/// set; a column retyped; an index made, unique or not; one of Chinook's dropped; a new table)
/// to Chinook's script; each walks there and back (`common::walk::there_and_back`), every row
/// kept. The draw is reproducible; `DRYDOCK_DESIRED_SEED` and `DRYDOCK_DESIRED_CASES` explore
/// others.
mod generated {
    use super::*;
    use common::walk::there_and_back;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

    const SEED: u64 = 20_261_207;
    const ALL: &[&str] = &[
        "Album",
        "Artist",
        "Customer",
        "Employee",
        "Genre",
        "Invoice",
        "InvoiceLine",
        "MediaType",
        "Playlist",
        "PlaylistTrack",
        "Track",
    ];

    /// (table, NOT NULL columns that are no key, columns to index, CHECKs its rows satisfy,
    /// a column to retype: its name, its type as written, the new type).
    type Table = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        (&'static str, &'static str, &'static str),
    );
    const TABLES: &[Table] = &[
        (
            "Album",
            &["Title"],
            &["Title"],
            &["length([Title]) > 0"],
            ("Title", "NVARCHAR(160)", "TEXT"),
        ),
        (
            "Customer",
            &["FirstName", "Email"],
            &["Email", "Country"],
            &["[CustomerId] > 0"],
            ("Fax", "NVARCHAR(24)", "VARCHAR(40)"),
        ),
        (
            "Invoice",
            &["InvoiceDate", "Total"],
            &["BillingCountry", "InvoiceDate"],
            &["[Total] >= 0"],
            ("Total", "NUMERIC(10,2)", "REAL"),
        ),
        (
            "Track",
            &["Name", "Milliseconds"],
            &["Composer", "Name"],
            &["[Milliseconds] > 0", "[Bytes] IS NULL OR [Bytes] > 0"],
            ("Bytes", "INTEGER", "BIGINT"),
        ),
    ];
    const TYPES: &[(&str, &str)] = &[
        ("TEXT", "'none'"),
        ("INTEGER", "7"),
        ("REAL", "1.5"),
        ("NUMERIC(8,2)", "-2"),
        ("BOOLEAN", "TRUE"),
        ("DATETIME", "'2020-01-01 00:00:00'"),
    ];
    const INDEXES: &[&str] = &[
        "IFK_AlbumArtistId",
        "IFK_CustomerSupportRepId",
        "IFK_InvoiceCustomerId",
        "IFK_TrackAlbumId",
    ];

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
        Retype(usize),
        DropIndex(usize),
        NewTable,
    }

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
            (t.clone(), 0..2usize)
                .prop_map(|(table, column)| Change::DropNotNull { table, column }),
            (t.clone(), 0..2usize).prop_map(|(table, column)| Change::SetDefault { table, column }),
            t.prop_map(Change::Retype),
            (0..INDEXES.len()).prop_map(Change::DropIndex),
            Just(Change::NewTable),
        ]
    }

    /// `ddl` with the body of table `t` rewritten by `f`.
    fn in_table(ddl: &str, t: &str, f: impl FnOnce(&str) -> String) -> String {
        let head = format!("CREATE TABLE [{t}]\n(");
        let start = ddl.find(&head).unwrap_or_else(|| panic!("no {head}")) + head.len();
        let end = start + ddl[start..].find("\n);").expect("the table's end");
        format!("{}{}{}", &ddl[..start], f(&ddl[start..end]), &ddl[end..])
    }

    /// `ddl` with the line of column `col` of table `t` rewritten by `f`.
    fn column_line(ddl: &str, t: &str, col: &str, f: impl Fn(&str) -> String) -> String {
        in_table(ddl, t, |body| {
            body.lines()
                .map(|l| {
                    if l.trim_start().starts_with(&format!("[{col}] ")) {
                        f(l)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Chinook's script with `changes` made to it, as an engineer would edit the file.
    fn wanted(changes: &[Change]) -> String {
        let mut ddl = ddl_of(ALL);
        let pick = |list: &[&'static str], i: usize| list[i % list.len()];
        for (n, c) in changes.iter().enumerate() {
            match c {
                Change::AddColumn { table, ty, not_null } => {
                    let (ty, default) = TYPES[*ty];
                    let col = if *not_null {
                        format!("    [gen_c{n}] {ty} NOT NULL DEFAULT {default},\n")
                    } else {
                        format!("    [gen_c{n}] {ty},\n")
                    };
                    ddl = in_table(&ddl, TABLES[*table].0, |body| {
                        let at = body.find("    CONSTRAINT").expect("a key");
                        format!("{}{col}{}", &body[..at], &body[at..])
                    });
                }
                Change::AddIndex { table, column, unique } => {
                    let (t, _, cols, _, _) = TABLES[*table];
                    let col = pick(cols, *column);
                    let (kw, list) = if *unique {
                        ("UNIQUE INDEX", format!("[{t}Id], [{col}]"))
                    } else {
                        ("INDEX", format!("[{col}]"))
                    };
                    ddl.push_str(&format!("\nCREATE {kw} gen_i{n} ON [{t}] ({list});"));
                }
                Change::AddCheck { table, check } => {
                    let (t, _, _, checks, _) = TABLES[*table];
                    let check = pick(checks, *check);
                    ddl = in_table(&ddl, t, |body| {
                        format!("{body},\n    CONSTRAINT [gen_k{n}] CHECK ({check})")
                    });
                }
                Change::DropNotNull { table, column } => {
                    let (t, not_null, _, _, _) = TABLES[*table];
                    ddl = column_line(&ddl, t, pick(not_null, *column), |l| {
                        l.replace("  NOT NULL", "")
                    });
                }
                Change::SetDefault { table, column } => {
                    let (t, _, cols, _, _) = TABLES[*table];
                    ddl = column_line(&ddl, t, pick(cols, *column), |l| {
                        match l.strip_suffix(',') {
                            Some(l) if !l.contains("DEFAULT") => {
                                format!("{l} DEFAULT 'unknown',")
                            }
                            _ => l.to_string(),
                        }
                    });
                }
                Change::Retype(table) => {
                    let (t, _, _, _, (col, old, new)) = TABLES[*table];
                    ddl = column_line(&ddl, t, col, |l| l.replacen(old, new, 1));
                }
                Change::DropIndex(i) => {
                    let index = INDEXES[*i];
                    ddl = ddl
                        .lines()
                        .filter(|l| !l.contains(&format!("[{index}]")))
                        .collect::<Vec<_>>()
                        .join("\n");
                }
                Change::NewTable => ddl.push_str(&format!(
                    "\nCREATE TABLE gen_t{n} (id INTEGER PRIMARY KEY, album_id INTEGER REFERENCES Album (AlbumId), note TEXT NOT NULL DEFAULT '' CHECK (length(note) < 100));\nCREATE INDEX gen_t{n}_album ON gen_t{n} (album_id);"
                )),
            }
        }
        ddl
    }

    #[test]
    fn generated_desired_schemas_walk_there_and_back_on_chinook_sqlite() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = rt.block_on(chinook());
        let prod = p.path("prod.db");
        let rows = rt.block_on(scalar(&prod, TRACKS));
        let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse().ok());
        let seed: u64 = env("DRYDOCK_DESIRED_SEED").unwrap_or(SEED);
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            RunnerConfig {
                cases: env("DRYDOCK_DESIRED_CASES").unwrap_or(12) as u32,
                max_shrink_iters: 16,
                failure_persistence: None,
                ..RunnerConfig::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
        );
        let outcome = runner.run(&prop::collection::vec(change(), 1..4), |changes| {
            rt.block_on(async {
                let c = p.connect().await;
                let r =
                    there_and_back(&p, &c, desired(&wanted(&changes)), desired(&ddl_of(ALL))).await;
                c.close().await;
                r?;
                let now = scalar(&prod, TRACKS).await;
                (now == rows)
                    .then_some(())
                    .ok_or_else(|| format!("Track's rows {now}, not {rows}"))
            })
            .map_err(TestCaseError::fail)
        });
        if let Err(e) = outcome {
            panic!("seed {seed}: {e}");
        }
    }
}
