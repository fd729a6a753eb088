//! Logging set-up: the log format AWS Lambda expects when running there, readable text
//! elsewhere. Always on stderr, so a local tool's stdout stays machine-readable (and the EMF
//! metric lines of [`crate::metrics`] have stdout to themselves).
//!
//! # Formats
//!
//! Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), `AWS_LAMBDA_LOG_FORMAT` picks the format; Lambda
//! sets it from the function's `LoggingConfig.LogFormat`.
//!
//! - `JSON` (any case): one JSON object per line, `timestamp` (RFC 3339, UTC, milliseconds:
//!   `2026-12-01T23:05:01.123Z`), `level` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`),
//!   `message`, then the fields of the spans the event happens in, outermost first, then the
//!   event's own fields. The outermost span is the one lambda_runtime opens for each invocation
//!   (`Lambda runtime invoke`), with its `requestId` (and `xrayTraceId` when Lambda passes a
//!   trace header); our spans add `correlation_id` and the submission's ids. A field appears
//!   once, where its last value was given: an inner span's value replaces an outer one's, and the
//!   event's own value replaces both. No field can replace `timestamp`, `level` or `message`.
//!
//!   Warnings and errors are written in full, with `target` (the module) last. Lines below `WARN`
//!   are what a million submissions pay for, so they leave out `target`, and a line that carries
//!   a `correlation_id` leaves out the invocation's `requestId` and `xrayTraceId`: the
//!   correlation id names the request in every stage, ingest serves one request per invocation,
//!   and the processor's and notifier's batch lines, which name no single request, keep both.
//! - `Text`, or not set: `timestamp<TAB>requestId<TAB>LEVEL<TAB>message key=value ...`, the
//!   layout of Lambda's managed runtimes, with `-` for the request id outside an invocation
//!   (cold start set-up).
//!
//! Outside Lambda the lines are compact readable text, as before.
//!
//! With the JSON format Lambda filters application lines again, on their own `level`: "If the
//! `level` value field is invalid or missing, Lambda will assign the log output the level INFO",
//! and so it does when the `timestamp` is not valid RFC 3339 (Lambda developer guide, "Log-level
//! filtering", monitoring-cloudwatchlogs-log-level). Our lines carry both, so Lambda sees the
//! level we logged at. The EMF lines need the same care; see [`crate::metrics`].
//!
//! # Level
//!
//! 1. `RUST_LOG`, when set, not empty and valid `EnvFilter` syntax (per-target directives such
//!    as `info,aws_smithy_runtime=warn`). It wins because it is the finer control; a deployment
//!    that sets it keeps Lambda's application log level no stricter (infra/ derives one from the
//!    other). lambda_runtime's own default subscriber ranks the two the other way round.
//! 2. `AWS_LAMBDA_LOG_LEVEL`, which Lambda sets from `LoggingConfig.ApplicationLogLevel`:
//!    `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL` (any case). tracing has no fatal
//!    level, so `FATAL` keeps errors (Lambda then drops them itself).
//! 3. Otherwise `INFO`.
//!
//! Under Lambda the level filters events only: spans at `INFO` or above are always kept, so a
//! warning or an error logged under `WARN` still carries the request id and the correlation id
//! of the spans it happens in (a filtered-out span would take its fields with it).
//!
//! # Cold start
//!
//! The lines of each function's first invocation carry `cold_start: true`, from the span of
//! [`crate::lambda::invocation_span`]; later invocations' lines have no `cold_start` field, so
//! warm lines are no longer than before and `filter cold_start` in Logs Insights finds the cold
//! ones. Lines written before the first invocation (set-up) have neither field.
//!
//! # Writing
//!
//! Under Lambda every line is written before the call that logs it returns: the runtime freezes
//! the process between invocations, so lines left to a background writer would show up late, in
//! the next invocation's logs, or never when the environment is shut down. Locally (the local
//! stack under load, the bare server) lines go through a background writer that batches them
//! into few writes; it never drops a line (a full buffer makes the logging call wait), and the
//! [`LogGuard`] that [`init`] returns writes out what is left when `main` ends.

use std::fmt::Write as _;
use std::io::{BufWriter, IsTerminal, Write as _};

