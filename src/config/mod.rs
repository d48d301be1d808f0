//! `drydock.toml`: the targets drydock may touch, their roles, and the policy that tightens the
//! safety checklist. Parsed raw first (`RawConfig`), then validated into `Config`, whose paths are
//! absolute and whose connection strings can never be printed (`TargetUrl` redacts itself).
//! Imports only the leaves; the demo fallback lives in the CLI.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod groups;
mod policy;
pub use groups::{Discover, GroupConfig, Wave};
pub use policy::Policy;
use policy::RawPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Production,
    Staging,
    Scratch,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Staging => "staging",
            Role::Scratch => "scratch",
        }
    }
}

/// Where a target lives. The PostgreSQL form holds a secret, so neither `Debug` nor `Display`
/// ever shows it: only the engine and a redacted host survive.
#[derive(Clone, PartialEq, Eq)]
pub enum TargetUrl {
    Sqlite(PathBuf),
    Postgres(String),
    /// `env:VAR`: resolved when the target is opened, so the secret never sits in the config.
    Env(String),
}

impl TargetUrl {
    pub fn parse(raw: &str, base: &Path) -> Result<Self> {
        if let Some(var) = raw.strip_prefix("env:") {
            if var.is_empty() {
                return Err(Error::Config(
                    "`env:` needs a variable name, as in env:DATABASE_URL".into(),
                ));
            }
            return Ok(TargetUrl::Env(var.to_string()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(TargetUrl::Postgres(raw.to_string()));
        }
        if let Some(path) = raw.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(Error::Config(
                    "`sqlite:` needs a file path, as in sqlite:app.db".into(),
                ));
            }
            let path = Path::new(path);
            return Ok(TargetUrl::Sqlite(if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }));
        }
        Err(Error::Config(
            "a target url is `sqlite:PATH`, `postgres://...` or `env:VAR`".into(),
        ))
    }

    /// Resolves `env:VAR` to the concrete URL. The result is still a `TargetUrl`, still redacted.
    pub fn resolve(&self, base: &Path) -> Result<TargetUrl> {
        match self {
            TargetUrl::Env(var) => {
                let raw = std::env::var(var).map_err(|_| {
                    Error::Config(format!(
                        "environment variable `{var}` named by a target url is not set"
                    ))
                })?;
                match TargetUrl::parse(&raw, base)? {
                    TargetUrl::Env(_) => Err(Error::Config(format!(
                        "`{var}` must not name another variable"
                    ))),
                    url => Ok(url),
                }
            }
            url => Ok(url.clone()),
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            TargetUrl::Sqlite(_) => "sqlite",
            TargetUrl::Postgres(_) => "postgres",
            TargetUrl::Env(_) => "env",
        }
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            TargetUrl::Postgres(_) => f.write_str("postgres://[redacted]"),
            TargetUrl::Env(var) => write!(f, "env:{var}"),
        }
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    pub url: TargetUrl,
    pub role: Role,
    /// The non-production target that dry-runs of this target's plans use.
    pub staging: Option<String>,
    /// PostgreSQL: the role drydock `SET ROLE`s to for work nobody has approved yet (a dry-run's
    /// steps on this target); `apply_role` when unset. It must own the application's tables and
    /// be no superuser.
    pub dry_run_role: Option<String>,
    /// PostgreSQL: the role checks run as on this target (read-only; `SELECT` on the tables);
    /// `dry_run_role` when unset.
    pub check_role: Option<String>,
    /// PostgreSQL: the role an approved plan's SQL (steps, backfills, rollbacks) runs as on
    /// this target: the owner of the application's tables, no superuser. Without it agent SQL
    /// runs as the login, which must then be unprivileged itself (`unsafe-role`).
    pub apply_role: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BackupConfig {
    /// Run under `sh -c`; prints `{"finished_at": RFC3339, "restore_tested": bool}`.
    pub command: Option<String>,
}

