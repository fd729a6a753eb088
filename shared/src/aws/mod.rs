//! AWS SDK adapters for the ports in [`crate::ports`], the mapping of SDK errors to
//! [`PortError`], and the retry loop they share.
//!
//! The SDK already retries whole calls that fail transiently (its standard retry mode). What it
//! cannot retry is a call that succeeded with some entries failed or left unprocessed; the
//! adapters retry those themselves with [`Backoff`] (exponential, full jitter).

pub mod dynamodb;
#[cfg(feature = "faults")]
pub mod faults;
pub mod provision;
pub mod sns;
pub mod sqs;

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::time::Instant;

use crate::limits::{SDK_ATTEMPT_TIMEOUT, SDK_CONNECT_TIMEOUT, SDK_OPERATION_TIMEOUT};
use crate::ports::PortError;
use crate::retry::Backoff;

/// How long a port call without a deadline argument may spend retrying failed entries.
/// [`Backoff`]'s attempt limit usually ends the retries well before this.
pub const RETRY_BUDGET_WITHOUT_DEADLINE: Duration = Duration::from_secs(10);

/// Loads the SDK configuration from the standard chain (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// credentials from the environment, profile or Lambda role). Call it once per cold start.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The three SDK clients, built once per cold start from one configuration.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

impl AwsClients {
    /// Clients with [`sdk_timeouts`], whatever the configuration says.
    pub fn new(sdk_config: &aws_config::SdkConfig) -> Self {
        let timeouts = sdk_timeouts();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk_config)
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk_config)
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sdk_config)
                    .timeout_config(timeouts)
                    .build(),
            ),
        }
    }
}

/// The connect, attempt and operation timeouts of every SDK client (see `crate::limits`). The
/// SDK sets none by default, so a service that accepts a connection and never answers would hold
/// a call until the function itself times out.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(SDK_CONNECT_TIMEOUT)
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
}

/// How a failure should be treated, decided from what the service said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureKind {
    Throttled,
    Timeout,
    Unavailable,
    Refused,
}

/// Error codes with which AWS services ask the caller to slow down.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "SlowDown",
    "KmsThrottled",
    "KMSThrottlingException",
];

/// Error codes that mean the service gave up waiting, not that it refused.
const TIMEOUT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

/// Error codes of transient server-side trouble that may arrive without a 5xx status
/// (failed batch entries carry a code but no status).
const UNAVAILABLE_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "InternalErrorException",
    "KMSInternalException",
];

/// Classifies a service error (or a failed batch entry) by its code and HTTP status
/// (`None` for batch entries, which have no status of their own).
fn classify(code: Option<&str>, http_status: Option<u16>) -> FailureKind {
    // SQS's query-compatible codes carry a prefix such as "AWS.SimpleQueueService.".
    let code = code.map(|c| c.rsplit('.').next().unwrap_or(c));
    match (code, http_status) {
        (Some(code), _) if THROTTLING_CODES.contains(&code) => FailureKind::Throttled,
        (_, Some(429)) => FailureKind::Throttled,
        (Some(code), _) if TIMEOUT_CODES.contains(&code) => FailureKind::Timeout,
        (_, Some(408 | 504)) => FailureKind::Timeout,
        (Some(code), _) if UNAVAILABLE_CODES.contains(&code) => FailureKind::Unavailable,
        (_, Some(status)) if status >= 500 => FailureKind::Unavailable,
        _ => FailureKind::Refused,
    }
}

fn port_error_of(kind: FailureKind, service: &'static str, detail: String) -> PortError {
    match kind {
        FailureKind::Throttled => PortError::Throttled { service, detail },
        FailureKind::Timeout => PortError::Timeout { service, detail },
        FailureKind::Unavailable => PortError::Unavailable { service, detail },
        FailureKind::Refused => PortError::Refused { service, detail },
    }
}

/// Maps an error of any SDK call to a [`PortError`]. Every `aws-sdk-*` crate re-exports the same
/// smithy `SdkError` and `HttpResponse`, so this one function serves SQS, DynamoDB and SNS.
pub fn sdk_error<E>(service: &'static str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &error {
        SdkError::ConstructionFailure(_) => FailureKind::Refused,
        SdkError::TimeoutError(_) => FailureKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => FailureKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_user() => FailureKind::Refused,
        SdkError::DispatchFailure(_) => FailureKind::Unavailable,
        SdkError::ResponseError(_) => FailureKind::Unavailable,
        SdkError::ServiceError(service_error) => classify(
            service_error.err().code(),
            Some(service_error.raw().status().as_u16()),
        ),
        _ => FailureKind::Unavailable,
    };
    port_error_of(kind, service, DisplayErrorContext(&error).to_string())
}

