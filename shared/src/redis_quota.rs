//! The per-user quota counted in the cache cluster ([`QuotaCounter`] on Valkey or Redis): one
//! set per user and window, holding the 16 bytes of each id the window admitted, kept
//! [`QUOTA_CACHE_RETENTION`] after the window ends. One Lua script decides a call atomically
//! against each window's set ([`crate::quota::admit_into`]'s rule: ids admitted before are
//! admitted again, new ones in order while room is left), so concurrent batches of one user
//! cannot both take the last place. No write unit: the quota costs cache ECPUs instead of one
//! DynamoDB write per user and batch.
//!
//! A processor batch's users are counted together ([`QuotaCounter::admit_all`]): the windows
//! that share a hash slot go in one script call, so the script's own cost (most of a call's
//! server time when a window gets one id) is paid once per slot group rather than once per
//! user. Keys: `{namespace}:quota:{{start}.{spread}}:{user id}`, where `spread` is the user id's
//! FNV-1a hash modulo [`SLOT_SPREAD`]: the windows of one period fall in at most that many
//! slots, so one slot (one shard) does not take all of a period's counting, and a batch of any
//! number of users costs at most that many calls. The hash is written here, not taken from
//! the standard library, so that a user's key stays the same across builds.

use std::collections::HashSet;

use async_trait::async_trait;
use redis::Script;

use crate::ids::SubmissionId;
use crate::limits::QUOTA_CACHE_RETENTION;
use crate::ports::{PortError, QuotaCounter};
use crate::quota::QuotaWindow;
use crate::redis_cluster::{DEFAULT_NAMESPACE, LazyCluster, checked_namespace};

const SERVICE: &str = "quota counter";

/// KEYS: the windows' sets. ARGV: the limit, then for each window in KEYS' order its expiry
/// (unix seconds), how many ids follow, and the ids. Returns, for each window, the positions (1
/// for its first id) of the ids admitted. While a window has room, `SADD`'s answer decides an
/// id; once it is full, `SISMEMBER` finds the ids admitted before. The expiry is set with a
/// window's first id: it is the window's, the same for every later call. Each `redis.call`
/// costs server time (and so ECPUs), hence no call that decides nothing.
const ADMIT: &str = r"
local limit = tonumber(ARGV[1])
local at = 2
local answers = {}
for k = 1, #KEYS do
  local expiry, count = ARGV[at], tonumber(ARGV[at + 1])
  at = at + 2
  local counted = redis.call('SCARD', KEYS[k])
  local room = limit - counted
  local admitted = {}
  for i = 1, count do
    local id = ARGV[at + i - 1]
    if room > 0 then
      room = room - redis.call('SADD', KEYS[k], id)
      admitted[#admitted + 1] = i
    elseif redis.call('SISMEMBER', KEYS[k], id) == 1 then
      admitted[#admitted + 1] = i
    end
  end
  if counted == 0 and #admitted > 0 then redis.call('EXPIREAT', KEYS[k], expiry) end
  answers[k] = admitted
  at = at + count
end
return answers
";

/// How many hash slots one period's windows are spread over.
pub const SLOT_SPREAD: u64 = 8;

/// About how many ids one script call carries: windows are added to a call until it holds
/// this many, so that no call keeps the server busy for long (a window is never split).
const IDS_PER_CALL: usize = 500;

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

    /// The key of a window's set; its hash tag (`{start.spread}`) is the slot group.
    pub fn key_of(&self, window: &QuotaWindow) -> String {
        format!(
            "{}:quota:{{{}}}:{}",
            self.namespace,
            slot_tag(window),
            window.user_id.as_str()
        )
    }

    /// One script call for `windows` (all in one slot): the admitted ids of each, in order.
    async fn admit_in_one_call(
        &self,
        limit: u32,
        windows: &[&(QuotaWindow, Vec<SubmissionId>)],
    ) -> Result<Vec<HashSet<SubmissionId>>, PortError> {
        let mut connection = self.cluster.connection().await?;
        let mut invocation = self.admit.prepare_invoke();
        invocation.arg(limit);
        for (window, ids) in windows {
            invocation
                .key(self.key_of(window))
                .arg(window.kept_until(QUOTA_CACHE_RETENTION))
                .arg(ids.len());
            for id in ids {
                invocation.arg(&id.to_bytes()[..]);
            }
        }
        let answers: Vec<Vec<usize>> = self
            .cluster
            .invoke_per_item(
                &invocation,
                &mut connection,
                windows.len(),
                "admit (windows)",
            )
            .await?;
        windows
            .iter()
            .zip(answers)
            .map(|((_, ids), positions)| admitted_at(ids, positions))
            .collect()
    }
}

/// A window's slot group: its start and its user's share of [`SLOT_SPREAD`].
fn slot_tag(window: &QuotaWindow) -> String {
    format!(
        "{}.{}",
        window.start,
        fnv1a(window.user_id.as_str().as_bytes()) % SLOT_SPREAD
    )
}

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The ids at the script's positions (1 for the first).
fn admitted_at(
    ids: &[SubmissionId],
    positions: Vec<usize>,
) -> Result<HashSet<SubmissionId>, PortError> {
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
        let entry = (window.clone(), ids.to_vec());
        let mut answers = self.admit_in_one_call(limit, &[&entry]).await?;
        Ok(answers.pop().unwrap_or_default())
    }

    async fn admit_all(
        &self,
        limit: u32,
        windows: &[(QuotaWindow, Vec<SubmissionId>)],
    ) -> Vec<Result<HashSet<SubmissionId>, PortError>> {
        // Calls of windows that share a slot, each up to about IDS_PER_CALL ids; windows with no
        // id need no call.
        let mut calls: Vec<(String, Vec<usize>, usize)> = Vec::new();
        for (index, (window, ids)) in windows.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let tag = slot_tag(window);
            match calls
                .iter_mut()
                .find(|(t, _, count)| *t == tag && *count < IDS_PER_CALL)
            {
                Some((_, members, count)) => {
                    members.push(index);
                    *count += ids.len();
                }
                None => calls.push((tag, vec![index], ids.len())),
            }
        }
        let mut answers: Vec<Result<HashSet<SubmissionId>, PortError>> =
            windows.iter().map(|_| Ok(HashSet::new())).collect();
        let results = futures::future::join_all(calls.iter().map(|(_, members, _)| {
            let group: Vec<&(QuotaWindow, Vec<SubmissionId>)> =
                members.iter().map(|&i| &windows[i]).collect();
            async move { (members, self.admit_in_one_call(limit, &group).await) }
        }))
        .await;
        for (members, result) in results {
            match result {
                Ok(admitted) => {
                    for (&index, set) in members.iter().zip(admitted) {
                        answers[index] = Ok(set);
                    }
                }
                Err(error) => {
                    for &index in members {
                        answers[index] = Err(error.clone());
                    }
                }
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of FNV-1a 64 (Fowler, Noll, Vo).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_windows_key_names_its_slot_group_then_its_user() {
        let counter = RedisQuotaCounter::with_namespace("redis://127.0.0.1:6379", "lb").unwrap();
        let window = QuotaWindow {
            user_id: crate::ids::UserId::parse("alice{x}").unwrap(),
            start: 1_765_000_000,
            length_seconds: 60,
        };
        let spread = fnv1a(b"alice{x}") % SLOT_SPREAD;
        assert_eq!(
            counter.key_of(&window),
            format!("lb:quota:{{1765000000.{spread}}}:alice{{x}}")
        );
    }
}
