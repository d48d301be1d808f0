//! A template walked on real PostgreSQL from `plan` to `rollback`: planned (no high or critical
//! hazard), dry-run, approved, applied step by step through its gates with a writer running,
//! validated and rolled back (schema verified). `shape` reads a table the way an engineer
//! compares it: columns (type, NOT NULL, default, identity, sequence, comment), indexes and
//! constraints by name and definition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use super::{PgProject, pg_connect, pg_connect_admin, plan_id};

/// Updates `accounts.balance` every 10 ms; returns (worst latency ms, errors).
fn writer(db: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let mut c = pg_connect(&db).await;
        let (mut worst, mut errors, mut i) = (0u64, 0u64, 0i64);
        while !stop.load(Ordering::SeqCst) {
            let t0 = Instant::now();
            if sqlx::query("UPDATE accounts SET balance = balance + 1 WHERE id = $1")
                .bind(1 + i % 1000)
                .execute(&mut c)
                .await
                .is_err()
            {
                errors += 1;
            }
            worst = worst.max(t0.elapsed().as_millis() as u64);
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.close().await.ok();
        (worst, errors)
    })
}

/// The table statements of a dump as its author wrote them: `CREATE TABLE`, `ALTER TABLE …
/// ADD CONSTRAINT`, `CREATE [UNIQUE] INDEX` (comments left out), in the dump's order.
pub fn table_ddl(dump: &str) -> String {
    let mut out = Vec::new();
    for raw in dump.split(";\n") {
        let mut s = raw.trim();
        loop {
            if let Some(rest) = s.strip_prefix("--") {
                s = rest
                    .split_once('\n')
                    .map(|(_, r)| r)
                    .unwrap_or("")
                    .trim_start();
            } else if let Some(rest) = s.strip_prefix("/*") {
                s = rest
                    .split_once("*/")
                    .map(|(_, r)| r)
                    .unwrap_or("")
                    .trim_start();
            } else {
                break;
            }
        }
        let upper = s.to_uppercase();
        let keep = upper.starts_with("CREATE TABLE")
            || upper.starts_with("CREATE INDEX")
            || upper.starts_with("CREATE UNIQUE INDEX")
            || (upper.starts_with("ALTER TABLE") && upper.contains("ADD CONSTRAINT"));
        if keep {
            out.push(format!("{s};"));
        }
    }
    out.join("\n")
}