/// A migration tool's folder layout, for `[export]` and `drydock export --tool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    Sqlx,
    Flyway,
    GolangMigrate,
    Plain,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 4] = [
        ExportFormat::Sqlx,
        ExportFormat::Flyway,
        ExportFormat::GolangMigrate,
        ExportFormat::Plain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Sqlx => "sqlx",
            ExportFormat::Flyway => "flyway",
            ExportFormat::GolangMigrate => "golang-migrate",
            ExportFormat::Plain => "plain",
        }
    }

    pub fn parse(s: &str) -> Result<ExportFormat> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s.trim())
            .ok_or_else(|| {
                Error::invalid(
                    crate::error::Part::Argument,
                    format!(
                        "export format `{s}` is not one of sqlx, flyway, golang-migrate, plain"
                    ),
                )
            })
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[export]`: the repository's migration folder every production apply writes its steps into.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub dir: PathBuf,
    pub format: ExportFormat,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; `None` for the embedded demo.
    pub source: Option<PathBuf>,
    pub targets: BTreeMap<String, TargetConfig>,
    pub policy: Policy,
    pub backup: BackupConfig,
    pub state_dir: PathBuf,
    pub errors_path: PathBuf,
    pub server: ServerConfig,
    pub state: StateConfig,
    /// Fleets a plan can roll out to (`target = "group:NAME"`).
    pub groups: BTreeMap<String, GroupConfig>,
    /// The repository's migration folder, when configured.
    pub export: Option<ExportConfig>,
}

/// `[state]`: where drydock keeps its own state, and how long a server's hold on a plan lasts
/// without a heartbeat.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `postgres://...` or `env:VAR` for a store shared by several servers; `sqlite:PATH` for
    /// another file; `None` for `state.db` in the state directory.
    pub url: Option<TargetUrl>,
    /// A crashed server's lease on a plan is taken over this long after its last heartbeat.
    pub lease: Duration,
}

impl StateConfig {
    fn parse(raw: &RawState, base: &Path) -> Result<StateConfig> {
        Ok(StateConfig {
            url: raw
                .url
                .as_deref()
                .map(|u| TargetUrl::parse(u, base))
                .transpose()
                .map_err(|e| Error::Config(format!("[state] {e}")))?,
            lease: match &raw.lease {
                None => StateConfig::default().lease,
                Some(s) => humantime::parse_duration(s.trim())
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(1))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "[state] lease = {s:?} is not a duration of at least a second, like \"30s\""
                        ))
                    })?,
            },
        })
    }
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            url: None,
            lease: Duration::from_secs(30),
        }
    }
}

/// `[server]`: the team server's address and who may reach it.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// `serve --http` binds here when no address is given.
    pub http: Option<String>,
    /// Binding to a non-loopback address needs this (put TLS in front).
    pub allow_remote: bool,
    /// Browser origins allowed besides the server's own (`https://review.example.com`).
    pub allowed_origins: Vec<String>,
    /// The team server the CLI talks to, when set.
    pub url: Option<String>,
    /// How long a client may take to send a request's headers (default 10 s).
    pub header_read_timeout: Option<Duration>,
    /// Connections served at once (default 256); more wait in the kernel's queue.
    pub max_connections: Option<usize>,
}

impl ServerConfig {
    /// A slow client (a byte a minute) holds one connection this long, never the server.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout.unwrap_or(Duration::from_secs(10))
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(256).max(1)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    targets: BTreeMap<String, RawTarget>,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    groups: BTreeMap<String, groups::RawGroup>,
    export: Option<RawExport>,
    state_dir: Option<String>,
    errors: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    role: Role,
    staging: Option<String>,
    dry_run_role: Option<String>,
    check_role: Option<String>,
    apply_role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    dir: String,
    format: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    command: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    url: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    http: Option<String>,
    #[serde(default)]
    allow_remote: bool,
    #[serde(default)]
    allowed_origins: Vec<String>,
    url: Option<String>,
    header_read_timeout: Option<String>,
    max_connections: Option<usize>,
}

