//! The quotas table ([`QuotaCounter`]): one item per user and window, holding the ids the window
//! admitted as a string set. docs/DYNAMODB.md explains the design.
//!
//! Admission is one conditional UpdateItem per user and batch while the window has room for the
//! whole batch. Only when it has not (the user is at or near the limit) do ids go one conditional
//! UpdateItem each, until the window is full; from then on the set, which never shrinks, answers.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Item, SERVICE, text};
use crate::aws::sdk_error;
use crate::ids::SubmissionId;
use crate::ports::{PortError, QuotaCounter};
use crate::quota::QuotaWindow;

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
/// One id fits: the set is absent, already holds it, or has room for one more.
const ONE_FITS: &str = "attribute_not_exists(#ids) OR contains(#ids, :id) OR size(#ids) < :limit";

/// Whether the condition held, and the set as it was when it did not.
enum Counted {
    Added,
    Refused(HashSet<String>),
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
                    Ok(Counted::Refused(counted_ids(failed.item())))
                }
                _ => Err(sdk_error(SERVICE, error)),
            },
        }
    }
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn counted_ids(item: Option<&Item>) -> HashSet<String> {
    item.and_then(|item| item.get(attr::SUBMISSION_IDS))
        .and_then(|ids| ids.as_ss().ok())
        .map(|ids| ids.iter().cloned().collect())
        .unwrap_or_default()
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
        let mut known: Option<HashSet<String>> = None;
        if let Some(room) = (limit as usize).checked_sub(ids.len()) {
            match self
                .add_if(window, &ids, BATCH_FITS, &[(":room", number(room))])
                .await?
            {
                Counted::Added => return Ok(ids.into_iter().collect()),
                Counted::Refused(counted) => known = Some(counted),
            }
        }
        // Near or over the limit: admit what the set already holds, then add the rest one by one
        // while there is room. A refusal means the set is full and lacks the id; as the set never
        // shrinks, the set it returned then decides every id left.
        let mut admitted = HashSet::new();
        let mut full = false;
        for id in ids {
            let already = known
                .as_ref()
                .is_some_and(|counted| counted.contains(&id.to_string()));
            if already {
                admitted.insert(id);
                continue;
            }
            if full {
                continue;
            }
            let values = [(":id", text(id.to_string())), (":limit", number(limit))];
            match self.add_if(window, &[id], ONE_FITS, &values).await? {
                Counted::Added => {
                    admitted.insert(id);
                }
                Counted::Refused(counted) => {
                    known = Some(counted);
                    full = true;
                }
            }
        }
        Ok(admitted)
    }
}
