//! Redis load: a weighted mix of commands (`get:80,set:20`) on random keys of a key
//! space, pipelined: `--concurrency` commands in flight per connection, replies read in
//! order with the gateway's RESP decoder.

mod conn;

use std::{fmt, sync::Arc};

use bytes::BytesMut;
use corridor_gateway::redis::resp::{Value, encode_command};
use rand::Rng;

pub use self::conn::RedisConn;
use super::{Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target};

/// The mix unless told: reads and writes alike.
pub const DEFAULT_MIX: &str = "get:50,set:50";
/// Keys unless told: as redis-benchmark's `-r 10000`, enough for spread, few enough to
/// stay in any server's memory.
pub const DEFAULT_KEYSPACE: u64 = 10_000;
/// Value size unless told: redis-benchmark's default `-d 3`.
pub const DEFAULT_VALUE_SIZE: usize = 3;
/// Keys per MGET unless told: redis-benchmark's MSET/MGET use 10.
pub const DEFAULT_MGET_KEYS: usize = 10;
/// Prefix of the keys GET, SET, DEL and MGET use.
pub const KEY_PREFIX: &str = "key:";
/// Prefix of the keys INCR uses: apart from `key:`, whose values are not integers.
pub const COUNTER_PREFIX: &str = "counter:";

/// Flags of `corridor-load redis`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Server or proxy address, host:port.
    #[arg(long)]
    pub target: String,
    /// Commands and their weights: get, set, incr, del, mget, ping.
    #[arg(long, default_value = DEFAULT_MIX, value_parser = parse_mix)]
    pub command_mix: Mix,
    /// Keys are `key:0` to `key:N-1` (INCR: `counter:0` to `counter:N-1`), picked at random.
    #[arg(long, default_value_t = DEFAULT_KEYSPACE, value_parser = clap::value_parser!(u64).range(1..))]
    pub keyspace: u64,
    /// Bytes of every SET value.
    #[arg(long, default_value_t = DEFAULT_VALUE_SIZE)]
    pub value_size: usize,
    /// Keys of every MGET.
    #[arg(long, default_value_t = DEFAULT_MGET_KEYS)]
    pub mget_keys: usize,
    /// Commands in flight per connection (pipelined).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// A command of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET key`.
    Get,
    /// `SET key value`.
    Set,
    /// `INCR counter`.
    Incr,
    /// `DEL key`.
    Del,
    /// `MGET key key ...`.
    Mget,
    /// `PING`.
    Ping,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "get" => Self::Get,
            "set" => Self::Set,
            "incr" => Self::Incr,
            "del" => Self::Del,
            "mget" => Self::Mget,
            "ping" => Self::Ping,
            _ => return None,
        })
    }
}

/// Commands with their weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    ops: Vec<(Op, u32)>,
    total: u32,
}

impl Mix {
    /// The command whose share of the total weight holds `roll` (below the total).
    fn pick(&self, mut roll: u32) -> Op {
        for &(op, weight) in &self.ops {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        // Unreachable for roll < total; the last command is as good as any.
        self.ops.last().map_or(Op::Ping, |&(op, _)| op)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ops
            .iter()
            .map(|(op, w)| format!("{op:?}:{w}").to_ascii_lowercase())
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `get:80,set:20` (a command without a weight weighs 1).
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut ops = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once(':').unwrap_or((part, "1"));
        let op = Op::parse(name.trim()).ok_or_else(|| {
            format!("unknown command {name:?} in {s:?} (get, set, incr, del, mget, ping)")
        })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("weight {weight:?} of {name} is not a whole number"))?;
        if weight > 0 {
            ops.push((op, weight));
        }
    }
    let total = ops
        .iter()
        .try_fold(0u32, |sum, &(_, w)| sum.checked_add(w))
        .ok_or_else(|| format!("the weights of {s:?} add up past {}", u32::MAX))?;
    if total == 0 {
        return Err(format!("{s:?} has no command with a weight above 0"));
    }
    Ok(Mix { ops, total })
}

/// Commands of a mix on a key space.
#[derive(Debug)]
pub struct RedisTarget {
    addr: std::net::SocketAddr,
    source: Option<std::net::IpAddr>,
    mix: Mix,
    keyspace: u64,
    value: Vec<u8>,
    mget_keys: usize,
}

