//! The `agentdesk` command line: `serve`, `ask`, `catalog import`,
//! `catalog stats`, `invocations list` and `invocations export`. Each
//! command only wires parts of the library together.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use agentdesk::agent::agents_file::AgentsFile;
use agentdesk::app::{App, Question};
use agentdesk::audit::InvocationsCommand;
use agentdesk::catalog::import::{ImportError, import_paths};
use agentdesk::catalog::{Catalog, demo};
use agentdesk::clock::system_clock;
use agentdesk::config::Settings;
use agentdesk::store::Store;
use agentdesk::store::invocations::Status;
use agentdesk::tools::ToolRegistry;

#[derive(Parser)]
#[command(
    name = "agentdesk",
    version,
    about = "A self-hosted Slack agent that answers from your software catalog"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Slack in Socket Mode and answer until SIGINT or SIGTERM.
    Serve,
    /// Ask one question from the terminal, through the same pipeline as Slack.
    Ask {
        /// The question, for example "Who owns the payments service?".
        question: String,
        /// Agent to ask (default: the built-in agent).
        #[arg(long)]
        agent: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Import and inspect the software catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Audit recorded invocations: list them or export them.
    Invocations {
        #[command(subcommand)]
        command: InvocationsCommand,
    },
    /// Check the agents file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Self-service actions defined in the agents file.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Runs of self-service actions.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// List the actions, their approval policy and executor, and the agents
    /// that may propose them.
    List,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List action runs, newest first.
    List {
        /// Only runs with this status: waiting_for_approval, rejected,
        /// expired, in_progress, success or failure.
        #[arg(long)]
        status: Option<String>,
        /// How many runs to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate an agents file (default: AGENTDESK_CONFIG, else
    /// agentdesk.yaml) and print what each agent can reach.
    Check {
        /// The agents file to check.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Import Backstage YAML and Port JSON files or folders. Importing a
    /// path again updates what changed and removes what disappeared.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print how many entities each blueprint has.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = load_dotenv() {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    if !matches!(cli.command, Command::Serve) {
        restore_default_sigpipe();
    }
    let default_filter = match cli.command {
        Command::Serve => "info",
        // An export streams one long query, which sqlx would report at warn
        // as a slow statement.
        Command::Invocations { .. } => "warn,sqlx::query=error",
        _ => "warn",
    };
    agentdesk::telemetry::init(default_filter);
    agentdesk::install_crypto_provider();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a one-shot command end quietly when its output pipe closes (`agentdesk
/// ask ... | head -1`) instead of panicking on the failed write. `serve` keeps
/// Rust's default of ignoring SIGPIPE, so a closed socket is an error to
/// handle, not a signal that kills the process.
fn restore_default_sigpipe() {
    // SAFETY: this runs first in main, before any thread starts, and only
    // resets a signal disposition to the system default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Loads `.env` from the working directory when there is one.
fn load_dotenv() -> Result<()> {
    // Only the working directory's file: a .env in a parent folder belongs
    // to another project.
    match dotenvy::from_path(".env") {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(error).context("could not read the .env file"),
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    let settings = Settings::from_env()?;
    let clock = system_clock();

    match command {
        Command::Serve => {
            let app = App::start(settings, clock).await?;
            agentdesk::slack::serve::run(app).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask {
            question,
            agent,
            json,
        } => {
            let app = App::start(settings, clock).await?;
            let is_demo = demo::is_loaded(&app.store).await?;
            let answer = app.answer(Question::from_cli(question, agent)).await?;
            let runs = settle_proposals(&app, &answer).await;
            if json {
                let mut object = serde_json::to_value(&answer)?;
                if !runs.is_empty() {
                    object["runs"] = serde_json::to_value(&runs)?;
                }
                println!("{}", serde_json::to_string_pretty(&object)?);
            } else {
                println!("{}\n", answer.answer);
                for run in &runs {
                    println!("{}", describe_run(run));
                }
                if !runs.is_empty() {
                    println!();
                }
                if !answer.tool_calls.is_empty() {
                    println!("Tools used:");
                    for (index, call) in answer.tool_calls.iter().enumerate() {
                        let failed = call
                            .error
                            .as_deref()
                            .map(|error| format!(" (error: {error})"))
                            .unwrap_or_default();
                        println!("  {}. {} {}{failed}", index + 1, call.name, call.arguments);
                    }
                }
                println!(
                    "agent {} ({}) · backend {} · invocation {}",
                    answer.agent, answer.agent_title, answer.backend, answer.invocation_id
                );
                if is_demo {
                    println!(
                        "(answered from the bundled demo catalog; load yours with `agentdesk \
                         catalog import PATH`)"
                    );
                }
            }
            app.store.close().await;
            Ok(if answer.status == Status::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Catalog {
            command: CatalogCommand::Import { paths, json },
        } => {
            let store = Store::connect(&settings.database_url).await?;
            let result = import_paths(&store, &clock, &paths).await;
            store.close().await;
            let report = match result {
                Ok(report) => report,
                Err(error) if error.is::<ImportError>() => {
                    eprint!("{error}");
                    return Ok(ExitCode::FAILURE);
                }
                Err(error) => return Err(error),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Imported {} file(s): {} created, {} updated, {} unchanged, {} removed; {} \
                     blueprint(s).",
                    report.files,
                    report.created,
                    report.updated,
                    report.unchanged,
                    report.removed,
                    report.blueprints
                );
                if report.demo_removed {
                    println!("The bundled demo catalog was removed.");
                }
                if !report.warnings.is_empty() {
                    println!("{} warning(s):", report.warnings.len());
                    for warning in &report.warnings {
                        println!("  - {warning}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Actions {
            command: ActionsCommand::List,
        } => {
            let tools = ToolRegistry::catalog_tools();
            let env = |name: &str| settings.env.get(name);
            let agents_file =
                AgentsFile::load(settings.agents_file.as_deref(), &tools.names(), &env)?;
            print!("{}", agentdesk::actions::describe(&agents_file));
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs {
            command:
                RunsCommand::List {
                    status,
                    limit,
                    json,
                },
        } => {
            let status = status
                .as_deref()
                .map(agentdesk::store::action_runs::RunStatus::parse)
                .transpose()?;
            let store = Store::connect(&settings.database_url).await?;
            let runs = agentdesk::store::action_runs::list(&store, status, limit).await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("No action runs.");
            } else {
                for run in &runs {
                    println!(
                        "{}  {:<22} {:<20} {:<24} requested by {}{}{}",
                        agentdesk::slack::cards::utc_time(run.created_at),
                        run.status.as_str(),
                        run.action_id,
                        run.target_ref.as_deref().unwrap_or("-"),
                        run.requester,
                        run.decider
                            .as_deref()
                            .map(|decider| format!(", decided by {decider}"))
                            .unwrap_or_default(),
                        run.summary
                            .as_deref()
                            .map(|summary| format!(": {summary}"))
                            .unwrap_or_default(),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let path = file.or(settings.agents_file.clone());
            let tools = ToolRegistry::catalog_tools();
            let env = |name: &str| settings.env.get(name);
            let agents_file = match AgentsFile::load(path.as_deref(), &tools.names(), &env) {
                Ok(agents_file) => agents_file,
                Err(error) => {
                    eprintln!("{}", format!("{error:#}").trim_end());
                    return Ok(ExitCode::FAILURE);
                }
            };
            print!(
                "{}",
                agentdesk::agent::agents_file::describe(&agents_file, &tools)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            command: CatalogCommand::Stats { json },
        } => {
            let store = Store::connect(&settings.database_url).await?;
            let stats = Catalog::new(store.clone()).stats().await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else if stats.is_empty() {
                println!(
                    "The catalog is empty. Import files with `agentdesk catalog import PATH`."
                );
            } else {
                let width = stats
                    .iter()
                    .map(|line| line.identifier.len())
                    .max()
                    .unwrap_or(0);
                for line in &stats {
                    let demo = if line.is_demo { "  (demo)" } else { "" };
                    println!(
                        "{:<width$}  {:>7}  {}{demo}",
                        line.identifier, line.entities, line.title
                    );
                }
                let total: i64 = stats.iter().map(|line| line.entities).sum();
                println!("{:<width$}  {:>7}", "total", total);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invocations { command } => {
            agentdesk::audit::run(&settings.database_url, &clock, command).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the automatic actions proposed while answering a question asked
/// from the terminal, and returns every proposed run as it stands. A run
/// that needs approval is left waiting: approval happens on a card in
/// Slack, never from the terminal.
async fn settle_proposals(
    app: &App,
    answer: &agentdesk::app::Answer,
) -> Vec<agentdesk::store::action_runs::ActionRun> {
    use agentdesk::store::action_runs::{self, RunStatus};
    let mut runs = Vec::new();
    for proposal in &answer.proposals {
        let run = match action_runs::get(&app.store, &proposal.run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(error) => {
                eprintln!("could not load run {}: {error:#}", proposal.run_id);
                continue;
            }
        };
        if run.status != RunStatus::InProgress {
            runs.push(run);
            continue;
        }
        match agentdesk::actions::execution::execute(&app.store, &app.clock, &proposal.action, &run)
            .await
        {
            Ok(finished) => runs.push(finished),
            Err(error) => {
                eprintln!("could not record the end of run {}: {error:#}", run.id);
                runs.push(run);
            }
        }
    }
    runs
}

/// One line per proposed run for the terminal.
fn describe_run(run: &agentdesk::store::action_runs::ActionRun) -> String {
    use agentdesk::store::action_runs::RunStatus;
    let target = run
        .target_ref
        .as_deref()
        .map(|target| format!(" for {target}"))
        .unwrap_or_default();
    let head = format!("Action {}{target} (run {})", run.action_id, run.id);
    match run.status {
        RunStatus::WaitingForApproval => format!(
            "{head}: waits for approval. Approval happens on the card the bot posts in Slack; \
             a request made from the terminal has no card, so it expires unless proposed again \
             in Slack."
        ),
        status => {
            let mut line = format!("{head}: {status}");
            if let Some(summary) = &run.summary {
                line.push_str(&format!(" ({summary})"));
            }
            if let Some(link) = &run.link {
                line.push_str(&format!(" {link}"));
            }
            line
        }
    }
}
