//! Users-directory entries cached across warm invocations for a short, configurable time.
//! Misses are cached too, so a flood from an unknown user costs one lookup per TTL. Unreadable
//! entries are not: the operator's fix takes effect on the next batch.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use shared::ids::UserId;
use shared::limits::USER_CACHE_MAX_ENTRIES;
use shared::ports::{PortError, UserDirectory};
use shared::users::{DirectoryEntry, User};
use tokio::time::Instant;

pub struct UserCache {
    ttl: Duration,
    entries: Mutex<HashMap<UserId, (Option<User>, Instant)>>,
}

impl UserCache {
    /// A TTL of zero turns caching off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Each id's directory entry (`None` when the user does not exist), from the cache where
    /// fresh and from one directory lookup for the rest.
    pub async fn resolve(
        &self,
        ids: &[UserId],
        directory: &dyn UserDirectory,
    ) -> Result<HashMap<UserId, Option<DirectoryEntry>>, PortError> {
        let now = Instant::now();
        let mut resolved = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                match entries.get(id) {
                    Some((user, fetched)) if now.duration_since(*fetched) < self.ttl => {
                        resolved.insert(id.clone(), user.clone().map(Ok));
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(resolved);
        }
        let mut found = directory.lookup(&missing).await?;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() + missing.len() > USER_CACHE_MAX_ENTRIES {
            entries.retain(|_, (_, fetched)| now.duration_since(*fetched) < self.ttl);
            if entries.len() + missing.len() > USER_CACHE_MAX_ENTRIES {
                entries.clear();
            }
        }
        for id in missing {
            let entry = found.remove(&id);
            let cacheable = match &entry {
                None => Some(None),
                Some(Ok(user)) => Some(Some(user.clone())),
                Some(Err(_)) => None,
            };
            if let Some(user) = cacheable
                && !self.ttl.is_zero()
            {
                entries.insert(id.clone(), (user, now));
            }
            resolved.insert(id, entry);
        }
        Ok(resolved)
    }
}
