//! `ERRORS.md`: the append-only log of agent mistakes and their lessons. New mistakes are appended
//! as entries; a repeat of a known mistake (same code and lesson) bumps that entry's count
//! instead of copying it. Writers serialise on an exclusive file lock and fsync before
//! releasing it, so concurrent writers never interleave or lose an entry. Every field passes
//! through `redact`, so connection strings never land in the file.
//! Imports only the leaves (`redact`, `lockfile`, `clock`); never `engine`, `store` or `db`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;

const HEADER: &str = "# drydock error log

Mistakes made by agents changing databases through drydock, one entry each, with the lesson
that keeps them from happening again. drydock appends here when it refuses a call for unmet
preconditions or when SQL fails in a dry-run or apply or a validation fails; agents add their own
with the `record-mistake` tool. A repeat is counted on its entry, not copied.
";

/// The section at the end of the log where drydock's own defects go: SQL that one of its
/// templates wrote failed. Agents' mistakes are entered before it; its entries are never
/// lessons for agents.
const DEFECTS: &str = "\n# drydock's own defects\n\nSQL that drydock's own templates wrote failed here: a defect of drydock, not a mistake of the agent\nand not a lesson for agents. Report each to drydock's maintainers with its plan.\n";

/// Which part of the log an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent's mistake, with its lesson.
    Mistake,
    /// drydock's own defect (its section at the end).
    Defect,
}

impl Kind {
    fn marker(self) -> &'static str {
        match self {
            Kind::Mistake => "<!-- drydock:entry ",
            Kind::Defect => "<!-- drydock:defect ",
        }
    }
}

pub use crate::plan::mistake::Mistake;

/// A lesson read back from the log.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Lesson {
    pub code: String,
    pub lesson: String,
    pub what: String,
    pub tables: Vec<String>,
    pub count: u64,
    pub last_seen: String,
    /// The agent and the tool of the entry's first occurrence.
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub tool: String,
}

#[derive(Clone)]
pub struct ErrorLog {
    path: PathBuf,
    lock: PathBuf,
}

pub use crate::redact::redact;

/// One occurrence of a mistake, as its `again` line shows it.
fn occurrence(m: &Mistake, now: &str) -> String {
    let plan = m
        .plan
        .as_deref()
        .map(|p| {
            let target = m
                .target
                .as_deref()
                .map(|t| format!(" (target `{}`)", one_line(t)))
                .unwrap_or_default();
            format!(", plan {}{target}", one_line(p))
        })
        .unwrap_or_default();
    format!(
        "{now} by {} via {}{plan}: {}",
        one_line(&m.agent),
        one_line(&m.tool),
        one_line(&m.what)
    )
}

