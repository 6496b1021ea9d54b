//! Who may approve a run, and when a request expires.
//!
//! An action is `automatic` (it runs as soon as it is proposed) or
//! `approval_required`. Approvers are Slack users, members of Slack user
//! groups, and, with `owners_of_target`, the owners of the run's target
//! entity as the catalog records them: an owning user directly, an owning
//! team through its members. A catalog person maps to a Slack user through
//! a `slack_user_id` property, or through their `email` and Slack's
//! `users.lookupByEmail`. The requester may approve their own request only
//! with `allow_self_approval`, and clicks from bots never count.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tracing::warn;

use crate::catalog::{Catalog, EntityRef, Filter, Scope, SearchRequest};
use crate::store::action_runs::ActionRun;

/// Time a request waits for a decision when the action sets none.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Team members read when resolving the owners of a target.
const MAX_OWNER_MEMBERS: usize = 100;

/// How an action is approved, as the agents file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub policy: String,
    #[serde(default)]
    pub approvers: Option<RawApprovers>,
    #[serde(default)]
    pub allow_self_approval: Option<bool>,
    #[serde(default)]
    pub expires_after: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovers {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub owners_of_target: bool,
}

/// How an action is approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalPolicy {
    Automatic,
    Required(Approvers),
}

/// Who may decide a run of an `approval_required` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvers {
    pub users: BTreeSet<String>,
    pub user_groups: BTreeSet<String>,
    pub owners_of_target: bool,
    pub allow_self_approval: bool,
    pub expires_after: Duration,
}

impl RawApproval {
    /// Checks the policy; problems are (field, message) pairs.
    pub fn build(&self, has_target: bool) -> Result<ApprovalPolicy, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let policy = match self.policy.trim() {
            "automatic" => {
                if self.approvers.is_some()
                    || self.allow_self_approval.is_some()
                    || self.expires_after.is_some()
                {
                    problems.push((
                        "approval".to_string(),
                        "an automatic action has no approvers, self-approval or expiry; remove them or use approval_required".to_string(),
                    ));
                }
                ApprovalPolicy::Automatic
            }
            "approval_required" => {
                let raw = self.approvers.clone().unwrap_or_default();
                for user in &raw.users {
                    if !is_slack_id(user, &['U', 'W']) {
                        problems.push((
                            "approval.approvers.users".to_string(),
                            format!("{user:?} is not a Slack user id (like U0123ABCD)"),
                        ));
                    }
                }
                for group in &raw.user_groups {
                    if !is_slack_id(group, &['S']) {
                        problems.push((
                            "approval.approvers.user_groups".to_string(),
                            format!("{group:?} is not a Slack user group id (like S0123ABCD)"),
                        ));
                    }
                }
                if raw.owners_of_target && !has_target {
                    problems.push((
                        "approval.approvers.owners_of_target".to_string(),
                        "the action has no target_blueprint, so its target has no owners"
                            .to_string(),
                    ));
                }
                if raw.users.is_empty() && raw.user_groups.is_empty() && !raw.owners_of_target {
                    problems.push((
                        "approval.approvers".to_string(),
                        "name at least one approver: users, user_groups or owners_of_target: true"
                            .to_string(),
                    ));
                }
                let expires_after = match &self.expires_after {
                    Some(text) => match parse_duration(text) {
                        Ok(duration) if !duration.is_zero() => duration,
                        Ok(_) => {
                            problems.push((
                                "approval.expires_after".to_string(),
                                "must be longer than zero".to_string(),
                            ));
                            DEFAULT_EXPIRY
                        }
                        Err(error) => {
                            problems
                                .push(("approval.expires_after".to_string(), format!("{error:#}")));
                            DEFAULT_EXPIRY
                        }
                    },
                    None => DEFAULT_EXPIRY,
                };
                ApprovalPolicy::Required(Approvers {
                    users: raw.users.into_iter().collect(),
                    user_groups: raw.user_groups.into_iter().collect(),
                    owners_of_target: raw.owners_of_target,
                    allow_self_approval: self.allow_self_approval.unwrap_or(false),
                    expires_after,
                })
            }
            other => {
                problems.push((
                    "approval.policy".to_string(),
                    format!("{other:?} is not a policy; use automatic or approval_required"),
                ));
                ApprovalPolicy::Automatic
            }
        };
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }
}

/// Parses a duration such as `24h`, `30m`, `90s`, `2d` or a number of
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit() && character != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite() && *value >= 0.0)
        .with_context(|| {
            format!("{text:?} is not a duration; write it like 24h, 30m, 90s or 2d")
        })?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3_600.0,
        "d" => number * 86_400.0,
        other => bail!("{text:?} has the unknown unit {other:?}; use s, m, h or d"),
    };
    if seconds > 366.0 * 86_400.0 {
        bail!("{text:?} is longer than a year");
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn is_slack_id(text: &str, prefixes: &[char]) -> bool {
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if prefixes.contains(&first))
        && text.len() >= 3
        && characters.all(|character| character.is_ascii_uppercase() || character.is_ascii_digit())
}

