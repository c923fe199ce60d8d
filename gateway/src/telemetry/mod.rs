//! Logs, access logs, metrics and traces.

pub mod access_log;
pub mod metrics;
pub mod otlp;
pub mod record;
pub mod service;
pub mod tcp;
pub mod trace;

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why logging could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directive does not parse.
    #[error("invalid log level {0:?}: {1}")]
    BadLevel(String, String),
    /// A global subscriber is already installed.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

type Reload = dyn Fn(&str) -> Result<(), TelemetryError> + Send + Sync;

/// Changes the log filter at runtime (`/logging?level=...`).
#[derive(Clone)]
pub struct LogHandle(Arc<Reload>);

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogHandle")
    }
}

impl LogHandle {
    /// Wraps a reload function (the umbrella binary installs its own subscriber).
    pub fn new(f: impl Fn(&str) -> Result<(), TelemetryError> + Send + Sync + 'static) -> Self {
        LogHandle(Arc::new(f))
    }

    /// Replaces the filter with `level` (an `EnvFilter` directive such as `debug` or
    /// `info,access_log=off`).
    pub fn set(&self, level: &str) -> Result<(), TelemetryError> {
        (self.0)(level)
    }
}

/// Installs the global subscriber: fmt to stderr, filtered by `level`, reloadable.
pub fn init_tracing(level: &str) -> Result<LogHandle, TelemetryError> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| TelemetryError::BadLevel(level.into(), e.to_string()))?;
    let (layer, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(LogHandle::new(move |level| {
        let filter = EnvFilter::try_new(level)
            .map_err(|e| TelemetryError::BadLevel(level.into(), e.to_string()))?;
        handle
            .reload(filter)
            .map_err(|e| TelemetryError::Install(e.to_string()))
    }))
}