/// Maps a failed entry of a batch call (SendMessageBatch, PublishBatch) to a [`PortError`].
pub(crate) fn entry_error(service: &'static str, failure: &EntryFailure) -> PortError {
    let kind = if failure.sender_fault {
        FailureKind::Refused
    } else {
        match classify(Some(&failure.code), None) {
            // An entry that failed without being the sender's fault is worth trying again.
            FailureKind::Refused => FailureKind::Unavailable,
            other => other,
        }
    };
    port_error_of(kind, service, failure.to_string())
}

/// The same error with `context` put in front of its detail.
pub(crate) fn with_context(error: PortError, context: &str) -> PortError {
    let prefixed = |detail: String| format!("{context}: {detail}");
    match error {
        PortError::Throttled { service, detail } => PortError::Throttled {
            service,
            detail: prefixed(detail),
        },
        PortError::Timeout { service, detail } => PortError::Timeout {
            service,
            detail: prefixed(detail),
        },
        PortError::Unavailable { service, detail } => PortError::Unavailable {
            service,
            detail: prefixed(detail),
        },
        PortError::Refused { service, detail } => PortError::Refused {
            service,
            detail: prefixed(detail),
        },
    }
}

/// A request that could not be built (a missing required field): a bug on our side.
pub(crate) fn build_error(service: &'static str, error: impl std::fmt::Display) -> PortError {
    PortError::Refused {
        service,
        detail: format!("request could not be built: {error}"),
    }
}

/// One entry of a batch call that the service reported failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryFailure {
    pub id: String,
    /// The service says the entry itself is wrong: sending it again cannot help.
    pub sender_fault: bool,
    pub code: String,
    pub message: Option<String>,
}

impl std::fmt::Display for EntryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {} failed with {}", self.id, self.code)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if self.sender_fault {
            f.write_str(" (sender fault)")?;
        }
        Ok(())
    }
}

/// Progress through the entries of one batch call (at most 10 entries, whose ids are their
/// index in the chunk). An entry counts as delivered only when the service lists it as
/// successful; anything the answer does not mention is sent again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EntryRound {
    /// Indexes still to send.
    pub pending: Vec<usize>,
    /// Entries refused as the sender's fault: never sent again.
    pub refused: Vec<(usize, EntryFailure)>,
    /// Why pending entries failed on the latest attempt.
    pub latest_failures: Vec<EntryFailure>,
}

impl EntryRound {
    pub fn new(entry_count: usize) -> Self {
        Self {
            pending: (0..entry_count).collect(),
            ..Self::default()
        }
    }

    /// The round after sending `self.pending` and hearing back which ids succeeded and which failed.
    pub fn after_attempt<'a>(
        mut self,
        successful_ids: impl IntoIterator<Item = &'a str>,
        failures: &[EntryFailure],
    ) -> Self {
        let delivered: Vec<usize> = successful_ids
            .into_iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        self.latest_failures.clear();
        let mut still_pending = Vec::new();
        for index in self.pending {
            if delivered.contains(&index) {
                continue;
            }
            let failure = failures.iter().find(|f| f.id.parse() == Ok(index));
            match failure {
                Some(failure) if failure.sender_fault => {
                    self.refused.push((index, failure.clone()));
                }
                Some(failure) => {
                    self.latest_failures.push(failure.clone());
                    still_pending.push(index);
                }
                None => still_pending.push(index),
            }
        }
        self.pending = still_pending;
        self
    }

    /// Indexes that were not delivered, refused ones included, in order.
    pub fn undelivered(&self) -> Vec<usize> {
        let mut indexes: Vec<usize> = self.refused.iter().map(|(index, _)| *index).collect();
        indexes.extend(&self.pending);
        indexes.sort_unstable();
        indexes
    }

    /// Why the undelivered entries failed, as one error for a caller that needs all or nothing.
    pub fn failure(&self, service: &'static str) -> Option<PortError> {
        self.refused
            .first()
            .map(|(_, failure)| failure)
            .or(self.latest_failures.first())
            .map(|failure| entry_error(service, failure))
            .or_else(|| {
                (!self.pending.is_empty()).then(|| PortError::Unavailable {
                    service,
                    detail: format!(
                        "{} entries were neither confirmed nor reported failed",
                        self.pending.len()
                    ),
                })
            })
    }
}

/// Work that may take several attempts: entries to send, items to write, keys to read.
pub(crate) trait Unfinished {
    fn is_finished(&self) -> bool;
}

