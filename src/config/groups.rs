//! `[groups.NAME]`: a fleet of targets (a database per tenant, shards) that one plan rolls out
//! to, wave by wave. A group that cannot be used (no members, an unknown or repeated member,
//! production members without a staging to dry-run on) does not stop drydock from starting: it
//! is refused, with the reason, when a plan names it.

use serde::Deserialize;

use super::{Role, TargetConfig};

/// How far a wave reaches: a member count, or a share of the group (rounded up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wave {
    Members(usize),
    Percent(f64),
}

/// Members found by a query: `sql` run on the `admin` target returns rows `(name text, url text)`.
#[derive(Debug, Clone)]
pub struct Discover {
    pub sql: String,
    pub admin: String,
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub name: String,
    pub members: Vec<String>,
    /// Set when the members are discovered (when drydock starts) rather than listed.
    pub discover: Option<Discover>,
    pub staging: Option<String>,
    pub waves: Vec<Wave>,
    /// At most this many members apply at once (and hold connections).
    pub parallel: usize,
    /// Why a plan cannot use the group, when it cannot.
    pub problem: Option<String>,
    /// The group as a plan's target: production (when any member is), dry-run on the group's
    /// staging, its catalog read from the first member.
    pub as_target: Option<TargetConfig>,
}

impl GroupConfig {
    /// Where each wave ends, cumulative over the members in list order: wave k ends at member
    /// `ceil(p·N)` for a percentage, at `n` for a count; empty waves are dropped and the last
    /// wave always reaches every member.
    pub fn wave_ends(&self) -> Vec<usize> {
        let n = self.members.len();
        let mut ends: Vec<usize> = Vec::new();
        for w in &self.waves {
            let end = match *w {
                Wave::Members(k) => k.min(n),
                Wave::Percent(p) => ((p / 100.0 * n as f64).ceil() as usize).min(n),
            };
            if end > ends.last().copied().unwrap_or(0) {
                ends.push(end);
            }
        }
        if ends.last().copied().unwrap_or(0) < n {
            ends.push(n);
        }
        ends
    }

