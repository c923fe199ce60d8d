//! corridor-dns: the cluster DNS that answers meshed names with the gateway address.
//!
//! Not built yet (issue "corridor-dns"); the binary exists so the workspace layout and the
//! command names are final. It refuses to start rather than pretend to serve.

use clap::Parser;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "corridor-dns", about = "CoreDNS-compatible cluster DNS (not implemented yet)")]
struct Flags {
    /// Controller xDS address.
    #[arg(long)]
    xds: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let _flags = Flags::parse();
    anyhow::bail!("corridor-dns is not implemented yet; see the project's open issues")
}
