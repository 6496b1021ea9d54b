//! The Slack Web API client and the few calls the bot makes.
//!
//! slack-morphism's default connector accepts https only; the one built
//! here also speaks plain http, so `SLACK_API_URL` can point at a local
//! stand-in, and GovSlack or a proxy works the same way. Every call goes
//! through [`SlackApi::with_retry`]: one that Slack rate-limits (HTTP 429)
//! is retried after the `Retry-After` it sends, and failures are counted
//! for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tracing::warn;

use super::events::BotIdentity;
use crate::config::Secret;
use crate::metrics::Metrics;

/// Attempts of one Web API call when Slack keeps answering 429.
const MAX_RATE_LIMIT_ATTEMPTS: u32 = 5;

/// Wait after a 429 that carried no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest `Retry-After` honoured; a longer one fails the call instead of
/// holding an answer for minutes.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Builds a client for the Web API at `api_url`.
pub fn build_client(api_url: &str) -> Result<Arc<SlackHyperClient>> {
    crate::install_crypto_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(builder) => builder,
        Err(error) => {
            warn!(error = %error, "no system CA certificates found; https calls to Slack will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    let api_url = api_url.trim_end_matches('/');
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        bail!(
            "invalid SLACK_API_URL {api_url:?}: expected an http or https URL such as https://slack.com/api"
        );
    }
    Ok(Arc::new(SlackClient::new(
        SlackClientHyperConnector::with_connector(connector).with_slack_api_url(api_url),
    )))
}

/// The bot's side of the Web API: its client and token.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackHyperClient>,
    token: SlackApiToken,
    metrics: Arc<Metrics>,
    /// Answers of `users.info` and `users.lookupByEmail`, shared by clones.
    people: Arc<PeopleCache>,
}

/// Cached user lookups. Std mutexes: never held across an await.
#[derive(Default)]
struct PeopleCache {
    /// User id to (read at, is a bot).
    bots: std::sync::Mutex<std::collections::HashMap<String, (tokio::time::Instant, bool)>>,
    /// Lower-cased e-mail to (read at, user id if any).
    emails:
        std::sync::Mutex<std::collections::HashMap<String, (tokio::time::Instant, Option<String>)>>,
}

/// How long a user lookup is trusted.
const PEOPLE_CACHE_TTL: Duration = Duration::from_secs(300);

impl SlackApi {
    pub fn new(client: Arc<SlackHyperClient>, bot_token: &Secret, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            token: SlackApiToken::new(bot_token.expose().into()),
            metrics,
            people: Arc::new(PeopleCache::default()),
        }
    }

    /// Runs one Web API call, retrying it after each 429 for as long as
    /// Slack's `Retry-After` says (at most [`MAX_RETRY_AFTER`]), up to
    /// [`MAX_RATE_LIMIT_ATTEMPTS`] attempts. Counts retries and failures.
    async fn with_retry<T, F, Fut>(&self, method: &str, mut call: F) -> Result<T, SlackClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SlackClientError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(SlackClientError::RateLimitError(limit))
                    if attempt < MAX_RATE_LIMIT_ATTEMPTS
                        && limit.retry_after.is_none_or(|wait| wait <= MAX_RETRY_AFTER) =>
                {
                    let wait = limit.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                    self.metrics.slack_api_retry(method);
                    warn!(
                        method,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Slack rate-limited a Web API call; retrying after its Retry-After"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => {
                    self.metrics.slack_api_error(method, &error_label(&error));
                    return Err(error);
                }
            }
        }
    }

    pub fn client(&self) -> &Arc<SlackHyperClient> {
        &self.client
    }

    /// Asks Slack who the bot is.
    pub async fn identify(&self) -> Result<BotIdentity> {
        let response = self
            .with_retry("auth.test", || async {
                self.client.open_session(&self.token).auth_test().await
            })
            .await
            .context("auth.test failed: check that SLACK_BOT_TOKEN is the app's bot token (xoxb-...) and that the app is installed")?;
        Ok(BotIdentity {
            user_id: response.user_id.to_string(),
            bot_id: response.bot_id.map(|bot_id| bot_id.to_string()),
            team_id: Some(response.team_id.to_string()),
        })
    }

    /// Posts one message in a thread and returns its timestamp. `text` is
    /// the message, or the notification fallback when there are blocks.
    pub async fn post_in_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        blocks: Vec<SlackBlock>,
    ) -> Result<String> {
        let mut content = SlackMessageContent::new().with_text(text.to_string());
        if !blocks.is_empty() {
            content = content.with_blocks(blocks);
        }
        let request = SlackApiChatPostMessageRequest::new(channel.into(), content)
            .with_thread_ts(thread_ts.into())
            .with_unfurl_links(false)
            .with_unfurl_media(false);

        let response = self
            .with_retry("chat.postMessage", || async {
                self.client
                    .open_session(&self.token)
                    .chat_post_message(&request)
                    .await
            })
            .await
            .context("chat.postMessage failed")?;
        Ok(response.ts.to_string())
    }
}

