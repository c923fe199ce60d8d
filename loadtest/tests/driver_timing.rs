//! The driver's timing, measured against a local echo server: the open loop keeps its
//! rate, latency is timed from each call's intended send time (a stall is charged to
//! every call it held), and the closed loop shows the calls a stall kept it from
//! sending. These are the acceptance figures of issue 7.
//!
//! The bounds are the (rate within 2 %, p50 within 10 %), on a loaded 2-core
//! virtual machine; a server's median is judged less the loopback round trip a plain
//! blocking client measures beside it. A run during which the machine was clearly
//! starved of CPU measured the machine, not the driver: such a run is taken again (up
//! to four runs), and says so on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver_support;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use corridor_load::load::{self, LoadArgs, ProgressMode, RunResult};
use driver_support::{
    CpuTimes, Echo, STARVED_RUNS, Stall, echo_server, failed_run, loopback_floor, serial,
};

/// Calls leaving this late at the median, with lanes free, mean the generator itself
/// was short of CPU (on a quiet machine the pacer's lead keeps it to a few µs).
const STARVED_SENDING: Duration = Duration::from_micros(50);

fn open(rate: u64, duration: Duration, connections: usize) -> LoadArgs {
    LoadArgs {
        rate,
        connections,
        duration,
        warmup: Duration::from_millis(500),
        progress: ProgressMode::Never,
        ..LoadArgs::default()
    }
}

/// Runs `args` on one worker thread, as `corridor-load` does by default.
fn run(addr: SocketAddr, args: &LoadArgs) -> RunResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(load::run(Arc::new(Echo { addr }), args, 1))
}

/// Runs `args` and checks the result with `check`. When the check fails and the
/// machine was clearly starved meanwhile (the host stole the CPU, other jobs used every
/// core, or the generator's own sends were late), the run measured the machine rather
/// than the driver: it is measured again, up to [`STARVED_RUNS`] runs in all. A failed
/// run on a machine that was not starved fails at once; when every run was starved,
/// the driver could not be measured here, which is said loudly and is no verdict on it.
fn measure(
    name: &str,
    addr: SocketAddr,
    args: &LoadArgs,
    check: impl Fn(&RunResult) -> Result<(), String>,
) {
    for attempt in 1..=STARVED_RUNS {
        let before = CpuTimes::now();
        let result = run(addr, args);
        report(name, &result);
        let Err(failed) = check(&result) else {
            return;
        };
        let starved = CpuTimes::now().starved_since(&before).or_else(|| {
            let late = result.lateness?.p50;
            (late > STARVED_SENDING).then(|| format!("calls left {late:?} late at the median"))
        });
        failed_run(name, attempt, &failed, starved);
    }
}

fn report(name: &str, r: &RunResult) {
    eprintln!(
        "{name}: sent {} completed {} errors {} elapsed {:?} achieved {:.1}/s p50 {:?} p99 {:?} max {:?} sending {:?}",
        r.sent,
        r.completed(),
        r.errors,
        r.elapsed,
        r.achieved_rate(),
        r.percentile(50.0),
        r.percentile(99.0),
        Duration::from_micros(r.latency().max()),
        r.lateness,
    );
}

fn assert_rate(rate: u64, connections: usize) {
    let _serial = serial();
    let addr = echo_server(Duration::ZERO, None);
    let duration = Duration::from_secs(3);
    measure(
        &format!("{rate}/s"),
        addr,
        &open(rate, duration, connections),
        |r| {
            if r.errors > 0 {
                return Err(format!(
                    "{} errors, the first: {:?}",
                    r.errors, r.first_error
                ));
            }
            // Every call due in the measured part was sent...
            if r.sent != rate * duration.as_secs() {
                return Err(format!("sent {} calls in {duration:?}", r.sent));
            }
            // ...and they all ended in about that time.
            let achieved = r.achieved_rate();
            let off = (achieved - rate as f64).abs() / rate as f64;
            if off > 0.02 {
                return Err(format!(
                    "achieved {achieved:.1}/s ({:.2} % off)",
                    off * 100.0
                ));
            }
            Ok(())
        },
    );
}

#[test]
fn open_loop_keeps_1k_calls_per_second() {
    assert_rate(1_000, 10);
}

#[test]
fn open_loop_keeps_10k_calls_per_second() {
    assert_rate(10_000, 50);
}

