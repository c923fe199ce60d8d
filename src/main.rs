//! `corridor`: the umbrella command. `corridor up` runs the example mesh on one machine.

mod demo;
mod up;

use clap::{Parser, Subcommand};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "corridor", version, about = "Corridor, a centralized east-west gateway for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the example mesh locally: demo backends, controller and gateway in one process.
    Up(up::UpArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
    }
}
