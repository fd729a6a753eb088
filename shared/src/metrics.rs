//! Metrics as CloudWatch Embedded Metric Format (EMF): one JSON line per batch on stdout, which
//! CloudWatch Logs turns into metrics without any API call or permission. Logs go to stderr, so
//! the two never share a line.
//!
//! Every metric has the dimensions `Stage` (`METRICS_STAGE`) and `Function`, under the namespace
//! `METRICS_NAMESPACE`.
//!
//! **Lambda's log-level filter.** With the JSON log format Lambda treats every line on stdout or
//! stderr that is a JSON object as an application log and filters it on its `level` key; "If the
//! `level` value field is invalid or missing, Lambda will assign the log output the level INFO",
//! and it does the same to a line without a valid RFC 3339 `timestamp` (Lambda developer guide,
//! "Log-level filtering", monitoring-cloudwatchlogs-log-level). An EMF document alone has
//! neither, so an application log level of `WARN` or stricter would drop every metric line. So
//! each line also carries a top-level `timestamp` (the document's time, RFC 3339 with
//! milliseconds) and a `level`: the application log level Lambda keeps (`AWS_LAMBDA_LOG_LEVEL`),
//! never below `INFO`. That is the least severe level that passes Lambda's filter whatever it is
//! set to (up to `FATAL`), so metrics survive and a metric line reads as an error only when
//! nothing less severe would be kept. EMF ignores members it does not know, so the two extra keys
//! change no metric. Outside Lambda, or with the Text log format, Lambda does not filter, and the
//! keys are harmless.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::config::EnvSource;
use crate::telemetry::{LambdaLogLevel, rfc3339_millis};

pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const METRICS_STAGE: &str = "METRICS_STAGE";
/// Namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "ScorePipeline";
/// Stage when `METRICS_STAGE` is not set.
pub const DEFAULT_STAGE: &str = "default";
/// CloudWatch takes at most this many metrics per EMF directive.
const MAX_METRICS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One value of one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: Unit,
}

impl Metric {
    pub fn count(name: &'static str, value: usize) -> Self {
        Self {
            name,
            value: value as f64,
            unit: Unit::Count,
        }
    }

    pub fn milliseconds(name: &'static str, value: f64) -> Self {
        Self {
            name,
            value,
            unit: Unit::Milliseconds,
        }
    }

    /// `ColdStart` (Count 1), in the first invocation's line of each execution environment.
    pub fn cold_start() -> Self {
        Self::count("ColdStart", 1)
    }
}

/// Writes EMF lines for one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmfMetrics {
    pub namespace: String,
    pub stage: String,
    pub function: &'static str,
    /// The `level` of each line, so that Lambda's log-level filter keeps it (see the module doc).
    pub level: LambdaLogLevel,
}

impl EmfMetrics {
    pub fn from_env(env: &dyn EnvSource, function: &'static str) -> Self {
        Self {
            namespace: env
                .var(METRICS_NAMESPACE)
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            stage: env
                .var(METRICS_STAGE)
                .unwrap_or_else(|| DEFAULT_STAGE.to_owned()),
            function,
            level: LambdaLogLevel::from_env(env)
                .unwrap_or(LambdaLogLevel::Info)
                .max(LambdaLogLevel::Info),
        }
    }