#[test]
fn p50_of_a_2ms_server_is_2ms() {
    let _serial = serial();
    let rate: u32 = 400;
    let addr = echo_server(Duration::from_millis(2), None);
    measure(
        "2 ms server",
        addr,
        &open(rate.into(), Duration::from_secs(3), 10),
        |r| {
            // Any client sees a 2 ms server answer after 2 ms plus the loopback round
            // trip, which is the machine's (40 µs on a quiet VM, hundreds of µs on a
            // busy one): a plain blocking client measures it right after the run, at
            // the same rate, and it is taken off before the driver's median is judged.
            let floor = loopback_floor(rate);
            let ms = r.percentile(50.0).saturating_sub(floor).as_secs_f64() * 1000.0;
            eprintln!("2 ms server: p50 less the {floor:?} loopback round trip: {ms:.3} ms");
            if (1.8..=2.2).contains(&ms) {
                Ok(())
            } else {
                Err(format!(
                    "p50 {ms:.3} ms of a 2 ms server (less the {floor:?} loopback round trip)"
                ))
            }
        },
    );
}

/// Latency of answered calls at or above `bound`.
fn calls_slower_than(r: &RunResult, bound: Duration) -> u64 {
    let h = r.latency();
    h.count_between(bound.as_micros() as u64, h.max())
}

#[test]
fn open_loop_charges_a_stall_to_every_call_it_held() {
    let _serial = serial();
    let rate = 500;
    // The server stalls for a second once 750 calls arrived: a second into the
    // measured part (after 250 calls of warm-up and 500 measured).
    let stall = Duration::from_secs(1);
    let addr = echo_server(
        Duration::from_millis(1),
        Some(Stall {
            after: 750,
            duration: stall,
        }),
    );
    let args = open(rate, Duration::from_secs(4), 20);
    measure("open loop, 1 s stall", addr, &args, |r| {
        // The calls due during the stall waited for it: their latency, timed from
        // when they were due, runs from a second down to nothing. Those due in its
        // first 0.9 s (450) took 100 ms or more.
        let slow = calls_slower_than(r, Duration::from_millis(100));
        let max = Duration::from_micros(r.latency().max());
        let p99 = r.percentile(99.0);
        if max < stall.mul_f64(0.9) || p99 < stall / 2 || slow < 250 {
            return Err(format!(
                "max {max:?}, p99 {p99:?}, {slow} calls over 100 ms"
            ));
        }
        // And the open loop kept sending through it.
        if r.sent != rate * 4 || r.errors > 0 {
            return Err(format!("sent {}, {} errors", r.sent, r.errors));
        }
        Ok(())
    });
}

#[test]
fn closed_loop_shows_the_calls_a_stall_kept_it_from_sending() {
    let _serial = serial();
    let stall = Duration::from_secs(1);
    let addr = echo_server(
        Duration::from_millis(2),
        Some(Stall {
            after: 1000,
            duration: stall,
        }),
    );
    let duration = Duration::from_secs(4);
    let args = LoadArgs {
        connections: 2,
        duration,
        warmup: Duration::from_millis(500),
        progress: ProgressMode::Never,
        ..LoadArgs::default()
    };
    measure("closed loop, 1 s stall", addr, &args, |r| {
        // Its own rate, unstalled: the best second.
        let rate = r.timeseries.iter().map(|p| p.rate).fold(0.0, f64::max);
        // An open loop at that rate would have sent rate × duration calls; the closed
        // loop sent nothing for a second of the four (a quarter fewer).
        let would = rate * duration.as_secs_f64();
        if r.sent as f64 > 0.85 * would {
            return Err(format!(
                "sent {} calls, an open loop at {rate:.0}/s {would:.0}",
                r.sent
            ));
        }
        // The stall shows as a second (or two halves) without answers...
        let slowest = r.timeseries.iter().map(|p| p.rate).fold(f64::MAX, f64::min);
        if slowest > 0.6 * rate {
            return Err(format!("no second below {slowest:.0}/s of {rate:.0}/s"));
        }
        // ...and only the calls in flight when it began (one per connection) waited:
        // the percentiles hide it, as closed loops do.
        let slow = calls_slower_than(r, stall / 2);
        if !(1..=2).contains(&slow) {
            return Err(format!("{slow} calls over half a second"));
        }
        Ok(())
    });
}
