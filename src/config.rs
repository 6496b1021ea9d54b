//! Settings read from the environment (and a `.env` file, loaded by `main`).
//!
//! Every limit and timing the service uses is a setting here, with its
//! environment variable, default and unit documented on the field. Invalid
//! values stop the program with an error that names the variable, the value
//! and what was expected.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A secret (API key or token) that never prints its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The environment variables the settings were read from. Its `Debug` names
/// no value, because values include secrets.
#[derive(Clone, Default)]
pub struct EnvSnapshot(std::sync::Arc<HashMap<String, String>>);

impl EnvSnapshot {
    /// A variable's value; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }
}

impl fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvSnapshot({} variables)", self.0.len())
    }
}

/// Which model backend answers questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Offline,
    OpenAi,
    Anthropic,
}

impl BackendKind {
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "offline" => Ok(Self::Offline),
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => {
                bail!("invalid AGENTDESK_BACKEND={other:?}: expected offline, openai or anthropic")
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// OpenAI-compatible Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// `OPENAI_API_KEY`; optional because local servers (Ollama, vLLM,
    /// llama.cpp) often need none.
    pub api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`, default `https://api.openai.com/v1`; the client
    /// appends `/chat/completions`.
    pub base_url: String,
    /// `OPENAI_MODEL`, default `gpt-4o-mini`.
    pub model: String,
}

/// Anthropic Messages API endpoint.
#[derive(Debug, Clone)]
pub struct AnthropicSettings {
    /// `ANTHROPIC_API_KEY`, required when this backend is selected.
    pub api_key: Option<Secret>,
    /// `ANTHROPIC_BASE_URL`, default `https://api.anthropic.com`; the client
    /// appends `/v1/messages`.
    pub base_url: String,
    /// `ANTHROPIC_MODEL`, default `claude-sonnet-4-5`.
    pub model: String,
}

/// Slack connection settings.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// `SLACK_BOT_TOKEN` (`xoxb-...`), used for every Web API call.
    pub bot_token: Option<Secret>,
    /// `SLACK_APP_TOKEN` (`xapp-...`, scope `connections:write`), used only
    /// to open Socket Mode connections.
    pub app_token: Option<Secret>,
    /// `SLACK_API_URL`, default `https://slack.com/api/`: the Web API base,
    /// overridden for GovSlack or a local stand-in.
    pub api_url: String,
    /// `AGENTDESK_SOCKET_CONNECTIONS`, default 2: Socket Mode connections
    /// this process opens. Slack allows 10 per app across all processes.
    pub socket_connections: u32,
    /// `AGENTDESK_SOCKET_RECONNECT_SECS`, default 5: the first wait after a
    /// failed attempt to open a Socket Mode connection. Each further
    /// failure doubles it, up to `reconnect_max`, with random jitter.
    pub reconnect_delay: Duration,
    /// `AGENTDESK_SOCKET_RECONNECT_MAX_SECS`, default 120: the longest wait
    /// between attempts.
    pub reconnect_max: Duration,
    /// `AGENTDESK_SOCKET_TOO_MANY_SECS`, default 60: the wait before
    /// reconnecting after Slack closed a connection with
    /// `too_many_websockets`.
    pub too_many_sockets_delay: Duration,
    /// `AGENTDESK_SOCKET_PING_SECS`, default 10: a connection with no frame
    /// for this long gets a WebSocket ping.
    pub ping_interval: Duration,
    /// `AGENTDESK_SOCKET_SILENCE_SECS`, default 30: a connection with no
    /// frame (not even a pong) for this long is replaced.
    pub silence_timeout: Duration,
    /// `AGENTDESK_SOCKET_STAGGER_SECS`, default 1: delay between opening
    /// one Socket Mode connection and the next.
    pub socket_stagger: Duration,
    /// `AGENTDESK_DEDUPE_TTL_SECS`, default 86400: how long delivered event
    /// ids and message timestamps are remembered to drop redeliveries.
    pub dedupe_ttl: Duration,
    /// `AGENTDESK_MAX_MESSAGE_CHARS`, default 3900: characters per posted
    /// message; Slack rejects messages near 4,000 characters.
    pub max_message_chars: usize,
}

/// Limits of the agent's tool loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// `AGENTDESK_MAX_TOOL_CALLS`, default 15: tool calls per invocation
    /// before the model must answer without tools.
    pub max_tool_calls: usize,
    /// `AGENTDESK_TIME_BUDGET_SECS`, default 120: wall time per invocation,
    /// including model calls, tools and retries.
    pub time_budget: Duration,
    /// `AGENTDESK_TOOL_RESULT_MAX_BYTES`, default 16384: each tool result is
    /// cut to this size, with a note saying so, before the model sees it.
    pub tool_result_max_bytes: usize,
    /// `AGENTDESK_LLM_TIMEOUT_SECS`, default 60: one model request.
    pub llm_timeout: Duration,
    /// `AGENTDESK_LLM_MAX_RETRIES`, default 3: retries of a model request
    /// after HTTP 429, 5xx, a timeout or a connection failure.
    pub llm_max_retries: u32,
    /// `AGENTDESK_LLM_RETRY_BASE_MS`, default 500: first backoff delay; it
    /// doubles on each retry, with jitter, unless the provider sent
    /// `Retry-After`.
    pub llm_retry_base: Duration,
    /// `AGENTDESK_LLM_MAX_TOKENS`, default 2048: output tokens per model turn.
    pub llm_max_tokens: u32,
}