/// The people directory approvals need.
#[async_trait]
pub trait People: Send + Sync {
    async fn group_members(&self, group: &str) -> Result<HashSet<String>>;
    /// The Slack user with this e-mail address, if any.
    async fn user_by_email(&self, email: &str) -> Result<Option<String>>;
    async fn is_bot(&self, user: &str) -> Result<bool>;
}

/// Whether a click may decide a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Bots never approve or reject.
    Bot,
    /// The requester, without `allow_self_approval`.
    SelfApproval,
    NotApprover,
}

/// Decides whether `clicker` may approve or reject `run`.
pub async fn check(
    people: &dyn People,
    catalog: &Catalog,
    approvers: &Approvers,
    run: &ActionRun,
    clicker: &str,
) -> Result<Verdict> {
    if people.is_bot(clicker).await? {
        return Ok(Verdict::Bot);
    }
    if clicker == run.requester && !approvers.allow_self_approval {
        return Ok(Verdict::SelfApproval);
    }
    if approvers.users.contains(clicker) {
        return Ok(Verdict::Allowed);
    }
    for group in &approvers.user_groups {
        match people.group_members(group).await {
            Ok(members) if members.contains(clicker) => return Ok(Verdict::Allowed),
            Ok(_) => {}
            Err(error) => {
                warn!(group = %group, error = %format!("{error:#}"), "could not read an approver group; treating the clicker as not a member")
            }
        }
    }
    if approvers.owners_of_target
        && let Some(target) = run.target_ref.as_deref().and_then(EntityRef::parse)
        && owner_slack_ids(people, catalog, &target)
            .await?
            .contains(clicker)
    {
        return Ok(Verdict::Allowed);
    }
    Ok(Verdict::NotApprover)
}

/// The Slack users who own an entity: owning users directly, and the
/// members of owning teams.
pub async fn owner_slack_ids(
    people: &dyn People,
    catalog: &Catalog,
    target: &EntityRef,
) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let Some(detail) = catalog.get(&Scope::All, target).await? else {
        return Ok(ids);
    };
    for owner in detail.owners.iter().filter(|owner| owner.found) {
        let Some(owner_ref) = EntityRef::parse(&owner.reference) else {
            continue;
        };
        let mut people_refs = vec![owner_ref.clone()];
        people_refs.extend(team_members(catalog, &owner_ref).await?);
        for person in people_refs {
            if let Some(id) = slack_id_of(people, catalog, &person).await? {
                ids.insert(id);
            }
        }
    }
    Ok(ids)
}

async fn team_members(catalog: &Catalog, team: &EntityRef) -> Result<Vec<EntityRef>> {
    let request = SearchRequest {
        filters: vec![Filter {
            name: "memberOf".to_string(),
            values: vec![team.identifier.clone()],
        }],
        limit: MAX_OWNER_MEMBERS,
        ..SearchRequest::default()
    };
    let mut members: Vec<EntityRef> = catalog
        .search(&Scope::All, &request)
        .await?
        .results
        .iter()
        .filter_map(|member| EntityRef::parse(&member.reference))
        .collect();
    if let Some(detail) = catalog.get(&Scope::All, team).await? {
        for link in detail
            .relations
            .iter()
            .filter(|link| link.relation == "hasMember")
        {
            if let Some(member) = EntityRef::parse(&link.target.reference) {
                members.push(member);
            }
        }
    }
    Ok(members)
}

/// A catalog person's Slack user id: the `slack_user_id` property, else
/// the Slack user with their `email`.
async fn slack_id_of(
    people: &dyn People,
    catalog: &Catalog,
    person: &EntityRef,
) -> Result<Option<String>> {
    let Some(detail) = catalog.get(&Scope::All, person).await? else {
        return Ok(None);
    };
    let text = |name: &str| {
        detail
            .properties
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    if let Some(id) = text("slack_user_id") {
        return Ok(Some(id));
    }
    match text("email") {
        Some(email) => people.user_by_email(&email).await,
        None => Ok(None),
    }
}

/// Describes the approvers for a card, in mrkdwn.
pub fn describe(approvers: &Approvers) -> String {
    let mut parts: Vec<String> = approvers
        .users
        .iter()
        .map(|user| format!("<@{user}>"))
        .collect();
    // Groups are named, not mentioned: a group mention notifies everyone in it.
    parts.extend(
        approvers
            .user_groups
            .iter()
            .map(|group| format!("members of the user group {group}")),
    );
    if approvers.owners_of_target {
        parts.push("the owners of the target".to_string());
    }
    parts.join(", ")
}
