//! Versioned queue messages: what ingest enqueues and what the processor hands to the notifier.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CorrelationId, SubmissionId, UserId};
use crate::rejection::RejectionReason;
use crate::submission::{HeroId, Score, ScoreSubmission};

/// The only message version this code writes and reads.
pub const MESSAGE_VERSION: u8 = 1;

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

/// The body of a submissions-queue message.
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
}

/// Reads a message body of either kind, refusing versions this code does not understand.
pub fn decode<T: VersionedMessage>(body: Option<&str>) -> Result<T, MalformedMessage> {
    let body = body.ok_or(MalformedMessage::MissingBody)?;
    let message: T = serde_json::from_str(body)?;
    match message.version() {
        MESSAGE_VERSION => Ok(message),
        other => Err(MalformedMessage::UnsupportedVersion(other)),
    }
}

/// Writes a message body.
pub fn encode<T: VersionedMessage>(message: &T) -> String {
    // Serialising these plain structs cannot fail: every map key is a string.
    serde_json::to_string(message).unwrap_or_else(|e| unreachable!("message serialisation: {e}"))
}

pub trait VersionedMessage: Serialize + for<'de> Deserialize<'de> {
    fn version(&self) -> u8;
}

impl VersionedMessage for QueuedSubmission {
    fn version(&self) -> u8 {
        self.v
    }
}

impl VersionedMessage for Rejection {
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

    #[test]
    fn other_versions_and_garbage_are_malformed() {
        let body = encode(&queued()).replacen(r#""v":1"#, r#""v":2"#, 1);
        assert!(matches!(
            decode::<QueuedSubmission>(Some(&body)),
            Err(MalformedMessage::UnsupportedVersion(2))
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
