//! The in-memory backend: SQS-like queues, a table and a directory in this process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shared::ids::UserId;
use shared::memory::{
    MemoryNotifier, MemoryQueue, MemoryQuotaCounter, MemoryRankIndex, MemoryStore,
    MemoryUserDirectory, PublishListener, QueueSettings,
};
use shared::message::Rejection;
use shared::ports::PortError;
use shared::users::User;

use super::{Backend, DeadLetters, MessageSource, Observe, ReceivedMessage};
use crate::change_feed::MemoryChangeFeed;

#[async_trait]
impl MessageSource for MemoryQueue {
    fn name(&self) -> &str {
        MemoryQueue::name(self)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, PortError> {
        Ok(MemoryQueue::receive(self, max, wait)
            .await
            .into_iter()
            .map(|m| ReceivedMessage {
                receipt_handle: format!("{}#{}", m.message_id, m.receive_count),
                message_id: m.message_id,
                body: m.body,
                receive_count: m.receive_count,
                sent_at_ms: (m.sent_at.unix_timestamp_nanos() / 1_000_000) as i64,
                trace_header: None,
            })
            .collect())
    }

    async fn delete(&self, messages: &[ReceivedMessage]) -> Result<(), PortError> {
        for message in messages {
            MemoryQueue::delete(self, &message.message_id);
        }
        Ok(())
    }
}

/// The in-memory adapters behind a [`Backend`], for direct inspection.
#[derive(Clone)]
pub struct MemoryParts {
    pub submissions: Arc<MemoryQueue>,
    pub rejections: Arc<MemoryQueue>,
    pub store: Arc<MemoryStore>,
    pub directory: Arc<MemoryUserDirectory>,
    pub notifier: Arc<MemoryNotifier>,
    pub quotas: Arc<MemoryQuotaCounter>,
    pub rank_index: Arc<MemoryRankIndex>,
}

#[async_trait]
impl Observe for MemoryParts {
    async fn is_drained(&self) -> Result<bool, PortError> {
        Ok(self.submissions.depth().is_drained() && self.rejections.depth().is_drained())
    }

    async fn dead_letters(&self) -> Result<DeadLetters, PortError> {
        let bodies = |q: &MemoryQueue| q.dead_letters().into_iter().map(|m| m.body).collect();
        Ok(DeadLetters {
            submissions: bodies(&self.submissions),
            rejections: bodies(&self.rejections),
        })
    }

    async fn published(&self) -> Result<Vec<Rejection>, PortError> {
        Ok(self.notifier.published())
    }

    async fn stored_count(&self) -> Result<usize, PortError> {
        Ok(self.store.len())
    }

    async fn send_raw_submission(&self, body: &str) -> Result<(), PortError> {
        self.submissions.push(body.to_owned());
        Ok(())
    }

    async fn put_user(&self, user: &User) -> Result<(), PortError> {
        self.directory.upsert(user.clone());
        Ok(())
    }

    async fn corrupt_user(&self, user_id: &UserId) -> Result<(), PortError> {
        self.directory.corrupt(
            user_id.clone(),
            "attribute `status` has an invalid value \"banned\"",
        );
        Ok(())
    }

    async fn redrive(&self) -> Result<usize, PortError> {
        Ok(self.submissions.redrive() + self.rejections.redrive())
    }
}

/// A fresh in-memory backend. `on_notification` hears of each published notification.
pub fn memory_backend(
    settings: QueueSettings,
    on_notification: Option<PublishListener>,
) -> (Backend, MemoryParts) {
    let parts = MemoryParts {
        submissions: Arc::new(MemoryQueue::new("submissions", settings)),
        rejections: Arc::new(MemoryQueue::new("rejections", settings)),
        store: Arc::new(MemoryStore::new()),
        directory: Arc::new(MemoryUserDirectory::default()),
        notifier: Arc::new(match on_notification {
            Some(listener) => MemoryNotifier::with_listener(listener),
            None => MemoryNotifier::new(),
        }),
        quotas: Arc::new(MemoryQuotaCounter::new()),
        rank_index: Arc::new(MemoryRankIndex::new()),
    };
    let changes = Arc::new(MemoryChangeFeed::new(parts.store.subscribe()));
    let backend = Backend {
        label: "memory",
        submissions_queue: parts.submissions.clone(),
        store: parts.store.clone(),
        directory: parts.directory.clone(),
        rejections_sink: parts.rejections.clone(),
        notifier: parts.notifier.clone(),
        quota_counter: Some(parts.quotas.clone()),
        submissions_source: parts.submissions.clone(),
        rejections_source: parts.rejections.clone(),
        observe: Arc::new(parts.clone()),
        rank_index: parts.rank_index.clone(),
        changes,
        redelivery_delay: settings.visibility_timeout,
        max_receive_count: Some(settings.max_receive_count),
    };
    (backend, parts)
}
