//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use slack_morphism::prelude::{SlackClient, SlackClientHyperConnector, SlackHyperClient};

/// Loads `tests/fixtures/slack/<name>` as JSON.
pub fn slack_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/slack")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fixture {} is not valid JSON: {error}", path.display()))
}

/// Builds a slack-morphism client for a Web API base URL over plain HTTP,
/// such as a local stand-in's.
///
/// slack-morphism's own `SlackClientHyperConnector::new()` accepts https
/// only, so the connector here allows http too and trusts no certificate.
pub fn slack_client(api_url: &str) -> Arc<SlackHyperClient> {
    agentdesk::install_crypto_provider();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let https_or_http = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let connector =
        SlackClientHyperConnector::with_connector(https_or_http).with_slack_api_url(api_url);
    Arc::new(SlackClient::new(connector))
}
