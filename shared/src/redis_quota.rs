//! The per-user quota counted in the cache cluster ([`QuotaCounter`] on Valkey or Redis): one
//! set per user and window, holding the 16 bytes of each id the window admitted, kept
//! [`QUOTA_CACHE_RETENTION`] after the window ends. One Lua script decides a whole call
//! atomically against the set ([`crate::quota::admit_into`]'s rule: ids admitted before are
//! admitted again, new ones in order while room is left), so concurrent batches of one user
//! cannot both take the last place. One round trip per user and batch, and no write unit: the
//! cost of the quota goes from one DynamoDB write per user and batch to a few cache ECPUs.
//!
//! Keys: `{namespace}:quota:{user id}:{window start}`, one key per script, so any hash slot
//! does. The user id may hold any character but a control one; the window start, a number
//! after the last `:`, keeps keys of different users apart.

use std::collections::HashSet;

use async_trait::async_trait;
use redis::Script;

use crate::ids::SubmissionId;
use crate::limits::QUOTA_CACHE_RETENTION;
use crate::ports::{PortError, QuotaCounter};
use crate::quota::QuotaWindow;
use crate::redis_cluster::{DEFAULT_NAMESPACE, LazyCluster, checked_namespace};

const SERVICE: &str = "quota counter";

/// KEYS: the window's set. ARGV: the limit, the expiry (unix seconds), then the ids. Returns the
/// positions (1 for the first id) of the ids admitted. While there is room, `SADD` both tests and
/// adds an id; once the set is full, `SISMEMBER` finds the ids admitted before. The expiry is set
/// with the set's first id: it is the window's, the same for every later call. Each `redis.call`
/// costs server time (and so ECPUs), hence no call that does not decide anything.
const ADMIT: &str = r"
local counted = redis.call('SCARD', KEYS[1])
local room = tonumber(ARGV[1]) - counted
local admitted = {}
for i = 3, #ARGV do
  if room > 0 then
    room = room - redis.call('SADD', KEYS[1], ARGV[i])
    admitted[#admitted + 1] = i - 2
  elseif redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    admitted[#admitted + 1] = i - 2
  end
end
if counted == 0 and #admitted > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return admitted
";

/// The cache adapter of [`QuotaCounter`].
pub struct RedisQuotaCounter {
    cluster: LazyCluster,
    namespace: String,
    admit: Script,
}

impl RedisQuotaCounter {
    /// The counter the settings name: the cache's URL and the deployment's namespace (the rank
    /// index's, `lb` by default).
    pub fn from_settings(settings: &crate::config::RankIndexSettings) -> Result<Self, PortError> {
        Self::with_namespace(
            &settings.url,
            settings.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        )
    }

    /// `url` is `redis://host:port` or `rediss://host:port`; every key is under `namespace`
    /// (letters, digits, `-`, `_`).
    pub fn with_namespace(url: &str, namespace: &str) -> Result<Self, PortError> {
        Ok(Self {
            cluster: LazyCluster::new(url, SERVICE)?,
            namespace: checked_namespace(namespace, SERVICE)?,
            admit: Script::new(ADMIT),
        })
    }

    /// The key of a window's set.
    pub fn key_of(&self, window: &QuotaWindow) -> String {
        format!(
            "{}:quota:{}:{}",
            self.namespace,
            window.user_id.as_str(),
            window.start
        )
    }
}

#[async_trait]
impl QuotaCounter for RedisQuotaCounter {
    async fn admit(
        &self,
        window: &QuotaWindow,
        limit: u32,
        ids: &[SubmissionId],
    ) -> Result<HashSet<SubmissionId>, PortError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut connection = self.cluster.connection().await?;
        let mut invocation = self.admit.key(self.key_of(window));
        invocation
            .arg(limit)
            .arg(window.kept_until(QUOTA_CACHE_RETENTION));
        for id in ids {
            invocation.arg(&id.to_bytes()[..]);
        }
        let positions: Vec<usize> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.cluster.error(error))?;
        positions
            .into_iter()
            .map(|position| {
                position
                    .checked_sub(1)
                    .and_then(|index| ids.get(index))
                    .copied()
                    .ok_or_else(|| PortError::Refused {
                        service: SERVICE,
                        detail: format!(
                            "the admit script named position {position} of {} ids",
                            ids.len()
                        ),
                    })
            })
            .collect()
    }
}