impl Unfinished for EntryRound {
    fn is_finished(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Where a retried piece of work ended.
#[derive(Debug)]
pub(crate) struct RetryOutcome<W> {
    /// The work as it stood after the last attempt (finished or not).
    pub work: W,
    /// The error of the last attempt, if that attempt failed as a whole.
    pub error: Option<PortError>,
}

/// Runs `attempt` on `work`, then on whatever it leaves unfinished, sleeping a [`Backoff`] delay
/// between attempts, until the work is finished, attempts run out, the next wait would pass
/// `deadline`, an attempt is still unanswered at `deadline`, or an attempt fails with an error
/// that is not transient.
pub(crate) async fn retry_until_finished<W, F, Fut>(
    backoff: &Backoff,
    deadline: Instant,
    mut work: W,
    mut attempt: F,
) -> RetryOutcome<W>
where
    W: Unfinished + Clone,
    F: FnMut(W) -> Fut,
    Fut: Future<Output = Result<W, PortError>>,
{
    let mut retry = 0;
    loop {
        // An attempt in flight at the deadline is abandoned: the caller has no time left to
        // wait for it (what it did, if it landed, is idempotent and done again on a retry).
        let error = match tokio::time::timeout_at(deadline, attempt(work.clone())).await {
            Ok(Ok(next)) => {
                work = next;
                None
            }
            Ok(Err(error)) => Some(error),
            Err(_) => {
                let error = PortError::Timeout {
                    service: "aws",
                    detail: "no answer before the deadline".to_owned(),
                };
                return RetryOutcome {
                    work,
                    error: Some(error),
                };
            }
        };
        if work.is_finished() || error.as_ref().is_some_and(|e| !e.is_transient()) {
            return RetryOutcome { work, error };
        }
        retry += 1;
        match backoff.next_delay(retry, Instant::now(), deadline) {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return RetryOutcome { work, error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: usize, sender_fault: bool, code: &str) -> EntryFailure {
        EntryFailure {
            id: id.to_string(),
            sender_fault,
            code: code.to_owned(),
            message: None,
        }
    }

    fn quick_backoff(max_attempts: u32) -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_attempts,
        }
    }

    #[test]
    fn throttling_codes_and_429_are_throttled() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            assert_eq!(
                classify(Some(code), Some(400)),
                FailureKind::Throttled,
                "{code}"
            );
        }
        assert_eq!(
            classify(Some("AWS.SimpleQueueService.RequestThrottled"), Some(403)),
            FailureKind::Throttled
        );
        assert_eq!(classify(None, Some(429)), FailureKind::Throttled);
    }

    #[test]
    fn server_errors_are_unavailable_and_timeouts_are_timeouts() {
        assert_eq!(
            classify(Some("InternalServerError"), Some(500)),
            FailureKind::Unavailable
        );
        assert_eq!(classify(None, Some(503)), FailureKind::Unavailable);
        assert_eq!(
            classify(Some("InternalError"), None),
            FailureKind::Unavailable
        );
        assert_eq!(
            classify(Some("RequestTimeout"), Some(400)),
            FailureKind::Timeout
        );
        assert_eq!(classify(None, Some(504)), FailureKind::Timeout);
    }

    #[test]
    fn other_client_errors_are_refused() {
        assert_eq!(
            classify(Some("ValidationException"), Some(400)),
            FailureKind::Refused
        );
        assert_eq!(
            classify(Some("ResourceNotFoundException"), Some(400)),
            FailureKind::Refused
        );
        assert_eq!(classify(None, None), FailureKind::Refused);
    }

    fn service_error(code: &str, status: u16) -> PortError {
        use aws_sdk_sqs::error::ErrorMetadata;
        use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
        let metadata = ErrorMetadata::builder()
            .code(code)
            .message("from a test")
            .build();
        let raw = HttpResponse::new(status.try_into().unwrap(), "{}".into());
        sdk_error(
            "sqs",
            SdkError::service_error(SendMessageBatchError::generic(metadata), raw),
        )
    }

    #[test]
    fn sdk_errors_map_to_port_errors_by_code_status_and_kind() {
        assert!(matches!(
            service_error("RequestThrottled", 400),
            PortError::Throttled { service: "sqs", .. }
        ));
        assert!(matches!(
            service_error("InternalError", 500),
            PortError::Unavailable { .. }
        ));
        let refused = service_error("AWS.SimpleQueueService.NonExistentQueue", 400);
        assert!(matches!(refused, PortError::Refused { .. }));
        assert!(
            refused.to_string().contains("NonExistentQueue"),
            "{refused}"
        );
        let timeout: SdkError<
            aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError,
            HttpResponse,
        > = SdkError::timeout_error("took too long");
        assert!(matches!(
            sdk_error("sqs", timeout),
            PortError::Timeout { .. }
        ));
    }

