//! Logging setup: tracing to stderr, as text or JSON.
//!
//! `AGENTDESK_LOG` (or `RUST_LOG`) sets the filter in `tracing`'s
//! env-filter syntax, for example `info` or `agentdesk=debug`;
//! `AGENTDESK_LOG_FORMAT=json` switches to one JSON object per line for
//! log collectors. Prompt and answer text is only ever logged at debug.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `default_filter` applies when neither
/// variable is set.
pub fn init(default_filter: &str) {
    let requested = std::env::var("AGENTDESK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = match requested.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(error)) => {
            // No subscriber exists yet, so this goes straight to stderr.
            eprintln!(
                "warning: ignoring the invalid log filter in AGENTDESK_LOG or RUST_LOG ({error}); \
                 using {default_filter:?}"
            );
            EnvFilter::new(default_filter)
        }
        None => EnvFilter::new(default_filter),
    };
    let json = std::env::var("AGENTDESK_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second call (tests start several apps) keeps the first subscriber.
    let _ = result;
}
