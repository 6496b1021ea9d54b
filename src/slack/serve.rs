//! `agentdesk serve`: connect to Slack in Socket Mode and answer until told
//! to stop.
//!
//! Start-up checks both tokens (the bot token with `auth.test`, the app
//! token with `apps.connections.open`), marks invocations that a crash left
//! in progress as interrupted, then opens the configured number of Socket
//! Mode connections. On SIGINT or SIGTERM it closes the sockets first (Slack
//! then sends new events to other replicas), lets running answers finish
//! for the grace period, marks the rest interrupted and tells their askers,
//! and closes the database.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use slack_morphism::prelude::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::client::{SlackApi, build_client};
use super::listener::Bot;
use super::socket::{self, SocketOptions};
use crate::agent::access::AccessControl;
use crate::app::App;
use crate::governance::retention;
use crate::store::{dedupe, invocations};

/// How often expired dedupe keys and stale invocations are swept.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// How long shutdown waits for a running retention run or sweep to end
/// before it closes the database.
const BACKGROUND_STOP: Duration = Duration::from_secs(10);

/// Runs until SIGINT or SIGTERM.
pub async fn run(app: App) -> Result<()> {
    let mut signals = StopSignals::listen()?;
    let first_signal = async move {
        signals.next().await;
        // A second signal ends the process at once, without waiting for
        // running answers. They stay in progress in the database and are
        // marked interrupted at the next start, as after a crash.
        tokio::spawn(async move {
            signals.next().await;
            warn!("second stop signal received; exiting without waiting for running answers");
            std::process::exit(EXIT_ON_SECOND_SIGNAL);
        });
    };
    run_until(app, first_signal).await
}

/// Exit status after a second SIGINT or SIGTERM, as a shell reports a
/// process ended by SIGINT (128 + 2).
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// Runs until `shutdown` completes; tests pass their own future.
pub async fn run_until(app: App, shutdown: impl Future<Output = ()>) -> Result<()> {
    let settings = app.settings.clone();
    let slack = &settings.slack;
    let bot_token = slack.bot_token.clone().context(
        "SLACK_BOT_TOKEN is not set: create the Slack app from manifest.yml, install it to the \
         workspace, and put its bot token (xoxb-...) in .env",
    )?;
    let app_token = slack.app_token.clone().context(
        "SLACK_APP_TOKEN is not set: in the Slack app settings, create an app-level token with \
         the connections:write scope and put it (xapp-...) in .env",
    )?;
    if !bot_token.expose().starts_with("xoxb-") {
        warn!("SLACK_BOT_TOKEN does not start with xoxb-; the bot token of the app is expected");
    }
    if !app_token.expose().starts_with("xapp-") {
        warn!("SLACK_APP_TOKEN does not start with xapp-; an app-level token is expected");
    }

    // Bound first, so a taken port stops start-up before Slack is touched.
    let ops_listener = match settings.http_addr {
        Some(address) => Some(crate::ops::bind(address).await?),
        None => None,
    };
    let client = build_client(&slack.api_url)?;
    let api = SlackApi::new(client.clone(), &bot_token, app.metrics.clone());
    let identity = api.identify().await?;
    let app_token = SlackApiToken::new(app_token.expose().into());
    check_app_token(&client, &app_token).await?;
    info!(bot_user = %identity.user_id, team = ?identity.team_id, "connected to the Slack Web API");

    interrupt_crash_leftovers(&app).await;
    let app = app.with_access(AccessControl::with_directory(Box::new(api.clone())));
    let bot = Arc::new(Bot::new(app.clone(), api, identity));
    let maintenance = CancellationToken::new();
    if let Some(listener) = ops_listener {
        tokio::spawn(crate::ops::serve(
            listener,
            app.clone(),
            maintenance.clone(),
        ));
    }
    // Periodic work that uses the database. Shutdown waits for it to end
    // before it closes the pool.
    let background = TaskTracker::new();
    background.spawn(run_maintenance(app.clone(), maintenance.clone()));
    super::actions::sweep(&bot).await;
    background.spawn(run_sweeps(
        bot.clone(),
        settings
            .approval_sweep_interval
            .max(Duration::from_millis(100)),
        maintenance.clone(),
    ));
    background.spawn(retention::run_periodically(
        app.store.clone(),
        app.clock.clone(),
        app.agents_file.retention.clone(),
        format!("serve-{}", uuid::Uuid::new_v4()),
        settings.retention_interval.max(Duration::from_secs(1)),
        maintenance.clone(),
    ));

    let sockets = socket::start(
        bot.clone(),
        client,
        app_token,
        SocketOptions::from_settings(slack),
    );
    info!(
        sockets = slack.socket_connections,
        "listening for Slack events"
    );

    shutdown.await;
    info!("shutting down: closing the Slack connections");
    sockets.shutdown().await;

    bot.tasks.close();
    let grace = app.settings.shutdown_grace;
    if tokio::time::timeout(grace, bot.tasks.wait()).await.is_err() {
        warn!(
            grace_secs = grace.as_secs_f64(),
            "answers still running after the grace period; marking them interrupted"
        );
        bot.abandon_in_flight().await;
    }
    maintenance.cancel();
    background.close();
    if tokio::time::timeout(BACKGROUND_STOP, background.wait())
        .await
        .is_err()
    {
        warn!(
            wait_secs = BACKGROUND_STOP.as_secs(),
            "periodic work still running at shutdown; closing the database anyway"
        );
    }
    app.store.close().await;
    info!("stopped");
    Ok(())
}

