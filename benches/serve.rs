//! Benchmarks of `agentdesk serve` and the catalog, run by hand:
//!
//! ```sh
//! cargo bench --bench serve                # every benchmark
//! cargo bench --bench serve -- ack burst   # some of them
//! ```
//!
//! Names: `ack`, `overhead`, `burst`, `catalog`, `memory`. The serve
//! benchmarks start the release binary pinned to CPU 0 (with `taskset`)
//! against the stand-in Slack and a stand-in OpenAI model on 127.0.0.1,
//! and this driver pins itself to CPU 1. Every figure is printed beside its
//! target; BENCHMARKS.md records the method and the results.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentdesk::catalog::import::import_paths;
use agentdesk::catalog::{Catalog, Scope};
use agentdesk::clock::{SharedClock, system_clock};
use agentdesk::llm::ToolCall;
use agentdesk::store::Store;
use agentdesk::tools::{ToolContext, ToolRegistry};
use agentdesk_standins::Reply;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{SlackStandin, with_fresh_ids};
use serde_json::{Value, json};

const MENTION: &str = include_str!("../tests/fixtures/slack/app_mention_envelope.json");
const DEMO_BLUEPRINTS: &str = include_str!("../src/catalog/demo/blueprints.json");

fn main() {
    agentdesk::install_crypto_provider();
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.iter().any(|arg| arg == name);
    pin_to_cpu(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut report = Report::default();
    runtime.block_on(async {
        if wants("ack") {
            ack_latency(&mut report).await;
        }
        if wants("overhead") {
            overhead(&mut report).await;
        }
        if wants("burst") {
            burst(&mut report).await;
        }
        if wants("catalog") || wants("memory") {
            let catalog = catalog(&mut report, wants("catalog")).await;
            if wants("memory") {
                memory(&mut report, &catalog).await;
            }
        }
    });
    report.print();
}

/// Figures and their targets.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String, bool)>,
}

impl Report {
    /// Records a figure; `met` says whether it meets its target.
    fn add(&mut self, name: &str, value: String, target: &str, met: bool) {
        println!(
            "{name}: {value} (target {target}){}",
            if met { "" } else { "  <-- MISSED" }
        );
        self.rows
            .push((name.to_string(), value, target.to_string(), met));
    }

    fn print(&self) {
        println!("\n| figure | result | target | met |");
        println!("| --- | --- | --- | --- |");
        for (name, value, target, met) in &self.rows {
            println!(
                "| {name} | {value} | {target} | {} |",
                if *met { "yes" } else { "**no**" }
            );
        }
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1_000.0)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Pins this process to one CPU, so the bot's CPU is its own.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read
    // and write that set and this process's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("note: could not pin the driver to CPU {cpu}; figures may be noisier");
        }
    }
}

/// A running `agentdesk serve` and what it talks to.
struct Serve {
    child: Child,
    slack: SlackStandin,
    model: Option<OpenAiStandin>,
    _directory: tempfile::TempDir,
}

impl Serve {
    /// Starts the release binary on CPU 0 with the model stand-in answering
    /// after `model_delay`, or with the offline backend when `None`.
    async fn start(database_url: Option<&str>, model_delay: Option<Duration>) -> Self {
        let directory = tempfile::tempdir().expect("a temporary folder");
        let slack = SlackStandin::start()
            .await
            .expect("the stand-in Slack starts");
        let model = match model_delay {
            Some(delay) => {
                let model = OpenAiStandin::start()
                    .await
                    .expect("the model stand-in starts");
                model.set_responder(move |_| {
                    Reply::Delayed(
                        delay,
                        Box::new(Reply::Text("Payments is owned by the billing team.".into())),
                    )
                });
                Some(model)
            }
            None => None,
        };
        let database = database_url.map(str::to_string).unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                directory.path().join("agentdesk.db").display()
            )
        });
        let mut env: Vec<(&str, String)> = vec![
            ("DATABASE_URL", database),
            ("SLACK_BOT_TOKEN", SlackStandin::BOT_TOKEN.into()),
            ("SLACK_APP_TOKEN", SlackStandin::APP_TOKEN.into()),
            ("SLACK_API_URL", slack.api_url()),
            ("AGENTDESK_SOCKET_CONNECTIONS", "2".into()),
            ("AGENTDESK_SOCKET_STAGGER_SECS", "0".into()),
            ("AGENTDESK_HTTP_ADDR", "127.0.0.1:0".into()),
            ("AGENTDESK_LOG", "warn".into()),
        ];
        if let Some(model) = &model {
            env.push(("AGENTDESK_BACKEND", "openai".into()));
            env.push(("OPENAI_BASE_URL", model.base_url()));
        }
        let binary = env!("CARGO_BIN_EXE_agentdesk");
        let mut command = if Path::new("/usr/bin/taskset").exists() {
            let mut command = Command::new("taskset");
            command.args(["-c", "0", binary]);
            command
        } else {
            eprintln!("note: taskset not found; the bot is not pinned to a CPU");
            Command::new(binary)
        };
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("AGENTDESK_")
                || name.starts_with("SLACK_")
                || name.starts_with("OPENAI_")
            {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("serve")
            .current_dir(directory.path())
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts");
        slack
            .wait_for_sockets(2, Duration::from_secs(60))
            .await
            .expect("serve opens its sockets");
        Self {
            child,
            slack,
            model,
            _directory: directory,
        }
    }

    fn resident_kib(&self) -> u64 {
        // taskset execs the binary, so the child's pid is the bot's.
        resident_kib(self.child.id())
    }

    fn stop(mut self) {
        // SAFETY: signalling a child this process started and still owns.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        drop(self.model.take());
    }
}

