//! Helpers shared by the functions: partial batch responses, deadlines and cold starts.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Tells the first invocation of an execution environment (the cold start) from the later ones.
/// Make one in `main` and ask it at the start of every invocation.
#[derive(Debug, Default)]
pub struct ColdStart {
    taken: AtomicBool,
}

impl ColdStart {
    pub const fn new() -> Self {
        Self {
            taken: AtomicBool::new(false),
        }
    }

    /// `true` on the first call, `false` on every later one, whichever thread makes it.
    pub fn take(&self) -> bool {
        !self.taken.swap(true, Ordering::Relaxed)
    }
}

/// The span an invocation runs in: on the cold start it gives every line `cold_start: true`;
/// a warm invocation gets no span of its own, so its lines carry no `cold_start` field.
pub fn invocation_span(cold_start: bool) -> tracing::Span {
    if cold_start {
        tracing::info_span!("cold_start", cold_start = true)
    } else {
        tracing::Span::none()
    }
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
        let started = Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let deadline = work_deadline(now_ms + 10_000);
        // However long this thread was held up between the clock readings (a busy machine),
        // the deadline is 8.5 s after a moment in that span; 1 ms for the milliseconds clock.
        let held_up = started.elapsed() + Duration::from_millis(1);
        let left = deadline - started;
        let expected = Duration::from_millis(8_500);
        assert!(
            left <= expected + held_up && left + held_up >= expected,
            "{left:?} after {held_up:?}"
        );
        assert!(
            work_deadline(now_ms - 1) <= Instant::now(),
            "a passed deadline leaves no time"
        );
    }

    #[test]
    fn a_cold_start_is_reported_once() {
        let cold_start = ColdStart::new();
        assert!(cold_start.take(), "the first invocation is the cold start");
        assert!(!cold_start.take());
        assert!(!cold_start.take());
    }

    #[test]
    fn of_invocations_racing_on_several_threads_exactly_one_is_the_cold_start() {
        let cold_start = ColdStart::new();
        let answers: Vec<bool> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8).map(|_| scope.spawn(|| cold_start.take())).collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            answers.iter().filter(|&&cold| cold).count(),
            1,
            "{answers:?}"
        );
        assert!(!cold_start.take());
    }
}