impl SlackApi {
    /// Shows a message to one user only.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Result<()> {
        let mut request = SlackApiChatPostEphemeralRequest::new(
            channel.into(),
            user.into(),
            SlackMessageContent::new().with_text(text.to_string()),
        );
        if let Some(thread_ts) = thread_ts {
            request = request.with_thread_ts(thread_ts.into());
        }
        self.with_retry("chat.postEphemeral", || async {
            self.client
                .open_session(&self.token)
                .chat_post_ephemeral(&request)
                .await
        })
        .await
        .context("chat.postEphemeral failed")?;
        Ok(())
    }

    /// Shows suggested prompts in an assistant thread.
    pub async fn set_suggested_prompts(
        &self,
        channel: &str,
        thread_ts: &str,
        title: &str,
        prompts: &[String],
    ) -> Result<()> {
        let prompts = prompts
            .iter()
            .map(|prompt| SlackAssistantPrompt::new(prompt.clone(), prompt.clone()))
            .collect();
        let request = SlackApiAssistantThreadsSetSuggestedPromptsRequest::new(
            channel.into(),
            thread_ts.into(),
            prompts,
        )
        .with_title(title.to_string());
        self.with_retry("assistant.threads.setSuggestedPrompts", || async {
            self.client
                .open_session(&self.token)
                .assistant_threads_set_suggested_prompts(&request)
                .await
        })
        .await
        .context("assistant.threads.setSuggestedPrompts failed")?;
        Ok(())
    }
}

/// Slack user groups as the directory for agent access lists
/// (`usergroups.users.list`, scope `usergroups:read`).
#[async_trait::async_trait]
impl crate::agent::access::GroupDirectory for SlackApi {
    async fn members(&self, group: &str) -> Result<std::collections::HashSet<String>> {
        let request = SlackApiUserGroupsUsersListRequest::new(group.into());
        let response = self
            .with_retry("usergroups.users.list", || async {
                self.client
                    .open_session(&self.token)
                    .usergroups_users_list(&request)
                    .await
            })
            .await
            .with_context(|| format!("usergroups.users.list failed for the user group {group}"))?;
        Ok(response
            .users
            .into_iter()
            .map(|user| user.to_string())
            .collect())
    }
}

impl SlackApi {
    /// Replaces the text and blocks of one of the bot's messages.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Vec<SlackBlock>,
    ) -> Result<()> {
        let content = SlackMessageContent::new()
            .with_text(text.to_string())
            .with_blocks(blocks);
        let request = SlackApiChatUpdateRequest::new(channel.into(), content, ts.into());
        self.with_retry("chat.update", || async {
            self.client
                .open_session(&self.token)
                .chat_update(&request)
                .await
        })
        .await
        .context("chat.update failed")?;
        Ok(())
    }

    /// Finds the Slack user with this e-mail address (`users.lookupByEmail`,
    /// scope `users:read.email`); `None` when nobody has it.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>> {
        let key = email.trim().to_lowercase();
        if let Ok(cache) = self.people.emails.lock()
            && let Some((read_at, user)) = cache.get(&key)
            && read_at.elapsed() < PEOPLE_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let request = SlackApiUsersLookupByEmailRequest::new(EmailAddress(key.clone()));
        let found = match self
            .with_retry("users.lookupByEmail", || async {
                self.client
                    .open_session(&self.token)
                    .users_lookup_by_email(&request)
                    .await
            })
            .await
        {
            Ok(response) => Some(response.user.id.to_string()),
            Err(SlackClientError::ApiError(error)) if error.code == "users_not_found" => None,
            Err(error) => {
                return Err(anyhow::Error::new(error).context("users.lookupByEmail failed"));
            }
        };
        if let Ok(mut cache) = self.people.emails.lock() {
            cache.insert(key, (tokio::time::Instant::now(), found.clone()));
        }
        Ok(found)
    }

    /// Reports whether a user is a bot or an app (`users.info`).
    pub async fn is_bot(&self, user: &str) -> Result<bool> {
        if let Ok(cache) = self.people.bots.lock()
            && let Some((read_at, is_bot)) = cache.get(user)
            && read_at.elapsed() < PEOPLE_CACHE_TTL
        {
            return Ok(*is_bot);
        }
        let request = SlackApiUsersInfoRequest::new(user.into());
        let response = self
            .with_retry("users.info", || async {
                self.client
                    .open_session(&self.token)
                    .users_info(&request)
                    .await
            })
            .await
            .with_context(|| format!("users.info failed for {user}"))?;
        let flags = serde_json::to_value(&response.user).unwrap_or_default();
        let is_bot = flags
            .get("is_bot")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
            || flags
                .get("is_app_user")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
        if let Ok(mut cache) = self.people.bots.lock() {
            cache.insert(user.to_string(), (tokio::time::Instant::now(), is_bot));
        }
        Ok(is_bot)
    }
}

/// The Slack side of approvals: user groups, e-mail lookups and bot checks.
#[async_trait::async_trait]
impl crate::actions::approval::People for SlackApi {
    async fn group_members(&self, group: &str) -> Result<std::collections::HashSet<String>> {
        crate::agent::access::GroupDirectory::members(self, group).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<String>> {
        SlackApi::user_by_email(self, email).await
    }

    async fn is_bot(&self, user: &str) -> Result<bool> {
        SlackApi::is_bot(self, user).await
    }
}

/// A short, bounded label for a failed call: Slack's error code, or the
/// kind of failure.
fn error_label(error: &SlackClientError) -> String {
    match error {
        SlackClientError::ApiError(error) => error.code.clone(),
        SlackClientError::RateLimitError(_) => "ratelimited".to_string(),
        SlackClientError::HttpError(error) => format!("http_{}", error.status_code.as_u16()),
        SlackClientError::HttpProtocolError(_) => "http_protocol".to_string(),
        SlackClientError::ProtocolError(_) => "protocol".to_string(),
        SlackClientError::EndOfStream(_) => "end_of_stream".to_string(),
        SlackClientError::SystemError(_) => "system".to_string(),
        SlackClientError::SocketModeProtocolError(_) => "socket_mode_protocol".to_string(),
    }
}
