//! The operations endpoints `serve` answers on `AGENTDESK_HTTP_ADDR`:
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 when the database answers and at least one Socket Mode
//!   connection is open, else 503 with the reason.
//! - `/metrics`: every counter in the Prometheus text format.
//!
//! They carry no secrets and no question text, but they do show agent names
//! and event counts: bind them to a private address.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::app::App;

/// Maximum wait for the database in `/readyz`.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Maximum wait for a request's headers, idle keep-alive time included.
/// Without it, a client that stalls mid-request keeps its connection and
/// file descriptor until shutdown.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the endpoints; fails with a clear error when the address is taken.
pub async fn bind(address: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!(
            "could not listen on AGENTDESK_HTTP_ADDR={address} for /healthz, /readyz and \
             /metrics: the port may be in use; choose another address, or set \
             AGENTDESK_HTTP_ADDR=off"
        )
    })
}

/// Serves requests until `stop` is cancelled.
pub async fn serve(listener: TcpListener, app: App, stop: CancellationToken) {
    if let Ok(address) = listener.local_addr() {
        let _ = app.status.ops_addr.set(address);
        info!(%address, "operations endpoints listening: /healthz, /readyz, /metrics");
    }
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(error = %error, "could not accept a connection on the operations port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(respond(&app, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        debug!(error = %error, "operations connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn respond(app: &App, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match readiness(app).await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, &app.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; the endpoints are /healthz, /readyz and /metrics\n",
        ),
    }
}

/// Checks the database and the Slack connections.
async fn readiness(app: &App) -> Result<(), String> {
    let ping = sqlx::query("SELECT 1").execute(app.store.pool());
    match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(format!("the database is unreachable: {error}")),
        Err(_) => {
            return Err(format!(
                "the database did not answer within {} s",
                DATABASE_CHECK_TIMEOUT.as_secs()
            ));
        }
    }
    if app.metrics.open_sockets() < 1 {
        let stopped = app
            .status
            .sockets_stopped
            .lock()
            .ok()
            .and_then(|reason| reason.clone());
        return Err(match stopped {
            Some(reason) => format!("no Slack connection: {reason}"),
            None => "no Slack Socket Mode connection is open yet".to_string(),
        });
    }
    Ok(())
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
