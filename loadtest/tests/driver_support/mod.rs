//! What the driver tests share: an echo server whose delay is known to tens of
//! microseconds, and a minimal client for it.
//!
//! The server answers each 8-byte call with the same 8 bytes after a fixed delay, one
//! thread per connection sleeping with the kernel's high-resolution timer (timer slack
//! cut to 1 ns, and ending each sleep early by its median oversleep): tokio's timer
//! fires on a 1 ms grid, which would make a "2 ms" server answer after 2 to 3 ms. It can stall once, as a whole: every call arriving during
//! the stall waits until it ends.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use corridor_load::load::{Answer, CallError, Status, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes of a call and of its answer.
const CALL: usize = 8;

/// One stall of the whole server: once `after` calls arrived, the next starts a window
/// of `duration` in which every call waits until the window ends.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub after: u64,
    pub duration: Duration,
}

#[derive(Debug)]
struct State {
    delay: Duration,
    stall: Option<Stall>,
    calls: AtomicU64,
    stall_end: OnceLock<Instant>,
    /// How early the connections end their sleeps, in nanoseconds: one estimate for
    /// the whole server, so that it settles within the warm-up however many
    /// connections share the calls.
    early: AtomicU64,
}

impl State {
    /// When the call arriving at `now` is answered.
    fn answer_at(&self, now: Instant) -> Instant {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(stall) = self.stall
            && n == stall.after
        {
            let _ = self.stall_end.set(now + stall.duration);
        }
        let start = match self.stall_end.get() {
            Some(end) if *end > now => *end,
            _ => now,
        };
        start + self.delay
    }
}

/// Starts an echo server on 127.0.0.1 answering after `delay`, stalling once if asked.
pub fn echo_server(delay: Duration, stall: Option<Stall>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        delay,
        stall,
        calls: AtomicU64::new(0),
        stall_end: OnceLock::new(),
        early: AtomicU64::new(0),
    });
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let state = state.clone();
            thread::spawn(move || {
                precise_sleep();
                stream.set_nodelay(true).unwrap();
                let mut buf = [0u8; CALL];
                while stream.read_exact(&mut buf).is_ok() {
                    let at = state.answer_at(Instant::now());
                    wait_until(at, &state.early);
                    if stream.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sleeps until `at`, ending the sleep early by `early`, the median oversleep so far
/// (tens of microseconds, more on a loaded machine), so that answers leave on time at
/// the median without spinning a core.
fn wait_until(at: Instant, early: &AtomicU64) {
    let by = Duration::from_nanos(early.load(Ordering::Relaxed));
    let aim = at.checked_sub(by).unwrap_or(at);
    let now = Instant::now();
    if aim > now {
        thread::sleep(aim - now);
        // A step up when still late, down when early: settles at the median. (Two
        // connections stepping at once may lose a step; the estimate only drifts.)
        let by = if Instant::now() > at {
            (by + EARLY_STEP).min(MAX_EARLY)
        } else {
            by.saturating_sub(EARLY_STEP)
        };
        early.store(by.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// How much one answer moves the oversleep estimate.
const EARLY_STEP: Duration = Duration::from_micros(1);
/// The estimate stays below this.
const MAX_EARLY: Duration = Duration::from_micros(500);

fn precise_sleep() {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}

/// The median round trip of an echo server that answers at once, as a plain blocking
/// client calling it `rate` times a second for a second sees it: what the machine's
/// loopback and wake-ups add to any server's delay, whichever client measures it.
pub fn loopback_floor(rate: u32) -> Duration {
    let addr = echo_server(Duration::ZERO, None);
    thread::spawn(move || {
        precise_sleep();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let period = Duration::from_secs(1) / rate;
        let start = Instant::now();
        let mut rtts: Vec<Duration> = (0..rate)
            .map(|i| {
                if let Some(wait) = (start + period * i).checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let sent = Instant::now();
                let mut buf = [0u8; CALL];
                stream.write_all(b"corridor").unwrap();
                stream.read_exact(&mut buf).unwrap();
                sent.elapsed()
            })
            .collect();
        rtts.sort_unstable();
        rtts[rtts.len() / 2]
    })
    .join()
    .unwrap()
}

/// A client of [`echo_server`]: one call in flight per connection.
#[derive(Debug)]
pub struct Echo {
    pub addr: SocketAddr,
}

impl Target for Echo {
    const PROTOCOL: &'static str = "echo";
    type Conn = tokio::sync::Mutex<tokio::net::TcpStream>;

    async fn connect(&self) -> Result<Self::Conn, CallError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|source| CallError::Connect {
                addr: self.addr,
                source,
            })?;
        stream.set_nodelay(true)?;
        Ok(tokio::sync::Mutex::new(stream))
    }

    async fn call(&self, conn: &Self::Conn) -> Result<Answer, CallError> {
        let mut stream = conn.lock().await;
        stream.write_all(b"corridor").await?;
        let mut buf = [0u8; CALL];
        stream.read_exact(&mut buf).await?;
        Ok(Answer {
            status: Status::Name("ok"),
            failed: false,
        })
    }
}

/// Timing tests take this first, so that the tests of one binary (which `cargo test`
/// runs on parallel threads) measure one at a time; nextest runs them in the
/// one-at-a-time group e2e-load (.config/nextest.toml).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most runs of one timing measurement on a starved machine (a VM whose host steals a
/// third of the CPU for minutes starved two runs in a row).
pub const STARVED_RUNS: u32 = 4;

/// The verdict on run `attempt` (of [`STARVED_RUNS`]) of a timing measurement that
/// failed with `failed`; `starved` says why the machine was starved meanwhile, if it
/// clearly was. A run on a machine that was not starved timed the code under test:
/// this panics. A starved run timed the host: it says so, and the caller measures
/// again; after the last such run it says loudly that nothing was measured, which is no
/// verdict on the code.
pub fn failed_run(name: &str, attempt: u32, failed: &str, starved: Option<String>) {
    let Some(why) = starved else {
        panic!("{name}, run {attempt}: {failed}");
    };
    eprintln!("{name}: {failed}, but the machine was starved ({why}): measuring again");
    if attempt == STARVED_RUNS {
        eprintln!(
            "{name}: NOT MEASURED: the machine stayed starved for {STARVED_RUNS} runs, so \
             these runs timed the host, not the code under test"
        );
    }
}

/// The machine's CPU time by use, from /proc/stat (Linux), in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    busy: u64,
    idle: u64,
    steal: u64,
}

impl CpuTimes {
    /// Now; zeros where /proc/stat cannot be read.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let at = |i: usize| f.get(i).copied().unwrap_or_default();
        Self {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3) + at(4),
            steal: at(7),
        }
    }

    /// Why the machine was starved since `earlier`, if it clearly was: a virtual CPU
    /// the host kept for others a tenth of the time or more, or no idle CPU left (other
    /// jobs and this test together used every core).
    pub fn starved_since(&self, earlier: &Self) -> Option<String> {
        let busy = self.busy.saturating_sub(earlier.busy) as f64;
        let idle = self.idle.saturating_sub(earlier.idle) as f64;
        let steal = self.steal.saturating_sub(earlier.steal) as f64;
        let total = busy + idle + steal;
        if total == 0.0 {
            return None;
        }
        let (idle, steal) = (idle / total, steal / total);
        (steal >= 0.10 || idle < 0.10).then(|| {
            format!(
                "steal {:.0} %, idle {:.0} % of the CPU time",
                steal * 100.0,
                idle * 100.0
            )
        })
    }
}
