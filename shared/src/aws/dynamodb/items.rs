//! The two tables' design in code: attribute and index names, and the pure mappings between
//! items and domain values. docs/DYNAMODB.md explains the design.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::ids::{CorrelationId, SubmissionId, UserId};
use crate::record::{FailureReason, Outcome, SubmissionKey, SubmissionRecord};
use crate::rejection::RejectionReason;
use crate::submission::{ClientRef, HeroId, Score};
use crate::users::{User, UserStatus};

/// One DynamoDB item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// Attribute names of both tables.
pub mod attribute {
    pub const SUBMISSION_ID: &str = "submissionId";
    pub const USER_ID: &str = "userId";
    pub const HERO_ID: &str = "heroId";
    pub const SCORE: &str = "score";
    pub const ACHIEVED_AT: &str = "achievedAt";
    pub const CLIENT_REF: &str = "clientRef";
    pub const RECEIVED_AT: &str = "receivedAt";
    pub const CORRELATION_ID: &str = "correlationId";
    pub const STATUS: &str = "status";
    pub const REASON: &str = "reason";
    /// When the processor decided (the `rejectedAt` of the rejection's notifications).
    pub const DECIDED_AT: &str = "decidedAt";
    /// When the rejection was published: written by the notifier, absent until then (the outbox).
    pub const NOTIFIED_AT: &str = "notifiedAt";
    /// Why a `failed` marker's submission could not be decided.
    pub const FAILURE: &str = "failure";
    pub const PERMISSIONS: &str = "permissions";
    pub const DISPLAY_NAME: &str = "displayName";
}

/// The submissions table's key of one submission: partition `userId` (the player), sort
/// `submissionId`. The table has no index: every read knows the player.
pub fn submission_key_item(key: &SubmissionKey) -> Item {
    Item::from([
        (attribute::USER_ID.to_owned(), text(key.user_id.as_str())),
        (
            attribute::SUBMISSION_ID.to_owned(),
            text(key.submission_id.to_string()),
        ),
    ])
}

const STATUS_ACCEPTED: &str = "accepted";
const STATUS_REJECTED: &str = "rejected";
/// The `status` of a marker the processor writes for a submission it gave up on.
pub const STATUS_FAILED: &str = "failed";
const USER_ACTIVE: &str = "active";
const USER_SUSPENDED: &str = "suspended";

/// Why an item could not be read as (or written from) a domain value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("attribute `{attribute}` is missing")]
    Missing { attribute: &'static str },
    #[error("attribute `{attribute}` should be of type {expected}")]
    WrongType {
        attribute: &'static str,
        expected: &'static str,
    },
    #[error("attribute `{attribute}` has an invalid value {value:?}: {reason}")]
    Invalid {
        attribute: &'static str,
        value: String,
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Item mapping (pure)

/// RFC 3339 in UTC with exactly nine fractional digits: every timestamp has the same width, so
/// the strings sort in time order, for whoever reads or exports the items.
const SORTABLE_TIMESTAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

pub(super) fn timestamp_text(
    attribute: &'static str,
    at: OffsetDateTime,
) -> Result<String, ItemError> {
    at.to_offset(time::UtcOffset::UTC)
        .format(SORTABLE_TIMESTAMP)
        .map_err(|e| ItemError::Invalid {
            attribute,
            value: at.to_string(),
            reason: e.to_string(),
        })
}

pub(super) fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The item that stores one submission.
pub fn record_to_item(record: &SubmissionRecord) -> Result<Item, ItemError> {
    use attribute::*;
    let mut item = Item::from([
        (
            SUBMISSION_ID.to_owned(),
            text(record.submission_id.to_string()),
        ),
        (USER_ID.to_owned(), text(record.user_id.as_str())),
        (HERO_ID.to_owned(), text(record.hero_id.as_str())),
        (
            SCORE.to_owned(),
            AttributeValue::N(record.score.get().to_string()),
        ),
        (
            RECEIVED_AT.to_owned(),
            text(timestamp_text(RECEIVED_AT, record.received_at)?),
        ),
        (
            CORRELATION_ID.to_owned(),
            text(record.correlation_id.as_str()),
        ),
        (
            DECIDED_AT.to_owned(),
            text(timestamp_text(DECIDED_AT, record.decided_at)?),
        ),
    ]);
    if let Some(notified_at) = record.notified_at {
        item.insert(
            NOTIFIED_AT.to_owned(),
            text(timestamp_text(NOTIFIED_AT, notified_at)?),
        );
    }
    if let Some(achieved_at) = record.achieved_at {
        item.insert(
            ACHIEVED_AT.to_owned(),
            text(timestamp_text(ACHIEVED_AT, achieved_at)?),
        );
    }
    if let Some(client_ref) = &record.client_ref {
        item.insert(CLIENT_REF.to_owned(), text(client_ref.as_str()));
    }
    match record.outcome {
        Outcome::Accepted => {
            item.insert(STATUS.to_owned(), text(STATUS_ACCEPTED));
        }
        Outcome::Rejected(reason) => {
            item.insert(STATUS.to_owned(), text(STATUS_REJECTED));
            item.insert(REASON.to_owned(), text(reason.code()));
        }
        Outcome::Failed(reason) => {
            item.insert(STATUS.to_owned(), text(STATUS_FAILED));
            item.insert(FAILURE.to_owned(), text(reason.code()));
        }
    }
    Ok(item)
}

fn optional_string<'a>(
    item: &'a Item,
    attribute: &'static str,
) -> Result<Option<&'a str>, ItemError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(_) => Err(ItemError::WrongType {
            attribute,
            expected: "S",
        }),
    }
}

