//! Real Redis peers (Debian `redis-server`, `redis-tools`, `nutcracker`), installed by
//! `tests/run`:
//!
//! - [`RedisServer`]: one `redis-server` on a fresh loopback address and a free port, no
//!   persistence, optionally with a password, ACL users, cluster mode or as a replica;
//! - [`cluster`]: a Redis Cluster built with `redis-cli --cluster create`, and manual slot
//!   migration (for MOVED/ASK);
//! - [`slots`]: key hash slots and the `CLUSTER SLOTS` map;
//! - [`cli`]: `redis-cli` and `redis-benchmark` runners;
//! - [`resp`]: a small RESP2/RESP3 client for raw bytes;
//! - [`twemproxy`]: nutcracker in front of a set of servers.

pub mod cli;
pub mod cluster;
pub mod resp;
pub mod slots;
pub mod twemproxy;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use cli::{BenchResult, CliOutput, RedisCli, redis_benchmark, redis_cli};
pub use cluster::{Migration, RedisCluster};
pub use resp::{Resp, RespConn};
pub use slots::{SLOTS, SlotRange, key_slot};
pub use twemproxy::Twemproxy;

use crate::bin::Process;
use crate::mesh::{Mesh, Upstream};

/// How long a server may take to answer its first PING.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// Attempts at starting on a freshly picked port: another process may take the port
/// between our probe and redis-server's bind.
const START_ATTEMPTS: usize = 5;

/// `cluster-node-timeout`, a third of the default 15 s: nodes ping each other at least
/// every half timeout, and a replica appears in its peers' `CLUSTER SLOTS` only once a
/// ping has told them its replication offset. Still long enough that a busy test machine
/// does not get nodes marked as failed.
const CLUSTER_NODE_TIMEOUT_MS: &str = "5000";

/// How a [`RedisServer`] is configured beyond its address.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`: the default user's password.
    pub password: Option<String>,
    /// ACL users with a password and full access (`user <name> on ><password> ~* &* +@all`).
    pub users: Vec<(String, String)>,
    /// `cluster-enabled yes`, with the node config in the server's temp dir.
    pub cluster: bool,
    /// `replicaof <ip> <port>` (with `masterauth` set to [`RedisOptions::password`]).
    pub replica_of: Option<SocketAddr>,
    /// Further command-line configuration, e.g. `["--maxclients", "100"]`.
    pub extra: Vec<String>,
}

impl RedisOptions {
    /// No password, standalone, no extra settings.
    pub fn new() -> RedisOptions {
        RedisOptions::default()
    }

    /// Requires `AUTH <password>` (also used as `masterauth`, and by the harness itself).
    pub fn password(mut self, password: &str) -> RedisOptions {
        self.password = Some(password.to_string());
        self
    }

    /// Adds an ACL user with full access.
    pub fn user(mut self, name: &str, password: &str) -> RedisOptions {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Cluster mode.
    pub fn cluster(mut self) -> RedisOptions {
        self.cluster = true;
        self
    }

    /// Replicates `primary`.
    pub fn replica_of(mut self, primary: SocketAddr) -> RedisOptions {
        self.replica_of = Some(primary);
        self
    }

    /// One more command-line setting (`--name`, then its values as further args).
    pub fn arg(mut self, arg: &str) -> RedisOptions {
        self.extra.push(arg.to_string());
        self
    }
}

/// A running `redis-server` (logging to its captured stdout); killed on drop.
pub struct RedisServer {
    /// A short name, unique within a mesh (`redis-<last octet>`), usable as a pod name part.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The cluster bus port, in cluster mode.
    pub bus_port: Option<u16>,
    /// How it was configured.
    pub options: RedisOptions,
    /// The server process.
    pub process: Process,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl RedisServer {
    /// Starts `redis-server` on `addr` (port 0: a free port on that IP, retried if taken
    /// meanwhile) and waits until it answers PING.
    pub async fn start(addr: SocketAddr, options: RedisOptions) -> anyhow::Result<RedisServer> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = match addr.port() {
                0 => free_port(addr.ip())?,
                fixed => fixed,
            };
            let bus_port = if options.cluster {
                Some(free_port(addr.ip())?)
            } else {
                None
            };
            match RedisServer::try_start(SocketAddr::new(addr.ip(), port), bus_port, &options).await
            {
                Ok(server) => return Ok(server),
                Err(StartError::PortTaken(log)) => last = Some(log),
                Err(StartError::Other(err)) => return Err(err),
            }
        }
        bail!(
            "redis-server found no free port on {} in {START_ATTEMPTS} attempts; last log:\n{}",
            addr.ip(),
            last.unwrap_or_default()
        )
    }

    /// Starts `count` servers on distinct loopback addresses of `mesh`, all on the port the
    /// first one got (one EndpointSlice port lists them all, as in a cluster); panics on
    /// failure.
    pub async fn start_many(
        mesh: &mut Mesh,
        count: usize,
        options: &RedisOptions,
    ) -> Vec<RedisServer> {
        let mut servers: Vec<RedisServer> = Vec::new();
        for _ in 0..count {
            let port = servers.first().map_or(0, |s| s.addr.port());
            let server = RedisServer::start(mesh.upstream_addr(port), options.clone())
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            servers.push(server);
        }
        servers
    }