impl RedisTarget {
    /// Connections come from `source` (see `--source`).
    pub fn from_source(self, source: Option<std::net::IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// A target sending `mix` to `addr` on `keyspace` keys, SET values of `value_size`
    /// bytes and MGETs of `mget_keys` keys.
    pub fn new(
        addr: std::net::SocketAddr,
        mix: Mix,
        keyspace: u64,
        value_size: usize,
        mget_keys: usize,
    ) -> Self {
        Self {
            addr,
            source: None,
            mix,
            keyspace: keyspace.max(1),
            value: vec![b'x'; value_size],
            mget_keys: mget_keys.max(1),
        }
    }

    /// The RESP bytes of one command of the mix, its keys drawn with `rng`.
    pub fn command(&self, rng: &mut impl Rng) -> (Op, BytesMut) {
        let op = self.mix.pick(rng.random_range(0..self.mix.total));
        let mut key = |prefix: &str| format!("{prefix}{}", rng.random_range(0..self.keyspace));
        let mut out = BytesMut::new();
        match op {
            Op::Get => encode_command(&[b"GET".as_slice(), key(KEY_PREFIX).as_bytes()], &mut out),
            Op::Set => encode_command(
                &[b"SET".as_slice(), key(KEY_PREFIX).as_bytes(), &self.value],
                &mut out,
            ),
            Op::Incr => encode_command(
                &[b"INCR".as_slice(), key(COUNTER_PREFIX).as_bytes()],
                &mut out,
            ),
            Op::Del => encode_command(&[b"DEL".as_slice(), key(KEY_PREFIX).as_bytes()], &mut out),
            Op::Mget => {
                let mut args = vec![b"MGET".to_vec()];
                args.extend((0..self.mget_keys).map(|_| key(KEY_PREFIX).into_bytes()));
                encode_command(&args, &mut out);
            }
            Op::Ping => encode_command(&[b"PING"], &mut out),
        }
        (op, out)
    }
}

/// How the report counts a reply: `OK` for any answer, the error's code (`ERR`,
/// `WRONGTYPE`, `MOVED`, ...) for an error reply, which is a status error.
pub fn reply_answer(reply: &Value) -> Answer {
    let code = match reply {
        Value::Error(text) | Value::BulkError(text) => error_code(text),
        _ => {
            return Answer {
                status: Status::Name("OK"),
                failed: false,
            };
        }
    };
    Answer {
        status: Status::Name(code),
        failed: true,
    }
}

/// Redis's error codes as static names; others count as `ERROR`.
fn error_code(text: &[u8]) -> &'static str {
    const CODES: [&str; 17] = [
        "ERR",
        "WRONGTYPE",
        "MOVED",
        "ASK",
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
        "LOADING",
        "BUSY",
        "READONLY",
        "OOM",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "CROSSSLOT",
        "MASTERDOWN",
        "EXECABORT",
        "NOSCRIPT",
    ];
    let word = text.split(|&b| b == b' ').next().unwrap_or_default();
    CODES
        .into_iter()
        .find(|code| code.as_bytes() == word)
        .unwrap_or("ERROR")
}

impl Target for RedisTarget {
    const PROTOCOL: &'static str = "redis";
    type Conn = RedisConn;

    async fn connect(&self) -> Result<RedisConn, CallError> {
        RedisConn::connect(self.addr, self.source).await
    }

    async fn call(&self, conn: &RedisConn) -> Result<Answer, CallError> {
        let (_, command) = self.command(&mut rand::rng());
        let reply = conn.call(&command).await?;
        Ok(reply_answer(&reply))
    }
}

/// Runs `corridor-load redis`.
pub async fn run(args: &RedisArgs) -> Result<RunResult, LoadError> {
    let addr = super::resolve(&args.target).await?;
    let target = RedisTarget::new(
        addr,
        args.command_mix.clone(),
        args.keyspace,
        args.value_size,
        args.mget_keys,
    )
    .from_source(args.load.source);
    Ok(super::run(Arc::new(target), &args.load, args.concurrency).await)
}

#[cfg(test)]
mod tests;