/// VmRSS of a process, in KiB.
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// A mention of the bot in one of 100 channels.
fn mention(index: usize, text: &str) -> Value {
    let template: Value = serde_json::from_str(MENTION).expect("the fixture parses");
    let mut envelope = with_fresh_ids(&template);
    let event = &mut envelope["payload"]["event"];
    event["text"] = json!(format!("<@U0BOT00001> {text}"));
    event["channel"] = json!(format!("C0BENCH{:03}", index % 100));
    envelope
}

/// 500 mentions a second for 10 seconds while each answer takes 2 seconds:
/// envelope sent to ack received.
async fn ack_latency(report: &mut Report) {
    println!("\n== ack latency: 500 events/s for 10 s, model takes 2 s");
    let serve = Serve::start(None, Some(Duration::from_secs(2))).await;
    let total = 5_000;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(2));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for index in 0..total {
        ticks.tick().await;
        serve
            .slack
            .send_envelope(mention(index, "who owns payments?"))
            .await
            .expect("an envelope is sent");
    }
    let sent_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while serve.slack.acks().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<Duration> = serve.slack.acks().iter().map(|ack| ack.latency).collect();
    latencies.sort();
    let answered = serve
        .slack
        .wait_for_posts(total, Duration::from_secs(120))
        .await
        .map(|posts| posts.len())
        .unwrap_or_else(|_| serve.slack.posts().len());
    println!(
        "sent {total} in {:.1} s; {} acked; {answered} answered; ack p50 {}, max {}",
        sent_in.as_secs_f64(),
        latencies.len(),
        millis(percentile(&latencies, 0.5)),
        millis(latencies.last().copied().unwrap_or_default()),
    );
    let p99 = percentile(&latencies, 0.99);
    report.add(
        "ack latency p99 at 500 events/s",
        millis(p99),
        "< 10 ms",
        p99 < Duration::from_millis(10) && latencies.len() == total,
    );
    report.add(
        "answers at 500 events/s",
        format!("{answered} of {total}"),
        "all",
        answered == total,
    );
    serve.stop();
}

/// Questions one at a time with a model that answers at once: the time
/// from the envelope to the posted answer is the bot's own overhead (plus
/// the stand-ins' round trips, which it includes).
async fn overhead(report: &mut Report) {
    println!("\n== overhead per answered question, model answers at once");
    let serve = Serve::start(None, Some(Duration::ZERO)).await;
    let mut durations = Vec::new();
    for index in 0..300 {
        let before = serve.slack.posts().len();
        let started = Instant::now();
        serve
            .slack
            .send_envelope(mention(index, "who owns payments?"))
            .await
            .expect("an envelope is sent");
        serve
            .slack
            .wait_for_posts(before + 1, Duration::from_secs(10))
            .await
            .expect("an answer");
        // The first questions warm caches and connection pools.
        if index >= 20 {
            durations.push(started.elapsed());
        }
    }
    durations.sort();
    let (p50, p99) = (percentile(&durations, 0.5), percentile(&durations, 0.99));
    report.add(
        "overhead per question p50",
        millis(p50),
        "< 5 ms",
        p50 < Duration::from_millis(5),
    );
    report.add(
        "overhead per question p99",
        millis(p99),
        "< 20 ms",
        p99 < Duration::from_millis(20),
    );
    serve.stop();
}