/// A mistake's identity: its code and lesson. A repeat has the same key on every server.
pub fn key(m: &Mistake) -> String {
    let d = Sha256::digest(format!("{}\n{}", m.code, one_line(&m.lesson)).as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn one_line(s: &str) -> String {
    redact(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

impl ErrorLog {
    pub fn new(path: &Path, state_dir: &Path) -> ErrorLog {
        ErrorLog {
            path: path.to_path_buf(),
            lock: state_dir.join("errors.lock"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn locked(&self) -> Result<File> {
        let f = crate::lockfile::open(&self.lock)?;
        f.lock()?;
        Ok(f)
    }

    /// Replaces the log's content atomically (a temporary file renamed over it, under the
    /// writers' lock): a crash leaves the old log or the new one, never half of either.
    fn replace(&self, text: &str) -> Result<()> {
        let tmp = self.path.with_extension("md.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn read(&self) -> Result<String> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HEADER.to_string()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `m`, or counts it on the entry it repeats. Returns the entry's count.
    pub fn record(&self, m: &Mistake) -> Result<u64> {
        self.record_as(m, Kind::Mistake)
    }

    /// Enters `m` in the part of the log `kind` says (a new agent mistake goes before
    /// drydock's own defects, a defect at the end), or counts it on the entry it repeats.
    /// Returns the entry's count.
    pub fn record_as(&self, m: &Mistake, kind: Kind) -> Result<u64> {
        let _guard = self.locked()?;
        let key = key(m);
        let now = crate::clock::now();
        let mut text = self.read()?;
        if text.trim().is_empty() {
            text = HEADER.to_string();
        }
        let marker = format!("{}key={key} ", kind.marker());
        if let Some(start) = text.find(&marker) {
            let (updated, count) = repeated(&text, start, kind, &key, m, &now);
            self.replace(&updated)?;
            return Ok(count);
        }
        let entry = new_entry(m, &key, 1, &now).replacen(Kind::Mistake.marker(), kind.marker(), 1);
        match kind {
            Kind::Mistake => insert_mistake(&mut text, &entry),
            Kind::Defect => {
                if !text.contains(DEFECTS) {
                    ensure_newline(&mut text);
                    text.push_str(DEFECTS);
                }
                ensure_newline(&mut text);
                text.push_str(&entry);
            }
        }
        self.replace(&text)?;
        Ok(1)
    }

    /// Writes every entry of `shared` (mistakes with their counts across servers and when last
    /// seen) that the file lacks; entries already in it are left as they are. Idempotent.
    /// Returns how many were written.
    pub fn sync(&self, shared: &[(Mistake, u64, String)]) -> Result<usize> {
        let _guard = self.locked()?;
        let mut text = self.read()?;
        let mut written = 0;
        for (m, count, last) in shared {
            let key = key(m);
            if text.contains(&format!("<!-- drydock:entry key={key} ")) {
                continue;
            }
            insert_mistake(&mut text, &new_entry(m, &key, *count, last));
            written += 1;
        }
        if written > 0 {
            self.replace(&text)?;
        }
        Ok(written)
    }

    /// Every lesson in the log, most frequent first.
    pub fn lessons(&self) -> Result<Vec<Lesson>> {
        let text = self.read()?;
        let mut out = Vec::new();
        for chunk in text.split("<!-- drydock:entry ").skip(1) {
            let meta_end = chunk.find("-->").unwrap_or(0);
            let meta = parse_meta(&chunk[..meta_end]);
            let field = |name: &str| {
                chunk
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("- **{name}:** ")))
                    .unwrap_or("")
                    .to_string()
            };
            out.push(Lesson {
                code: meta.get("code").cloned().unwrap_or_default(),
                lesson: field("lesson"),
                what: field("what went wrong"),
                tables: meta
                    .get("tables")
                    .map(|t| {
                        t.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                count: meta.get("count").and_then(|c| c.parse().ok()).unwrap_or(1),
                last_seen: meta.get("last").cloned().unwrap_or_default(),
                agent: field("agent"),
                tool: field("tool"),
            });
        }
        out.sort_by_key(|l| std::cmp::Reverse(l.count));
        Ok(out)
    }

    /// Lessons whose code is among `codes` or whose tables overlap `tables`.
    pub fn relevant(&self, codes: &[String], tables: &[String]) -> Result<Vec<Lesson>> {
        Ok(self
            .lessons()?
            .into_iter()
            .filter(|l| codes.contains(&l.code) || l.tables.iter().any(|t| tables.contains(t)))
            .take(10)
            .collect())
    }
}

fn ensure_newline(text: &mut String) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
}

/// Puts an agent's new mistake at the end of the mistakes: before drydock's own defects.
fn insert_mistake(text: &mut String, entry: &str) {
    match text.find(DEFECTS) {
        Some(at) => {
            let before = text[..at].trim_end_matches('\n').len();
            text.insert_str(before, &format!("\n{}", entry.trim_end_matches('\n')));
        }
        None => {
            ensure_newline(text);
            text.push_str(entry);
        }
    }
}

/// `text` with the entry whose marker starts at `start` counted once more (its marker and
/// `seen` line rewritten, an `again` line added); and the new count.
fn repeated(
    text: &str,
    start: usize,
    kind: Kind,
    key: &str,
    m: &Mistake,
    now: &str,
) -> (String, u64) {
    let line_end = text[start..]
        .find('\n')
        .map(|e| start + e)
        .unwrap_or(text.len());
    let meta = parse_meta(&text[start..line_end]);
    let count = meta
        .get("count")
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(1)
        + 1;
    let tables = meta.get("tables").cloned().unwrap_or_default();
    let new_marker = format!(
        "{}key={key} code={} count={count} last={now} tables={tables} -->",
        kind.marker(),
        meta.get("code").cloned().unwrap_or_default()
    );
    let rest = &text[line_end..];
    // The entry ends where the next one begins (its `## ` heading), at the defects' section
    // (`# `), or at the end.
    let entry_end = ["\n## ", "\n# "]
        .iter()
        .filter_map(|h| rest.find(h))
        .min()
        .map(|e| line_end + e)
        .unwrap_or(text.len());
    let mut body = text[line_end..entry_end].trim_end_matches('\n').to_string();
    let seen_prefix = "\n- **seen:** ";
    if let Some(s) = body.find(seen_prefix) {
        let e = body[s + 1..]
            .find('\n')
            .map(|e| s + 1 + e)
            .unwrap_or(body.len());
        body.replace_range(s..e, &format!("{seen_prefix}{count} times, last {now}"));
    }
    // Every occurrence stays visible: when, which agent, which plan.
    body.push_str(&format!("\n- **again:** {}\n", occurrence(m, now)));
    let mut updated = String::with_capacity(text.len() + 128);
    updated.push_str(&text[..start]);
    updated.push_str(&new_marker);
    updated.push_str(&body);
    updated.push_str(&text[entry_end..]);
    (updated, count)
}

/// A new entry's text: heading, marker, fields.
fn new_entry(m: &Mistake, key: &str, count: u64, last: &str) -> String {
    let mut entry = String::new();
    let date = last.get(..10).unwrap_or(last);
    let tables: Vec<String> = m
        .tables
        .iter()
        .map(|t| one_line(t).replace([' ', ','], "_"))
        .collect();
    entry.push_str(&format!(
        "\n## {date} · {} · {}\n<!-- drydock:entry key={key} code={} count={count} last={last} tables={} -->\n",
        one_line(&m.code),
        one_line(&m.tool),
        one_line(&m.code),
        tables.join(",")
    ));
    entry.push_str(&format!("- **agent:** {}\n", one_line(&m.agent)));
    entry.push_str(&format!("- **tool:** {}\n", one_line(&m.tool)));
    if let Some(p) = &m.plan {
        let target = m
            .target
            .as_deref()
            .map(|t| format!(" (target `{}`)", one_line(t)))
            .unwrap_or_default();
        entry.push_str(&format!("- **plan:** {}{target}\n", one_line(p)));
    }
    entry.push_str(&if count == 1 {
        "- **seen:** 1 time\n".to_string()
    } else {
        format!("- **seen:** {count} times, last {last}\n")
    });
    entry.push_str(&format!("- **what went wrong:** {}\n", one_line(&m.what)));
    entry.push_str(&format!("- **lesson:** {}\n", one_line(&m.lesson)));
    entry
}

fn parse_meta(s: &str) -> std::collections::HashMap<String, String> {
    s.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mistake(code: &str, lesson: &str) -> Mistake {
        Mistake {
            agent: "claude-code".into(),
            tool: "apply".into(),
            plan: Some("pl-1".into()),
            target: Some("production".into()),
            code: code.into(),
            what: "applied postgres://app:hunter2@db/app without a dry-run".into(),
            lesson: lesson.into(),
            tables: vec!["users".into()],
        }
    }

    #[test]
    fn drydocks_defects_keep_their_own_section_after_the_agents_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErrorLog::new(&dir.path().join("ERRORS.md"), dir.path());
        let defect = mistake("sql-failed", "drydock's template failed: report it");
        log.record(&mistake("checklist-unmet", "dry-run first"))
            .unwrap();
        assert_eq!(log.record_as(&defect, Kind::Defect).unwrap(), 1);
        // The mistake just before the section is counted without taking the section in.
        assert_eq!(
            log.record(&mistake("checklist-unmet", "dry-run first"))
                .unwrap(),
            2
        );
        log.record(&mistake("wrong-status", "apply once")).unwrap();
        assert_eq!(log.record_as(&defect, Kind::Defect).unwrap(), 2);
        let text = log.read().unwrap();
        let (mistakes, defects) = text.split_once("# drydock's own defects").unwrap();
        assert!(mistakes.contains("wrong-status") && mistakes.contains("seen:** 2 times"));
        assert!(defects.contains("sql-failed") && defects.contains("seen:** 2 times"));
        assert!(!defects.contains("checklist-unmet") && !defects.contains("wrong-status"));
        assert_eq!(text.matches("# drydock's own defects").count(), 1);
        let codes: Vec<String> = log.lessons().unwrap().into_iter().map(|l| l.code).collect();
        assert!(!codes.contains(&"sql-failed".to_string()), "{codes:?}");
    }

    #[test]
    fn repeats_are_counted_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErrorLog::new(&dir.path().join("ERRORS.md"), dir.path());
        assert_eq!(
            log.record(&mistake("checklist-unmet", "dry-run first"))
                .unwrap(),
            1
        );
        assert_eq!(
            log.record(&mistake("checklist-unmet", "dry-run first"))
                .unwrap(),
            2
        );
        assert_eq!(
            log.record(&mistake("sql-failed", "check the column exists"))
                .unwrap(),
            1
        );
        let text = log.read().unwrap();
        assert_eq!(text.matches("## ").count(), 2, "{text}");
        assert!(text.contains("**seen:** 2 times"), "{text}");
        let lessons = log.lessons().unwrap();
        assert_eq!(lessons[0].count, 2);
        assert_eq!(lessons[0].tables, vec!["users"]);
        assert_eq!(log.relevant(&["sql-failed".into()], &[]).unwrap().len(), 1);
    }

    #[test]
    fn every_secret_is_redacted() {
        let s = redact(
            "backup failed: password=one host=x; retry PGPASSWORD=two and password=three; postgres://u:four@h/db",
        );
        for secret in ["one", "two", "three", "four"] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
        assert_eq!(s.matches("[redacted]").count(), 3, "{s}");
    }

    #[test]
    fn every_occurrence_of_a_repeat_stays_visible() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErrorLog::new(&dir.path().join("ERRORS.md"), dir.path());
        for (agent, plan) in [
            ("agent-a", "pl-one"),
            ("agent-b", "pl-two"),
            ("agent-c", "pl-three"),
        ] {
            let mut m = mistake("checklist-unmet", "dry-run first");
            m.agent = agent.into();
            m.plan = Some(plan.into());
            log.record(&m).unwrap();
        }
        log.record(&mistake("sql-failed", "check the column exists"))
            .unwrap();
        let text = log.read().unwrap();
        assert_eq!(text.matches("## ").count(), 2, "{text}");
        for needle in [
            "agent-a", "pl-one", "agent-b", "pl-two", "agent-c", "pl-three",
        ] {
            assert!(text.contains(needle), "{needle} disappeared: {text}");
        }
        assert!(text.contains("**seen:** 3 times"), "{text}");
        // The other entry is intact after the rewrite.
        assert!(text.contains("check the column exists"), "{text}");
        assert!(!dir.path().join("ERRORS.md.tmp").exists());
    }

    #[test]
    fn connection_strings_never_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErrorLog::new(&dir.path().join("ERRORS.md"), dir.path());
        log.record(&mistake("x", "y")).unwrap();
        let text = log.read().unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("postgres://"),
            "{text}"
        );
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ERRORS.md");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let log = ErrorLog::new(&path, dir.path());
                std::thread::spawn(move || {
                    for j in 0..10 {
                        log.record(&mistake(&format!("code-{}", (i * 10 + j) % 20), "l"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let log = ErrorLog::new(&path, dir.path());
        let lessons = log.lessons().unwrap();
        assert_eq!(lessons.len(), 20);
        assert_eq!(lessons.iter().map(|l| l.count).sum::<u64>(), 80);
    }
}
