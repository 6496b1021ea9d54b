//! Helpers shared by the test modules: fixtures, throwaway databases, the
//! `agentdesk` binary, the Slack client for stand-ins, and a running bot.

pub mod bot;
pub mod proxy;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agentdesk::catalog::import::{ImportReport, import_paths};
use agentdesk::clock::{ManualClock, SharedClock};
use agentdesk::store::Store;
use serde_json::Value;
use slack_morphism::prelude::{SlackClient, SlackClientHyperConnector, SlackHyperClient};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tempfile::TempDir;

/// Loads `tests/fixtures/slack/<name>` as JSON.
pub fn slack_fixture(name: &str) -> Value {
    let path = fixture_path("slack").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fixture {} is not valid JSON: {error}", path.display()))
}

/// Returns the path of `tests/fixtures/<relative>`.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// Returns the path of the Backstage examples under `tests/fixtures/catalog`.
pub fn backstage_fixtures() -> PathBuf {
    fixture_path("catalog/backstage-examples")
}

/// Copies a folder tree, files only, into `target` (created when missing).
pub fn copy_tree(source: &Path, target: &Path) {
    std::fs::create_dir_all(target)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", target.display()));
    let entries = std::fs::read_dir(source)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", source.display()));
    for entry in entries {
        let entry = entry.expect("a readable folder entry");
        let from = entry.path();
        let to = target.join(entry.file_name());
        if from.is_dir() {
            copy_tree(&from, &to);
        } else {
            std::fs::copy(&from, &to).unwrap_or_else(|error| {
                panic!(
                    "cannot copy {} to {}: {error}",
                    from.display(),
                    to.display()
                )
            });
        }
    }
}

/// Returns a manual clock set to 2025-01-01T00:00:00Z.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_735_689_600_000))
}

/// Returns `clock` as the shared clock the product takes.
pub fn shared(clock: &Arc<ManualClock>) -> SharedClock {
    clock.clone()
}

/// Imports catalog paths and panics with the import's message on failure.
pub async fn import(store: &Store, clock: &SharedClock, paths: &[PathBuf]) -> ImportReport {
    import_paths(store, clock, paths)
        .await
        .unwrap_or_else(|error| panic!("the import of {paths:?} failed: {error:#}"))
}

/// Which database a [`TestDatabase`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// An empty database for one test, removed when dropped.
///
/// SQLite databases are files in a temporary folder. PostgreSQL databases
/// are created on the server named by `AGENTDESK_TEST_POSTGRES_URL`
/// (default [`DEFAULT_POSTGRES_URL`]) and dropped again, best effort, on
/// drop.
pub struct TestDatabase {
    url: String,
    kind: DatabaseKind,
    /// The folder holding a SQLite file; deleting it removes the database.
    _folder: Option<TempDir>,
    /// The PostgreSQL database to drop on drop.
    postgres: Option<PostgresDatabase>,
}

/// Server used for PostgreSQL tests when `AGENTDESK_TEST_POSTGRES_URL` is
/// not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long to wait for the PostgreSQL server before calling it down.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty SQLite database file in a new temporary folder.
    pub fn sqlite() -> Self {
        let folder = tempfile::tempdir().expect("create a temporary folder for SQLite");
        let url = format!("sqlite://{}", folder.path().join("agentdesk.db").display());
        Self {
            url,
            kind: DatabaseKind::Sqlite,
            _folder: Some(folder),
            postgres: None,
        }
    }

    /// Creates a SQLite database that already holds the demo catalog.
    ///
    /// Loading the demo takes about a second in a debug build, so it is
    /// loaded once per test run and each database starts as a copy.
    pub fn sqlite_with_demo() -> Self {
        let database = Self::sqlite();
        let path = database.url.trim_start_matches("sqlite://");
        std::fs::write(path, demo_template())
            .unwrap_or_else(|error| panic!("cannot write {path}: {error}"));
        database
    }

    /// Creates a fresh, empty PostgreSQL database `agentdesk_test_<uuid>`.
    ///
    /// Panics when the server cannot be reached, unless
    /// `AGENTDESK_TEST_SKIP_POSTGRES=1`; then it prints why and returns
    /// `None`, and the caller skips the test.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let admin = connect_admin(&admin_url).await?;
        Some(create_postgres_database(admin, admin_url, None).await)
    }

    /// Creates a fresh PostgreSQL database that already contains the demo
    /// catalog, the PostgreSQL twin of [`TestDatabase::sqlite_with_demo`].
    ///
    /// Loading the demo into PostgreSQL takes about a second in a debug
    /// build, so it is loaded once per test run into a template database,
    /// and each database starts as a copy made by
    /// `CREATE DATABASE ... TEMPLATE`.
    /// Returns `None` in the same case as [`TestDatabase::postgres`].
    pub async fn postgres_with_demo() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let admin = connect_admin(&admin_url).await?;
        let template = POSTGRES_DEMO_TEMPLATE
            .get_or_init(|| build_postgres_demo_template(&admin_url))
            .await;
        Some(create_postgres_database(admin, admin_url, Some(template)).await)
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Connects to the database, applying migrations.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error:#}", self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(database) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a tokio runtime, where blocking on another
        // future panics, so the DROP runs on a thread with its own runtime.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime to drop the test database");
            runtime.block_on(drop_postgres_database(&database))
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop a test database: {error}"),
            Err(_) => eprintln!("could not drop a test database: the dropping thread panicked"),
        }
    }
}

