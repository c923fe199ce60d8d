//! The lanes: one per call in flight (connections × concurrency), lane `l` on
//! connection `l mod connections`.
//!
//! Open loop: the [pacer](super::pacer) queues each call when it is due, and a free lane
//! takes it; a call is timed from when it was due, and times out `--timeout` after that
//! (waiting in the queue included). Closed loop: each lane sends its next call when the
//! last one ended. Either way, calls of the warm-up are sent but not counted, and a run
//! ends once the sending stopped and every call in flight ended.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, mpsc::UnboundedReceiver};

use super::{
    CallError, LoadArgs, Target,
    pacer::{Due, Lead, Pacer, Schedule},
    progress::Progress,
    report::{Answer, ErrorKind, RunResult, RunSettings},
    tally::Tally,
};

/// Time between setting up the lanes and the first call, so every lane is waiting
/// when the first call is due.
const START_DELAY: Duration = Duration::from_millis(20);
/// Pause of a closed-loop lane after a failed call, so a dead target is not hammered in
/// a busy loop (open-loop lanes keep the schedule).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Runs the load of `args` against `target` with `concurrency` calls in flight per
/// connection.
pub(crate) async fn run<T: Target>(
    target: Arc<T>,
    args: &LoadArgs,
    concurrency: usize,
) -> RunResult {
    let connections = args.connections.max(1);
    let concurrency = concurrency.max(1);
    let start = Instant::now() + START_DELAY;
    let measured = start + args.warmup;
    let end = measured + args.duration;
    let settings = RunSettings {
        protocol: T::PROTOCOL,
        // The protocol knows the address; the caller names it (see `super::plan`).
        target: String::new(),
        rate: args.rate,
        connections,
        concurrency,
        duration: args.duration,
        warmup: args.warmup,
    };
    let tally = Arc::new(Tally::new(settings, measured));
    let progress = Progress::start(args, tally.clone());

    let (pacer, queue) = if args.rate > 0 {
        let schedule = Schedule {
            start,
            measured,
            end,
            rate: args.rate,
        };
        let lead = Arc::new(Lead::default());
        match Pacer::spawn(schedule, lead.clone()) {
            Ok((pacer, rx)) => (Some(pacer), Some((Arc::new(Mutex::new(rx)), lead))),
            Err(e) => {
                progress.stop().await;
                tally.note(&format_args!("cannot start the pacer thread: {e}"));
                return tally.finish(Instant::now());
            }
        }
    } else {
        (None, None)
    };

    let slots: Vec<Arc<Slot<T::Conn>>> = (0..connections).map(|_| Arc::default()).collect();
    let lanes: Vec<_> = (0..connections * concurrency)
        .map(|l| {
            let lane = Lane {
                target: target.clone(),
                slot: slots[l % connections].clone(),
                tally: tally.clone(),
                timeout: args.timeout,
            };
            match &queue {
                Some((queue, lead)) => tokio::spawn(lane.open(queue.clone(), lead.clone())),
                None => tokio::spawn(lane.closed(start, end)),
            }
        })
        .collect();
    drop(queue);
    for lane in lanes {
        if let Err(e) = lane.await {
            // A lane that panicked lost its call in flight; say so rather than hide it.
            tally.failed(
                true,
                ErrorKind::Protocol,
                &format_args!("a load task failed: {e}"),
            );
        }
    }
    if let Some(pacer) = pacer {
        // Done already: the queue closed when it ended. (Had every lane panicked, it
        // ends at its next call, finding no lane.)
        pacer.join();
        // A slow rate may have sent its last call long before the end: the run still
        // lasts its duration, and its rate is counted over it.
        tokio::time::sleep_until(end.into()).await;
    }
    progress.stop().await;
    tally.finish(end)
}

/// A connection shared by the lanes of one slot, opened on first use and again after
/// a failure.
struct Slot<C> {
    conn: Mutex<Option<Arc<C>>>,
}