    /// The wave (1-based) of the member at `position` (0-based).
    pub fn wave_of(&self, position: usize) -> usize {
        self.wave_ends()
            .iter()
            .position(|end| position < *end)
            .map(|w| w + 1)
            .unwrap_or(1)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawWave {
    Count(u64),
    Share(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    discover: Option<String>,
    admin: Option<String>,
    staging: Option<String>,
    waves: Option<Vec<RawWave>>,
    parallel: Option<usize>,
}

fn wave(raw: &RawWave) -> Result<Wave, String> {
    match raw {
        RawWave::Count(0) => Err("a wave of 0 members".into()),
        RawWave::Count(n) => Ok(Wave::Members(*n as usize)),
        RawWave::Share(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .map(Wave::Percent)
            .ok_or_else(|| {
                format!("wave {s:?} is neither a member count nor a share like \"25%\"")
            }),
    }
}

pub(super) fn parse(
    name: &str,
    raw: RawGroup,
    targets: &std::collections::BTreeMap<String, TargetConfig>,
) -> GroupConfig {
    let waves: Result<Vec<Wave>, String> = match &raw.waves {
        None => Ok(vec![
            Wave::Members(1),
            Wave::Percent(25.0),
            Wave::Percent(100.0),
        ]),
        Some(ws) => ws.iter().map(wave).collect(),
    };
    let discover = match (&raw.discover, &raw.admin) {
        (Some(sql), Some(admin)) => Ok(Some(Discover {
            sql: sql.clone(),
            admin: admin.clone(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err("`discover` needs `admin`: the target the query runs on".to_string())
        }
        (None, Some(_)) => Err("`admin` is only for `discover`".to_string()),
    };
    let mut group = GroupConfig {
        name: name.to_string(),
        discover: discover.clone().ok().flatten(),
        members: raw.targets,
        staging: raw.staging,
        waves: waves.clone().unwrap_or_default(),
        parallel: raw.parallel.unwrap_or(4),
        problem: None,
        as_target: None,
    };
    let early = match (waves.err(), discover.err()) {
        (Some(w), _) => Some(w),
        (None, Some(d)) => Some(d),
        (None, None) if group.discover.is_some() && !group.members.is_empty() => {
            Some("give `targets` or `discover`, not both".into())
        }
        (None, None) => None,
    };
    match (&group.discover, early) {
        (_, Some(p)) => group.problem = Some(p),
        // Settled once the query has run (`Config::discovered`).
        (Some(_), None) => group.problem = Some("its members have not been discovered".into()),
        (None, None) => settle(&mut group, targets),
    }
    group
}

/// Decides whether the group can be used, and builds its target for plans when it can.
pub(super) fn settle(
    group: &mut GroupConfig,
    targets: &std::collections::BTreeMap<String, TargetConfig>,
) {
    group.problem = problem(group, targets, None);
    group.as_target = None;
    if group.problem.is_none() {
        let first = &targets[&group.members[0]];
        let production = group
            .members
            .iter()
            .any(|m| targets[m].role == Role::Production);
        group.as_target = Some(TargetConfig {
            name: format!("group:{}", group.name),
            role: if production {
                Role::Production
            } else {
                first.role
            },
            staging: group.staging.clone(),
            ..first.clone()
        });
    }
}

fn problem(
    g: &GroupConfig,
    targets: &std::collections::BTreeMap<String, TargetConfig>,
    bad_wave: Option<String>,
) -> Option<String> {
    if let Some(w) = bad_wave {
        return Some(w);
    }
    if g.members.is_empty() {
        return Some("it has no members (`targets = [...]`)".into());
    }
    if g.parallel == 0 {
        return Some("`parallel` must be at least 1".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for m in &g.members {
        if !seen.insert(m) {
            return Some(format!("member `{m}` is listed twice"));
        }
        if !targets.contains_key(m) {
            return Some(format!("member `{m}` names no target"));
        }
    }
    let production = g
        .members
        .iter()
        .filter(|m| targets[*m].role == Role::Production)
        .count();
    match &g.staging {
        None if production > 0 => Some(format!(
            "{production} member(s) are production but the group has no `staging` to dry-run on"
        )),
        None => None,
        Some(s) => match targets.get(s) {
            None => Some(format!("staging = \"{s}\" names no target")),
            Some(t) if t.role == Role::Production => {
                Some(format!("staging = \"{s}\" is a production target"))
            }
            Some(_) if g.members.contains(s) => Some(format!("staging = \"{s}\" is also a member")),
            Some(_) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: usize, waves: Vec<Wave>) -> GroupConfig {
        GroupConfig {
            name: "g".into(),
            discover: None,
            members: (0..n).map(|i| format!("t{i}")).collect(),
            staging: None,
            waves,
            parallel: 4,
            problem: None,
            as_target: None,
        }
    }

    #[test]
    fn waves_are_cumulative_and_round_up() {
        let default = vec![Wave::Members(1), Wave::Percent(25.0), Wave::Percent(100.0)];
        assert_eq!(group(100, default.clone()).wave_ends(), vec![1, 25, 100]);
        assert_eq!(group(10, default.clone()).wave_ends(), vec![1, 3, 10]);
        // Four members: 25% is one member, the same as the first wave: no empty wave.
        assert_eq!(group(4, default.clone()).wave_ends(), vec![1, 4]);
        assert_eq!(group(1, default).wave_ends(), vec![1]);
        // Waves that stop short still reach every member.
        assert_eq!(group(7, vec![Wave::Members(2)]).wave_ends(), vec![2, 7]);
        let g = group(
            10,
            vec![Wave::Members(1), Wave::Percent(25.0), Wave::Percent(100.0)],
        );
        let waves: Vec<usize> = (0..10).map(|i| g.wave_of(i)).collect();
        assert_eq!(waves, vec![1, 2, 2, 3, 3, 3, 3, 3, 3, 3]);
    }
}
