//! corridor-load: the load-test harness SREs run against the mesh (HTTP, gRPC, Dubbo2,
//! Thrift, Redis, DNS; open or closed loop, one report), and `serve`, an HTTP, gRPC,
//! Dubbo or Thrift echo backend.

use std::{io::Write, net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use corridor_load::{
    load::{
        self, Plan, Report, capacity::SearchArgs, dns::DnsArgs, dubbo::DubboArgs, grpc::GrpcArgs,
        http::HttpArgs, redis::RedisArgs, thrift::ThriftArgs,
    },
    serve::{self, EchoConfig, Stall},
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
    #[command(flatten)]
    Load(LoadCommand),
    /// Finds the highest open-loop rate that meets a latency objective (search flags
    /// first, then a load command: `capacity --slo 'p99<5ms' http --target ...`).
    Capacity(CapacityArgs),
    /// An echo backend: answers every call with what it carried.
    Serve(ServeArgs),
}

/// Flags of `corridor-load capacity`: the search's, then a load command's.
#[derive(Debug, clap::Args)]
struct CapacityArgs {
    #[command(flatten)]
    search: SearchArgs,
    #[command(subcommand)]
    load: LoadCommand,
}

/// The load commands, one per protocol.
#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// HTTP load: one request (method, headers, body) over HTTP/1.1 or h2c.
    Http(HttpArgs),
    /// gRPC load: unary calls of one method with a raw protobuf payload.
    Grpc(GrpcArgs),
    /// Dubbo2 (Hessian2) load: one method with a string argument.
    Dubbo(DubboArgs),
    /// Thrift load: one method whose args struct holds a string (field 1).
    Thrift(ThriftArgs),
    /// Redis load: a mix of commands on random keys, pipelined.
    Redis(RedisArgs),
    /// DNS load: queries for a list of names over UDP or TCP.
    Dns(DnsArgs),
}

impl LoadCommand {
    /// Runs the load as a plain run (or `--compare`), or as a capacity `search`.
    fn drive(self, search: Option<&SearchArgs>) -> anyhow::Result<()> {
        match self {
            Self::Http(args) => drive(args, search),
            Self::Grpc(args) => drive(args, search),
            Self::Dubbo(args) => drive(args, search),
            Self::Thrift(args) => drive(args, search),
            Self::Redis(args) => drive(args, search),
            Self::Dns(args) => drive(args, search),
        }
    }
}

/// Flags of `corridor-load serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The protocol to speak.
    protocol: serve::Protocol,
    /// Address to listen on.
    #[arg(long, default_value = serve::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Names the backend: Dubbo/Thrift answers are "{name}: {arg}", HTTP answers carry
    /// it in x-backend.
    #[arg(long)]
    name: Option<String>,
    /// Delay before every answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Uniformly random extra delay per call, up to this.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Stall the whole backend once for this long: every call arriving meanwhile waits.
    #[arg(long, value_parser = humantime::parse_duration)]
    stall: Option<Duration>,
    /// Calls answered before the stall.
    #[arg(
        long,
        alias = "delay-once-after",
        default_value_t = 0,
        requires = "stall"
    )]
    stall_after: u64,
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
        Command::Load(command) => command.drive(None),
        Command::Capacity(args) => args.load.drive(Some(&args.search)),
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

/// Runs `plan` on `--threads` workers (a capacity search with `search`), prints the
/// report, writes `--html`, and fails with `--fail-on-error` when any call failed.
fn drive<P: Plan>(plan: P, search: Option<&SearchArgs>) -> anyhow::Result<()> {
    let args = plan.load().clone();
    if search.is_some() && (args.rate > 0 || args.compare.is_some()) {
        anyhow::bail!(
            "capacity sets the rate itself and compares nothing: drop --rate and --compare"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        match search {
            Some(search) => load::capacity::search(&plan, search)
                .await
                .map(Report::Capacity),
            None => load::plan::execute(&plan).await,
        }
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    let out = if args.json {
        report.json_line()
    } else {
        report.text()
    };
    // A reader that went away (`| head`) is not an error of the run.
    if let Err(e) = writeln!(std::io::stdout(), "{out}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    if let Some(path) = &args.html {
        load::html::write(path, &report.json())?;
    }
    let errors = report.errors();
    if let Some(why) = report.first_error() {
        eprintln!("{errors} calls failed; the first: {why}");
    }
    if errors > 0 && args.fail_on_error {
        anyhow::bail!("{errors} calls failed");
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
        stall: args.stall.map(|duration| Stall {
            after: args.stall_after,
            duration,
        }),
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