fn string<'a>(item: &'a Item, attribute: &'static str) -> Result<&'a str, ItemError> {
    optional_string(item, attribute)?.ok_or(ItemError::Missing { attribute })
}

fn number<'a>(item: &'a Item, attribute: &'static str) -> Result<&'a str, ItemError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Err(ItemError::Missing { attribute }),
        Some(AttributeValue::N(value)) => Ok(value),
        Some(_) => Err(ItemError::WrongType {
            attribute,
            expected: "N",
        }),
    }
}

/// Parses an attribute's text with `parse`, naming the attribute and value if that fails.
fn parsed<T, E: std::fmt::Display>(
    attribute: &'static str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ItemError> {
    parse(value).map_err(|e| ItemError::Invalid {
        attribute,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_timestamp(value: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(value, &Rfc3339)
}

fn parse_score(value: &str) -> Result<Score, String> {
    let number: u32 = value
        .parse()
        .map_err(|e| format!("not a whole number: {e}"))?;
    Score::new(number)
}

/// Reads a submission item back. Leaderboard keys are derived data and are not read.
pub fn item_to_record(item: &Item) -> Result<SubmissionRecord, ItemError> {
    use attribute::*;
    let submission_id = parsed(SUBMISSION_ID, string(item, SUBMISSION_ID)?, |v| {
        SubmissionId::parse(v).ok_or("not a submission id issued by this service")
    })?;
    let outcome = match string(item, STATUS)? {
        STATUS_ACCEPTED => Outcome::Accepted,
        STATUS_REJECTED => Outcome::Rejected(parsed(REASON, string(item, REASON)?, |v| {
            RejectionReason::from_code(v).ok_or("not a known rejection reason")
        })?),
        STATUS_FAILED => Outcome::Failed(parsed(FAILURE, string(item, FAILURE)?, |v| {
            FailureReason::from_code(v).ok_or("not a known failure reason")
        })?),
        other => {
            return Err(ItemError::Invalid {
                attribute: STATUS,
                value: other.to_owned(),
                reason: format!(
                    "expected {STATUS_ACCEPTED:?}, {STATUS_REJECTED:?} or {STATUS_FAILED:?}"
                ),
            });
        }
    };
    let received_at = parsed(RECEIVED_AT, string(item, RECEIVED_AT)?, parse_timestamp)?;
    Ok(SubmissionRecord {
        submission_id,
        user_id: parsed(USER_ID, string(item, USER_ID)?, |v| UserId::parse(v))?,
        hero_id: parsed(HERO_ID, string(item, HERO_ID)?, HeroId::parse)?,
        score: parsed(SCORE, number(item, SCORE)?, parse_score)?,
        achieved_at: optional_string(item, ACHIEVED_AT)?
            .map(|v| parsed(ACHIEVED_AT, v, parse_timestamp))
            .transpose()?,
        client_ref: optional_string(item, CLIENT_REF)?
            .map(|v| parsed(CLIENT_REF, v, ClientRef::parse))
            .transpose()?,
        received_at,
        correlation_id: parsed(CORRELATION_ID, string(item, CORRELATION_ID)?, |v| {
            CorrelationId::parse(v).ok_or("not a valid correlation id")
        })?,
        outcome,
        // Items written before decisions were timed carry none: their receipt time stands in.
        decided_at: optional_string(item, DECIDED_AT)?
            .map(|v| parsed(DECIDED_AT, v, parse_timestamp))
            .transpose()?
            .unwrap_or(received_at),
        notified_at: optional_string(item, NOTIFIED_AT)?
            .map(|v| parsed(NOTIFIED_AT, v, parse_timestamp))
            .transpose()?,
    })
}

pub(super) fn user_status_text(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => USER_ACTIVE,
        UserStatus::Suspended => USER_SUSPENDED,
    }
}

fn parse_user_status(value: &str) -> Result<UserStatus, String> {
    match value {
        USER_ACTIVE => Ok(UserStatus::Active),
        USER_SUSPENDED => Ok(UserStatus::Suspended),
        _ => Err(format!("expected {USER_ACTIVE:?} or {USER_SUSPENDED:?}")),
    }
}

/// The users-table item for a user. Permissions are a list (`L` of `S`), not a string set,
/// because a string set cannot be empty.
pub fn user_to_item(user: &User) -> Item {
    use attribute::*;
    Item::from([
        (USER_ID.to_owned(), text(user.user_id.as_str())),
        (STATUS.to_owned(), text(user_status_text(user.status))),
        (
            PERMISSIONS.to_owned(),
            AttributeValue::L(user.permissions.iter().map(text).collect()),
        ),
    ])
}

/// Reads a users-table item. A missing `permissions` attribute means none; a string set is
/// accepted too, since operators writing items by hand reach for one.
pub fn item_to_user(item: &Item) -> Result<User, ItemError> {
    use attribute::*;
    let permissions = match item.get(PERMISSIONS) {
        None | Some(AttributeValue::Null(_)) => Vec::new(),
        Some(AttributeValue::Ss(values)) => values.clone(),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::S(permission) => Ok(permission.clone()),
                _ => Err(ItemError::WrongType {
                    attribute: PERMISSIONS,
                    expected: "L of S",
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ItemError::WrongType {
                attribute: PERMISSIONS,
                expected: "L of S",
            });
        }
    };
    Ok(User {
        user_id: parsed(USER_ID, string(item, USER_ID)?, |v| UserId::parse(v))?,
        status: parsed(STATUS, string(item, STATUS)?, parse_user_status)?,
        permissions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::SUBMIT_SCORES_PERMISSION;
    use time::macros::datetime;

    fn record(outcome: Outcome) -> SubmissionRecord {
        SubmissionRecord {
            submission_id: SubmissionId::new_unique(),
            user_id: UserId::parse("auth0|alice").unwrap(),
            hero_id: HeroId::parse("storm").unwrap(),
            score: Score::new(4200).unwrap(),
            achieved_at: Some(datetime!(2026-11-22 11:59:00.123 +01:00)),
            client_ref: Some(ClientRef::parse("run-7").unwrap()),
            received_at: datetime!(2026-11-22 12:00:00.5 UTC),
            correlation_id: CorrelationId::parse("req-1").unwrap(),
            outcome,
            decided_at: datetime!(2026-11-22 12:00:01.25 UTC),
            notified_at: None,
        }
    }

    fn s(item: &Item, name: &str) -> String {
        item[name].as_s().unwrap().clone()
    }

    #[test]
    fn an_accepted_record_round_trips() {
        let record = record(Outcome::Accepted);
        let item = record_to_item(&record).unwrap();
        assert_eq!(s(&item, "status"), "accepted");
        assert_eq!(item["score"].as_n().unwrap(), "4200");
        assert!(!item.contains_key("reason"));
        assert_eq!(item_to_record(&item).unwrap(), record);
    }

    #[test]
    fn a_rejected_record_round_trips_with_its_reason() {
        let record = record(Outcome::Rejected(RejectionReason::SuspendedUser));
        let item = record_to_item(&record).unwrap();
        assert_eq!(s(&item, "status"), "rejected");
        assert_eq!(s(&item, "reason"), "suspended_user");
        assert_eq!(item_to_record(&item).unwrap(), record);
    }

    #[test]
    fn the_outbox_flag_and_a_failed_marker_round_trip() {
        let mut notified = record(Outcome::Rejected(RejectionReason::RateLimited));
        notified.notified_at = Some(datetime!(2026-11-22 12:00:02 UTC));
        let item = record_to_item(&notified).unwrap();
        assert_eq!(s(&item, "notifiedAt"), "2026-11-22T12:00:02.000000000Z");
        assert_eq!(item_to_record(&item).unwrap(), notified);

        let failed = record(Outcome::Failed(FailureReason::StoreUnavailable));
        let item = record_to_item(&failed).unwrap();
        assert_eq!(s(&item, "status"), "failed");
        assert_eq!(s(&item, "failure"), "store_unavailable");
        assert!(!item.contains_key("reason"));
        assert_eq!(item_to_record(&item).unwrap(), failed);
    }

    #[test]
    fn an_item_written_before_decisions_were_timed_reads_its_receipt_time_as_decided() {
        let record = record(Outcome::Accepted);
        let mut item = record_to_item(&record).unwrap();
        item.remove("decidedAt");
        assert_eq!(
            item_to_record(&item).unwrap().decided_at,
            record.received_at
        );
    }

    #[test]
    fn optional_attributes_are_left_out_when_absent() {
        let mut record = record(Outcome::Accepted);
        record.achieved_at = None;
        record.client_ref = None;
        let item = record_to_item(&record).unwrap();
        assert!(!item.contains_key("achievedAt") && !item.contains_key("clientRef"));
        assert_eq!(item_to_record(&item).unwrap(), record);
    }

    #[test]
    fn timestamps_are_utc_fixed_width_and_sort_in_time_order() {
        let mut whole_second = record(Outcome::Accepted);
        whole_second.received_at = datetime!(2026-11-22 12:00:00 UTC);
        let mut later = record(Outcome::Accepted);
        later.received_at = datetime!(2026-11-22 12:00:00.000000001 UTC);
        let a = s(&record_to_item(&whole_second).unwrap(), "receivedAt");
        let b = s(&record_to_item(&later).unwrap(), "receivedAt");
        assert_eq!(a, "2026-11-22T12:00:00.000000000Z");
        assert!(a < b);
        let achieved = s(
            &record_to_item(&record(Outcome::Accepted)).unwrap(),
            "achievedAt",
        );
        assert_eq!(
            achieved, "2026-11-22T10:59:00.123000000Z",
            "converted to UTC"
        );
    }

    #[test]
    fn a_missing_attribute_is_named() {
        for name in [
            "submissionId",
            "userId",
            "heroId",
            "score",
            "receivedAt",
            "correlationId",
            "status",
        ] {
            let mut item = record_to_item(&record(Outcome::Accepted)).unwrap();
            item.remove(name);
            assert_eq!(
                item_to_record(&item),
                Err(ItemError::Missing { attribute: name })
            );
        }
        let mut rejected =
            record_to_item(&record(Outcome::Rejected(RejectionReason::UnknownUser))).unwrap();
        rejected.remove("reason");
        assert_eq!(
            item_to_record(&rejected),
            Err(ItemError::Missing {
                attribute: "reason"
            })
        );
    }

    #[test]
    fn bad_values_and_wrong_types_are_errors_not_panics() {
        let good = record_to_item(&record(Outcome::Accepted)).unwrap();
        let cases: [(&str, AttributeValue); 9] = [
            ("score", AttributeValue::N("-1".into())),
            ("score", AttributeValue::N("1e3".into())),
            ("score", AttributeValue::N("2000000000".into())),
            ("score", AttributeValue::S("10".into())),
            ("submissionId", AttributeValue::S("not-a-uuid".into())),
            ("receivedAt", AttributeValue::S("yesterday".into())),
            ("heroId", AttributeValue::S("bad hero!".into())),
            ("status", AttributeValue::S("pending".into())),
            ("clientRef", AttributeValue::Bool(true)),
        ];
        for (name, value) in cases {
            let mut item = good.clone();
            item.insert(name.to_owned(), value.clone());
            let error = item_to_record(&item).expect_err(&format!("{name} = {value:?}"));
            assert!(error.to_string().contains(name), "{error}");
        }
        let mut bad_reason =
            record_to_item(&record(Outcome::Rejected(RejectionReason::UnknownUser))).unwrap();
        bad_reason.insert("reason".into(), AttributeValue::S("felt_like_it".into()));
        assert!(matches!(
            item_to_record(&bad_reason),
            Err(ItemError::Invalid {
                attribute: "reason",
                ..
            })
        ));
    }

    #[test]
    fn users_round_trip_including_an_empty_permission_list() {
        let alice = User::active(UserId::parse("alice").unwrap());
        let item = user_to_item(&alice);
        assert_eq!(
            item["permissions"],
            AttributeValue::L(vec![AttributeValue::S(SUBMIT_SCORES_PERMISSION.into())])
        );
        assert_eq!(item_to_user(&item).unwrap(), alice);

        let nobody = User {
            user_id: UserId::parse("nobody").unwrap(),
            status: UserStatus::Suspended,
            permissions: vec![],
        };
        let item = user_to_item(&nobody);
        assert_eq!(s(&item, "status"), "suspended");
        assert_eq!(item["permissions"], AttributeValue::L(vec![]));
        assert_eq!(item_to_user(&item).unwrap(), nobody);
    }

    #[test]
    fn hand_written_user_items_are_read_leniently_where_it_is_safe() {
        let mut item = user_to_item(&User::active(UserId::parse("bob").unwrap()));
        item.insert(
            "permissions".into(),
            AttributeValue::Ss(vec!["scores:submit".into()]),
        );
        item.insert("displayName".into(), AttributeValue::S("Bob".into()));
        assert!(item_to_user(&item).unwrap().may_submit_scores());
        item.remove("permissions");
        assert_eq!(
            item_to_user(&item).unwrap().permissions,
            Vec::<String>::new()
        );
    }

    #[test]
    fn malformed_user_items_are_errors() {
        let good = user_to_item(&User::active(UserId::parse("carol").unwrap()));
        let mut no_status = good.clone();
        no_status.remove("status");
        assert_eq!(
            item_to_user(&no_status),
            Err(ItemError::Missing {
                attribute: "status"
            })
        );
        let mut no_id = good.clone();
        no_id.remove("userId");
        assert_eq!(
            item_to_user(&no_id),
            Err(ItemError::Missing {
                attribute: "userId"
            })
        );
        let mut bad_status = good.clone();
        bad_status.insert("status".into(), AttributeValue::S("banned".into()));
        assert!(matches!(
            item_to_user(&bad_status),
            Err(ItemError::Invalid {
                attribute: "status",
                ..
            })
        ));
        let mut numbers = good.clone();
        numbers.insert(
            "permissions".into(),
            AttributeValue::L(vec![AttributeValue::N("1".into())]),
        );
        assert!(matches!(
            item_to_user(&numbers),
            Err(ItemError::WrongType {
                attribute: "permissions",
                ..
            })
        ));
        let mut empty_id = good;
        empty_id.insert("userId".into(), AttributeValue::S(String::new()));
        assert!(matches!(
            item_to_user(&empty_id),
            Err(ItemError::Invalid {
                attribute: "userId",
                ..
            })
        ));
    }
}