use smallvec::SmallVec;
use time::{OffsetDateTime, UtcOffset};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{EnvSource, ProcessEnv};

pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
pub const RUST_LOG: &str = "RUST_LOG";

/// Whether this process runs inside AWS Lambda.
pub fn running_in_lambda() -> bool {
    std::env::var_os(AWS_LAMBDA_FUNCTION_NAME).is_some()
}

/// The line format under Lambda.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LambdaLogFormat {
    Json,
    Text,
}

impl LambdaLogFormat {
    /// The format inside Lambda, `None` outside it.
    pub fn from_env(env: &dyn EnvSource) -> Option<Self> {
        env.var(AWS_LAMBDA_FUNCTION_NAME)?;
        Some(match env.var(AWS_LAMBDA_LOG_FORMAT) {
            Some(format) if format.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Text,
        })
    }
}

/// Lambda's application log levels, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LambdaLogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LambdaLogLevel {
    /// `AWS_LAMBDA_LOG_LEVEL`, if it names a level.
    pub fn from_env(env: &dyn EnvSource) -> Option<Self> {
        let value = env.var(AWS_LAMBDA_LOG_LEVEL)?;
        [
            Self::Trace,
            Self::Debug,
            Self::Info,
            Self::Warn,
            Self::Error,
            Self::Fatal,
        ]
        .into_iter()
        .find(|level| value.trim().eq_ignore_ascii_case(level.as_str()))
    }

    /// The name Lambda uses (and reads back from a JSON line's `level`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }

    fn level_filter(self) -> LevelFilter {
        match self {
            Self::Trace => LevelFilter::TRACE,
            Self::Debug => LevelFilter::DEBUG,
            Self::Info => LevelFilter::INFO,
            Self::Warn => LevelFilter::WARN,
            Self::Error | Self::Fatal => LevelFilter::ERROR,
        }
    }
}

/// The level filter: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `INFO` (see the module doc).
pub fn log_filter(env: &dyn EnvSource) -> EnvFilter {
    if let Some(filter) = env
        .var(RUST_LOG)
        .and_then(|directives| EnvFilter::try_new(directives).ok())
    {
        return filter;
    }
    let level = LambdaLogLevel::from_env(env).map_or(LevelFilter::INFO, |l| l.level_filter());
    EnvFilter::default().add_directive(level.into())
}

/// `at` as RFC 3339 in UTC with milliseconds, `2026-12-01T23:05:01.123Z`.
pub fn rfc3339_millis(at: OffsetDateTime) -> String {
    let mut text = String::with_capacity(24);
    push_rfc3339_millis(&mut text, at);
    text
}

