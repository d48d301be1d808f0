//! `drydock doctor`: every target reachable, its migration tools, the export folder in step.

use super::*;

/// `drydock doctor`; exit 2 when a target is unreachable or the export folder has drifted.
pub(super) async fn doctor(engine: &Engine, format: Format) -> anyhow::Result<i32> {
    let c = &engine.config;
    let config = c
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded demo (no drydock.toml)".into());
    let targets = engine.target_health().await;
    // Redacted: a PostgreSQL store shows as postgres://[redacted] or env:VAR.
    let state = match &c.state.url {
        None => format!("sqlite:{}", c.state_dir.join("state.db").display()),
        Some(url) => url.to_string(),
    };
    let groups: Vec<serde_json::Value> = c
        .groups
        .values()
        .map(|g| match &g.problem {
            None => serde_json::json!({"group": g.name, "ok": true, "members": g.members.len(),
                                       "wave_ends": g.wave_ends(), "parallel": g.parallel}),
            Some(p) => serde_json::json!({"group": g.name, "ok": false, "problem": p}),
        })
        .collect();
    let drift = engine.drift().await;
    let drift_json: Vec<serde_json::Value> = drift
        .iter()
        .map(|(target, d)| match d {
            Ok(d) => serde_json::json!({"target": target, "ok": d.is_empty(), "drift": d}),
            Err(e) => serde_json::json!({"target": target, "ok": false, "error": crate::redact::redact(&e.to_string())}),
        })
        .collect();
    let failures = targets.iter().filter(|t| !t.ok).count()
        + c.groups.values().filter(|g| g.problem.is_some()).count()
        + drift
            .iter()
            .filter(|(_, d)| !d.as_ref().is_ok_and(|d| d.is_empty()))
            .count();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "config": config,
                "state_store": state,
                "state_backend": engine.store.backend(),
                "error_log": c.errors_path,
                "targets": targets,
                "groups": groups,
                "export": c.export.as_ref().map(|e| serde_json::json!({"dir": e.dir, "format": e.format})),
                "repository": drift_json,
                "ok": failures == 0,
            })
        ),
        Format::Text => print_text(engine, &config, &state, &drift, &targets),
    }
    Ok(if failures > 0 { 2 } else { 0 })
}

/// The doctor's findings as an engineer reads them.
fn print_text(
    engine: &Engine,
    config: &str,
    state: &str,
    drift: &[(String, crate::error::Result<crate::engine::Drift>)],
    targets: &[crate::engine::TargetHealth],
) {
    let c = &engine.config;
    println!("config: {config}");
    println!(
        "state store: {state} ({}, ok)",
        engine.store.backend().as_str()
    );
    println!("error log: {}", c.errors_path.display());
    if let Some(e) = &c.export {
        println!("migration folder: {} ({})", e.dir.display(), e.format);
    }
    for (target, d) in drift {
        match d {
            Ok(d) if d.is_empty() => {
                println!("repository: target {target} and the folder agree")
            }
            Ok(d) => println!("repository: DRIFT on target {target}: {}", d.summary()),
            Err(e) => println!(
                "repository: cannot compare target {target} with the folder: {}",
                crate::redact::redact(&e.to_string())
            ),
        }
    }
    for g in c.groups.values() {
        match &g.problem {
            None => println!(
                "group {}: {} member(s), waves ending at {:?}, parallel {}",
                g.name,
                g.members.len(),
                g.wave_ends(),
                g.parallel
            ),
            Some(p) => println!("group {}: cannot be used: {p}", g.name),
        }
    }
    for t in targets {
        match (&t.error, t.tables) {
            (None, Some(n)) => {
                println!(
                    "target {} ({}, {}): ok, {n} table(s)",
                    t.name, t.role, t.url
                )
            }
            (e, _) => println!(
                "target {} ({}): {}",
                t.name,
                t.role,
                e.as_deref().unwrap_or("unreachable")
            ),
        }
        for w in &t.warnings {
            println!("  warning: {w}");
        }
        for m in &t.migration_tools {
            println!(
                "  migration tool {} ({}): at {}, {} version(s){}",
                m.tool,
                m.table,
                m.latest_version.as_deref().unwrap_or("nothing applied"),
                m.applied,
                if m.failed.is_empty() {
                    String::new()
                } else {
                    format!(", FAILED: {}", m.failed.join(", "))
                }
            );
        }
    }
}
