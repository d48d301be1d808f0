//! `[backup] command`: the newest backup as the operator's own tooling describes it.
use super::*;

/// Runs `[backup] command` under `sh -c` and checks its JSON: `{"finished_at": RFC 3339,
/// "restore_tested": bool}` describing the newest backup.
pub async fn backup_command(
    target: &str,
    command: &str,
    max_age: Duration,
) -> Result<BackupEvidence> {
    let fail = |detail: String| {
        Error::BackupFailed {
        target: target.to_string(),
        detail,
        fix: "fix the `[backup] command` of drydock.toml: it must exit 0 and print the newest backup's evidence (README: backups)".into(),
    }
    };
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
        .map_err(|e| fail(format!("could not run the backup command: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "the backup command exited with {}: {}",
            out.status,
            crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    #[derive(Deserialize)]
    struct Newest {
        finished_at: String,
        restore_tested: bool,
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let newest: Newest = serde_json::from_str(text.trim())
        .map_err(|e| fail(format!("the backup command must print {{\"finished_at\": RFC 3339, \"restore_tested\": bool}}: {e}")))?;
    let age = crate::clock::age(&newest.finished_at).ok_or_else(|| {
        fail(format!(
            "finished_at {:?} is not an RFC 3339 timestamp",
            newest.finished_at
        ))
    })?;
    if age > max_age {
        return Err(fail(format!(
            "the newest backup finished at {} ({} ago), older than policy.backup_max_age",
            newest.finished_at,
            humantime::format_duration(Duration::from_secs(age.as_secs()))
        )));
    }
    if !newest.restore_tested {
        return Err(fail(
            "the newest backup has not been restore-tested (restore_tested: false)".into(),
        ));
    }
    Ok(BackupEvidence {
        method: "backup command".into(),
        location: format!("newest backup finished at {}", newest.finished_at),
        verified: true,
        row_counts: BTreeMap::new(),
        taken_at: crate::clock::now(),
        tables: vec![],
        whole_database: true,
    })
}
