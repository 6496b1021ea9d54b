//! Counters, gauges and histograms for `/metrics`, in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Each process keeps one [`Metrics`] in its [`crate::app::App`]. An update
//! takes a std mutex for one map insert, a short critical section at the
//! event rates of a Slack app. The mutexes are never held across an await.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A counter family: one value per combination of label values.
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterFamily {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, label_values: &[&str], amount: u64) {
        debug_assert_eq!(label_values.len(), self.labels.len(), "{}", self.name);
        if let Ok(mut values) = self.values.lock() {
            let key = label_values.iter().map(|value| value.to_string()).collect();
            *values.entry(key).or_default() += amount;
        }
    }

    fn get(&self, label_values: &[&str]) -> u64 {
        let key: Vec<String> = label_values.iter().map(|value| value.to_string()).collect();
        self.values
            .lock()
            .map(|values| values.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        let Ok(values) = self.values.lock() else {
            return;
        };
        for (label_values, value) in values.iter() {
            let _ = writeln!(
                out,
                "{}{} {value}",
                self.name,
                label_set(self.labels, label_values, None)
            );
        }
    }
}

/// A histogram family of durations in seconds.
struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, Histogram>>,
}

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket bound (not cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HistogramFamily {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, label_values: &[&str], duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Ok(mut values) = self.values.lock() {
            let key = label_values.iter().map(|value| value.to_string()).collect();
            let histogram = values.entry(key).or_default();
            if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
                histogram.buckets[bucket] += 1;
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    fn count(&self, label_values: &[&str]) -> u64 {
        let key: Vec<String> = label_values.iter().map(|value| value.to_string()).collect();
        self.values
            .lock()
            .map(|values| values.get(&key).map_or(0, |histogram| histogram.count))
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        let Ok(values) = self.values.lock() else {
            return;
        };
        for (label_values, histogram) in values.iter() {
            let mut cumulative = 0;
            for (bound, in_bucket) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += in_bucket;
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    label_set(self.labels, label_values, Some(&bound.to_string()))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                label_set(self.labels, label_values, Some("+Inf")),
                histogram.count
            );
            let labels = label_set(self.labels, label_values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, histogram.sum);
            let _ = writeln!(out, "{}_count{labels} {}", self.name, histogram.count);
        }
    }
}

/// Writes `{a="x",b="y"}` (empty when there are no labels), with `le` last
/// for histogram buckets.
fn label_set(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Escapes a label value as the text format requires: backslash, double
/// quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric the process exports.
pub struct Metrics {
    events_received: CounterFamily,
    events_acked: CounterFamily,
    events_dropped: CounterFamily,
    events_deduplicated: CounterFamily,
    invocations: CounterFamily,
    llm_request_seconds: HistogramFamily,
    llm_tokens: CounterFamily,
    tool_calls: CounterFamily,
    slack_api_errors: CounterFamily,
    slack_api_retries: CounterFamily,
    socket_connects: CounterFamily,
    open_sockets: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            events_received: CounterFamily::new(
                "agentdesk_slack_events_received_total",
                "Socket Mode envelopes received, by envelope type.",
                &["type"],
            ),
            events_acked: CounterFamily::new(
                "agentdesk_slack_events_acked_total",
                "Socket Mode envelopes acknowledged, by envelope type.",
                &["type"],
            ),
            events_dropped: CounterFamily::new(
                "agentdesk_slack_events_dropped_total",
                "Events acknowledged but not answered, by reason.",
                &["reason"],
            ),
            events_deduplicated: CounterFamily::new(
                "agentdesk_slack_events_deduplicated_total",
                "Questions dropped because another delivery was already claimed.",
                &[],
            ),
            invocations: CounterFamily::new(
                "agentdesk_invocations_total",
                "Finished invocations, by agent and status.",
                &["agent", "status"],
            ),
            llm_request_seconds: HistogramFamily::new(
                "agentdesk_llm_request_seconds",
                "Latency of model requests, retries included, by backend and outcome.",
                &["backend", "outcome"],
            ),
            llm_tokens: CounterFamily::new(
                "agentdesk_llm_tokens_total",
                "Model tokens, by backend and direction (input or output).",
                &["backend", "direction"],
            ),
            tool_calls: CounterFamily::new(
                "agentdesk_tool_calls_total",
                "Tool calls made by agents, by tool and outcome.",
                &["tool", "outcome"],
            ),
            slack_api_errors: CounterFamily::new(
                "agentdesk_slack_api_errors_total",
                "Slack Web API calls that failed, by method and error.",
                &["method", "error"],
            ),
            slack_api_retries: CounterFamily::new(
                "agentdesk_slack_api_retries_total",
                "Slack Web API calls retried after a rate limit, by method.",
                &["method"],
            ),
            socket_connects: CounterFamily::new(
                "agentdesk_slack_socket_connects_total",
                "Socket Mode connection attempts, by outcome.",
                &["outcome"],
            ),
            open_sockets: AtomicI64::new(0),
        }
    }

    pub fn event_received(&self, kind: &str) {
        self.events_received.add(&[kind], 1);
    }

    pub fn event_acked(&self, kind: &str) {
        self.events_acked.add(&[kind], 1);
    }

    pub fn event_dropped(&self, reason: &str) {
        self.events_dropped.add(&[reason], 1);
    }

    pub fn event_deduplicated(&self) {
        self.events_deduplicated.add(&[], 1);
    }

    pub fn invocation_finished(&self, agent: &str, status: &str) {
        self.invocations.add(&[agent, status], 1);
    }

    pub fn llm_request(&self, backend: &str, outcome: &str, latency: Duration) {
        self.llm_request_seconds
            .observe(&[backend, outcome], latency);
    }

    pub fn llm_tokens(&self, backend: &str, input: u64, output: u64) {
        if input > 0 {
            self.llm_tokens.add(&[backend, "input"], input);
        }
        if output > 0 {
            self.llm_tokens.add(&[backend, "output"], output);
        }
    }

    pub fn tool_call(&self, tool: &str, outcome: &str) {
        self.tool_calls.add(&[tool, outcome], 1);
    }

    pub fn slack_api_error(&self, method: &str, error: &str) {
        self.slack_api_errors.add(&[method, error], 1);
    }

    pub fn slack_api_retry(&self, method: &str) {
        self.slack_api_retries.add(&[method], 1);
    }

    pub fn socket_connect(&self, outcome: &str) {
        self.socket_connects.add(&[outcome], 1);
    }

    pub fn socket_opened(&self) {
        self.open_sockets.fetch_add(1, Ordering::SeqCst);
    }

    pub fn socket_closed(&self) {
        self.open_sockets.fetch_sub(1, Ordering::SeqCst);
    }

    /// Socket Mode connections that said hello and are still open.
    pub fn open_sockets(&self) -> i64 {
        self.open_sockets.load(Ordering::SeqCst)
    }

    /// Reads one counter, for tests and the readiness check: `name` is the
    /// metric name and `labels` its label values in declaration order.
    /// Returns 0 for an unknown name.
    pub fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        self.counters()
            .into_iter()
            .find(|family| family.name == name)
            .map_or(0, |family| family.get(labels))
            + if name == self.llm_request_seconds.name {
                self.llm_request_seconds.count(labels)
            } else {
                0
            }
    }

    fn counters(&self) -> [&CounterFamily; 10] {
        [
            &self.events_received,
            &self.events_acked,
            &self.events_dropped,
            &self.events_deduplicated,
            &self.invocations,
            &self.llm_tokens,
            &self.tool_calls,
            &self.slack_api_errors,
            &self.slack_api_retries,
            &self.socket_connects,
        ]
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in self.counters() {
            family.render(&mut out);
        }
        self.llm_request_seconds.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP agentdesk_slack_open_sockets Socket Mode connections that said hello and are open."
        );
        let _ = writeln!(out, "# TYPE agentdesk_slack_open_sockets gauge");
        let _ = writeln!(out, "agentdesk_slack_open_sockets {}", self.open_sockets());
        out
    }
}