/// Runs `sql` on a database of the test cluster.
pub async fn run_sql(db: &str, sql: &str) {
    let mut c = pg_connect(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
}

/// `run_sql` as the cluster's superuser: for setups only it may make (roles, objects it owns).
pub async fn run_admin_sql(db: &str, sql: &str) {
    let mut c = pg_connect_admin(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
}

/// Walks a template from `plan` to `rollback`, releasing every gate, with a writer running.
pub async fn walk(template: &str, params: Value) -> PgProject {
    walk_with(template, params, "", &[], None).await.project
}

pub struct Walked {
    pub project: PgProject,
    /// `shape` of the tables before the plan.
    pub before: Vec<String>,
    /// `shape` of the tables once every step was applied.
    pub applied: Vec<String>,
}

/// `walk` on databases prepared by `setup` (run on production and staging), recording the
/// `shape` of `tables` before and after the apply; `probe` (one `SELECT` of a boolean) must hold
/// on production after the apply.
pub async fn walk_with(
    template: &str,
    params: Value,
    setup: &str,
    tables: &[&str],
    probe: Option<&str>,
) -> Walked {
    walk_until(template, params, setup, tables, probe, None).await
}

/// `walk_with` that stops at the gate of step `stop_at` (a final step, which rollback could
/// not undo): the rollback then runs from there; `validate` needs the whole plan applied.
pub async fn walk_until(
    template: &str,
    params: Value,
    setup: &str,
    tables: &[&str],
    probe: Option<&str>,
    stop_at: Option<&str>,
) -> Walked {
    let p = PgProject::new("large_table_rows = 1000").await;
    if !setup.is_empty() {
        for db in [&p.prod, &p.staging] {
            run_sql(db, &format!("{setup}; ANALYZE")).await;
        }
    }
    walk_project(p, template, params, tables, probe, stop_at).await
}

/// `walk_until` on a project already made and set up.
pub async fn walk_project(
    p: PgProject,
    template: &str,
    params: Value,
    tables: &[&str],
    probe: Option<&str>,
    stop_at: Option<&str>,
) -> Walked {
    let before = shape(&p.prod, tables).await;
    let c = p.project.connect().await;
    let planned = c.ok("plan", json!({"goal": template, "target": "production", "template": template, "params": params})).await;
    for h in planned["analysis"]["hazards"].as_array().unwrap() {
        assert!(
            !matches!(h["severity"].as_str(), Some("high" | "critical")),
            "{template} renders a plan with a {} hazard: {h}",
            h["severity"]
        );
    }
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{template}: {dry}");
    p.project.approve(&id, "alice");

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.prod.clone(), stop.clone());
    for _ in 0..12 {
        let r = c.ok("apply", json!({"plan_id": id})).await;
        if r["status"] == "applied" {
            break;
        }
        let gated = r["gated"]["step"]
            .as_str()
            .unwrap_or_else(|| panic!("{template}: neither applied nor gated: {r}"))
            .to_string();
        if stop_at == Some(gated.as_str()) {
            break;
        }
        let mut args = vec!["release", id.as_str(), gated.as_str(), "--by", "bob"];
        if r["gated"]["gate"]["kind"] == "after" {
            args.extend(["--override-window", "--reason", "test walks the whole plan"]);
        }
        let out = p.project.cli(&args);
        assert!(
            out.status.success(),
            "{template}: release failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let applied = shape(&p.prod, tables).await;
    if let Some(probe) = probe {
        let mut conn = pg_connect(&p.prod).await;
        let ok: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(probe.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{probe}: {e}"));
        conn.close().await.ok();
        assert!(ok, "{template}: after the apply, {probe} does not hold");
    }
    if stop_at.is_none() {
        let v = c.ok("validate", json!({"plan_id": id})).await;
        assert_eq!(v["ok"], true, "{template}: {v}");
    }
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "template walk"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{template}: {rb}");
    stop.store(true, Ordering::SeqCst);
    let (worst, errors) = w.await.unwrap();
    assert_eq!(errors, 0, "{template}: the writer saw errors");
    assert!(worst < 2_000, "{template}: a write waited {worst} ms");
    c.close().await;
    let after = shape(&p.prod, tables).await;
    assert_eq!(
        before, after,
        "{template}: the rollback restores every table as it was"
    );
    Walked {
        project: p,
        before,
        applied,
    }
}

/// One line per column (`column|table.name|type, not null, default, identity, sequence,
/// comment`), index (`index|name|definition`) and constraint (`constraint|name|definition`) of
/// `tables`, sorted: column order does not matter, names and definitions do.
pub async fn shape(db: &str, tables: &[&str]) -> Vec<String> {
    let mut c = pg_connect(db).await;
    let mut lines = Vec::new();
    for table in tables {
        // language=SQL
        let q = "SELECT 'column|' || c.relname || '.' || a.attname || '|' || format_type(a.atttypid, a.atttypmod)
                        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                        || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                        || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
                        || CASE WHEN a.attidentity = '' THEN coalesce(' owns ' || pg_get_serial_sequence(c.relname, a.attname), '') ELSE '' END
                        || coalesce(' comment ' || col_description(c.oid, a.attnum), '')
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped
                 UNION ALL
                 SELECT 'index|' || ic.relname || '|' || pg_get_indexdef(i.indexrelid)
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
                 WHERE c.relname = $1
                 UNION ALL
                 SELECT 'constraint|' || co.conname || '|' || pg_get_constraintdef(co.oid)
                 FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid WHERE c.relname = $1";
        let rows: Vec<String> = sqlx::query_scalar(q)
            .bind(table)
            .fetch_all(&mut c)
            .await
            .unwrap();
        lines.extend(rows);
    }
    c.close().await.ok();
    lines.sort();
    lines
}

/// `shape` lines with the column `from` renamed `to`: in column names and in every definition
/// (whole words only), never in an index's or constraint's own name.
pub fn renamed(lines: &[String], from: &str, to: &str) -> Vec<String> {
    let word = |s: &str| {
        let mut out = String::new();
        let mut cur = String::new();
        for ch in s.chars().chain(std::iter::once('\0')) {
            if ch.is_ascii_alphanumeric() || ch == '_' {
                cur.push(ch);
            } else {
                out.push_str(if cur == from { to } else { &cur });
                cur.clear();
                if ch != '\0' {
                    out.push(ch);
                }
            }
        }
        out
    };
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut parts = l.splitn(3, '|');
            let (kind, name, def) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
            );
            let name = if kind == "column" {
                word(name)
            } else {
                name.to_string()
            };
            format!("{kind}|{name}|{}", word(def))
        })
        .collect();
    v.sort();
    v
}

/// Plans `template`, dry-runs, approves and applies it through every gate (the final one's
/// window overridden), validates it, and sees rollback refused past the final step; returns the
/// project and the plan id.
pub async fn apply_past_final(template: &str, params: Value, setup: &str) -> (PgProject, String) {
    let p = PgProject::new("large_table_rows = 1000").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, setup).await;
    }
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": template, "target": "production", "template": template, "params": params}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.project.approve(&id, "alice");
    for _ in 0..6 {
        let r = c.ok("apply", json!({"plan_id": id})).await;
        if r["status"] == "applied" {
            break;
        }
        let step = r["gated"]["step"].as_str().expect("gated").to_string();
        let mut args = vec!["release", id.as_str(), step.as_str(), "--by", "bob"];
        if r["gated"]["gate"]["kind"] == "after" {
            args.extend(["--override-window", "--reason", "the test ends the window"]);
        }
        assert!(p.project.cli(&args).status.success());
    }
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let refused = c
        .refused(
            "rollback",
            json!({"plan_id": id, "reason": "changed our mind"}),
        )
        .await;
    assert!(
        refused["message"].as_str().unwrap().contains("was final"),
        "{refused}"
    );
    c.close().await;
    (p, id)
}

