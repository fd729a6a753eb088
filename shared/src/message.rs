//! Versioned queue messages: what ingest enqueues and what the processor hands to the notifier.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CorrelationId, SubmissionId, UserId};
use crate::record::SubmissionKey;
use crate::rejection::RejectionReason;
use crate::submission::{HeroId, Score, ScoreSubmission};

/// Version of rejection messages, and of the single-submission messages earlier versions of ingest
/// wrote (still read, so that messages in flight during a deploy are not parked).
pub const MESSAGE_VERSION: u8 = 1;
/// Version of the submissions-queue messages this code writes: one message per HTTP request.
pub const REQUEST_MESSAGE_VERSION: u8 = 2;

/// The verified identity behind a submission, as ingest saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub subject: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The body of a submissions-queue message: every submission of one HTTP request, so that the
/// request is enqueued, and so accepted or refused, as a whole (one SendMessage). A full batch
/// of 100 maximal submissions encodes to about 30 KB, far below the SQS message size limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedRequest {
    pub v: u8,
    pub correlation_id: CorrelationId,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub principal: Principal,
    pub submissions: Vec<QueuedItem>,
}

/// One submission of a [`QueuedRequest`], with the id ingest gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedItem {
    pub submission_id: SubmissionId,
    pub submission: ScoreSubmission,
}

impl QueuedRequest {
    /// The request's submissions, each with the request's identity, time and correlation id:
    /// the processor's unit of work.
    pub fn into_submissions(self) -> Vec<QueuedSubmission> {
        let Self {
            correlation_id,
            received_at,
            principal,
            mut submissions,
            ..
        } = self;
        // The last one takes the request's context; the others get copies (a single, the
        // common case, copies nothing).
        let Some(last) = submissions.pop() else {
            return Vec::new();
        };
        let submission = |item: QueuedItem, correlation_id, principal| QueuedSubmission {
            v: MESSAGE_VERSION,
            submission_id: item.submission_id,
            correlation_id,
            received_at,
            principal,
            submission: item.submission,
        };
        let mut fanned: Vec<QueuedSubmission> = Vec::with_capacity(submissions.len() + 1);
        for item in submissions {
            fanned.push(submission(item, correlation_id.clone(), principal.clone()));
        }
        fanned.push(submission(last, correlation_id, principal));
        fanned
    }

    pub fn submission_ids(&self) -> impl Iterator<Item = SubmissionId> + '_ {
        self.submissions.iter().map(|item| item.submission_id)
    }
}

/// One submission with the context of the request it came in: what the processor decides on,
/// and the v1 submissions-queue message body that earlier versions of ingest wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedSubmission {
    pub v: u8,
    pub submission_id: SubmissionId,
    pub correlation_id: CorrelationId,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub principal: Principal,
    pub submission: ScoreSubmission,
}

impl QueuedSubmission {
    /// Where the submission's record is kept.
    pub fn key(&self) -> SubmissionKey {
        SubmissionKey::new(self.principal.subject.clone(), self.submission_id)
    }
}

/// The body of a rejections-queue message, and of the SNS notification the notifier publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub v: u8,
    pub submission_id: SubmissionId,
    pub user_id: UserId,
    pub hero_id: HeroId,
    pub score: Score,
    pub reason: RejectionReason,
    #[serde(with = "time::serde::rfc3339")]
    pub rejected_at: OffsetDateTime,
    pub correlation_id: CorrelationId,
}

impl Rejection {
    /// Where the rejected submission's record is kept (the outbox the notifier marks).
    pub fn key(&self) -> SubmissionKey {
        SubmissionKey::new(self.user_id.clone(), self.submission_id)
    }
}

/// A queue message body that could not be used. The record is reported failed, so SQS retries it
/// and finally parks it in the dead-letter queue for an operator.
#[derive(Debug, thiserror::Error)]
pub enum MalformedMessage {
    #[error("message body is not a valid v{MESSAGE_VERSION} message: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("message version {0} is not supported (expected {MESSAGE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("message has no body")]
    MissingBody,
    #[error("message holds no submissions")]
    NoSubmissions,
}

