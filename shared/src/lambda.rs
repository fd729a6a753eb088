//! Helpers shared by the functions: partial batch responses and deadlines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use tokio::time::Instant;

use crate::ports::PortError;

/// Time kept back from the Lambda deadline to report results before the function is stopped.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_500);

/// Runs a port call, giving up when `deadline` comes: the work it concerns is then reported
/// failed (a record retried, a request refused with 503) instead of Lambda stopping the whole
/// invocation.
pub async fn by_deadline<T>(
    deadline: Instant,
    service: &'static str,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(PortError::Timeout {
                service,
                detail: "no answer before the invocation's deadline".to_owned(),
            })
        })
}

/// An SQS partial batch response naming only the records to retry.
pub fn batch_response(failed_message_ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed_message_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The instant by which work must be done: the invocation deadline (milliseconds since the
/// Unix epoch, as the Lambda context gives it) less [`DEADLINE_MARGIN`].
pub fn work_deadline(invocation_deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let remaining = Duration::from_millis(invocation_deadline_ms.saturating_sub(now_ms));
    Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_records_are_reported() {
        let response = batch_response(["b".to_owned(), "d".to_owned()]);
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["b", "d"]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "b");
    }

    #[test]
    fn the_work_deadline_keeps_a_margin() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let deadline = work_deadline(now_ms + 10_000);
        let left = deadline - Instant::now();
        assert!(
            left <= Duration::from_millis(8_500) && left > Duration::from_millis(8_000),
            "{left:?}"
        );
        assert!(
            work_deadline(now_ms - 1) <= Instant::now(),
            "a passed deadline leaves no time"
        );
    }
}
