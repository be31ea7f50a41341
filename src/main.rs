//! The `herald` command: parses the CLI and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use herald::config::Settings;
use herald::keys::{self, Role};
use herald::{app, db, log};

#[derive(Parser)]
#[command(name = "herald", version, about = "Crisis-communication scheduler")]
struct Cli {
    /// A TOML settings file; HERALD_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run the scheduler.
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The publish log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Measure Herald against a local fake network.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The local reply-sentiment scorer.
    Sentiment {
        #[command(subcommand)]
        command: SentimentCommand,
    },
}

#[derive(Subcommand)]
enum SentimentCommand {
    /// Score a labeled file (`label<TAB>text` lines, label negative, neutral
    /// or positive) and print precision/recall/F1 per class; the last line is
    /// `accuracy=0.xx macro_f1=0.xx n=N`.
    Eval { file: PathBuf },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Replies scored per second by the sentiment scorer, and answers
    /// checked per second by the courtesy check, on the texts of FILE
    /// (`label<TAB>text` or one text per line).
    Sentiment {
        file: PathBuf,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Punctuality (spread), throughput (burst) and the client floor, against
    /// a local fake Mastodon; Herald runs as a child `herald serve`.
    Dispatch {
        /// Deliveries planned uniformly over --window-s seconds.
        #[arg(long, default_value_t = 1000)]
        spread: usize,
        #[arg(long, default_value_t = 10)]
        window_s: u64,
        /// Deliveries due in the same second.
        #[arg(long, default_value_t = 10_000)]
        burst: usize,
        /// Publications in flight (Herald's and the floor client's).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Store to measure (default: a SQLite file in a temporary folder).
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the key itself is printed alone on the last line.
    Create {
        #[arg(long)]
        name: String,
        /// viewer, editor, approver, manager or admin.
        #[arg(long)]
        role: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by name; it is refused from its next request on.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Check the hash chain: exit 0 when intact, 1 and the first bad row otherwise.
    Verify,
}

fn bench_sentiment(file: &std::path::Path, rounds: usize) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("herald bench: cannot read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    // `label<TAB>text` lines keep their text; other lines are texts.
    let texts: Vec<String> = text
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, t)| t).to_string())
        .filter(|t| !t.trim().is_empty())
        .collect();
    match herald::bench::sentiment(&texts, rounds) {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herald bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The document needs no settings and no database.
    if let Command::Openapi = cli.command {
        return print_openapi().unwrap_or(ExitCode::FAILURE);
    }
    // Neither does the sentiment evaluation.
    if let Command::Sentiment {
        command: SentimentCommand::Eval { file },
    } = &cli.command
    {
        return sentiment_eval(file);
    }
    if let Command::Bench {
        command: BenchCommand::Sentiment { file, rounds },
    } = &cli.command
    {
        return bench_sentiment(file, *rounds);
    }
    if let Command::Bench {
        command:
            BenchCommand::Dispatch {
                spread,
                window_s,
                burst,
                concurrency,
                database_url,
            },
    } = cli.command
    {
        let options = herald::bench::Options {
            database_url,
            spread,
            spread_window: std::time::Duration::from_secs(window_s),
            burst,
            concurrency,
        };
        return match herald::bench::dispatch(options).await {
            Ok(report) => {
                print!("{}", report.render());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("herald bench: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("herald: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    match run(cli.command, settings).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Openapi => print_openapi(),
        Command::Bench { .. } | Command::Sentiment { .. } => Ok(ExitCode::SUCCESS),
        Command::Serve => {
            let application = app::Application::build(settings).await?;
            application.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            app::open_store(&settings).await?;
            println!(
                "database is up to date ({})",
                settings.database_url.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => {
            let pool = app::open_store(&settings).await?;
            tokio::task::spawn_blocking(move || keys_command(command, &pool)).await?
        }
        Command::Log {
            command: LogCommand::Verify,
        } => {
            let pool = app::open_store(&settings).await?;
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get()?;
                match log::store::verify(&mut conn)? {
                    Ok(n) => {
                        println!("publish log intact: {n} events verified");
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(broken) => {
                        println!(
                            "publish log BROKEN at seq {}: {}",
                            broken.seq, broken.reason
                        );
                        Ok(ExitCode::FAILURE)
                    }
                }
            })
            .await?
        }
    }
}

fn sentiment_eval(file: &std::path::Path) -> ExitCode {
    let input = match std::fs::read_to_string(file) {
        Ok(input) => input,
        Err(error) => {
            eprintln!(
                "herald sentiment eval: cannot read {}: {error}",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    match herald::sentiment::eval::evaluate(&input) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herald sentiment eval: {}: {error}", file.display());
            ExitCode::from(2)
        }
    }
}

fn print_openapi() -> anyhow::Result<ExitCode> {
    print!("{}", herald::http::openapi::document_json());
    Ok(ExitCode::SUCCESS)
}

fn keys_command(command: KeysCommand, pool: &db::DbPool) -> anyhow::Result<ExitCode> {
    let mut conn = pool.get()?;
    match command {
        KeysCommand::Create { name, role } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown role '{role}': use viewer, editor, approver, manager or admin"
                )
            })?;
            keys::validate_name(&name).map_err(|m| anyhow::anyhow!("key name '{name}' {m}"))?;
            let secret = keys::generate();
            let key = keys::store::create(&mut conn, "cli", &name, role, &secret)?;
            println!(
                "created key '{}' with role {} (shown once, store it now):",
                key.name,
                key.role.as_str()
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            println!(
                "{:<24} {:<9} {:<10} {:<20} status",
                "name", "role", "prefix", "created"
            );
            for key in keys::store::list(&mut conn)? {
                let status = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".into(),
                };
                println!(
                    "{:<24} {:<9} {:<10} {:<20} {status}",
                    key.name,
                    key.role.as_str(),
                    key.key_prefix,
                    key.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        KeysCommand::Revoke { name } => {
            let key = keys::store::revoke(&mut conn, "cli", &name)?;
            println!("revoked key '{}'", key.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