/// 1,000 questions at once with a model that takes 2 seconds.
async fn burst(report: &mut Report) {
    println!("\n== 1,000 questions at once, model takes 2 s");
    let serve = Serve::start(None, Some(Duration::from_secs(2))).await;
    let total = 1_000;
    let envelopes: Vec<Value> = (0..total)
        .map(|index| mention(index, "who owns payments?"))
        .collect();
    let started = Instant::now();
    for envelope in envelopes {
        serve
            .slack
            .send_envelope(envelope)
            .await
            .expect("an envelope is sent");
    }
    let result = serve
        .slack
        .wait_for_posts(total, Duration::from_secs(60))
        .await;
    let elapsed = started.elapsed();
    let answered = result
        .map(|posts| posts.len())
        .unwrap_or_else(|_| serve.slack.posts().len());
    report.add(
        "1,000 questions at once, all answered within",
        format!("{:.2} s ({answered} answered)", elapsed.as_secs_f64()),
        "< 4 s",
        answered == total && elapsed < Duration::from_secs(4),
    );
    serve.stop();
}

/// A generated catalog in Port's format, and where it was imported.
struct GeneratedCatalog {
    sqlite_url: String,
    _directory: tempfile::TempDir,
}

/// Words for generated names.
const WORDS: &[&str] = &[
    "artist",
    "lookup",
    "payment",
    "ledger",
    "search",
    "index",
    "checkout",
    "cart",
    "pricing",
    "inventory",
    "order",
    "shipping",
    "fraud",
    "score",
    "review",
    "catalog",
    "media",
    "stream",
    "gateway",
    "auth",
    "session",
    "profile",
    "notify",
    "email",
    "report",
    "billing",
    "invoice",
    "tax",
    "refund",
    "coupon",
    "loyalty",
    "wishlist",
    "rating",
    "feed",
    "ranking",
    "audit",
];

/// Writes 100,000 entities: 200 teams, 4,000 users, 20,000 services and
/// 75,800 deployments, with owners, members, dependencies and deployed
/// services.
fn generate_catalog(folder: &Path) -> (PathBuf, PathBuf) {
    let mut entities = Vec::with_capacity(100_000);
    let word = |n: usize| WORDS[n % WORDS.len()];
    for team in 0..200 {
        entities.push(json!({
            "identifier": format!("team-{team}"),
            "title": format!("Team {} {}", word(team), team),
            "blueprint": "_team",
            "properties": {"description": format!("Owns the {} and {} services", word(team), word(team + 7))},
            "relations": {},
        }));
    }
    for user in 0..4_000 {
        entities.push(json!({
            "identifier": format!("user-{user}"),
            "title": format!("User {user}"),
            "blueprint": "_user",
            "properties": {"email": format!("user{user}@bench.example")},
            "relations": {"memberOf": [format!("team-{}", user % 200)]},
        }));
    }
    for service in 0..20_000 {
        let name = format!("{}-{}-{service}", word(service), word(service / 7 + 3));
        let depends: Vec<String> = [1, 17, 331]
            .iter()
            .map(|step| {
                let other = (service + step) % 20_000;
                format!("{}-{}-{other}", word(other), word(other / 7 + 3))
            })
            .collect();
        let language = ["Rust", "Go", "Java", "TypeScript"][service % 4];
        let tier = ["tier-1", "tier-2", "tier-3"][service % 3];
        let lifecycle = ["production", "experimental", "deprecated"][service % 3];
        entities.push(json!({
            "identifier": name,
            "title": format!("{} {} {service}", word(service), word(service / 7 + 3)),
            "blueprint": "service",
            "team": [format!("team-{}", service % 200)],
            "properties": {
                "description": format!("Handles {} for {} customers", word(service + 5), word(service + 11)),
                "language": language,
                "tier": tier,
                "lifecycle": lifecycle,
            },
            "relations": {"dependsOn": depends},
        }));
    }
    for deployment in 0..75_800 {
        let service = deployment % 20_000;
        entities.push(json!({
            "identifier": format!("deploy-{deployment}"),
            "title": format!("Deployment {deployment}"),
            "blueprint": "deployment",
            "properties": {
                "status": if deployment % 9 == 0 { "failed" } else { "success" },
                "deployedAt": format!("2026-11-{:02}T10:00:00.000Z", deployment % 28 + 1),
                "version": format!("1.{}.{}", deployment % 50, deployment % 7),
            },
            "relations": {"service": format!("{}-{}-{service}", word(service), word(service / 7 + 3))},
        }));
    }
    let blueprints = folder.join("blueprints.json");
    std::fs::write(&blueprints, DEMO_BLUEPRINTS).expect("blueprints written");
    let entities_path = folder.join("entities.json");
    std::fs::write(
        &entities_path,
        serde_json::to_vec(&json!({"ok": true, "entities": entities})).expect("JSON"),
    )
    .expect("entities written");
    (blueprints, entities_path)
}

