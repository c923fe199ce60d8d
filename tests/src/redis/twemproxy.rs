//! twemproxy (Debian `nutcracker` 0.5.0) in front of a set of Redis servers: the reference
//! proxy of the Redis benchmark, and a mirror target ("a twemproxy test pool").
//! It closes the connection on `HELLO 3`, so drive it with RESP2 clients.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::free_port;
use super::resp::RespConn;
use crate::bin::Process;

/// How long nutcracker may take to answer its first PING.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// Attempts at starting on a freshly picked port (see `RedisServer::start`).
const START_ATTEMPTS: usize = 5;

/// A running nutcracker; killed on drop.
pub struct Twemproxy {
    /// Where it accepts Redis clients.
    pub addr: SocketAddr,
    /// Its stats port (JSON on connect), on the same IP.
    pub stats: SocketAddr,
    /// The process (its log is on stderr).
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Twemproxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twemproxy")
            .field("addr", &self.addr)
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl Twemproxy {
    /// Starts nutcracker listening on `listen` (port 0: a free one) with one Redis pool
    /// over `servers` (ketama over murmur, no host ejection, one preconnected connection
    /// per server) and waits until it answers PING.
    pub async fn start(servers: &[SocketAddr], listen: SocketAddr) -> anyhow::Result<Twemproxy> {
        if servers.is_empty() {
            bail!("twemproxy needs at least one server");
        }
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = match listen.port() {
                0 => free_port(listen.ip())?,
                fixed => fixed,
            };
            let addr = SocketAddr::new(listen.ip(), port);
            let stats = SocketAddr::new(listen.ip(), free_port(listen.ip())?);
            match Twemproxy::try_start(servers, addr, stats).await? {
                Ok(proxy) => return Ok(proxy),
                Err(log) => last = log,
            }
        }
        bail!(
            "nutcracker found no free port on {} in {START_ATTEMPTS} attempts; last log:\n{last}",
            listen.ip()
        )
    }

    /// `Ok(Err(log))` when a port was taken, to try again.
    async fn try_start(
        servers: &[SocketAddr],
        addr: SocketAddr,
        stats: SocketAddr,
    ) -> anyhow::Result<Result<Twemproxy, String>> {
        let dir = tempfile::Builder::new()
            .prefix("corridor-twemproxy-")
            .tempdir()?;
        let conf = dir.path().join("nutcracker.yml");
        std::fs::write(&conf, config(servers, addr))
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut process = Process::spawn(
            &format!("twemproxy {addr}"),
            command(&conf, stats, dir.path()),
        )?;
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Ok(mut conn) = RespConn::connect(addr).await
                && conn.command(&["PING"]).await.is_ok()
            {
                break;
            }
            if let Some(status) = process.try_exit()? {
                let log = process.stderr.text();
                if log.contains("Address already in use") {
                    return Ok(Err(log));
                }
                bail!("nutcracker on {addr} exited ({status}):\n{log}");
            }
            if Instant::now() >= deadline {
                bail!(
                    "nutcracker on {addr} did not answer PING within {START_PATIENCE:?}:\n{}",
                    process.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Ok(Twemproxy {
            addr,
            stats,
            process,
            _dir: dir,
        }))
    }
}

fn command(conf: &Path, stats: SocketAddr, dir: &Path) -> Command {
    let mut cmd = Command::new("nutcracker");
    cmd.arg("--conf-file")
        .arg(conf)
        // Its stats port defaults to 0.0.0.0:22222: a fixed port tests must not share.
        .args([
            "--stats-addr",
            &stats.ip().to_string(),
            "--stats-port",
            &stats.port().to_string(),
        ])
        .arg("--pid-file")
        .arg(dir.join("nutcracker.pid"))
        // Debian's default log is a file under /var/log: log where Process captures it.
        .args(["--output", "/dev/stderr"]);
    cmd
}

/// The YAML config: one pool named `corridor`.
fn config(servers: &[SocketAddr], listen: SocketAddr) -> String {
    // Not the README's fnv1a_64: with ketama it put 40 keys `key0`..`key39` all on one of
    // two servers (murmur and md5 split them about evenly).
    let mut yaml = format!(
        "corridor:\n  listen: {listen}\n  redis: true\n  hash: murmur\n  distribution: ketama\n  \
         auto_eject_hosts: false\n  preconnect: true\n  server_connections: 1\n  servers:\n"
    );
    for (i, server) in servers.iter().enumerate() {
        // `ip:port:weight name`; the name keeps ketama's placement independent of ports.
        let host = match server.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        yaml.push_str(&format!("   - {host}:{}:1 server{i}\n", server.port()));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_server_with_a_name() {
        let addr =
            |text: &str| -> SocketAddr { text.parse().unwrap_or_else(|e| panic!("{text}: {e}")) };
        let yaml = config(
            &[addr("127.1.250.1:7000"), addr("127.1.250.2:7000")],
            addr("127.1.250.9:22121"),
        );
        assert!(yaml.contains("  listen: 127.1.250.9:22121\n"), "{yaml}");
        assert!(yaml.contains("   - 127.1.250.1:7000:1 server0\n"), "{yaml}");
        assert!(yaml.contains("   - 127.1.250.2:7000:1 server1\n"), "{yaml}");
    }
}
