//! Identifiers: users, submissions, correlation ids.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::limits::{CORRELATION_ID_MAX_CHARS, SUBJECT_MAX_CHARS};

/// A user, as named by the verified token's `sub` claim and keyed in the users directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: impl Into<String>) -> Result<Self, &'static str> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars == 0 {
            return Err("must not be empty");
        }
        if chars > SUBJECT_MAX_CHARS {
            return Err("is too long");
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one submission: the key of its queue message and of its stored record.
///
/// Fresh ids are UUIDv7 (time-sortable). Ids derived from a client's idempotency key or
/// `clientRef` are UUIDv5 over the user and that key, so a retry maps to the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubmissionId(Uuid);

/// Namespace of derived submission ids (a random UUID fixed for this project).
const SUBMISSION_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_9a4d_4e57_8f0b_2d7c_5a91_e3f4);

impl SubmissionId {
    pub fn new_unique() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id of a submission: from its `clientRef`, else from the request's `Idempotency-Key`
    /// and the submission's position in the request (0 for a single post), else fresh. One rule
    /// for single posts and batch items, so a submission has one id however it is sent again.
    pub fn for_submission(
        user: &UserId,
        client_ref: Option<&str>,
        idempotency_key: Option<&str>,
        index: usize,
    ) -> Self {
        match (client_ref, idempotency_key) {
            (Some(client_ref), _) => Self::from_client_ref(user, client_ref),
            (None, Some(key)) => Self::from_idempotency_key(user, key, index),
            (None, None) => Self::new_unique(),
        }
    }

    /// The id for submission `index` of a request sent with an `Idempotency-Key` header and no
    /// `clientRef` (a single post is index 0).
    pub fn from_idempotency_key(user: &UserId, key: &str, index: usize) -> Self {
        Self::derived("idempotency-key", user, key, Some(index))
    }

    /// The id for a submission carrying a `clientRef`.
    pub fn from_client_ref(user: &UserId, client_ref: &str) -> Self {
        Self::derived("client-ref", user, client_ref, None)
    }

    fn derived(kind: &str, user: &UserId, key: &str, index: Option<usize>) -> Self {
        // Length-prefixed fields keep the encoding injective whatever the user id or key contain.
        let user = user.as_str();
        let mut name = format!("{kind}:{}:{user}:{}:{key}", user.len(), key.len());
        if let Some(index) = index {
            name.push_str(&format!(":{index}"));
        }
        Self(Uuid::new_v5(&SUBMISSION_ID_NAMESPACE, name.as_bytes()))
    }

    /// Parses the canonical hyphenated lower-case form that this service hands out.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 36 || raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let uuid = Uuid::try_parse(raw).ok()?;
        matches!(uuid.get_version_num(), 5 | 7).then_some(Self(uuid))
    }

    /// The id's 16 bytes, the most compact form a store can keep.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.into_bytes()
    }

    /// Whether the id was derived from a client's key (`clientRef` or `Idempotency-Key`), so that
    /// a client retry, a new message maybe long after the first, carries it again. A fresh id
    /// comes again only in a redelivery of its own message.
    pub fn is_derived(&self) -> bool {
        self.0.get_version_num() == 5
    }

    /// When a fresh (v7) id was issued; `None` for derived ids.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        let secs = i64::try_from(secs).ok()?;
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
    }
}

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Ties every log line of every stage to one client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn generate() -> Self {
        // Encoded into a buffer rather than through `Display`: every request without an id of
        // its own makes one.
        let mut text = [0u8; uuid::fmt::Simple::LENGTH];
        Self(Uuid::now_v7().simple().encode_lower(&mut text).to_owned())
    }

    /// Accepts a caller-supplied id of `[A-Za-z0-9._:-]`, 1 to 128 characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= CORRELATION_ID_MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or("is not a valid correlation id")
    }
}

