//! `agentdesk serve`.

use anyhow::Result;

use crate::app::App;

/// Connects to Slack and answers until a shutdown signal.
pub async fn run(_app: App) -> Result<()> {
    anyhow::bail!("serve is not built yet")
}
