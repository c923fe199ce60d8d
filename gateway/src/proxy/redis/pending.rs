//! A reply on its way to the client, and the per-command metrics recorded when it
//! arrives.
//!
//! Most commands are one command on one upstream connection, so [`Pending`] is a plain
//! enum rather than a boxed future: the common case allocates nothing beyond its
//! upstream reply slot. Split commands, injected delays and followed redirections fall
//! back to a boxed future. Every pending reply carries its deadline; the connection's
//! writer, which waits for replies in order anyway, keeps the one timer that enforces
//! it (see [`super::downstream`]), instead of one timer per command.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use metrics::{Counter, Histogram};

use super::RedisListener;
use super::frame::Frame;
use super::redirect::follow;
use super::slots::Redirect;
use super::upstream::Reply;
use crate::cluster::ClusterState;
use crate::model::redis::RedisMode;
use crate::redis::command::{CommandInfo, table_index, table_len};
use crate::redis::resp::Value;
use crate::telemetry::metrics::{
    Metrics, REDIS_COMMAND_ERROR, REDIS_COMMAND_LATENCY, REDIS_COMMAND_SUCCESS, REDIS_COMMAND_TOTAL,
};

/// A reply on its way: ready now, or when the upstream answers, due by its deadline.
#[must_use]
pub struct Pending {
    state: State,
    /// Records the command's metrics when the reply is known; `None` for the parts of
    /// a split command (the whole command is counted once).
    meter: Option<Meter>,
    deadline: Option<Instant>,
}

enum State {
    Ready(Option<Frame>),
    /// One command on one upstream connection; `follow` is set where the reply may be
    /// a MOVED or ASK to follow (Redis Cluster, or redirection turned on).
    Upstream {
        reply: Reply,
        follow: Option<Box<Follow>>,
    },
    Boxed(BoxFuture<'static, Frame>),
}

/// What following a redirection needs: where the command went and its bytes.
pub(super) struct Follow {
    pub listener: Arc<RedisListener>,
    pub cluster: Arc<str>,
    pub state: Arc<ClusterState>,
    pub key: Bytes,
    pub bytes: Bytes,
}

/// Who to count a finished command for.
struct Meter {
    listener: Arc<RedisListener>,
    info: &'static CommandInfo,
    started: Instant,
}

impl Pending {
    /// An answer known now.
    pub fn ready(value: Value) -> Pending {
        Pending {
            state: State::Ready(Some(Frame::Value(value))),
            meter: None,
            deadline: None,
        }
    }

    /// The reply to a command queued upstream.
    pub(super) fn upstream(reply: Reply, follow: Option<Box<Follow>>) -> Pending {
        Pending {
            state: State::Upstream { reply, follow },
            meter: None,
            deadline: None,
        }
    }

    /// Any other way of getting the reply.
    pub fn boxed<T: Into<Frame>>(future: impl Future<Output = T> + Send + 'static) -> Pending {
        Pending {
            state: State::Boxed(Box::pin(async move { future.await.into() })),
            meter: None,
            deadline: None,
        }
    }

    /// Counts the reply as command `info`'s, started at `started`, which must answer
    /// within the listener's op timeout plus `extra` (an injected delay).
    pub(super) fn metered(
        mut self,
        listener: &Arc<RedisListener>,
        info: &'static CommandInfo,
        started: Instant,
        extra: Duration,
    ) -> Pending {
        if !matches!(self.state, State::Ready(_)) {
            self.deadline = Some(started + listener.config.op_timeout + extra);
        }
        let meter = Meter {
            listener: listener.clone(),
            info,
            started,
        };
        if let State::Ready(Some(v)) = &self.state {
            meter.record(!v.is_error());
        } else {
            self.meter = Some(meter);
        }
        self
    }

    /// When the reply is due; `None` when it is ready or has no deadline of its own.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The reply to send when the deadline passed first.
    pub fn expire(mut self) -> Frame {
        let timeout = self
            .meter
            .as_ref()
            .map(|m| m.listener.config.op_timeout)
            .unwrap_or_default();
        let value = Value::error(format!("ERR upstream timed out after {timeout:?}"));
        if let Some(m) = self.meter.take() {
            m.record(false);
        }
        Frame::Value(value)
    }
}

impl Future for Pending {
    type Output = Frame;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Frame> {
        let this = &mut *self;
        let value = loop {
            match &mut this.state {
                State::Ready(v) => {
                    break v.take().unwrap_or_else(|| {
                        Frame::Value(Value::error("ERR internal: reply taken twice"))
                    });
                }
                State::Boxed(f) => break ready!(f.as_mut().poll(cx)),
                State::Upstream { reply, follow: f } => {
                    let value = match ready!(Pin::new(reply).poll(cx)) {
                        Ok(Ok(v)) => v,
                        Ok(Err(e)) => Value::error(format!("ERR upstream failure: {e}")).into(),
                        Err(_) => {
                            Value::error("ERR upstream failure: the connection dropped the command")
                                .into()
                        }
                    };
                    // Only an error can be a MOVED or ASK: nothing else is looked into.
                    let redirect = f
                        .as_ref()
                        .filter(|f| {
                            value.is_error()
                                && (f.listener.config.redirection
                                    || f.state.config.redis.mode == RedisMode::Cluster)
                        })
                        .and_then(|_| Redirect::of(&value.clone().into_value()));
                    match (redirect, f.take()) {
                        (Some(redirect), Some(f)) => {
                            this.state = State::Boxed(Box::pin(follow(*f, redirect)));
                        }
                        _ => break value,
                    }
                }
            }
        };
        if let Some(m) = this.meter.take() {
            m.record(!value.is_error());
        }
        Poll::Ready(value)
    }
}

impl Meter {
    fn record(&self, ok: bool) {
        self.listener
            .metrics
            .record(self.info, ok, self.started.elapsed());
    }
}

/// Per-command counters and latency (`command` label: the lower-case name), found by
/// the command's place in the table: no hashing per command.
#[derive(Debug)]
pub struct CommandMetrics {
    registry: Arc<Metrics>,
    listener: String,
    by_command: Box<[OnceLock<Handles>]>,
}

#[derive(Debug)]
struct Handles {
    total: Counter,
    success: Counter,
    error: Counter,
    latency: Histogram,
}

impl CommandMetrics {
    /// Metrics of listener `listener`.
    pub fn new(registry: &Arc<Metrics>, listener: &str) -> CommandMetrics {
        CommandMetrics {
            registry: registry.clone(),
            listener: listener.to_string(),
            by_command: (0..table_len()).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one command.
    pub fn record(&self, info: &'static CommandInfo, ok: bool, took: Duration) {
        let Some(slot) = table_index(info).and_then(|i| self.by_command.get(i)) else {
            return;
        };
        let h = slot.get_or_init(|| {
            let labels = || {
                vec![
                    metrics::Label::new("listener", self.listener.clone()),
                    metrics::Label::new("command", info.name),
                ]
            };
            Handles {
                total: self.registry.counter(REDIS_COMMAND_TOTAL, labels()),
                success: self.registry.counter(REDIS_COMMAND_SUCCESS, labels()),
                error: self.registry.counter(REDIS_COMMAND_ERROR, labels()),
                latency: self.registry.histogram(REDIS_COMMAND_LATENCY, labels()),
            }
        });
        h.total.increment(1);
        if ok {
            h.success.increment(1)
        } else {
            h.error.increment(1)
        }
        h.latency.record(took.as_secs_f64() * 1000.0);
    }
}