impl From<CorrelationId> for String {
    fn from(value: CorrelationId) -> Self {
        value.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn same_idempotency_key_and_user_give_the_same_id() {
        let a = SubmissionId::from_idempotency_key(&user("alice"), "k-1", 0);
        let b = SubmissionId::from_idempotency_key(&user("alice"), "k-1", 0);
        assert_eq!(a, b);
    }

    #[test]
    fn the_same_key_from_another_user_gives_another_id() {
        let a = SubmissionId::from_idempotency_key(&user("alice"), "k-1", 0);
        let b = SubmissionId::from_idempotency_key(&user("bob"), "k-1", 0);
        assert_ne!(a, b);
    }

    #[test]
    fn derived_ids_do_not_collide_across_field_boundaries() {
        // "a:b" + "c" and "a" + "b:c" must not produce the same name.
        let a = SubmissionId::from_client_ref(&user("a:b"), "c");
        let b = SubmissionId::from_client_ref(&user("a"), "b:c");
        assert_ne!(a, b);
        let k = SubmissionId::from_idempotency_key(&user("alice"), "x", 0);
        let r = SubmissionId::from_client_ref(&user("alice"), "x");
        assert_ne!(
            k, r,
            "idempotency keys and client refs live in separate namespaces"
        );
        let first = SubmissionId::from_idempotency_key(&user("alice"), "x", 0);
        let second = SubmissionId::from_idempotency_key(&user("alice"), "x", 1);
        assert_ne!(first, second);
    }

    #[test]
    fn one_rule_for_single_posts_and_batch_items_client_ref_first() {
        let alice = user("alice");
        let by_ref = SubmissionId::from_client_ref(&alice, "r");
        assert_eq!(
            SubmissionId::for_submission(&alice, Some("r"), Some("k"), 0),
            by_ref
        );
        assert_eq!(
            SubmissionId::for_submission(&alice, Some("r"), Some("k"), 7),
            by_ref
        );
        assert_eq!(
            SubmissionId::for_submission(&alice, Some("r"), None, 3),
            by_ref
        );
        assert_eq!(
            SubmissionId::for_submission(&alice, None, Some("k"), 3),
            SubmissionId::from_idempotency_key(&alice, "k", 3)
        );
        assert_ne!(
            SubmissionId::for_submission(&alice, None, None, 0),
            SubmissionId::for_submission(&alice, None, None, 0)
        );
    }

    #[test]
    fn fresh_ids_are_unique_sortable_and_carry_their_issue_time() {
        let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let a = SubmissionId::new_unique();
        let b = SubmissionId::new_unique();
        assert_ne!(a, b);
        assert!(a < b, "v7 ids sort by creation time");
        let issued = a.issued_at().expect("v7 ids carry a timestamp");
        assert!(issued >= before && issued <= OffsetDateTime::now_utc());
        assert!(
            SubmissionId::from_client_ref(&user("a"), "r")
                .issued_at()
                .is_none()
        );
    }

    #[test]
    fn ids_round_trip_through_their_text_form_and_reject_other_forms() {
        let id = SubmissionId::new_unique();
        assert_eq!(SubmissionId::parse(&id.to_string()), Some(id));
        assert_eq!(SubmissionId::parse(&id.to_string().to_uppercase()), None);
        assert_eq!(SubmissionId::parse("../../etc/passwd"), None);
        assert_eq!(SubmissionId::parse(""), None);
        // A v4 UUID is well-formed but never issued by this service.
        assert_eq!(
            SubmissionId::parse("0b6f1d9e-4c1a-4b8e-9d3f-2a7c5e1f9b04"),
            None
        );
    }

    #[test]
    fn user_ids_refuse_empty_long_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a".repeat(SUBJECT_MAX_CHARS + 1)).is_err());
        assert!(UserId::parse("bad\u{0}id").is_err());
        assert!(UserId::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
    }

    #[test]
    fn correlation_ids_accept_safe_text_only() {
        assert!(CorrelationId::parse("req-123:abc_DEF.9").is_some());
        assert!(CorrelationId::parse("").is_none());
        assert!(CorrelationId::parse("has space").is_none());
        assert!(CorrelationId::parse("line\nbreak").is_none());
        assert!(CorrelationId::parse(&"a".repeat(CORRELATION_ID_MAX_CHARS + 1)).is_none());
        assert_ne!(CorrelationId::generate(), CorrelationId::generate());
    }
}