/// A tool's answer, or its refusal as the error (a case that fails, for proptest to shrink).
pub async fn answer(c: &super::Client, tool: &str, args: Value) -> Result<Value, String> {
    let r = c.call(tool, args).await;
    if r.is_error == Some(true) {
        let said: Vec<String> = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        return Err(format!("{tool} refused: {}", said.join(" ")));
    }
    Ok(r.structured_content.unwrap_or_default())
}

/// A desired schema walked there and back: `wanted` (`plan`'s arguments) planned, dry-run,
/// approved, applied and validated; then planning it again is nothing to change; and after the
/// rollback, planning `original` is nothing to change.
pub async fn there_and_back(
    project: &super::Project,
    c: &super::Client,
    wanted: Value,
    original: Value,
) -> Result<(), String> {
    let planned = answer(c, "plan", wanted.clone())
        .await
        .map_err(|e| format!("planning: {e}"))?;
    if planned["nothing_to_change"] == true {
        return Err(format!("a change that changes nothing: {planned}"));
    }
    let id = plan_id(&planned);
    let dry = answer(c, "dry-run", json!({"plan_id": id})).await?;
    if dry["rollback_verified"] != true {
        return Err(format!("dry-run: {dry}"));
    }
    project.approve(&id, "alice");
    let applied = answer(c, "apply", json!({"plan_id": id})).await?;
    if applied["status"] != "applied" {
        return Err(format!("apply: {applied}"));
    }
    let v = answer(c, "validate", json!({"plan_id": id})).await?;
    if v["ok"] != true {
        return Err(format!("validate: {v}"));
    }
    let again = answer(c, "plan", wanted)
        .await
        .map_err(|e| format!("planning again after the apply: {e}"))?;
    let left = again["nothing_to_change"] != true;
    let rb = answer(
        c,
        "rollback",
        json!({"plan_id": id, "reason": "generated round trip"}),
    )
    .await?;
    if left {
        return Err(format!("a difference left after apply: {again}"));
    }
    if rb["schema_verified"] != true {
        return Err(format!("rollback: {rb}"));
    }
    let back = answer(c, "plan", original)
        .await
        .map_err(|e| format!("planning the original after the rollback: {e}"))?;
    if back["nothing_to_change"] != true {
        return Err(format!("a difference left after rollback: {back}"));
    }
    Ok(())
}