/// Returns the bytes of a SQLite database file holding the demo catalog,
/// built on first use.
fn demo_template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        // Callers run inside a tokio runtime, which cannot block on a
        // future, so the template is built on a thread with its own.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime for the demo template");
            runtime.block_on(build_demo_template())
        })
        .join()
        .expect("the demo template builds")
    })
}

async fn build_demo_template() -> Vec<u8> {
    let database = TestDatabase::sqlite();
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    agentdesk::catalog::demo::load(&store, &clock)
        .await
        .expect("the demo catalog loads");
    // Closing the last connection checkpoints the write-ahead log into the
    // main file, so the file alone holds the whole database.
    store.close().await;
    let path = database.url.trim_start_matches("sqlite://");
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// The template database containing the demo catalog, built by the first
/// test that requests it.
static POSTGRES_DEMO_TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Name prefix of demo template databases; a UUID follows it.
const DEMO_TEMPLATE_PREFIX: &str = "agentdesk_demo_";

fn postgres_admin_url() -> String {
    std::env::var("AGENTDESK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string())
}

/// Connects to the admin database, or returns `None` when the server is
/// down and `AGENTDESK_TEST_SKIP_POSTGRES=1`.
async fn connect_admin(admin_url: &str) -> Option<PgConnection> {
    match connect_postgres(admin_url).await {
        Ok(connection) => Some(connection),
        Err(error) if skip_postgres() => {
            eprintln!(
                "skipping a PostgreSQL test: cannot connect to {admin_url} ({error}) and \
                 AGENTDESK_TEST_SKIP_POSTGRES=1"
            );
            None
        }
        Err(error) => panic!(
            "cannot connect to PostgreSQL at {admin_url}: {error}. Start PostgreSQL on \
             127.0.0.1:5432 (user postgres, trust authentication), point \
             AGENTDESK_TEST_POSTGRES_URL at a server where the user may create databases, \
             or set AGENTDESK_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    }
}

/// Creates `agentdesk_test_<uuid>`, empty or as a copy of `template`.
async fn create_postgres_database(
    mut admin: PgConnection,
    admin_url: String,
    template: Option<&str>,
) -> TestDatabase {
    let name = format!("agentdesk_test_{}", uuid::Uuid::new_v4().simple());
    let statement = match template {
        Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name} on {admin_url}: {error}"));
    let _ = admin.close().await;

    TestDatabase {
        url: postgres_database_url(&admin_url, &name),
        kind: DatabaseKind::Postgres,
        _folder: None,
        postgres: Some(PostgresDatabase { admin_url, name }),
    }
}

/// Returns `admin_url` with its database replaced by `name`.
fn postgres_database_url(admin_url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(admin_url)
        .unwrap_or_else(|error| panic!("invalid PostgreSQL URL {admin_url}: {error}"));
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Creates a database containing the demo catalog and returns its name.
///
/// No code runs when the test binary exits, so the template outlives the
/// test run. A connection named after the template stays open until the
/// process ends, and the next run drops every template whose connection
/// is gone.
async fn build_postgres_demo_template(admin_url: &str) -> String {
    let name = format!("{DEMO_TEMPLATE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    claim_until_exit(admin_url, &name).await;

    let mut admin = connect_postgres(admin_url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to PostgreSQL at {admin_url}: {error}"));
    drop_orphaned_demo_templates(&mut admin).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name} on {admin_url}: {error}"));
    let _ = admin.close().await;

    let url = postgres_database_url(admin_url, &name);
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error:#}"));
    let clock: SharedClock = manual_clock();
    agentdesk::catalog::demo::load(&store, &clock)
        .await
        .expect("the demo catalog loads");
    // A copy fails while anyone is connected to its template.
    store.close().await;
    name
}

/// Opens a connection to the admin database with `application_name` set
/// to `template`, and keeps it open on a thread of its own until the
/// process exits, however it exits.
async fn claim_until_exit(admin_url: &str, template: &str) {
    let options = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|error| panic!("invalid PostgreSQL URL {admin_url}: {error}"))
        .application_name(template);
    let (connected, is_connected) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime for the template claim");
        runtime.block_on(async move {
            match PgConnection::connect_with(&options).await {
                Ok(_claim) => {
                    let _ = connected.send(Ok(()));
                    std::future::pending::<()>().await;
                }
                Err(error) => {
                    let _ = connected.send(Err(error.to_string()));
                }
            }
        });
    });
    match is_connected.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("cannot connect to PostgreSQL at {admin_url}: {error}"),
        Err(_) => panic!("the thread claiming the demo template {template} ended early"),
    }
}

/// Drops demo templates whose test run has ended, best effort.
async fn drop_orphaned_demo_templates(admin: &mut PgConnection) {
    let orphans: Vec<String> = match sqlx::query_scalar(
        // pg_stat_activity has a datname column too (the database a session
        // is connected to), so both names are qualified.
        "SELECT d.datname FROM pg_database d WHERE d.datname LIKE $1 AND NOT EXISTS \
         (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = d.datname)",
    )
    .bind(format!("{}%", DEMO_TEMPLATE_PREFIX.replace('_', "\\_")))
    .fetch_all(&mut *admin)
    .await
    {
        Ok(orphans) => orphans,
        Err(error) => {
            eprintln!("could not list old demo templates: {error}");
            return;
        }
    };
    for name in orphans {
        let statement = format!("DROP DATABASE IF EXISTS \"{name}\"");
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *admin)
            .await
        {
            eprintln!("could not drop the old demo template {name}: {error}");
        }
    }
}

fn skip_postgres() -> bool {
    std::env::var("AGENTDESK_TEST_SKIP_POSTGRES").is_ok_and(|value| value.trim() == "1")
}

async fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(admin)
        .await
        .expect("pg_database is readable")
        == 1
}