/// Imports the generated catalog into SQLite and, when a server answers on
/// 127.0.0.1:5432, into PostgreSQL, and times searches and lookups.
async fn catalog(report: &mut Report, measure: bool) -> GeneratedCatalog {
    println!("\n== catalog of 100,000 generated entities");
    let directory = tempfile::tempdir().expect("a temporary folder");
    let (blueprints, entities) = generate_catalog(directory.path());
    let sqlite_url = format!("sqlite://{}", directory.path().join("bench.db").display());
    let clock = system_clock();

    let store = Store::connect(&sqlite_url).await.expect("SQLite opens");
    import_and_time(
        report,
        &store,
        &clock,
        &[blueprints.clone(), entities.clone()],
        "SQLite",
    )
    .await;
    if measure {
        lookups(report, &store, "SQLite").await;
    }
    store.close().await;

    if measure {
        match postgres_database().await {
            Some((url, drop_database)) => {
                let store = Store::connect(&url).await.expect("PostgreSQL opens");
                import_and_time(
                    report,
                    &store,
                    &clock,
                    &[blueprints, entities],
                    "PostgreSQL",
                )
                .await;
                lookups(report, &store, "PostgreSQL").await;
                store.close().await;
                if std::env::var_os("AGENTDESK_BENCH_KEEP_DATABASE").is_some() {
                    println!("PostgreSQL database kept for inspection: {url}");
                } else {
                    drop_database().await;
                }
            }
            None => println!("PostgreSQL: no server on 127.0.0.1:5432; skipped"),
        }
    }
    GeneratedCatalog {
        sqlite_url,
        _directory: directory,
    }
}

async fn import_and_time(
    report: &mut Report,
    store: &Store,
    clock: &SharedClock,
    paths: &[PathBuf],
    database: &str,
) {
    let started = Instant::now();
    let imported = import_paths(store, clock, paths)
        .await
        .expect("the import succeeds");
    let elapsed = started.elapsed();
    let rate = imported.created as f64 / elapsed.as_secs_f64();
    report.add(
        &format!("import rate, {database}"),
        format!(
            "{rate:.0} entities/s ({} in {:.1} s)",
            imported.created,
            elapsed.as_secs_f64()
        ),
        ">= 10,000 entities/s",
        rate >= 10_000.0,
    );
}

/// The kinds of search query the lookups benchmark cycles through, in
/// order.
const SEARCH_KINDS: &[&str] = &[
    "identifier",
    "two title words",
    "word with a typo",
    "word, blueprint and property filter",
    "word and a word of every description",
];