/// Reads a message body of one kind, refusing versions this code does not understand.
pub fn decode<T: VersionedMessage>(body: Option<&str>) -> Result<T, MalformedMessage> {
    let body = body.ok_or(MalformedMessage::MissingBody)?;
    let message: T = serde_json::from_str(body)?;
    match message.version() {
        v if v == T::VERSION => Ok(message),
        other => Err(MalformedMessage::UnsupportedVersion(other)),
    }
}

/// Reads a submissions-queue message body: a request (v2) or a single submission (v1).
pub fn decode_submissions(body: Option<&str>) -> Result<Vec<QueuedSubmission>, MalformedMessage> {
    #[derive(Deserialize)]
    struct Version {
        v: u8,
    }
    let raw = body.ok_or(MalformedMessage::MissingBody)?;
    // What this code writes starts with its version (`v` is the first field), so the version is
    // read off the front in one pass; anything else (whitespace, another field order) is read
    // for `v` first. Either way `decode` checks the version of what it parsed.
    let version = if raw.starts_with(r#"{"v":2,"#) {
        REQUEST_MESSAGE_VERSION
    } else if raw.starts_with(r#"{"v":1,"#) {
        MESSAGE_VERSION
    } else {
        serde_json::from_str::<Version>(raw)?.v
    };
    match version {
        MESSAGE_VERSION => Ok(vec![decode::<QueuedSubmission>(body)?]),
        REQUEST_MESSAGE_VERSION => {
            let submissions = decode::<QueuedRequest>(body)?.into_submissions();
            if submissions.is_empty() {
                return Err(MalformedMessage::NoSubmissions);
            }
            Ok(submissions)
        }
        other => Err(MalformedMessage::UnsupportedVersion(other)),
    }
}

/// Writes a message body.
pub fn encode<T: VersionedMessage>(message: &T) -> String {
    // Serialising these plain structs cannot fail: every map key is a string.
    serde_json::to_string(message).unwrap_or_else(|e| unreachable!("message serialisation: {e}"))
}

pub trait VersionedMessage: Serialize + for<'de> Deserialize<'de> {
    /// The version this code reads and writes.
    const VERSION: u8;
    fn version(&self) -> u8;
}

impl VersionedMessage for QueuedRequest {
    const VERSION: u8 = REQUEST_MESSAGE_VERSION;
    fn version(&self) -> u8 {
        self.v
    }
}

impl VersionedMessage for QueuedSubmission {
    const VERSION: u8 = MESSAGE_VERSION;
    fn version(&self) -> u8 {
        self.v
    }
}