/// A demo template with a session named after it belongs to a running
/// test process and stays; once that session ends, the template is
/// dropped.
#[tokio::test]
async fn claimed_demo_template_is_kept() {
    let admin_url = postgres_admin_url();
    let Some(mut admin) = connect_admin(&admin_url).await else {
        return;
    };
    let name = format!("{DEMO_TEMPLATE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("the template is created");
    let options = PgConnectOptions::from_str(&admin_url)
        .expect("a valid URL")
        .application_name(&name);
    let claim = PgConnection::connect_with(&options)
        .await
        .expect("the claim connects");
    drop_orphaned_demo_templates(&mut admin).await;
    assert!(
        database_exists(&mut admin, &name).await,
        "a claimed template was dropped"
    );

    claim.close().await.expect("the claim closes");
    // The server removes the ended session from pg_stat_activity shortly
    // after the connection closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while database_exists(&mut admin, &name).await {
        assert!(
            std::time::Instant::now() < deadline,
            "an orphaned template was kept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop_orphaned_demo_templates(&mut admin).await;
    }
}

async fn connect_postgres(url: &str) -> Result<PgConnection, String> {
    agentdesk::install_crypto_provider();
    match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {POSTGRES_CONNECT_TIMEOUT:?}")),
    }
}

async fn drop_postgres_database(database: &PostgresDatabase) -> Result<(), String> {
    let mut admin = connect_postgres(&database.admin_url).await?;
    // FORCE ends connections that a test's pool still holds.
    let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", database.name);
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .map_err(|error| format!("{}: {error}", database.name))?;
    let _ = admin.close().await;
    Ok(())
}

/// Defines each named `async fn NAME(database: TestDatabase)` as two tests,
/// `NAME::sqlite` and `NAME::postgres`, each on a fresh database.
macro_rules! on_both_databases {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::helpers::TestDatabase::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(database) = $crate::helpers::TestDatabase::postgres().await {
                    super::$test(database).await;
                }
            }
        }
    )+};
}
pub(crate) use on_both_databases;

/// Like [`on_both_databases!`], but each database starts with the demo
/// catalog, from [`TestDatabase::sqlite_with_demo`] and
/// [`TestDatabase::postgres_with_demo`].
macro_rules! on_both_databases_with_demo {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::helpers::TestDatabase::sqlite_with_demo()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(database) = $crate::helpers::TestDatabase::postgres_with_demo().await {
                    super::$test(database).await;
                }
            }
        }
    )+};
}
pub(crate) use on_both_databases_with_demo;

/// Returns the path of the `agentdesk` binary Cargo built for these tests.
pub fn agentdesk_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agentdesk"))
}

/// Prefixes of the variables the binary reads; inherited ones are removed
/// so a developer's shell never changes a test.
const PRODUCT_VARIABLE_PREFIXES: &[&str] = &["AGENTDESK_", "OPENAI_", "ANTHROPIC_", "SLACK_"];

/// Runs `agentdesk ARGS` in `workdir` with only `env` among the product's
/// variables (plus `DATABASE_URL` when given there), and waits for it.
pub fn run_agentdesk(workdir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(agentdesk_binary());
    command.current_dir(workdir).args(args);
    for (name, _) in std::env::vars_os() {
        if is_product_variable(&name) {
            command.env_remove(&name);
        }
    }
    command.envs(env.iter().copied());
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", agentdesk_binary().display()))
}

fn is_product_variable(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "DATABASE_URL"
        || name == "RUST_LOG"
        || PRODUCT_VARIABLE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// Formats a finished command for a failure message.
pub fn describe_output(output: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
