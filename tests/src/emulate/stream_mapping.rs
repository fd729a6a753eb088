//! The DynamoDB stream event source mapping as Lambda plays it, for the deployed ranker: its
//! filter criteria (records no filter admits are dropped, never delivered), its batch size and
//! batching window, and its reading of the function's answer (ReportBatchItemFailures: delivery
//! starts again at the first failed record; an error, a timeout or an identifier not in the
//! batch retries the whole batch). The reading itself, shard by shard from `TRIM_HORIZON`, is
//! [`crate::change_feed::DynamoStreamFeed`]; the retry loop is
//! [`crate::change_feed::spawn_stream_consumer`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use axum::body::Bytes;
use serde_json::Value;
use shared::ports::PortError;

use super::DeployedFunction;
use super::gateway::new_trace_header;
use super::runtime_api::{InvokeOutcome, RuntimeApi};
use crate::change_feed::{ChangeFeed, StreamHandler, StreamHandlerFuture};

/// A mapping's `FilterCriteria`: a record is delivered when any pattern matches it (every record
/// when there is none). The patterns are Lambda's event filtering syntax; the rules the
/// emulation can judge are literals, `exists`, `prefix` and `anything-but` (of literals), and a
/// pattern with any other rule is refused when the mapping is read, not guessed at.
#[derive(Clone, Debug, Default)]
pub struct EventFilters {
    patterns: Vec<Value>,
}

impl EventFilters {
    /// Reads `{"Filters": [{"Pattern": "<JSON>"}, ...]}` (absent or null: no filter).
    pub fn parse(criteria: &Value) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for filter in criteria["Filters"].as_array().into_iter().flatten() {
            let text = filter["Pattern"]
                .as_str()
                .ok_or_else(|| format!("a filter without a Pattern string: {filter}"))?;
            let pattern: Value = serde_json::from_str(text)
                .map_err(|e| format!("the filter pattern {text} is not JSON: {e}"))?;
            check_pattern(&pattern).map_err(|e| format!("the filter pattern {text}: {e}"))?;
            patterns.push(pattern);
        }
        Ok(Self { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the record (as Lambda would deliver it, in its JSON form) is delivered.
    pub fn admits(&self, record: &Value) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|pattern| pattern_matches(pattern, Some(record)))
    }
}

fn check_pattern(pattern: &Value) -> Result<(), String> {
    let Value::Object(fields) = pattern else {
        return Err("a pattern is an object of fields".to_owned());
    };
    for (name, expected) in fields {
        match expected {
            Value::Object(_) => check_pattern(expected)?,
            Value::Array(rules) if !rules.is_empty() => {
                for rule in rules {
                    check_rule(rule).map_err(|e| format!("{name}: {e}"))?;
                }
            }
            other => return Err(format!("{name}: {other} is neither a pattern nor rules")),
        }
    }
    Ok(())
}

fn check_rule(rule: &Value) -> Result<(), String> {
    let Value::Object(rule) = rule else {
        return Ok(());
    };
    let (kind, operand) = match rule.iter().next() {
        Some(only) if rule.len() == 1 => only,
        _ => return Err(format!("{rule:?} is not one rule")),
    };
    match (kind.as_str(), operand) {
        ("exists", Value::Bool(_)) | ("prefix", Value::String(_)) => Ok(()),
        ("anything-but", Value::Array(values)) if values.iter().all(is_literal) => Ok(()),
        ("anything-but", value) if is_literal(value) => Ok(()),
        _ => Err(format!(
            "the rule {kind}: {operand} is not one the emulation evaluates"
        )),
    }
}

fn is_literal(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// `field` is the record's value at the pattern's place, `None` where it has none.
fn pattern_matches(pattern: &Value, field: Option<&Value>) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, expected)| {
        let value = field.and_then(|f| f.get(name));
        match expected {
            Value::Object(_) => pattern_matches(expected, value),
            Value::Array(rules) => rules.iter().any(|rule| rule_matches(rule, value)),
            _ => false,
        }
    })
}