impl<C> Default for Slot<C> {
    fn default() -> Self {
        Self {
            conn: Mutex::new(None),
        }
    }
}

impl<C> Slot<C> {
    async fn get<T: Target<Conn = C>>(&self, target: &T) -> Result<Arc<C>, CallError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(target.connect().await?);
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Drops `failed` unless another lane replaced it already.
    async fn discard(&self, failed: &Arc<C>) {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *conn = None;
        }
    }
}

struct Lane<T: Target> {
    target: Arc<T>,
    slot: Arc<Slot<T::Conn>>,
    tally: Arc<Tally>,
    timeout: Duration,
}

/// How a call ended.
enum Ended {
    Answered(Answer),
    Failed(ErrorKind, String),
}

impl<T: Target> Lane<T> {
    /// Takes due calls from the queue until it closes and is empty, each sent when due.
    async fn open(self, queue: Arc<Mutex<UnboundedReceiver<Due>>>, lead: Arc<Lead>) {
        loop {
            // Free lanes wait in line on the lock; the one holding it takes the next call.
            let mut rx = queue.lock().await;
            let waiting = Instant::now();
            let due = rx.recv().await;
            drop(rx);
            let Some(Due {
                intended,
                counted,
                handed,
            }) = due
            else {
                break;
            };
            let taken = Instant::now();
            if handed >= waiting {
                // This lane was waiting for the queue when the call came: how late it
                // took the call is what the pacer's lead makes up for. (A call that
                // waited for a free lane says nothing about that.)
                lead.observe(taken > intended);
            }
            // Handed over early by the lead: hold it until due.
            while Instant::now() < intended {
                std::hint::spin_loop();
            }
            self.tally.sent_late(counted, intended.elapsed());
            let give_up = intended + self.timeout;
            let ended = if Instant::now() >= give_up {
                // Queued behind busy lanes past its timeout: it counts, unsent.
                Ended::Failed(ErrorKind::Timeout, self.timed_out())
            } else {
                self.call(give_up).await
            };
            self.record(counted, intended, ended);
        }
    }

    /// Sends calls back to back from `start` until `end`.
    async fn closed(self, start: Instant, end: Instant) {
        tokio::time::sleep_until(start.into()).await;
        let measured = self.tally.measured();
        loop {
            let sent = Instant::now();
            if sent >= end {
                break;
            }
            let counted = sent >= measured;
            self.tally.sent(counted);
            let ended = self.call(sent + self.timeout).await;
            let failed = matches!(ended, Ended::Failed(..));
            self.record(counted, sent, ended);
            if failed {
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }

    /// One call, given up at `give_up`. A connection whose call failed or timed out is
    /// dropped: what it carries next cannot be trusted.
    async fn call(&self, give_up: Instant) -> Ended {
        let deadline = tokio::time::Instant::from_std(give_up);
        let conn = match tokio::time::timeout_at(deadline, self.slot.get(&*self.target)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Ended::Failed(e.kind(), e.to_string()),
            Err(_) => return Ended::Failed(ErrorKind::Timeout, self.timed_out()),
        };
        let ended = match tokio::time::timeout_at(deadline, self.target.call(&conn)).await {
            Ok(Ok(answer)) => return Ended::Answered(answer),
            Ok(Err(e)) => Ended::Failed(e.kind(), e.to_string()),
            Err(_) => Ended::Failed(ErrorKind::Timeout, self.timed_out()),
        };
        self.slot.discard(&conn).await;
        ended
    }

    fn timed_out(&self) -> String {
        format!("no answer within {:?}", self.timeout)
    }

    fn record(&self, counted: bool, intended: Instant, ended: Ended) {
        match ended {
            Ended::Answered(answer) => self.tally.answered(counted, &answer, intended.elapsed()),
            Ended::Failed(kind, why) => self.tally.failed(counted, kind, &why),
        }
    }
}

#[cfg(test)]
mod tests;
