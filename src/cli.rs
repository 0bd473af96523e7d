//! The command line (SPEC 5b).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "dialerd", version, about = "Outbound campaign dialer daemon")]
pub struct Cli {
    /// Settings file layered over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: apply migrations, serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the main job end to end on the local database with simulated calls.
    Demo(crate::demo::DemoArgs),
    /// Load a CSV file of contacts into a campaign, with a progress bar.
    Import(crate::import::command::ImportArgs),
    /// When campaigns finish with N lines, simulated on the engine's rules (reads only).
    Forecast(crate::forecast::command::ForecastArgs),
    /// Do-not-call lists.
    #[command(subcommand)]
    Dnc(DncCommand),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load and validate the settings, print them (password hidden), and exit.
    CheckConfig,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Create {
        name: String,
        /// Most simultaneous calls for the organization (1 to 10000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10000))]
        concurrency_limit: i32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once; only its hash is stored.
    Create {
        /// Organization id the token belongs to.
        #[arg(long)]
        org: uuid::Uuid,
        /// Comma-separated: campaigns:read, campaigns:manage, concurrency:read, concurrency:manage.
        #[arg(long)]
        scopes: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DncCommand {
    /// Load a file of numbers into a do-not-call list (made when missing).
    Load(crate::import::dnc::DncLoadArgs),
}
