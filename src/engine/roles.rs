//! `drydock doctor --fix`: the least-privilege roles made for the engineer on each PostgreSQL
//! target whose agent SQL drydock would refuse (`unsafe-role`), and the config keys that name them.

use super::*;
use crate::db::{AgentUse, RoleSetup};

/// The role a fix makes to own the application's objects, and the one that reads them.
pub const MIGRATOR: &str = "drydock_migrator";
pub const CHECKER: &str = "drydock_checker";

/// What a fix did on one target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleFix {
    pub target: String,
    /// Every statement run, in order, in one transaction.
    pub setup: RoleSetup,
    /// The keys to add to the target's `[targets.X]` table.
    pub config: String,
}

impl Engine {
    /// Makes the roles on every PostgreSQL target whose agent SQL would be refused, as an admin.
    pub async fn fix_roles(&self, by: &Principal) -> Result<Vec<RoleFix>> {
        identity::permitted(by, Grant::Admin, "setting up least-privilege roles")?;
        let mut out = Vec::new();
        for cfg in self.config.targets.values() {
            let target = self.open_config(cfg).await?;
            if target
                .privilege_warnings(AgentUse::on(cfg.role))
                .await?
                .is_empty()
            {
                continue;
            }
            let Some(setup) = target.role_setup(MIGRATOR, CHECKER).await? else {
                continue;
            };
            target.run_role_setup(&setup).await?;
            out.push(RoleFix {
                target: cfg.name.clone(),
                config: format!(
                    "[targets.{}]\napply_role = \"{MIGRATOR}\"\ncheck_role = \"{CHECKER}\"",
                    cfg.name
                ),
                setup,
            });
        }
        Ok(out)
    }
}