    /// The EMF document for `metrics` at `timestamp_ms` (Unix milliseconds), as one line.
    pub fn line(&self, metrics: &[Metric], timestamp_ms: i64) -> String {
        let metrics = &metrics[..metrics.len().min(MAX_METRICS)];
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|m| json!({ "Name": m.name, "Unit": m.unit.name() }))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Stage", "Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        let timestamp =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
                .map(rfc3339_millis);
        if let Ok(timestamp) = timestamp {
            document.insert("timestamp".to_owned(), json!(timestamp));
        }
        document.insert("level".to_owned(), json!(self.level.as_str()));
        document.insert("Stage".to_owned(), json!(self.stage));
        document.insert("Function".to_owned(), json!(self.function));
        for metric in metrics {
            // Non-finite values are not JSON numbers; CloudWatch would drop the line.
            let value = if metric.value.is_finite() {
                metric.value
            } else {
                0.0
            };
            document.insert(metric.name.to_owned(), json!(value));
        }
        Value::Object(document).to_string()
    }

    /// Writes the line for one handled batch: its `metrics` plus `BatchDurationMs` since `started`.
    pub fn emit_batch(&self, mut metrics: Vec<Metric>, started: std::time::Instant) {
        metrics.push(Metric::milliseconds(
            "BatchDurationMs",
            started.elapsed().as_secs_f64() * 1000.0,
        ));
        self.emit(&metrics);
    }

    /// Writes the line for `metrics`, now, to stdout in one write.
    pub fn emit(&self, metrics: &[Metric]) {
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut line = self.line(metrics, now_ms);
        line.push('\n');
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
        {
            tracing::warn!(%error, "cannot write metrics to stdout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> EmfMetrics {
        let env = |name: &str| match name {
            METRICS_NAMESPACE => Some("Scores".to_owned()),
            METRICS_STAGE => Some("prod".to_owned()),
            _ => None,
        };
        EmfMetrics::from_env(&env, "processor")
    }

    #[test]
    fn a_line_is_an_emf_document_with_every_metric_and_its_dimensions() {
        let line = metrics().line(
            &[
                Metric::count("Accepted", 97),
                Metric::count("RateLimited", 3),
                Metric::milliseconds("BatchDurationMs", 12.5),
            ],
            1_795_348_800_123,
        );
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_348_800_123_i64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Scores");
        assert_eq!(directive["Dimensions"], json!([["Stage", "Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                { "Name": "Accepted", "Unit": "Count" },
                { "Name": "RateLimited", "Unit": "Count" },
                { "Name": "BatchDurationMs", "Unit": "Milliseconds" },
            ])
        );
        assert_eq!(doc["Stage"], "prod");
        assert_eq!(doc["Function"], "processor");
        assert_eq!(doc["Accepted"], 97.0);
        assert_eq!(doc["RateLimited"], 3.0);
        assert_eq!(doc["BatchDurationMs"], 12.5);
    }

    #[test]
    fn defaults_apply_without_the_variables() {
        let none = |_: &str| None;
        let defaults = EmfMetrics::from_env(&none, "notifier");
        assert_eq!(defaults.namespace, DEFAULT_NAMESPACE);
        assert_eq!(defaults.stage, DEFAULT_STAGE);
    }

    #[test]
    fn values_that_are_not_numbers_become_zero_so_the_line_stays_valid() {
        let line = metrics().line(&[Metric::milliseconds("BatchDurationMs", f64::NAN)], 0);
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["BatchDurationMs"], 0.0);
    }

    fn level_with(aws_lambda_log_level: Option<&'static str>) -> Value {
        let env = move |name: &str| match name {
            crate::telemetry::AWS_LAMBDA_LOG_LEVEL => aws_lambda_log_level.map(str::to_owned),
            _ => None,
        };
        let line = EmfMetrics::from_env(&env, "processor").line(&[Metric::cold_start()], 0);
        serde_json::from_str::<Value>(&line).unwrap()["level"].clone()
    }

    #[test]
    fn a_line_carries_the_level_lambdas_filter_keeps_never_below_info() {
        assert_eq!(level_with(Some("WARN")), "WARN");
        assert_eq!(level_with(Some("fatal")), "FATAL");
        assert_eq!(level_with(Some("ERROR")), "ERROR");
        assert_eq!(level_with(Some("DEBUG")), "INFO");
        assert_eq!(level_with(Some("TRACE")), "INFO");
        assert_eq!(level_with(None), "INFO");
    }

    #[test]
    fn a_line_carries_its_time_as_an_rfc3339_timestamp_for_lambda() {
        let line = metrics().line(&[Metric::cold_start()], 1_795_348_800_123);
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["timestamp"], "2026-11-22T12:00:00.123Z");
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_348_800_123_i64);
        assert_eq!(doc["ColdStart"], 1.0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{ "Name": "ColdStart", "Unit": "Count" }])
        );
    }
}
