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

use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

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

/// The Lambda log format: JSON lines with the event's fields flattened, the current span's fields
/// (the correlation id) and the target, no timestamp (CloudWatch stamps each line), no colours.
/// The benches use it to measure what logging costs an invocation.
pub fn lambda_json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .without_time()
        .with_ansi(false)
        .finish()
}

/// Installs the global subscriber once; later calls install nothing and return an idle guard.
/// `RUST_LOG` overrides the level (default `info`).
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if running_in_lambda() {
        // An error only means a subscriber is already installed (tests, or a second call).
        drop(lambda_json_subscriber(filter, std::io::stderr).try_init());
        return LogGuard { _writer: None };
    }
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lambda_log_line_is_one_json_object_carrying_the_spans_correlation_id() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = lambda_json_subscriber(EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("submission", correlation_id = "req-7");
            let _entered = span.enter();
            tracing::info!(submission_id = "s-1", "submission stored as accepted");
            tracing::debug!("below the level: not written");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["message"], "submission stored as accepted");
        assert_eq!(line["submission_id"], "s-1");
        assert_eq!(line["span"]["correlation_id"], "req-7");
        assert_eq!(line["level"], "INFO");
        assert!(
            line.get("timestamp").is_none(),
            "CloudWatch stamps the line"
        );
    }
}
