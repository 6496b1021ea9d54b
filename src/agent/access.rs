//! Who may use an agent.
//!
//! An agent without an access list admits everyone. With one, a user is
//! admitted when they are listed, when they belong to a listed Slack user
//! group, or when they ask in a listed channel. Group members come from the
//! directory (Slack's `usergroups.users.list`), cached for
//! [`GROUP_CACHE_TTL`] so a busy channel does not call Slack per question.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use tokio::time::Instant;
use tracing::warn;

use super::Agent;

/// How long a user group's members are trusted before they are read again.
pub const GROUP_CACHE_TTL: Duration = Duration::from_secs(300);

/// Where user group members come from.
#[async_trait]
pub trait GroupDirectory: Send + Sync {
    async fn members(&self, group: &str) -> Result<HashSet<String>>;
}

/// Decides access, caching group members.
pub struct AccessControl {
    directory: Option<Box<dyn GroupDirectory>>,
    /// Group id to (read at, members). A std mutex: never held across an
    /// await.
    cache: Mutex<HashMap<String, (Instant, HashSet<String>)>>,
}

impl AccessControl {
    /// Access control without a directory: user groups admit nobody.
    pub fn without_directory() -> Self {
        Self {
            directory: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_directory(directory: Box<dyn GroupDirectory>) -> Self {
        Self {
            directory: Some(directory),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reports whether `user`, asking in `channel`, may use `agent`.
    pub async fn may_use(&self, agent: &Agent, user: &str, channel: Option<&str>) -> Result<bool> {
        let Some(access) = &agent.access else {
            return Ok(true);
        };
        if access.users.contains(user) {
            return Ok(true);
        }
        if channel.is_some_and(|channel| access.channels.contains(channel)) {
            return Ok(true);
        }
        for group in &access.user_groups {
            match self.group_members(group).await {
                Ok(members) if members.contains(user) => return Ok(true),
                Ok(_) => {}
                // Fail closed: a group that cannot be read admits nobody.
                Err(error) => {
                    warn!(group = %group, error = %format!("{error:#}"), "could not read a user group's members; treating the user as not a member")
                }
            }
        }
        Ok(false)
    }

    async fn group_members(&self, group: &str) -> Result<HashSet<String>> {
        if let Ok(cache) = self.cache.lock()
            && let Some((read_at, members)) = cache.get(group)
            && read_at.elapsed() < GROUP_CACHE_TTL
        {
            return Ok(members.clone());
        }
        let Some(directory) = &self.directory else {
            return Ok(HashSet::new());
        };
        let members = directory.members(group).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(group.to_string(), (Instant::now(), members.clone()));
        }
        Ok(members)
    }
}