/// A configured role name: a plain identifier, so that it can be quoted into `SET ROLE`.
fn role_name(target: &str, key: &str, raw: Option<String>) -> Result<Option<String>> {
    match raw.map(|r| r.trim().to_string()) {
        None => Ok(None),
        Some(r) => crate::sql::validate_ident(&r)
            .map(|_| Some(r.clone()))
            .map_err(|e| {
                Error::Config(format!(
                    "[targets.{target}] {key} = {r:?} is not a role name: {e}"
                ))
            }),
    }
}

/// The `[targets.NAME]` tables: each name an identifier, each URL and role name valid, and each
/// `staging` a target of its own that is neither production nor the same database.
fn parse_targets(
    raw: BTreeMap<String, RawTarget>,
    base: &Path,
) -> Result<BTreeMap<String, TargetConfig>> {
    let mut targets = BTreeMap::new();
    for (name, t) in raw {
        crate::sql::validate_ident(&name).map_err(|_| {
            Error::Config(format!(
                "target name `{name}` must be letters, digits and _"
            ))
        })?;
        targets.insert(
            name.clone(),
            TargetConfig {
                url: TargetUrl::parse(&t.url, base)
                    .map_err(|e| Error::Config(format!("[targets.{name}] {e}")))?,
                role: t.role,
                staging: t.staging,
                dry_run_role: role_name(&name, "dry_run_role", t.dry_run_role)?,
                check_role: role_name(&name, "check_role", t.check_role)?,
                apply_role: role_name(&name, "apply_role", t.apply_role)?,
                name,
            },
        );
    }
    for t in targets.values() {
        if let Some(s) = &t.staging {
            match targets.get(s) {
                None => {
                    return Err(Error::Config(format!(
                        "[targets.{}] staging = \"{s}\" names no target",
                        t.name
                    )));
                }
                Some(st) if st.role == Role::Production => {
                    return Err(Error::Config(format!(
                        "[targets.{}] staging = \"{s}\" is a production target",
                        t.name
                    )));
                }
                Some(st) if st.url == t.url => {
                    return Err(Error::Config(format!(
                        "[targets.{}] staging = \"{s}\" is the same database",
                        t.name
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(targets)
}

/// Drops `.` components, which `create_dir_all` trips over (`dir/.` has `dir`'s parent as parent).
fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

impl Config {
    /// Finds the config: `--config`/`DRYDOCK_CONFIG` (already merged by clap), else
    /// `./drydock.toml`; `None` when there is neither (the CLI then runs the embedded demo).
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Config>> {
        if let Some(path) = explicit {
            return Config::load(path).map(Some);
        }
        let local = Path::new("drydock.toml");
        if local.exists() {
            return Config::load(local).map(Some);
        }
        Ok(None)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let path = std::path::absolute(path)?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Config::parse(&text, &base, Some(path))
    }

    pub fn parse(text: &str, base: &Path, source: Option<PathBuf>) -> Result<Config> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| Error::Config(e.message().to_string()))?;
        let targets = parse_targets(raw.targets, base)?;
        let policy = raw.policy.resolve()?;
        let state_dir = clean(
            &raw.state_dir
                .map(|s| base.join(s))
                .unwrap_or_else(|| base.join(".drydock")),
        );
        let errors_path = clean(
            &raw.errors
                .map(|s| base.join(s))
                .unwrap_or_else(|| base.join("ERRORS.md")),
        );
        let state = StateConfig::parse(&raw.state, base)?;
        let groups = raw
            .groups
            .into_iter()
            .map(|(name, g)| {
                let parsed = groups::parse(&name, g, &targets);
                (name, parsed)
            })
            .collect();
        let export = raw
            .export
            .map(|e| {
                let format = ExportFormat::parse(&e.format)
                    .map_err(|_| Error::Config(format!("[export] format = {:?} is not one of sqlx, flyway, golang-migrate, plain", e.format)))?;
                let dir = Path::new(e.dir.trim());
                if e.dir.trim().is_empty() {
                    return Err(Error::Config("[export] dir is empty: name the repository's migration folder, as in dir = \"migrations\"".into()));
                }
                Ok(ExportConfig {
                    dir: clean(&if dir.is_absolute() { dir.to_path_buf() } else { base.join(dir) }),
                    format,
                })
            })
            .transpose()?;
        Ok(Config {
            source,
            targets,
            groups,
            export,
            policy,
            state,
            backup: BackupConfig {
                command: raw.backup.command,
            },
            state_dir,
            errors_path,
            server: ServerConfig {
                http: raw.server.http,
                allow_remote: raw.server.allow_remote,
                allowed_origins: raw.server.allowed_origins,
                url: raw.server.url,
                header_read_timeout: raw
                    .server
                    .header_read_timeout
                    .as_deref()
                    .map(|s| {
                        humantime::parse_duration(s.trim()).map_err(|e| {
                            Error::Config(format!(
                                "server.header_read_timeout = {s:?} is not a duration like \"10s\": {e}"
                            ))
                        })
                    })
                    .transpose()?,
                max_connections: raw.server.max_connections,
            },
        })
    }

    /// A target by name; `group:NAME` is a fleet as a plan's target (see `GroupConfig`).
    pub fn target(&self, name: &str) -> Result<&TargetConfig> {
        if let Some(group) = name.strip_prefix("group:") {
            let g = self
                .groups
                .get(group)
                .ok_or_else(|| Error::UnknownTarget(name.to_string()))?;
            return g.as_target.as_ref().ok_or_else(|| Error::BadGroup {
                group: group.to_string(),
                problem: g.problem.clone().unwrap_or_default(),
            });
        }
        self.targets
            .get(name)
            .ok_or_else(|| Error::UnknownTarget(name.to_string()))
    }

    /// Settles a discovered group with what its query returned: each row a production target
    /// (named `name`, at `url`) and a member, in the query's order; a failed query, a bad name or
    /// url, or a name that is already a target leaves the group unusable, with the reason. A
    /// member runs agent SQL as the least-privilege roles of the group's `admin` target (the
    /// configured target the query ran on: role names belong to its cluster).
    pub fn discovered(
        &mut self,
        group: &str,
        rows: std::result::Result<Vec<(String, String)>, String>,
    ) {
        let base = self.base_dir();
        let roles = self
            .groups
            .get(group)
            .and_then(|g| g.discover.as_ref())
            .and_then(|d| self.targets.get(&d.admin))
            .map(|a| {
                (
                    a.dry_run_role.clone(),
                    a.check_role.clone(),
                    a.apply_role.clone(),
                )
            })
            .unwrap_or_default();
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                g.problem = Some(format!("its discovery query failed: {e}"));
                return;
            }
        };
        let mut found = Vec::new();
        for (name, url) in rows {
            let bad = if crate::sql::validate_ident(&name).is_err() {
                Some(format!("discovered member `{name}` is not a plain name"))
            } else if self.targets.contains_key(&name) {
                Some(format!(
                    "discovered member `{name}` is already a configured target"
                ))
            } else {
                None
            };
            if let Some(p) = bad {
                g.problem = Some(p);
                return;
            }
            match TargetUrl::parse(&url, &base) {
                Ok(url) => found.push(TargetConfig {
                    name: name.clone(),
                    url,
                    role: Role::Production,
                    staging: None,
                    dry_run_role: roles.0.clone(),
                    check_role: roles.1.clone(),
                    apply_role: roles.2.clone(),
                }),
                Err(e) => {
                    g.problem = Some(format!("discovered member `{name}`: {e}"));
                    return;
                }
            }
        }
        g.members = found.iter().map(|t| t.name.clone()).collect();
        for t in found {
            self.targets.entry(t.name.clone()).or_insert(t);
        }
        let g = self.groups.get_mut(group).expect("the group is there");
        groups::settle(g, &self.targets);
    }

    /// The group a plan's target names, if it names one.
    pub fn group(&self, target: &str) -> Option<&GroupConfig> {
        self.groups.get(target.strip_prefix("group:")?)
    }

    /// The folder relative `sqlite:` paths resolve against.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.state_dir.clone())
    }

    /// The target a dry-run of a plan on `target` uses when the caller names none.
    pub fn dry_run_target(&self, target: &str) -> Result<&TargetConfig> {
        let t = self.target(target)?;
        if t.role != Role::Production {
            return Ok(t);
        }
        match &t.staging {
            Some(s) => self.target(s),
            None => Err(Error::NoStaging(target.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_members_run_agent_sql_as_their_admin_targets_roles() {
        let mut c = Config::parse(
            r#"
            [targets.fleet_admin]
            url = "postgres://drydock@127.0.0.1/admin"
            role = "production"
            apply_role = "app_migrator"
            check_role = "app_checker"
            [targets.fleet_staging]
            url = "postgres://drydock@127.0.0.1/staging"
            role = "staging"
            [groups.shops]
            discover = "SELECT name, url FROM tenants"
            admin = "fleet_admin"
            staging = "fleet_staging"
            "#,
            Path::new("/srv"),
            None,
        )
        .unwrap();
        c.discovered(
            "shops",
            Ok(vec![(
                "shop_a".into(),
                "postgres://drydock@127.0.0.1/shop_a".into(),
            )]),
        );
        let member = c.target("shop_a").unwrap();
        assert_eq!(member.apply_role.as_deref(), Some("app_migrator"));
        assert_eq!(member.check_role.as_deref(), Some("app_checker"));
        assert_eq!(member.dry_run_role, None);
    }

    #[test]
    fn parses_policy_durations_and_links() {
        let c = Config::parse(
            r#"
            [targets.prod]
            url = "sqlite:prod.db"
            role = "production"
            staging = "stage"
            [targets.stage]
            url = "sqlite:stage.db"
            role = "staging"
            [policy]
            rollback_window = "7d"
            lock_timeout = "2s"
            large_table_rows = 10
            backfill_lanes = 4
            "#,
            Path::new("/srv"),
            None,
        )
        .unwrap();
        assert_eq!(c.policy.backfill_lanes, 4);
        let zero = Config::parse(
            "[targets.prod]\nurl = \"sqlite:prod.db\"\nrole = \"staging\"\n[policy]\nbackfill_lanes = 0\n",
            Path::new("/srv"),
            None,
        );
        assert!(
            matches!(&zero, Err(Error::Config(m)) if m.contains("backfill_lanes = 0")),
            "{:?}",
            zero.err()
        );
        assert_eq!(c.policy.rollback_window, Duration::from_secs(7 * 86400));
        assert_eq!(c.policy.lock_timeout, Duration::from_secs(2));
        assert_eq!(c.policy.large_table_rows, 10);
        assert_eq!(c.dry_run_target("prod").unwrap().name, "stage");
        assert_eq!(
            c.targets["prod"].url,
            TargetUrl::Sqlite("/srv/prod.db".into())
        );
    }

    #[test]
    fn staging_link_must_not_be_production() {
        let err = Config::parse(
            r#"
            [targets.a]
            url = "sqlite:a.db"
            role = "production"
            staging = "b"
            [targets.b]
            url = "sqlite:b.db"
            role = "production"
            "#,
            Path::new("/"),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("is a production target"), "{err}");
    }

    #[test]
    fn postgres_url_is_redacted_everywhere() {
        let url =
            TargetUrl::parse("postgres://app:s3cret@db.internal/app", Path::new("/")).unwrap();
        assert!(!format!("{url}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("db.internal"));
    }

    #[test]
    fn bad_duration_names_the_key() {
        let err =
            Config::parse("[policy]\nmax_block = \"soon\"", Path::new("/"), None).unwrap_err();
        assert!(err.to_string().contains("policy.max_block"), "{err}");
    }
}
