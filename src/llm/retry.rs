//! Bounded retries of model requests.
//!
//! A request that fails with HTTP 429, a 5xx status, a timeout, a
//! connection error or a response body that cannot be read is sent again
//! up to `max_retries` times. The wait is
//! the provider's `Retry-After` when it sent one, else `base_delay` doubled
//! on each retry (500 ms, 1 s, 2 s with the defaults), with up to 50 %
//! random jitter so replicas do not retry in step, and never past
//! `max_delay`. No attempt starts when its wait would end after the
//! deadline: the caller's time budget always wins.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{instrument, warn};

use super::{ChatRequest, ChatResponse, LlmBackend, LlmError};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32, error: &LlmError) -> Duration {
        if let Some(asked) = error.retry_after() {
            return asked;
        }
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let jitter = 1.0 - 0.5 * random_fraction();
        exponential.mul_f64(jitter).min(self.max_delay)
    }
}

/// Sends a request, retrying as the policy allows, until `deadline`.
#[instrument(skip_all, fields(backend = backend.name(), model = backend.model()))]
pub async fn complete_with_retry(
    backend: &dyn LlmBackend,
    request: &ChatRequest,
    policy: &RetryPolicy,
    deadline: Instant,
) -> Result<ChatResponse, LlmError> {
    let mut retry = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(LlmError::Timeout(Duration::ZERO));
        }
        let error = match tokio::time::timeout(remaining, backend.complete(request)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => error,
            Err(_) => LlmError::Timeout(remaining),
        };

        if !error.is_retryable() || retry >= policy.max_retries {
            return Err(error);
        }
        let delay = policy.delay(retry, &error);
        if Instant::now() + delay >= deadline {
            return Err(error);
        }
        warn!(
            error = %error,
            retry = retry + 1,
            delay_ms = delay.as_millis() as u64,
            "model request failed; retrying"
        );
        tokio::time::sleep(delay).await;
        retry += 1;
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher,
/// which is enough for jitter.
fn random_fraction() -> f64 {
    let hash = RandomState::new().hash_one(std::time::SystemTime::now());
    (hash >> 11) as f64 / (1u64 << 53) as f64
}