fn rule_matches(rule: &Value, value: Option<&Value>) -> bool {
    // A list in the record matches when any of its elements does.
    if let Some(Value::Array(values)) = value {
        return values.iter().any(|v| rule_matches(rule, Some(v)));
    }
    let Value::Object(rule) = rule else {
        return value == Some(rule);
    };
    match rule.iter().next() {
        Some((kind, Value::Bool(exists))) if kind == "exists" => value.is_some() == *exists,
        Some((kind, Value::String(prefix))) if kind == "prefix" => value
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with(prefix.as_str())),
        Some((kind, excluded)) if kind == "anything-but" => value.is_some_and(|v| match excluded {
            Value::Array(excluded) => !excluded.contains(v),
            excluded => excluded != v,
        }),
        _ => false,
    }
}

/// A stream read as a mapping delivers it: only the records its filters admit, gathered for up
/// to the batching window after the first one (or until the batch is full).
pub struct MappedFeed {
    pub stream: Arc<dyn ChangeFeed>,
    pub filters: EventFilters,
    pub batching_window: Duration,
}

#[async_trait]
impl ChangeFeed for MappedFeed {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, PortError> {
        let started = tokio::time::Instant::now();
        let mut batch = Vec::new();
        let mut window_closes = None;
        loop {
            let until = window_closes.unwrap_or(started + wait);
            let wait = until.saturating_duration_since(tokio::time::Instant::now());
            let read = self.stream.read(max - batch.len(), wait).await?;
            let stream_was_empty = read.is_empty();
            for record in read {
                let json = serde_json::to_value(&record).map_err(|e| PortError::Refused {
                    service: "dynamodb streams",
                    detail: format!("a stream record does not serialize: {e}"),
                })?;
                if self.filters.admits(&json) {
                    batch.push(record);
                }
            }
            if !batch.is_empty() && window_closes.is_none() {
                window_closes = Some(tokio::time::Instant::now() + self.batching_window);
            }
            if batch.len() >= max {
                return Ok(batch);
            }
            // Come back empty only when the stream had nothing more: a drain relies on an empty
            // read meaning that everything before it was delivered.
            let closed = tokio::time::Instant::now() >= until;
            if closed && (stream_was_empty || !batch.is_empty()) {
                return Ok(batch);
            }
        }
    }
}

/// The mapping's handler: invoke the function with the batch as a stream `Event`, and read its
/// answer as Lambda does.
pub fn stream_handler(
    runtime: Arc<RuntimeApi>,
    function: DeployedFunction,
    report_batch_item_failures: bool,
) -> StreamHandler {
    Arc::new(move |event: Event| -> StreamHandlerFuture {
        let runtime = runtime.clone();
        let function = function.clone();
        Box::pin(async move {
            let sequence_numbers: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| r.change.sequence_number.clone())
                .collect();
            let outcome = match serde_json::to_vec(&event) {
                Ok(payload) => {
                    runtime
                        .invoke(
                            &function.name,
                            &function.arn,
                            Bytes::from(payload),
                            function.timeout,
                            new_trace_header(),
                        )
                        .await
                }
                Err(error) => {
                    InvokeOutcome::Error(format!("the event does not serialize: {error}"))
                }
            };
            stream_batch_outcome(
                outcome,
                &sequence_numbers,
                report_batch_item_failures,
                &function.name,
            )
        })
    })
}

/// The whole batch again: a failure at its first record.
fn whole_batch(sequence_numbers: &[String]) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_numbers.first().cloned();
    response.batch_item_failures.push(failure);
    response
}