/// Times `search_entities` and `get_entity` through the tool layer, as the
/// agent loop calls them.
async fn lookups(report: &mut Report, store: &Store, database: &str) {
    let tools = ToolRegistry::catalog_tools();
    let context = ToolContext {
        catalog: Catalog::new(store.clone()),
        scope: Scope::All,
        session: None,
    };
    let queries: Vec<Value> = (0..1_000)
        .map(|index| {
            let service = (index * 7_919) % 20_000;
            let a = WORDS[service % WORDS.len()];
            let b = WORDS[(service / 7 + 3) % WORDS.len()];
            match index % 5 {
                0 => json!({"query": format!("{a}-{b}-{service}")}),
                1 => json!({"query": format!("{a} {b}")}),
                2 => json!({"query": format!("{}x", &a[..a.len() - 1]), "limit": 10}),
                3 => json!({"query": b, "blueprint": "service", "filters": {"tier": "tier-1"}}),
                _ => json!({"query": format!("{a} customers")}),
            }
        })
        .collect();
    let mut searches = Vec::new();
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); SEARCH_KINDS.len()];
    for (index, arguments) in queries.iter().enumerate() {
        let call = ToolCall {
            id: format!("search-{index}"),
            name: "search_entities".into(),
            arguments: arguments.to_string(),
        };
        let started = Instant::now();
        let outcome = tools.execute(&context, &call).await;
        searches.push(started.elapsed());
        by_kind[index % SEARCH_KINDS.len()].push(started.elapsed());
        assert!(!outcome.is_error, "search failed: {}", outcome.content);
    }
    for (kind, mut durations) in SEARCH_KINDS.iter().zip(by_kind) {
        durations.sort();
        println!(
            "  search {kind}, {database}: p50 {}, p99 {}",
            millis(percentile(&durations, 0.5)),
            millis(percentile(&durations, 0.99))
        );
    }
    let mut gets = Vec::new();
    for index in 0..1_000 {
        let service = (index * 104_729) % 20_000;
        let name = format!(
            "{}-{}-{service}",
            WORDS[service % WORDS.len()],
            WORDS[(service / 7 + 3) % WORDS.len()]
        );
        let call = ToolCall {
            id: format!("get-{index}"),
            name: "get_entity".into(),
            arguments: json!({"entity": format!("service:{name}")}).to_string(),
        };
        let started = Instant::now();
        let outcome = tools.execute(&context, &call).await;
        gets.push(started.elapsed());
        assert!(!outcome.is_error, "get failed: {}", outcome.content);
    }
    for (name, mut durations) in [("search_entities", searches), ("get_entity", gets)] {
        durations.sort();
        let (p50, p99) = (percentile(&durations, 0.5), percentile(&durations, 0.99));
        report.add(
            &format!("{name} p50, {database}"),
            millis(p50),
            "(no target)",
            true,
        );
        report.add(
            &format!("{name} p99, {database}"),
            millis(p99),
            "< 20 ms",
            p99 < Duration::from_millis(20),
        );
    }
}

type DropDatabase = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

/// Creates a fresh database on the local PostgreSQL; `None` when none
/// answers.
async fn postgres_database() -> Option<(String, DropDatabase)> {
    use sqlx::{Connection, Executor};
    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let mut admin = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::postgres::PgConnection::connect(admin_url),
    )
    .await
    .ok()?
    .ok()?;
    let name = format!("agentdesk_bench_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .ok()?;
    let _ = admin.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let drop_database: DropDatabase = Box::new(move || {
        Box::pin(async move {
            if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(admin_url).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await;
            }
        })
    });
    Some((url, drop_database))
}

/// Resident memory of `serve`: idle with the demo catalog, and after
/// questions over the 100,000-entity catalog.
async fn memory(report: &mut Report, catalog: &GeneratedCatalog) {
    println!("\n== resident memory");
    let idle = Serve::start(None, None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_kib = idle.resident_kib();
    idle.stop();
    report.add(
        "resident memory, idle",
        format!("{:.1} MB", idle_kib as f64 / 1_024.0),
        "< 50 MB",
        idle_kib < 50 * 1_024,
    );

    let loaded = Serve::start(Some(&catalog.sqlite_url), None).await;
    let questions = [
        "who owns artist-lookup-7?",
        "what does payment-ledger-100 depend on?",
        "how many services are there?",
        "which services are tier-1?",
        "what is search-index-42?",
    ];
    let mut peak = 0;
    for index in 0..200 {
        let before = loaded.slack.posts().len();
        loaded
            .slack
            .send_envelope(mention(index, questions[index % questions.len()]))
            .await
            .expect("an envelope is sent");
        let _ = loaded
            .slack
            .wait_for_posts(before + 1, Duration::from_secs(30))
            .await;
        peak = peak.max(loaded.resident_kib());
    }
    let after = loaded.resident_kib();
    loaded.stop();
    report.add(
        "resident memory, 100,000-entity catalog after 200 questions",
        format!(
            "{:.1} MB (peak {:.1} MB)",
            after as f64 / 1_024.0,
            peak as f64 / 1_024.0
        ),
        "< 300 MB",
        peak < 300 * 1_024,
    );
}
