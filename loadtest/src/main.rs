//! corridor-load: the load-test harness SREs run against the mesh (HTTP/1.1, Dubbo2,
//! Thrift; open or closed loop, one report), and `serve`, a Dubbo or Thrift echo backend.

use std::{future::Future, io::Write, net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use corridor_load::{
    load::{
        self, LoadArgs, LoadError, RunResult, dubbo::DubboArgs, http::HttpArgs, thrift::ThriftArgs,
    },
    serve::{self, EchoConfig},
};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "corridor-load",
    about = "Load-test harness for Corridor and its peers"
)]
struct Flags {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HTTP/1.1 keep-alive load against one URL.
    Http(HttpArgs),
    /// Dubbo2 (Hessian2) load: one method with a string argument.
    Dubbo(DubboArgs),
    /// Thrift load: one method whose args struct holds a string (field 1).
    Thrift(ThriftArgs),
    /// An echo backend: answers every call with its first string argument.
    Serve(ServeArgs),
}

/// Flags of `corridor-load serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The protocol to speak.
    protocol: serve::Protocol,
    /// Address to listen on.
    #[arg(long, default_value = serve::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Prefix of every answer: "{name}: {arg}".
    #[arg(long)]
    name: Option<String>,
    /// Delay before every answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Uniformly random extra delay per call, up to this.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Share of calls (0.0 to 1.0) answered with the protocol's error.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    error_rate: f64,
    /// Print one line per received call on stdout.
    #[arg(long)]
    log_calls: bool,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{f} is outside 0.0 to 1.0"))
    }
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    match flags.command {
        Command::Http(args) => drive(&args.load, load::http::run(&args)),
        Command::Dubbo(args) => drive(&args.load, load::dubbo::run(&args)),
        Command::Thrift(args) => drive(&args.load, load::thrift::run(&args)),
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(args))
        }
    }
}

/// Runs a load on `--threads` workers, prints the report, and fails with
/// `--fail-on-error` when any call failed.
fn drive(
    args: &LoadArgs,
    run: impl Future<Output = Result<RunResult, LoadError>>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let result = rt.block_on(run)?;
    println!("{}", load::report::render(&result, args.json)?);
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Some(why) = &result.first_error {
        eprintln!("{} calls failed; the first: {why}", result.errors);
    }
    if result.errors > 0 && args.fail_on_error {
        anyhow::bail!("{} requests failed", result.errors);
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = EchoConfig {
        protocol: args.protocol,
        listen: args.listen,
        name: args.name,
        delay: args.delay,
        jitter: args.jitter,
        error_rate: args.error_rate,
        log_calls: args.log_calls,
    };
    let echo = serve::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "corridor-load serve bound {}={}",
            args.protocol.name(),
            echo.addr()
        )?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
    }
    echo.shutdown().await;
    Ok(())
}