impl VersionedMessage for Rejection {
    const VERSION: u8 = MESSAGE_VERSION;
    fn version(&self) -> u8 {
        self.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn queued() -> QueuedSubmission {
        QueuedSubmission {
            v: MESSAGE_VERSION,
            submission_id: SubmissionId::new_unique(),
            correlation_id: CorrelationId::generate(),
            received_at: datetime!(2026-11-22 12:00:00 UTC),
            principal: Principal {
                subject: UserId::parse("alice").unwrap(),
                token_id: Some("jti-1".into()),
                scopes: vec!["scores:write".into()],
            },
            submission: ScoreSubmission {
                hero_id: HeroId::parse("storm").unwrap(),
                score: Score::new(10).unwrap(),
                achieved_at: None,
                client_ref: None,
            },
        }
    }

    #[test]
    fn queued_submissions_round_trip() {
        let message = queued();
        let body = encode(&message);
        assert!(body.starts_with(r#"{"v":1,"#), "{body}");
        assert_eq!(decode::<QueuedSubmission>(Some(&body)).unwrap(), message);
    }

    fn request(items: usize) -> QueuedRequest {
        let one = queued();
        QueuedRequest {
            v: REQUEST_MESSAGE_VERSION,
            correlation_id: one.correlation_id.clone(),
            received_at: one.received_at,
            principal: one.principal.clone(),
            submissions: (0..items)
                .map(|_| QueuedItem {
                    submission_id: SubmissionId::new_unique(),
                    submission: one.submission.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_request_fans_out_into_submissions_that_share_its_context() {
        let request = request(3);
        let body = encode(&request);
        assert!(body.starts_with(r#"{"v":2,"#), "{body}");
        let submissions = decode_submissions(Some(&body)).unwrap();
        assert_eq!(
            submissions
                .iter()
                .map(|s| s.submission_id)
                .collect::<Vec<_>>(),
            request.submission_ids().collect::<Vec<_>>()
        );
        for s in &submissions {
            assert_eq!(s.correlation_id, request.correlation_id);
            assert_eq!(s.received_at, request.received_at);
            assert_eq!(s.principal, request.principal);
        }
    }

    #[test]
    fn a_body_that_does_not_start_with_its_version_is_read_the_same() {
        let request = request(2);
        let written = encode(&request);
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&written).unwrap();
        let version = fields.shift_remove("v").unwrap();
        fields.insert("v".to_owned(), version);
        let reordered = serde_json::to_string(&fields).unwrap();
        assert!(!reordered.starts_with(r#"{"v""#), "{reordered}");
        let spaced = written.replacen(r#"{"v":2,"#, r#"{ "v" : 2 ,"#, 1);
        let expected = decode_submissions(Some(&written)).unwrap();
        assert_eq!(decode_submissions(Some(&reordered)).unwrap(), expected);
        assert_eq!(decode_submissions(Some(&spaced)).unwrap(), expected);
        // A front that names one version and a body of the other is malformed either way.
        let v1_front = written.replacen(r#"{"v":2,"#, r#"{"v":1,"#, 1);
        assert!(decode_submissions(Some(&v1_front)).is_err());
    }

    #[test]
    fn a_single_submission_message_of_the_earlier_version_is_still_read() {
        let message = queued();
        assert_eq!(
            decode_submissions(Some(&encode(&message))).unwrap(),
            [message]
        );
    }

    #[test]
    fn a_full_batch_of_maximal_submissions_fits_one_sqs_message() {
        use crate::limits::{
            CLIENT_REF_MAX_CHARS, CORRELATION_ID_MAX_CHARS, MAX_BATCH_SUBMISSIONS,
            SQS_MAX_MESSAGE_BYTES, SUBJECT_MAX_CHARS,
        };
        use crate::submission::ClientRef;
        let mut request = request(MAX_BATCH_SUBMISSIONS);
        request.principal.subject = UserId::parse("u".repeat(SUBJECT_MAX_CHARS)).unwrap();
        request.principal.token_id = Some("t".repeat(256));
        request.correlation_id =
            CorrelationId::parse(&"c".repeat(CORRELATION_ID_MAX_CHARS)).unwrap();
        for item in &mut request.submissions {
            item.submission.hero_id = HeroId::parse(&"h".repeat(64)).unwrap();
            item.submission.score = Score::new(1_000_000_000).unwrap();
            item.submission.achieved_at = Some(datetime!(2026-11-22 12:00:00.123456789 UTC));
            item.submission.client_ref =
                Some(ClientRef::parse(&"r".repeat(CLIENT_REF_MAX_CHARS)).unwrap());
        }
        let bytes = encode(&request).len();
        assert!(bytes < SQS_MAX_MESSAGE_BYTES / 4, "{bytes} bytes");
    }

    #[test]
    fn an_empty_request_is_malformed() {
        assert!(matches!(
            decode_submissions(Some(&encode(&request(0)))),
            Err(MalformedMessage::NoSubmissions)
        ));
    }

    #[test]
    fn other_versions_and_garbage_are_malformed() {
        let body = encode(&queued()).replacen(r#""v":1"#, r#""v":2"#, 1);
        assert!(matches!(
            decode::<QueuedSubmission>(Some(&body)),
            Err(MalformedMessage::UnsupportedVersion(2))
        ));
        let body = encode(&queued()).replacen(r#""v":1"#, r#""v":3"#, 1);
        assert!(matches!(
            decode_submissions(Some(&body)),
            Err(MalformedMessage::UnsupportedVersion(3))
        ));
        assert!(matches!(
            decode_submissions(Some("[1]")),
            Err(MalformedMessage::Invalid(_))
        ));
        assert!(matches!(
            decode::<QueuedSubmission>(Some("not json")),
            Err(MalformedMessage::Invalid(_))
        ));
        assert!(matches!(
            decode::<QueuedSubmission>(None),
            Err(MalformedMessage::MissingBody)
        ));
        let bad_score = encode(&queued()).replace(r#""score":10"#, r#""score":-10"#);
        assert!(matches!(
            decode::<QueuedSubmission>(Some(&bad_score)),
            Err(MalformedMessage::Invalid(_))
        ));
    }
}