/// Everything the program reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`, default `sqlite://agentdesk.db` in the working
    /// directory; a `postgres://` URL selects PostgreSQL.
    pub database_url: String,
    /// `AGENTDESK_DATABASE_TIMEOUT_SECS`, default 10: how long a query
    /// waits for a database connection before it fails, which bounds how
    /// long work waits while the database is down.
    pub database_timeout: Duration,
    /// `AGENTDESK_BACKEND`, default `offline`.
    pub backend: BackendKind,
    /// `AGENTDESK_CONFIG`: the agents file. Unset, `agentdesk.yaml` in the
    /// working directory is read when it exists.
    pub agents_file: Option<std::path::PathBuf>,
    pub openai: OpenAiSettings,
    pub anthropic: AnthropicSettings,
    pub slack: SlackSettings,
    pub agent_loop: LoopSettings,
    /// `AGENTDESK_MAX_QUESTION_CHARS`, default 8000: longer questions are
    /// refused with a short reply instead of reaching a model.
    pub max_question_chars: usize,
    /// `AGENTDESK_MAX_CONCURRENT_INVOCATIONS`, default 1024: questions
    /// answered at the same time; further ones wait for a free slot.
    pub max_concurrent_invocations: usize,
    /// Every variable the settings were read from, for parts that name
    /// their own variables (an action's secret, a token for GitHub).
    pub env: EnvSnapshot,
    /// `AGENTDESK_APPROVAL_SWEEP_SECS`, default 30: how often `serve` expires
    /// approval requests past their time and updates their cards.
    pub approval_sweep_interval: Duration,
    /// `AGENTDESK_RETENTION_INTERVAL_SECS`, default 3600: how often `serve`
    /// deletes invocations past the retention period.
    pub retention_interval: Duration,
    /// `AGENTDESK_SHUTDOWN_GRACE_SECS`, default 20: how long `serve` lets
    /// running answers finish after SIGINT or SIGTERM before marking them
    /// interrupted.
    pub shutdown_grace: Duration,
    /// `AGENTDESK_HTTP_ADDR`, default `127.0.0.1:8080`: where `serve`
    /// answers `/healthz`, `/readyz` and `/metrics`; `off` turns the
    /// endpoints off.
    pub http_addr: Option<std::net::SocketAddr>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://agentdesk.db";

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    /// Reads settings from a map of variables, so tests need not touch the
    /// process environment.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self> {
        let env = Env(vars);

        let settings = Self {
            database_url: env.string("DATABASE_URL", DEFAULT_DATABASE_URL),
            database_timeout: env.positive_seconds("AGENTDESK_DATABASE_TIMEOUT_SECS", 10)?,
            backend: BackendKind::parse(&env.string("AGENTDESK_BACKEND", "offline"))?,
            agents_file: env.raw("AGENTDESK_CONFIG").map(std::path::PathBuf::from),
            openai: OpenAiSettings {
                api_key: env.secret("OPENAI_API_KEY"),
                base_url: env.string("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                model: env.string("OPENAI_MODEL", "gpt-4o-mini"),
            },
            anthropic: AnthropicSettings {
                api_key: env.secret("ANTHROPIC_API_KEY"),
                base_url: env.string("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
                model: env.string("ANTHROPIC_MODEL", "claude-sonnet-4-5"),
            },
            slack: SlackSettings {
                bot_token: env.secret("SLACK_BOT_TOKEN"),
                app_token: env.secret("SLACK_APP_TOKEN"),
                api_url: env.string("SLACK_API_URL", "https://slack.com/api/"),
                socket_connections: env.number("AGENTDESK_SOCKET_CONNECTIONS", 2, 1, 10)?,
                reconnect_delay: env.positive_seconds("AGENTDESK_SOCKET_RECONNECT_SECS", 5)?,
                reconnect_max: env.positive_seconds("AGENTDESK_SOCKET_RECONNECT_MAX_SECS", 120)?,
                too_many_sockets_delay: env
                    .positive_seconds("AGENTDESK_SOCKET_TOO_MANY_SECS", 60)?,
                ping_interval: env.positive_seconds("AGENTDESK_SOCKET_PING_SECS", 10)?,
                silence_timeout: env.positive_seconds("AGENTDESK_SOCKET_SILENCE_SECS", 30)?,
                socket_stagger: env.seconds("AGENTDESK_SOCKET_STAGGER_SECS", 1)?,
                dedupe_ttl: env.positive_seconds("AGENTDESK_DEDUPE_TTL_SECS", 86_400)?,
                max_message_chars: env.number("AGENTDESK_MAX_MESSAGE_CHARS", 3900, 200, 3900)?,
            },
            agent_loop: LoopSettings {
                max_tool_calls: env.number("AGENTDESK_MAX_TOOL_CALLS", 15, 0, 1000)?,
                time_budget: env.positive_seconds("AGENTDESK_TIME_BUDGET_SECS", 120)?,
                tool_result_max_bytes: env.number(
                    "AGENTDESK_TOOL_RESULT_MAX_BYTES",
                    16_384,
                    256,
                    1 << 24,
                )?,
                llm_timeout: env.positive_seconds("AGENTDESK_LLM_TIMEOUT_SECS", 60)?,
                llm_max_retries: env.number("AGENTDESK_LLM_MAX_RETRIES", 3, 0, 20)?,
                llm_retry_base: Duration::from_millis(env.number(
                    "AGENTDESK_LLM_RETRY_BASE_MS",
                    500,
                    0,
                    60_000,
                )?),
                llm_max_tokens: env.number("AGENTDESK_LLM_MAX_TOKENS", 2048, 16, 200_000)?,
            },
            max_question_chars: env.number("AGENTDESK_MAX_QUESTION_CHARS", 8_000, 10, 1_000_000)?,
            max_concurrent_invocations: env.number(
                "AGENTDESK_MAX_CONCURRENT_INVOCATIONS",
                1024,
                1,
                100_000,
            )?,
            shutdown_grace: env.seconds("AGENTDESK_SHUTDOWN_GRACE_SECS", 20)?,
            http_addr: env.socket_address("AGENTDESK_HTTP_ADDR", "127.0.0.1:8080")?,
            retention_interval: env.positive_seconds("AGENTDESK_RETENTION_INTERVAL_SECS", 3_600)?,
            approval_sweep_interval: env.positive_seconds("AGENTDESK_APPROVAL_SWEEP_SECS", 30)?,
            env: EnvSnapshot(std::sync::Arc::new(vars.clone())),
        };
        let slack = &settings.slack;
        // A quiet connection is pinged after the ping interval, so a silence
        // timeout at or below it would replace healthy connections.
        if slack.silence_timeout <= slack.ping_interval {
            bail!(
                "invalid AGENTDESK_SOCKET_SILENCE_SECS={}: it must be greater than \
                 AGENTDESK_SOCKET_PING_SECS={}, so a quiet connection is pinged before it is \
                 replaced",
                slack.silence_timeout.as_secs_f64(),
                slack.ping_interval.as_secs_f64()
            );
        }
        Ok(settings)
    }
}