/// Appends [`rfc3339_millis`]'s text. Every log line pays for one, so the digits are written by
/// hand rather than through `format!`.
fn push_rfc3339_millis(text: &mut String, at: OffsetDateTime) {
    let at = at.to_offset(UtcOffset::UTC);
    let year = at.year();
    if !(0..=9999).contains(&year) {
        // No clock gives such a year; `format!` writes it with its sign and every digit.
        text.push_str(&rfc3339_millis_by_format(at));
        return;
    }
    let mut digits = |value: u32, width: u32, then: char| {
        for place in (0..width).rev() {
            text.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
        text.push(then);
    };
    digits(year as u32, 4, '-');
    digits(u8::from(at.month()).into(), 2, '-');
    digits(at.day().into(), 2, 'T');
    digits(at.hour().into(), 2, ':');
    digits(at.minute().into(), 2, ':');
    digits(at.second().into(), 2, '.');
    digits(at.millisecond().into(), 3, 'Z');
}

/// What [`rfc3339_millis`] writes, through `format!`: its fallback and its test's reference.
fn rfc3339_millis_by_format(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Keeps the background log writer running; when it drops, buffered lines are written out.
/// Hold it in `main` for the whole run: `let _logs = telemetry::init();`.
#[must_use = "dropping the guard stops the log writer; bind it with `let _logs = ...`"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// The Lambda JSON log format (see the module doc). The benches use it to measure what logging
/// costs an invocation.
pub fn lambda_json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    lambda_subscriber(LambdaLogFormat::Json, filter, writer)
}

/// The subscriber used under Lambda: `filter` applies to events; spans at `INFO` or above are
/// kept whatever it says, for their fields.
pub fn lambda_subscriber<W>(
    format: LambdaLogFormat,
    filter: EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn context_span(metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && *metadata.level() <= Level::INFO
    }
    let context_spans = filter_fn(context_span).with_max_level_hint(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(GlobalFilter(filter.or(context_spans)))
        .with(LambdaLines { format, writer })
}

/// A [`Filter`] applied to the whole subscriber rather than to one layer: with a single layer
/// the lines are the same, and no span entered or closed and no event pays for the per-layer
/// bookkeeping (`FilterState`, each span's filter map) that `Layer::with_filter` adds.
struct GlobalFilter<F>(F);

impl<S: Subscriber, F: Filter<S> + 'static> Layer<S> for GlobalFilter<F> {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.callsite_enabled(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, &ctx)
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0.event_enabled(event, &ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    // `EnvFilter` follows spans for directives that name span fields.
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }
}

/// Installs the global subscriber once; later calls install nothing and return an idle guard.
pub fn init() -> LogGuard {
    let filter = log_filter(&ProcessEnv);
    if let Some(format) = LambdaLogFormat::from_env(&ProcessEnv) {
        // An error only means a subscriber is already installed (tests, or a second call).
        drop(lambda_subscriber(format, filter, std::io::stderr).try_init());
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

/// Writes each event as one Lambda line, with the fields of the spans it happens in.
struct LambdaLines<W> {
    format: LambdaLogFormat,
    writer: W,
}

/// A field: its name and its value already rendered as JSON (`"text"`, `42`, `true`).
type RenderedField = (&'static str, String);

/// A span's fields, rendered once when the span is made (or a field recorded), kept in the
/// span's extensions: an event copies text, it does not render its spans' values again.
struct SpanFields(Vec<RenderedField>);

/// The field that names a request across the stages.
const CORRELATION_FIELD: &str = "correlation_id";
const REQUEST_ID_FIELD: &str = "requestId";
/// The invocation's ids, left out of lines below `WARN` that carry a [`CORRELATION_FIELD`].
const INVOCATION_FIELDS: [&str; 2] = [REQUEST_ID_FIELD, "xrayTraceId"];
/// Names only [`json_line`] writes: no field replaces them.
const RESERVED: [&str; 3] = ["timestamp", "level", "message"];

impl<S, W> Layer<S> for LambdaLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Rendered::default();
            attrs.record(&mut fields);
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
                let mut recorded = Rendered::default();
                values.record(&mut recorded);
                for (name, value) in recorded.fields {
                    match fields.iter_mut().find(|(n, _)| *n == name) {
                        Some(field) => field.1 = value,
                        None => fields.push((name, value)),
                    }
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Every accepted request writes one line: the buffers of the last one are reused, and
        // the spans and fields of a line stay on the stack.
        let mut scratch = SCRATCH.with(|cell| cell.take());
        let Scratch { own, line } = &mut scratch;
        own.clear();
        event.record(own);
        let metadata = event.metadata();
        let spans: SmallVec<[_; 8]> = ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .collect();
        let extensions: SmallVec<[_; 8]> = spans.iter().map(|span| span.extensions()).collect();
        let mut fields: SmallVec<[(&'static str, &str); 16]> = SmallVec::new();
        for span_fields in extensions.iter().filter_map(|e| e.get::<SpanFields>()) {
            fields.extend(span_fields.0.iter().map(|(n, v)| (*n, v.as_str())));
        }
        fields.extend(own.fields.iter().map(|(n, v)| (*n, v.as_str())));
        line.clear();
        let now = OffsetDateTime::now_utc();
        match self.format {
            LambdaLogFormat::Json => json_line(line, now, metadata, &own.message, &fields),
            LambdaLogFormat::Text => text_line(line, now, metadata, &own.message, &fields),
        }
        // Nowhere to report a failed log write; the line is lost either way.
        drop(
            self.writer
                .make_writer_for(metadata)
                .write_all(line.as_bytes()),
        );
        // `fields` borrows the buffers; they go back to the thread once it is gone. A buffer
        // that an unusually long line grew is not kept.
        drop(fields);
        if line.capacity() > SCRATCH_KEPT_BYTES {
            *line = String::new();
        }
        SCRATCH.with(|cell| cell.set(scratch));
    }
}

/// The buffers [`LambdaLines::on_event`] writes a line with, kept per thread between lines. An
/// event logged while a line is being written (by the writer, say) finds the cell empty and
/// works with fresh buffers.
#[derive(Default)]
struct Scratch {
    own: Rendered,
    line: String,
}

/// The largest line buffer kept for the next line.
const SCRATCH_KEPT_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

/// The fields a line shows, in order: each name once, with its last value (an inner span's
/// value replaces an outer one's, and the event's own replaces both), none of the reserved
/// names, and none that `left_out` names.
fn shown_fields<'f, 'v>(
    fields: &'f [(&'static str, &'v str)],
    left_out: impl Fn(&str) -> bool + 'f,
) -> impl Iterator<Item = (&'static str, &'v str)> + 'f {
    fields
        .iter()
        .enumerate()
        .filter_map(move |(index, &(name, value))| {
            let replaced = fields[index + 1..].iter().any(|(n, _)| *n == name);
            (!replaced && !RESERVED.contains(&name) && !left_out(name)).then_some((name, value))
        })
}

fn json_line(
    line: &mut String,
    at: OffsetDateTime,
    metadata: &Metadata<'_>,
    message: &str,
    fields: &[(&'static str, &str)],
) {
    let full = *metadata.level() <= Level::WARN;
    let correlated = fields.iter().any(|(n, _)| *n == CORRELATION_FIELD);
    line.reserve(160 + message.len() + fields.len() * 48);
    line.push_str("{\"timestamp\":\"");
    push_rfc3339_millis(line, at);
    line.push_str("\",\"level\":\"");
    line.push_str(metadata.level().as_str());
    line.push_str("\",\"message\":");
    push_json_string(line, message);
    let invocation_left_out = !full && correlated;
    for (name, value) in shown_fields(fields, |name| {
        invocation_left_out && INVOCATION_FIELDS.contains(&name)
    }) {
        line.push(',');
        push_json_string(line, name);
        line.push(':');
        line.push_str(value);
    }
    if full && !fields.iter().any(|(n, _)| *n == "target") {
        line.push_str(",\"target\":");
        push_json_string(line, metadata.target());
    }
    line.push_str("}\n");
}

fn text_line(
    text: &mut String,
    at: OffsetDateTime,
    metadata: &Metadata<'_>,
    message: &str,
    fields: &[(&'static str, &str)],
) {
    let request_id = fields
        .iter()
        .rev()
        .find(|(n, _)| *n == REQUEST_ID_FIELD)
        .and_then(|(_, v)| serde_json::from_str::<String>(v).ok());
    push_rfc3339_millis(text, at);
    write!(
        text,
        "\t{}\t{}\t{}",
        request_id.as_deref().unwrap_or("-"),
        metadata.level(),
        message.replace('\n', "\\n"),
    )
    .unwrap_or_default();
    // The request id has its own column.
    for (name, value) in shown_fields(fields, |name| name == REQUEST_ID_FIELD) {
        // A plain string goes bare; anything needing quotes keeps its JSON form.
        match serde_json::from_str::<String>(value) {
            Ok(s) if !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') => {
                write!(text, " {name}={s}")
            }
            _ => write!(text, " {name}={value}"),
        }
        .unwrap_or_default();
    }
    text.push('\n');
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain_from..at]);
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}").unwrap_or_default();
        } else {
            out.push_str(escape);
        }
        plain_from = at + 1;
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

/// Records fields rendered as JSON: numbers and booleans as such, errors by their message,
/// anything else by its `Debug` text. An event's `message` is kept apart, as plain text.
#[derive(Default)]
struct Rendered {
    message: String,
    fields: Vec<RenderedField>,
}

impl Rendered {
    /// Empty, keeping what was allocated.
    fn clear(&mut self) {
        self.message.clear();
        self.fields.clear();
    }

    fn put(&mut self, field: &Field, value: String) {
        let name = field.name();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    fn put_text(&mut self, field: &Field, text: &str) {
        if field.name() == "message" {
            self.message.clear();
            self.message.push_str(text);
            return;
        }
        let mut value = String::with_capacity(text.len() + 2);
        push_json_string(&mut value, text);
        self.put(field, value);
    }
}

impl Visit for Rendered {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let rendered = serde_json::Number::from_f64(value)
            .map_or_else(|| "null".to_owned(), |n| n.to_string());
        self.put(field, rendered);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, if value { "true" } else { "false" }.to_owned());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message.clear();
            write!(self.message, "{value:?}").unwrap_or_default();
            return;
        }
        self.put_text(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use lambda_runtime::layers::trace::request_span;
    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::lambda::invocation_span;

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

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_owned).collect()
        }

        fn json_lines(&self) -> Vec<Value> {
            let lines = self.lines();
            lines
                .iter()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// The span lambda_runtime opens around each invocation, built by lambda_runtime itself.
    fn invoke_span(request_id: &str) -> tracing::Span {
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_owned();
        request_span(&context)
    }

    /// Runs `log` under the Lambda subscriber in `format` with `filter`, returning what it wrote.
    fn logged(format: LambdaLogFormat, filter: EnvFilter, log: impl FnOnce()) -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = lambda_subscriber(format, filter, move || writer.clone());
        tracing::subscriber::with_default(subscriber, log);
        captured
    }

    /// One invocation's submission: an info line and a warning, inside the runtime's span and
    /// our correlation span.
    fn an_invocation(request_id: &str) {
        let _invocation = invoke_span(request_id).entered();
        let _request = tracing::info_span!("submission", correlation_id = "req-7").entered();
        tracing::debug!("below info");
        tracing::info!(submission_id = "s-1", "submission stored as accepted");
        tracing::warn!(attempt = 2_u64, "store slow; retrying");
    }

    #[test]
    fn an_info_line_names_its_correlation_id_and_a_warning_carries_everything() {
        let before = OffsetDateTime::now_utc();
        let captured = logged(LambdaLogFormat::Json, EnvFilter::new("info"), || {
            an_invocation("8f5e0c1a-request")
        });
        let after = OffsetDateTime::now_utc();
        let lines = captured.json_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let keys =
            |line: &Value| -> Vec<String> { line.as_object().unwrap().keys().cloned().collect() };
        let line = &lines[0];
        assert_eq!(
            keys(line),
            [
                "timestamp",
                "level",
                "message",
                "correlation_id",
                "submission_id"
            ]
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "submission stored as accepted");
        assert_eq!(line["correlation_id"], "req-7");
        assert_eq!(line["submission_id"], "s-1");
        let timestamp = line["timestamp"].as_str().unwrap();
        let parsed = OffsetDateTime::parse(timestamp, &Rfc3339).unwrap();
        let before_ms = before.replace_millisecond(before.millisecond()).unwrap();
        assert!(before_ms <= parsed && parsed <= after, "{timestamp}");
        assert_eq!(
            timestamp.len(),
            "2026-12-01T23:05:01.123Z".len(),
            "{timestamp}"
        );
        assert!(
            timestamp.ends_with('Z') && &timestamp[19..20] == ".",
            "{timestamp}"
        );
        let warning = &lines[1];
        assert_eq!(
            keys(warning),
            [
                "timestamp",
                "level",
                "message",
                "requestId",
                "correlation_id",
                "attempt",
                "target"
            ]
        );
        assert_eq!(warning["level"], "WARN");
        assert_eq!(warning["attempt"], 2);
        assert_eq!(warning["requestId"], "8f5e0c1a-request");
        assert_eq!(warning["target"], module_path!());
    }

    #[test]
    fn info_lines_without_a_correlation_id_keep_the_invocations_ids() {
        let lines = logged(LambdaLogFormat::Json, EnvFilter::new("info"), || {
            let mut context = lambda_runtime::Context::default();
            context.request_id = "r-9".to_owned();
            context.xray_trace_id =
                Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned());
            let _invocation = request_span(&context).entered();
            tracing::info!(records = 100_u64, "batch processed");
            tracing::info!(correlation_id = "req-8", "rejection notified");
            tracing::error!(correlation_id = "req-8", "store refused the batch");
        })
        .json_lines();
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["requestId"], "r-9");
        assert_eq!(lines[0]["xrayTraceId"], trace);
        assert!(lines[0].get("target").is_none(), "{}", lines[0]);
        assert_eq!(lines[0]["records"], 100);
        assert!(lines[1].get("requestId").is_none(), "{}", lines[1]);
        assert!(lines[1].get("xrayTraceId").is_none(), "{}", lines[1]);
        assert_eq!(lines[2]["requestId"], "r-9");
        assert_eq!(lines[2]["xrayTraceId"], trace);
        assert_eq!(lines[2]["correlation_id"], "req-8");
        assert_eq!(lines[2]["target"], module_path!());
    }

    #[test]
    fn strings_are_escaped_and_values_keep_their_json_types() {
        let lines = logged(LambdaLogFormat::Json, EnvFilter::new("info"), || {
            let _span = tracing::info_span!("s", cold = true, ratio = 0.5_f64).entered();
            tracing::info!(
                quoted = "say \"hi\"\\ \u{1}\n\tdone",
                negative = -3_i64,
                nan = f64::NAN,
                debug = ?Some("x"),
                error = &std::io::Error::other("disk \"full\"") as &(dyn std::error::Error + 'static),
                "line\nbreak {}",
                "\u{e9}"
            );
        })
        .json_lines();
        let line = &lines[0];
        assert_eq!(line["message"], "line\nbreak \u{e9}");
        assert_eq!(line["quoted"], "say \"hi\"\\ \u{1}\n\tdone");
        assert_eq!(line["cold"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["negative"], -3);
        assert_eq!(line["nan"], Value::Null);
        assert_eq!(line["debug"], "Some(\"x\")");
        assert_eq!(line["error"], "disk \"full\"");
    }

    #[test]
    fn an_events_own_field_replaces_a_span_field_but_never_timestamp_level_or_message() {
        let captured = logged(LambdaLogFormat::Json, EnvFilter::new("info"), || {
            let _span = tracing::info_span!("batch", correlation_id = "outer").entered();
            tracing::error!(correlation_id = "inner", level = "spoofed", "failed");
        });
        let raw = &captured.lines()[0];
        assert_eq!(raw.matches("\"correlation_id\"").count(), 1, "{raw}");
        assert_eq!(raw.matches("\"level\"").count(), 1, "{raw}");
        let line = &captured.json_lines()[0];
        assert_eq!(line["correlation_id"], "inner");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "failed");
    }

    #[test]
    fn aws_lambda_log_level_warn_drops_info_lines_and_warnings_keep_the_span_fields() {
        let filter = log_filter(&env(&[(AWS_LAMBDA_LOG_LEVEL, "warn")]));
        let lines = logged(LambdaLogFormat::Json, filter, || an_invocation("r-2")).json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["requestId"], "r-2");
        assert_eq!(lines[0]["correlation_id"], "req-7");
    }

    #[test]
    fn rust_log_overrides_aws_lambda_log_level() {
        let filter = log_filter(&env(&[
            (RUST_LOG, "debug"),
            (AWS_LAMBDA_LOG_LEVEL, "ERROR"),
        ]));
        let lines = logged(LambdaLogFormat::Json, filter, || an_invocation("r-3")).json_lines();
        let levels: Vec<&Value> = lines.iter().map(|l| &l["level"]).collect();
        assert_eq!(levels, ["DEBUG", "INFO", "WARN"]);
    }

    #[test]
    fn an_invalid_rust_log_leaves_the_level_to_aws_lambda_log_level() {
        let filter = log_filter(&env(&[
            (RUST_LOG, "score=loud"),
            (AWS_LAMBDA_LOG_LEVEL, "Error"),
        ]));
        let lines = logged(LambdaLogFormat::Json, filter, || {
            tracing::warn!("dropped");
            tracing::error!("kept");
        })
        .json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "kept");
    }

    #[test]
    fn without_either_variable_the_level_is_info() {
        let filter = log_filter(&env(&[(AWS_LAMBDA_LOG_LEVEL, "LOUD")]));
        let lines = logged(LambdaLogFormat::Json, filter, || an_invocation("r-4")).json_lines();
        let levels: Vec<&Value> = lines.iter().map(|l| &l["level"]).collect();
        assert_eq!(levels, ["INFO", "WARN"]);
    }

    #[test]
    fn aws_lambda_log_level_fatal_keeps_errors_only() {
        let filter = log_filter(&env(&[(AWS_LAMBDA_LOG_LEVEL, "FATAL")]));
        let lines = logged(LambdaLogFormat::Json, filter, || {
            tracing::warn!("dropped");
            tracing::error!("kept");
        })
        .json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "ERROR");
    }

    #[test]
    fn a_text_line_is_timestamp_request_id_level_message_then_fields() {
        let lines = logged(LambdaLogFormat::Text, EnvFilter::new("info"), || {
            an_invocation("r-5");
            tracing::info!(detail = "two words", "outside an invocation");
        })
        .lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let columns: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(columns.len(), 4, "{}", lines[0]);
        OffsetDateTime::parse(columns[0], &Rfc3339).unwrap();
        assert_eq!(columns[0].len(), "2026-12-01T23:05:01.123Z".len());
        assert_eq!(columns[1], "r-5");
        assert_eq!(columns[2], "INFO");
        assert_eq!(
            columns[3],
            "submission stored as accepted correlation_id=req-7 submission_id=s-1"
        );
        assert!(
            lines[1].contains("\tWARN\tstore slow; retrying "),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("\t-\tINFO\toutside an invocation detail=\"two words\""),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn the_format_follows_aws_lambda_log_format_inside_lambda_only() {
        let format = |vars: &[(&str, &str)]| LambdaLogFormat::from_env(&env(vars));
        let lambda = (AWS_LAMBDA_FUNCTION_NAME, "ingest");
        assert_eq!(format(&[]), None);
        assert_eq!(format(&[(AWS_LAMBDA_LOG_FORMAT, "JSON")]), None);
        assert_eq!(format(&[lambda]), Some(LambdaLogFormat::Text));
        assert_eq!(
            format(&[lambda, (AWS_LAMBDA_LOG_FORMAT, "Text")]),
            Some(LambdaLogFormat::Text)
        );
        assert_eq!(
            format(&[lambda, (AWS_LAMBDA_LOG_FORMAT, "JSON")]),
            Some(LambdaLogFormat::Json)
        );
        assert_eq!(
            format(&[lambda, (AWS_LAMBDA_LOG_FORMAT, "json")]),
            Some(LambdaLogFormat::Json)
        );
    }

    #[test]
    fn only_the_cold_invocations_lines_carry_cold_start() {
        let cold_start = crate::lambda::ColdStart::new();
        let lines = logged(LambdaLogFormat::Json, EnvFilter::new("info"), || {
            for request_id in ["first", "second"] {
                let _invocation = invoke_span(request_id).entered();
                let _cold = invocation_span(cold_start.take()).entered();
                tracing::info!("handled");
            }
        })
        .json_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["requestId"], "first");
        assert_eq!(lines[0]["cold_start"], true);
        assert_eq!(lines[1]["requestId"], "second");
        assert!(lines[1].get("cold_start").is_none(), "{}", lines[1]);
    }

    #[test]
    fn timestamps_are_utc_with_three_decimals() {
        let at = OffsetDateTime::parse("2026-12-02T00:05:01.123456+01:00", &Rfc3339).unwrap();
        assert_eq!(rfc3339_millis(at), "2026-12-01T23:05:01.123Z");
        let on_the_second = OffsetDateTime::parse("2026-01-09T08:07:06Z", &Rfc3339).unwrap();
        assert_eq!(rfc3339_millis(on_the_second), "2026-01-09T08:07:06.000Z");
        // Every digit of every field, against the format the hand-written digits replace.
        let mut at = OffsetDateTime::parse("0999-12-31T23:59:59.999Z", &Rfc3339).unwrap();
        for _ in 0..2000 {
            assert_eq!(rfc3339_millis(at), rfc3339_millis_by_format(at));
            at += time::Duration::seconds(7_777_777) + time::Duration::milliseconds(37);
        }
        let before_year_zero = OffsetDateTime::parse("0000-01-01T00:00:00Z", &Rfc3339).unwrap()
            - time::Duration::days(1);
        assert_eq!(rfc3339_millis(before_year_zero), "-001-12-31T00:00:00.000Z");
    }
}