    #[test]
    fn failed_entries_are_retryable_unless_they_are_the_senders_fault() {
        let retryable = entry_error("sqs", &failure(0, false, "SomethingOdd"));
        assert!(retryable.is_transient(), "{retryable:?}");
        let throttled = entry_error("sqs", &failure(0, false, "ThrottlingException"));
        assert!(matches!(throttled, PortError::Throttled { .. }));
        let refused = entry_error("sqs", &failure(0, true, "InvalidParameterValue"));
        assert!(!refused.is_transient());
    }

    #[test]
    fn a_round_keeps_failed_entries_and_drops_delivered_and_refused_ones() {
        let round = EntryRound::new(4).after_attempt(
            ["0", "2"],
            &[
                failure(1, false, "InternalError"),
                failure(3, true, "InvalidMessageContents"),
            ],
        );
        assert_eq!(round.pending, [1]);
        assert_eq!(round.refused.len(), 1);
        assert_eq!(round.refused[0].0, 3);
        assert_eq!(round.undelivered(), [1, 3]);
        assert!(
            !round.failure("sqs").is_some_and(|e| e.is_transient()),
            "refusal reported first"
        );

        let done = round.after_attempt(["1"], &[]);
        assert!(done.is_finished());
        assert_eq!(done.undelivered(), [3]);
    }

    #[test]
    fn an_entry_the_answer_does_not_mention_is_sent_again() {
        let round = EntryRound::new(2).after_attempt(["0"], &[]);
        assert_eq!(round.pending, [1]);
        assert!(round.failure("sns").is_some_and(|e| e.is_transient()));
    }

    #[tokio::test]
    async fn entries_that_keep_failing_are_retried_until_the_attempts_run_out() {
        let mut calls = 0;
        let outcome = retry_until_finished(
            &quick_backoff(4),
            Instant::now() + Duration::from_secs(5),
            EntryRound::new(3),
            |round: EntryRound| {
                calls += 1;
                async move {
                    // Entry 0 goes through at once; entry 2 never does.
                    let failures = [
                        failure(1, false, "InternalError"),
                        failure(2, false, "InternalError"),
                    ];
                    Ok(round.after_attempt(["0"], &failures))
                }
            },
        )
        .await;
        assert_eq!(calls, 4);
        assert_eq!(outcome.work.undelivered(), [1, 2]);
        assert!(outcome.error.is_none());
    }

    #[tokio::test]
    async fn entries_that_succeed_on_a_retry_are_delivered() {
        let mut calls = 0;
        let outcome = retry_until_finished(
            &quick_backoff(6),
            Instant::now() + Duration::from_secs(5),
            EntryRound::new(2),
            |round: EntryRound| {
                calls += 1;
                let first = calls == 1;
                async move {
                    if first {
                        Ok(round.after_attempt(["0"], &[failure(1, false, "ThrottlingException")]))
                    } else {
                        Ok(round.after_attempt(["1"], &[]))
                    }
                }
            },
        )
        .await;
        assert_eq!(calls, 2);
        assert!(outcome.work.is_finished());
        assert!(outcome.work.undelivered().is_empty());
    }

    #[tokio::test]
    async fn a_transient_error_is_retried_and_a_refusal_is_not() {
        let mut calls = 0;
        let outcome = retry_until_finished(
            &quick_backoff(6),
            Instant::now() + Duration::from_secs(5),
            EntryRound::new(1),
            |round: EntryRound| {
                calls += 1;
                let call = calls;
                async move {
                    match call {
                        1 => Err(PortError::Throttled {
                            service: "t",
                            detail: "slow down".into(),
                        }),
                        _ => Err(PortError::Refused {
                            service: "t",
                            detail: "no".into(),
                        }),
                    }
                    .map(|()| round)
                }
            },
        )
        .await;
        assert_eq!(calls, 2);
        assert!(matches!(outcome.error, Some(PortError::Refused { .. })));
        assert_eq!(outcome.work.pending, [0]);
    }

    #[tokio::test]
    async fn no_retry_starts_that_would_end_past_the_deadline() {
        let mut calls = 0;
        let backoff = Backoff {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(30),
            max_attempts: 10,
        };
        let outcome = retry_until_finished(
            &backoff,
            Instant::now() + Duration::from_millis(1),
            EntryRound::new(1),
            |round: EntryRound| {
                calls += 1;
                async move { Ok(round.after_attempt([], &[failure(0, false, "InternalError")])) }
            },
        )
        .await;
        // A full-jitter delay can be 0, so at most a couple of quick attempts fit; never ten.
        assert!(calls <= 3, "{calls} attempts");
        assert_eq!(outcome.work.pending, [0]);
    }
}