/// Longest duration a setting accepts: a year. Larger values overflow time
/// arithmetic and have no use.
const MAX_SECONDS: f64 = 31_536_000.0;

/// Typed access to a map of environment variables.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }

    /// Reads an `address:port`, or `off` for none.
    fn socket_address(&self, name: &str, default: &str) -> Result<Option<std::net::SocketAddr>> {
        let raw = self.raw(name).unwrap_or(default);
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        raw.parse().map(Some).ok().with_context(|| {
            format!(
                "invalid {name}={raw:?}: expected an IP address and port such as 127.0.0.1:8080 \
                 or 0.0.0.0:8080, or off"
            )
        })
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.raw(name).map(Secret::new)
    }

    fn number<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.raw(name) else {
            return Ok(default);
        };
        let value: T = raw.parse().ok().with_context(|| {
            format!("invalid {name}={raw:?}: expected a whole number from {min} to {max}")
        })?;
        if value < min || value > max {
            bail!("invalid {name}={raw}: expected a whole number from {min} to {max}");
        }
        Ok(value)
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration> {
        let Some(raw) = self.raw(name) else {
            return Ok(Duration::from_secs(default));
        };
        let seconds: f64 = raw
            .parse()
            .ok()
            .filter(|value: &f64| value.is_finite() && *value >= 0.0)
            .with_context(|| {
                format!("invalid {name}={raw:?}: expected a number of seconds, such as 30 or 0.5")
            })?;
        if seconds > MAX_SECONDS {
            bail!("invalid {name}={raw}: at most {MAX_SECONDS} seconds (a year) is accepted");
        }
        Ok(Duration::from_secs_f64(seconds))
    }

    /// Reads a duration like [`Env::seconds`] that must be above zero,
    /// because zero would turn its wait into a busy loop or make every
    /// request time out.
    fn positive_seconds(&self, name: &str, default: u64) -> Result<Duration> {
        let duration = self.seconds(name, default)?;
        if duration.is_zero() {
            bail!(
                "invalid {name}={}: expected a number of seconds above 0, such as {default}. \
                 Unset it for the default of {default}",
                self.raw(name).unwrap_or_default()
            );
        }
        Ok(duration)
    }
}