    async fn try_start(
        addr: SocketAddr,
        bus_port: Option<u16>,
        options: &RedisOptions,
    ) -> Result<RedisServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("corridor-redis-")
            .tempdir()
            .context("creating a temp dir for redis-server")?;
        let cmd = server_command(addr, bus_port, options, dir.path());
        let name = match addr.ip() {
            IpAddr::V4(ip) => format!("redis-{}", ip.octets()[3]),
            IpAddr::V6(_) => format!("redis-{}", addr.port()),
        };
        let mut process = Process::spawn(&format!("{name} {addr}"), cmd)?;
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            // Any reply will do: with a password the server answers -NOAUTH, and it answers.
            if let Ok(mut conn) = RespConn::connect(addr).await
                && conn.command(&["PING"]).await.is_ok()
            {
                break;
            }
            if let Some(status) = process.try_exit()? {
                let log = process.stdout.text();
                if log.contains("Address already in use") {
                    return Err(StartError::PortTaken(log));
                }
                return Err(anyhow::anyhow!(
                    "redis-server on {addr} exited ({status}):\n{log}\n{}",
                    process.stderr.text()
                )
                .into());
            }
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!(
                    "redis-server on {addr} did not answer PING within {START_PATIENCE:?}"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(RedisServer {
            name,
            addr,
            bus_port,
            options: options.clone(),
            process,
            dir,
        })
    }

    /// The server's working directory (node config, logs of a crash).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `redis-cli` against this server, with its password if it has one.
    pub fn cli(&self) -> RedisCli {
        let cli = RedisCli::new(self.addr);
        match &self.options.password {
            Some(password) => cli.password(password),
            None => cli,
        }
    }

    /// A RESP connection, authenticated with the server's password if it has one.
    pub async fn connect(&self) -> anyhow::Result<RespConn> {
        RespConn::connect_auth(self.addr, None, self.options.password.as_deref()).await
    }

    /// Runs one command on a fresh authenticated connection (the harness's own view of the
    /// server, e.g. to check what a mirror received).
    pub async fn command(&self, args: &[&str]) -> anyhow::Result<Resp> {
        self.connect().await?.command(args).await
    }

    /// How many times each command has been called (`INFO commandstats`), lowercase names
    /// (`get`, `set`, `cluster|slots`); the harness's own commands count too.
    pub async fn command_calls(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(parse_stats(
            &self.info("commandstats").await?,
            "cmdstat_",
            "calls=",
        ))
    }

    /// How many error replies of each kind the server sent (`INFO errorstats`), by their
    /// first word (`ERR`, `WRONGTYPE`, `NOAUTH`, ...). Commands redis-server rejects
    /// before running them (unknown commands and subcommands) show up here only.
    pub async fn error_counts(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(parse_stats(
            &self.info("errorstats").await?,
            "errorstat_",
            "count=",
        ))
    }

    /// The text of `INFO <section>`.
    pub async fn info(&self, section: &str) -> anyhow::Result<String> {
        let reply = self.command(&["INFO", section]).await?;
        reply
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("INFO {section} answered {reply:?}"))
    }
}

impl Upstream for RedisServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

enum StartError {
    /// The port was taken: the server's log, for the error if every attempt fails.
    PortTaken(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(err: anyhow::Error) -> StartError {
        StartError::Other(err)
    }
}

fn server_command(
    addr: SocketAddr,
    bus_port: Option<u16>,
    options: &RedisOptions,
    dir: &Path,
) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &addr.port().to_string(),
        "--bind",
        &addr.ip().to_string(),
    ])
    // No persistence and no daemon: the test owns the process and its temp dir.
    .args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ])
    .args(["--protected-mode", "no"])
    // A replica's first sync waits 5 s by default for more replicas to share it.
    .args(["--repl-diskless-sync-delay", "0"])
    // A cluster node lists a replica in CLUSTER SLOTS only once its replication offset
    // is past 0, which on an idle master takes its first ping to replicas (10 s).
    .args(["--repl-ping-replica-period", "1"])
    .arg("--dir")
    .arg(dir);
    if let Some(password) = &options.password {
        cmd.args(["--requirepass", password, "--masterauth", password]);
    }
    for (name, password) in &options.users {
        cmd.args([
            "--user",
            name,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ]);
    }
    if let Some(bus_port) = bus_port {
        cmd.args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args(["--cluster-port", &bus_port.to_string()])
        .args(["--cluster-node-timeout", CLUSTER_NODE_TIMEOUT_MS])
        // The address peers and clients are told about is the one we bound.
        .args(["--cluster-announce-ip", &addr.ip().to_string()]);
    }
    if let Some(primary) = options.replica_of {
        cmd.args([
            "--replicaof",
            &primary.ip().to_string(),
            &primary.port().to_string(),
        ]);
    }
    cmd.args(&options.extra);
    cmd
}

/// A port that was free on `ip` a moment ago.
pub fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    let probe = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(probe.local_addr()?.port())
}

/// `<prefix><name>:<field><n>,...` lines → `{name: n}`, e.g. `cmdstat_get:calls=3,usec=...`
/// → `{"get": 3}`.
fn parse_stats(text: &str, prefix: &str, field: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix(prefix)?.split_once(':')?;
            let value = fields.split(',').find_map(|f| f.strip_prefix(field))?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_stats_give_counts_per_name() {
        let text = "# Commandstats\r\ncmdstat_get:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=1\r\n\
                    cmdstat_cluster|slots:calls=12,usec=5\r\n";
        let calls = parse_stats(text, "cmdstat_", "calls=");
        assert_eq!(calls.get("get"), Some(&3));
        assert_eq!(calls.get("cluster|slots"), Some(&12));
        assert_eq!(calls.len(), 2);
        let errors = parse_stats(
            "# Errorstats\r\nerrorstat_ERR:count=2\r\nerrorstat_NOAUTH:count=1\r\n",
            "errorstat_",
            "count=",
        );
        assert_eq!(errors.get("ERR"), Some(&2));
        assert_eq!(errors.get("NOAUTH"), Some(&1));
    }
}
