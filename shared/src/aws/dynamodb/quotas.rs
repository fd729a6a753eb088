//! The quotas table ([`QuotaCounter`]): one item per user and window, holding the ids the window
//! admitted as a string set. docs/DYNAMODB.md explains the design.
//!
//! Admission is one conditional UpdateItem per user and batch while the window has room for the
//! whole batch. When it has not (the user is at or near the limit), the failed condition returns
//! the stored set; the counting rule ([`admit_into`]) decides against it, and the ids it adds are
//! written with the condition that the set is still exactly as read. A concurrent writer makes
//! that fail and return the newer set, and the decision is made again.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Item, SERVICE, text};
use crate::aws::sdk_error;
use crate::ids::SubmissionId;
use crate::ports::{PortError, QuotaCounter};
use crate::quota::{QuotaWindow, admit_into};

/// Attribute names of the quotas table.
pub mod quota_attribute {
    /// Partition key: the user id.
    pub const USER_ID: &str = "userId";
    /// Sort key: the window's start, in Unix seconds (N).
    pub const WINDOW_START: &str = "windowStart";
    /// The admitted submission ids (SS).
    pub const SUBMISSION_IDS: &str = "submissionIds";
    /// When DynamoDB's TTL may delete the item, in Unix seconds (N).
    pub const EXPIRES_AT: &str = "expiresAt";
}

use quota_attribute as attr;

const UPDATE: &str = "ADD #ids :ids SET #expires = :expires";
/// The whole batch fits: the set is absent or has at least as much room as the batch needs.
const BATCH_FITS: &str = "attribute_not_exists(#ids) OR size(#ids) <= :room";
/// The set is still as it was read: absent (`:seen` is 0) or of the same size (it only grows).
const UNCHANGED: &str = "attribute_not_exists(#ids) OR size(#ids) = :seen";
/// Rounds of read-decide-write before giving up on a window other writers keep changing.
const MAX_ROUNDS: usize = 20;

/// Whether the condition held, and the set as it was when it did not.
enum Counted {
    Added,
    Refused(HashSet<SubmissionId>),
}

#[derive(Clone, Debug)]
pub struct DynamoQuotaCounter {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

impl DynamoQuotaCounter {
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
        }
    }

    /// Adds `ids` to the window's set if `condition` holds.
    async fn add_if(
        &self,
        window: &QuotaWindow,
        ids: &[SubmissionId],
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Counted, PortError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .key(attr::USER_ID, text(window.user_id.as_str()))
            .key(attr::WINDOW_START, number(window.start))
            .update_expression(UPDATE)
            .condition_expression(condition)
            .expression_attribute_names("#ids", attr::SUBMISSION_IDS)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(
                ":ids",
                AttributeValue::Ss(ids.iter().map(ToString::to_string).collect()),
            )
            .expression_attribute_values(":expires", number(window.expires_at()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(Counted::Added),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Counted::Refused(counted_ids(failed.item())?))
                }
                _ => Err(sdk_error(SERVICE, error)),
            },
        }
    }
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The ids a stored item holds; an entry that is not a submission id makes the item unusable,
/// since the set's size (which the conditions check) would no longer match the ids decided on.
fn counted_ids(item: Option<&Item>) -> Result<HashSet<SubmissionId>, PortError> {
    let Some(ids) = item
        .and_then(|item| item.get(attr::SUBMISSION_IDS))
        .and_then(|ids| ids.as_ss().ok())
    else {
        return Ok(HashSet::new());
    };
    ids.iter()
        .map(|raw| {
            SubmissionId::parse(raw).ok_or_else(|| PortError::Refused {
                service: SERVICE,
                detail: format!("a quotas-table item holds {raw:?}, which is not a submission id"),
            })
        })
        .collect()
}

/// Distinct ids in first-seen order: a string set holds each once.
fn distinct(ids: &[SubmissionId]) -> Vec<SubmissionId> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

#[async_trait]
impl QuotaCounter for DynamoQuotaCounter {
    async fn admit(
        &self,
        window: &QuotaWindow,
        limit: u32,
        ids: &[SubmissionId],
    ) -> Result<HashSet<SubmissionId>, PortError> {
        let ids = distinct(ids);
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        // The common case, without reading: the whole batch fits.
        let mut counted = match (limit as usize).checked_sub(ids.len()) {
            Some(room) => match self
                .add_if(window, &ids, BATCH_FITS, &[(":room", number(room))])
                .await?
            {
                Counted::Added => return Ok(ids.into_iter().collect()),
                Counted::Refused(counted) => counted,
            },
            // More ids than the limit: decide as if the window were empty; the write's
            // condition tells if it is not.
            None => HashSet::new(),
        };
        for _ in 0..MAX_ROUNDS {
            let (admitted, added) = admit_into(&counted, limit, &ids);
            if added.is_empty() {
                return Ok(admitted);
            }
            let seen = [(":seen", number(counted.len()))];
            match self.add_if(window, &added, UNCHANGED, &seen).await? {
                Counted::Added => return Ok(admitted),
                Counted::Refused(newer) => counted = newer,
            }
        }
        Err(PortError::Throttled {
            service: SERVICE,
            detail: format!(
                "the quota window of {} kept changing under {MAX_ROUNDS} attempts",
                window.user_id
            ),
        })
    }
}
