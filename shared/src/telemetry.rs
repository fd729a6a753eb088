//! Logging set-up: JSON lines under Lambda (CloudWatch parses them), readable text elsewhere.
//! Always on stderr, so a local tool's stdout stays machine-readable.
//!
//! Under Lambda every line is written before the call that logs it returns: the runtime freezes
//! the process between invocations, so lines left to a background writer would show up late, in
//! the next invocation's logs, or never when the environment is shut down. Locally (the local
//! stack under load, the bare server) lines go through a background writer that batches them
//! into few writes; it never drops a line (a full buffer makes the logging call wait), and the
//! [`LogGuard`] that [`init`] returns writes out what is left when `main` ends.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Whether this process runs inside AWS Lambda.
pub fn running_in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Keeps the background log writer running; when it drops, buffered lines are written out.
/// Hold it in `main` for the whole run: `let _logs = telemetry::init();`.
#[must_use = "dropping the guard stops the log writer; bind it with `let _logs = ...`"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber once; later calls install nothing and return an idle guard.
/// `RUST_LOG` overrides the level (default `info`).
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if running_in_lambda() {
        let result = builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .without_time()
            .with_ansi(false)
            .try_init();
        // An error only means a subscriber is already installed (tests, or a second call).
        drop(result);
        return LogGuard { _writer: None };
    }
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
    let installed = builder
        .with_writer(writer)
        .compact()
        .with_target(false)
        .with_ansi(ansi)
        .try_init()
        .is_ok();
    LogGuard {
        _writer: installed.then_some(guard),
    }
}