/// What Lambda makes of a function's answer to a stream batch: with ReportBatchItemFailures,
/// delivery starts again at the earliest failed record (an empty, null or unknown identifier
/// fails the whole batch); without it, any answer completes the batch. An error or a timeout
/// retries the whole batch.
pub fn stream_batch_outcome(
    outcome: InvokeOutcome,
    sequence_numbers: &[String],
    report_batch_item_failures: bool,
    function: &str,
) -> DynamoDbEventResponse {
    let payload = match outcome {
        InvokeOutcome::Response(payload) => payload,
        other => {
            tracing::warn!(function, outcome = ?other, records = sequence_numbers.len(), "the invocation failed; the whole batch will be delivered again");
            return whole_batch(sequence_numbers);
        }
    };
    if !report_batch_item_failures || payload.is_empty() || payload.as_ref() == b"null" {
        return DynamoDbEventResponse::default();
    }
    let Ok(response) = serde_json::from_slice::<DynamoDbEventResponse>(&payload) else {
        tracing::warn!(
            function,
            "the answer is not a partial batch response; the whole batch will be delivered again"
        );
        return whole_batch(sequence_numbers);
    };
    let mut earliest: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let position = failure
            .item_identifier
            .as_ref()
            .and_then(|id| sequence_numbers.iter().position(|s| s == id));
        let Some(position) = position else {
            tracing::warn!(
                function,
                "the answer names a record not in the batch; the whole batch will be delivered again"
            );
            return whole_batch(sequence_numbers);
        };
        earliest = Some(earliest.map_or(position, |e| e.min(position)));
    }
    match earliest {
        None => DynamoDbEventResponse::default(),
        Some(position) => whole_batch(&sequence_numbers[position..]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The ranker's filters as the stack synthesizes them.
    fn ranker_filters() -> EventFilters {
        EventFilters::parse(&json!({"Filters": [
            {"Pattern": r#"{"dynamodb":{"NewImage":{"status":{"S":["accepted"]}}}}"#},
            {"Pattern": r#"{"eventName":["MODIFY"],"dynamodb":{"OldImage":{"status":{"S":["accepted"]}},"NewImage":{"status":{"S":["rejected"]}}}}"#},
        ]}))
        .unwrap()
    }

    fn record(event: &str, old: Option<&str>, new: Option<&str>) -> Value {
        let image = |status: Option<&str>| match status {
            Some(status) => json!({"submissionId": {"S": "s"}, "status": {"S": status}}),
            None => json!({}),
        };
        json!({"eventName": event, "dynamodb": {"OldImage": image(old), "NewImage": image(new)}})
    }

    #[test]
    fn the_rankers_filters_admit_offers_and_revocations_only() {
        let filters = ranker_filters();
        assert!(filters.admits(&record("INSERT", None, Some("accepted"))));
        assert!(filters.admits(&record("MODIFY", Some("accepted"), Some("rejected"))));
        assert!(
            filters.admits(&record("MODIFY", Some("accepted"), Some("accepted"))),
            "a rewrite of an accepted item is offered again (and changes nothing)"
        );
        assert!(!filters.admits(&record("INSERT", None, Some("rejected"))));
        assert!(
            !filters.admits(&record("MODIFY", Some("rejected"), Some("rejected"))),
            "a notified rejection"
        );
        assert!(!filters.admits(&record("REMOVE", Some("accepted"), None)));
        assert!(!filters.admits(&record("INSERT", None, Some("pending"))));
    }

    #[test]
    fn the_rules_it_evaluates_match_as_lambda_matches_them() {
        let filters = |pattern: Value| {
            EventFilters::parse(&json!({"Filters": [{"Pattern": pattern.to_string()}]})).unwrap()
        };
        let exists = filters(json!({"a": [{"exists": true}]}));
        assert!(exists.admits(&json!({"a": 1})));
        assert!(!exists.admits(&json!({"b": 1})));
        let absent = filters(json!({"a": [{"exists": false}]}));
        assert!(absent.admits(&json!({"b": 1})));
        assert!(!absent.admits(&json!({"a": 1})));
        let prefix = filters(json!({"a": [{"prefix": "ab"}]}));
        assert!(prefix.admits(&json!({"a": "abc"})));
        assert!(!prefix.admits(&json!({"a": "ba"})));
        let but = filters(json!({"a": [{"anything-but": ["x", "y"]}]}));
        assert!(but.admits(&json!({"a": "z"})));
        assert!(!but.admits(&json!({"a": "x"})));
        assert!(!but.admits(&json!({})), "anything-but needs the field");
        let list = filters(json!({"a": [2]}));
        assert!(list.admits(&json!({"a": [1, 2]})), "any element of a list");
        assert!(
            EventFilters::parse(&Value::Null)
                .unwrap()
                .admits(&json!({}))
        );
    }

    #[test]
    fn a_rule_it_cannot_evaluate_is_refused_when_the_mapping_is_read() {
        for pattern in [
            json!({"a": [{"numeric": [">", 1]}]}),
            json!({"a": []}),
            json!({"a": "x"}),
            json!({"a": [{"prefix": "x", "exists": true}]}),
        ] {
            let error =
                EventFilters::parse(&json!({"Filters": [{"Pattern": pattern.to_string()}]}))
                    .unwrap_err();
            assert!(error.contains("a"), "{pattern}: {error}");
        }
    }

    /// A stream that hands out its chunks one read at a time, then nothing.
    struct Chunks(std::sync::Mutex<std::collections::VecDeque<Vec<EventRecord>>>);

    #[async_trait]
    impl ChangeFeed for Chunks {
        async fn read(&self, _max: usize, _wait: Duration) -> Result<Vec<EventRecord>, PortError> {
            Ok(self.0.lock().unwrap().pop_front().unwrap_or_default())
        }
    }

    fn stream_record(sequence: &str, status: &str) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": sequence, "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {"SequenceNumber": sequence, "StreamViewType": "NEW_AND_OLD_IMAGES", "SizeBytes": 1,
                         "Keys": {"submissionId": {"S": sequence}},
                         "NewImage": {"submissionId": {"S": sequence}, "status": {"S": status}}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_mapped_read_skips_what_the_filters_drop_and_is_empty_only_when_the_stream_is() {
        let chunks = [
            vec![stream_record("1", "rejected")],
            vec![
                stream_record("2", "rejected"),
                stream_record("3", "accepted"),
            ],
            vec![stream_record("4", "accepted")],
        ];
        let feed = MappedFeed {
            stream: Arc::new(Chunks(std::sync::Mutex::new(chunks.into()))),
            filters: ranker_filters(),
            batching_window: Duration::ZERO,
        };
        let sequences = |records: Vec<EventRecord>| -> Vec<String> {
            records
                .into_iter()
                .filter_map(|r| r.change.sequence_number)
                .collect()
        };
        // A first read that finds only dropped records reads on rather than coming back empty.
        assert_eq!(
            sequences(feed.read(10, Duration::ZERO).await.unwrap()),
            ["3"]
        );
        assert_eq!(
            sequences(feed.read(10, Duration::ZERO).await.unwrap()),
            ["4"]
        );
        assert!(feed.read(10, Duration::ZERO).await.unwrap().is_empty());
    }

    fn identifiers(response: &DynamoDbEventResponse) -> Vec<Option<&str>> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_deref())
            .collect()
    }

    #[test]
    fn a_stream_batch_answer_is_read_as_lambda_reads_it() {
        let batch = ["1".to_owned(), "2".to_owned(), "3".to_owned()];
        let answer =
            |body: &'static str| InvokeOutcome::Response(Bytes::from_static(body.as_bytes()));
        let read = |outcome, report| stream_batch_outcome(outcome, &batch, report, "f");
        assert!(identifiers(&read(answer(r#"{"batchItemFailures":[]}"#), true)).is_empty());
        assert!(identifiers(&read(answer("null"), true)).is_empty());
        assert_eq!(
            identifiers(&read(
                answer(r#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#),
                true
            )),
            [Some("2")],
            "from the earliest failed record"
        );
        for whole in [
            read(
                answer(r#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#),
                true,
            ),
            read(
                answer(r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#),
                true,
            ),
            read(answer("not json"), true),
            read(InvokeOutcome::TimedOut, true),
            read(InvokeOutcome::Error("boom".to_owned()), false),
        ] {
            assert_eq!(identifiers(&whole), [Some("1")]);
        }
        assert!(
            identifiers(&read(
                answer(r#"{"batchItemFailures":[{"itemIdentifier":"2"}]}"#),
                false
            ))
            .is_empty(),
            "without ReportBatchItemFailures any answer completes the batch"
        );
    }
}