/// Opens one Socket Mode URL to prove the app token works, so a wrong
/// token stops start-up with a clear error instead of endless reconnects.
async fn check_app_token(client: &Arc<SlackHyperClient>, token: &SlackApiToken) -> Result<()> {
    client
        .open_session(token)
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
        .context(
            "apps.connections.open failed: check that SLACK_APP_TOKEN is an app-level token \
             (xapp-...) with the connections:write scope and that Socket Mode is on",
        )?;
    Ok(())
}

/// Marks invocations left in progress by a crash as interrupted. Only rows
/// older than the time budget plus the grace period count, because a live
/// replica's answers cannot be older than that.
async fn interrupt_crash_leftovers(app: &App) {
    let settings = &app.settings;
    let cutoff = app.clock.now_millis()
        - (settings.agent_loop.time_budget + settings.shutdown_grace).as_millis() as i64;
    let reason = "the bot stopped before the answer was ready";
    match invocations::interrupt_stale(&app.store, &app.clock, cutoff, reason).await {
        Ok(ids) if !ids.is_empty() => warn!(
            count = ids.len(),
            "marked invocations left in progress as interrupted"
        ),
        Ok(_) => {}
        Err(error) => error!(error = %format!("{error:#}"), "could not sweep stale invocations"),
    }
}

/// Sweeps expired dedupe keys and stale invocations every minute.
async fn run_maintenance(app: App, stop: CancellationToken) {
    let mut interval = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(error) =
            dedupe::purge_expired(&app.store, &app.clock, app.settings.slack.dedupe_ttl).await
        {
            warn!(error = %format!("{error:#}"), "could not purge expired dedupe keys");
        }
        interrupt_crash_leftovers(&app).await;
    }
}

/// Expires unanswered approval requests and fails interrupted runs on a
/// timer, updating their cards.
async fn run_sweeps(bot: Arc<Bot>, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        super::actions::sweep(&bot).await;
    }
}

/// SIGINT and SIGTERM, listened for from creation on, so a signal that
/// arrives while nobody waits is kept for the next wait.
pub struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening; must run inside the tokio runtime.
    pub fn listen() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
            let terminate = match signal(SignalKind::terminate()) {
                Ok(terminate) => Some(terminate),
                Err(error) => {
                    warn!(error = %error, "cannot listen for SIGTERM; only SIGINT stops the bot");
                    None
                }
            };
            Ok(Self {
                interrupt,
                terminate,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        {
            let interrupt = &mut self.interrupt;
            let terminate = async {
                match self.terminate.as_mut() {
                    Some(terminate) => {
                        terminate.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = interrupt.recv() => info!("SIGINT received"),
                _ = terminate => info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
