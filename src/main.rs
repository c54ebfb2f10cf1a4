//! The `backstop` command: `serve` runs the API, the job workers and the scheduler in one
//! process (config can switch the workers and the scheduler off); `migrate` applies database
//! migrations and exits; `admin-key` mints an OWNER key on the server. The other commands are
//! the client (`backstop::client`), which speaks to any Backstop server over its public API.

use std::path::PathBuf;
use std::process::ExitCode;

use backstop::client::{self, ClientCommand, Target};
use backstop::config::Config;
use backstop::store::Store;
use backstop::Application;
use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "backstop",
    version,
    about = "Backup control plane for Milvus clusters"
)]
struct Cli {
    /// Config files, applied in order over the embedded defaults (default: config/backstop.toml
    /// when it exists). BACKSTOP_* environment variables override them.
    #[arg(long = "config", global = true, env = "BACKSTOP_CONFIG")]
    config: Vec<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a new org OWNER API key in the configured database and print it once: the way
    /// back in when every OWNER key was lost or deleted. Run it where the service runs.
    AdminKey {
        /// The new key's name.
        #[arg(long, default_value = "recovered-admin")]
        name: String,
    },
    /// Print a shell completion script: `backstop completions bash > /etc/bash_completion.d/backstop`.
    Completions { shell: clap_complete::Shell },
    #[command(flatten)]
    Client(ClientCommand),
}

fn config_files(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let default = PathBuf::from("config/backstop.toml");
    if default.exists() {
        vec![default]
    } else {
        Vec::new()
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,aws=warn,h2=warn,tower=warn,hyper=warn")
    });
    // Colour codes only for a person at a terminal, never in a file or a log collector.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Client(command) => return run_client(command, &cli.target).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "backstop",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        server_side => server_side,
    };
    init_tracing(cli.log_json);
    let config = match Config::load(&config_files(&cli.config)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("backstop: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::AdminKey { name } => admin_key(config, &name).await,
        Command::Client(_) | Command::Completions { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A client command: its output on stdout; one line on stderr and a non-zero exit when it
/// fails (1 refused or the job failed, 2 bad usage, 3 no server, 130 stopped watching).
async fn run_client(command: ClientCommand, target: &Target) -> ExitCode {
    match client::run(command, target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
    let shutdown = backstop::shutdown_signal()?;
    let database = redact_url(&config.database_url());
    let app = Application::build(config, listener).await?;
    let addr = app.local_addr()?;
    if let Some(key) = app.bootstrap_key() {
        // Printed once, to the terminal only (never to the log): it cannot be shown again.
        println!();
        println!(
            "  First start: an org OWNER API key was created. Keep it now; it is not shown again:"
        );
        println!();
        println!("    {key}");
        println!();
        println!("  Try: curl -H 'Authorization: Bearer {key}' http://{addr}/v2/regions");
        println!();
    }
    tracing::info!(%addr, database = %database, "backstop listening");
    app.run_until(shutdown).await?;
    tracing::info!("backstop stopped");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&config.database_url(), 1).await?;
    println!(
        "migrations applied to the {} database",
        store.backend_name()
    );
    store.close().await;
    Ok(())
}

async fn admin_key(config: Config, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&config.database_url(), 1).await?;
    let secret = backstop::mint_owner_key(&store, name).await?;
    store.close().await;
    // To the terminal only, once: it is stored as a hash and cannot be shown again.
    println!("{secret}");
    Ok(())
}

/// Drops a password from a database URL before it is logged.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
