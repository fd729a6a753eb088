//! The rank index on Redis or Valkey in cluster mode (ElastiCache Serverless is cluster mode):
//! per board, a sorted set whose members are [`RankKey`]s, all with score 0, so that Redis orders
//! them by their bytes, which is board order. Ranks (`ZRANK`, `ZLEXCOUNT`) and pages (`ZRANGE`,
//! by index or `BYLEX`) cost O(log N) steps plus the entries returned, whatever the rank.
//!
//! Each board has three keys in one hash slot (the `{hero:board}` tag), so one Lua script reads
//! and changes them atomically:
//! - `lb:{storm:all}:order`: the sorted set;
//! - `lb:{storm:all}:players`: a hash from user id to the player's current rank key;
//! - `lb:{storm:all}:revoked`: a hash from user id to the receipt time (16 hex digits of
//!   nanoseconds) through which the player was revoked.
//!
//! Daily and weekly boards' keys expire at the end of their retention (`EXPIREAT`).
//!
//! The scripts never compare strings with Lua's `<`, which collates by the server's locale: the
//! fixed-width hex parts of a key are compared as numbers, eight digits at a time.

use async_trait::async_trait;
use redis::Script;
use redis::cluster_async::ClusterConnection;

use crate::board::{BoardChange, BoardPage, BoardRef, RankKey, RankedEntry, Standing};
use crate::ids::UserId;
use crate::ports::{PortError, RankIndex};
use crate::redis_cluster::{DEFAULT_NAMESPACE, LazyCluster, checked_namespace};

const SERVICE: &str = "rank index";
/// The first hex digits of a rank key: the inverted score and the receipt time.
const KEY_PREFIX_DIGITS: usize = 24;

/// Compares fixed-width lowercase hex strings as numbers, eight digits at a time (exact in Lua's
/// doubles), so the server's locale cannot change the order.
const BEFORE: &str = r"
local function before(a, b)
  for i = 1, #a, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x < y end
  end
  return false
end
";

/// KEYS: order, players, revoked. ARGV: user id, rank key, receipt time (16 hex), expiry (unix
/// seconds or empty). Returns 1 if the entry became the player's, else 0.
const OFFER: &str = r"
local through = redis.call('HGET', KEYS[3], ARGV[1])
if through and not before(through, ARGV[3]) then return 0 end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and not before(string.sub(ARGV[2], 1, 24), string.sub(current, 1, 24)) then return 0 end
if current then redis.call('ZREM', KEYS[1], current) end
redis.call('ZADD', KEYS[1], 0, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then
  for i = 1, 3 do redis.call('EXPIREAT', KEYS[i], ARGV[4]) end
end
return 1
";

/// KEYS: order, players, revoked. ARGV: user id, revoked through (16 hex), expiry. Returns 1 if
/// the player's entry went, else 0.
const REVOKE: &str = r"
local through = ARGV[2]
local kept = redis.call('HGET', KEYS[3], ARGV[1])
if kept and before(through, kept) then through = kept end
redis.call('HSET', KEYS[3], ARGV[1], through)
if ARGV[3] ~= '' then redis.call('EXPIREAT', KEYS[3], ARGV[3]) end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and not before(through, string.sub(current, 9, 24)) then
  redis.call('ZREM', KEYS[1], current)
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
";

/// KEYS: order. ARGV: the key after which the page starts (or empty), how many. Returns how many
/// entries precede the page and the page's keys.
const PAGE: &str = r"
local start, skipped = '-', 0
if ARGV[1] ~= '' then
  start = '(' .. ARGV[1]
  skipped = redis.call('ZLEXCOUNT', KEYS[1], '-', '[' .. ARGV[1])
end
return {skipped, redis.call('ZRANGE', KEYS[1], start, '+', 'BYLEX', 'LIMIT', 0, tonumber(ARGV[2]))}
";

/// KEYS: order, players. ARGV: user id, around. Returns nil if the player has no entry, else the
/// index of the first key returned and the keys from `around` above to `around` below.
const STANDING: &str = r"
local key = redis.call('HGET', KEYS[2], ARGV[1])
if not key then return false end
local rank = redis.call('ZRANK', KEYS[1], key)
local around = tonumber(ARGV[2])
local first = math.max(rank - around, 0)
return {first, redis.call('ZRANGE', KEYS[1], first, rank + around)}
";

/// The Redis adapter of [`RankIndex`]. Connects on first use (and again after a failed connect),
/// so a cold start does not wait for, or fail on, the cluster.
pub struct RedisRankIndex {
    cluster: LazyCluster,
    /// What every key starts with (`lb` by default), so deployments or tests can share a cluster.
    namespace: String,
    offer: Script,
    revoke: Script,
    page: Script,
    standing: Script,
}

impl RedisRankIndex {
    /// `url` is `redis://host:port` or, with TLS, `rediss://host:port` (ElastiCache Serverless
    /// always uses TLS).
    pub fn new(url: &str) -> Result<Self, PortError> {
        Self::with_namespace(url, DEFAULT_NAMESPACE)
    }

    /// The index the settings name: their URL, their namespace or the default one.
    pub fn from_settings(settings: &crate::config::RankIndexSettings) -> Result<Self, PortError> {
        Self::with_namespace(
            &settings.url,
            settings.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        )
    }

    /// As [`RedisRankIndex::new`], with every key under `namespace` (letters, digits, `-`, `_`)
    /// instead of `lb`.
    pub fn with_namespace(url: &str, namespace: &str) -> Result<Self, PortError> {
        let namespace = checked_namespace(namespace, SERVICE)?;
        let script = |body: &str| Script::new(&format!("{BEFORE}{body}"));
        Ok(Self {
            cluster: LazyCluster::new(url, SERVICE)?,
            namespace,
            offer: script(OFFER),
            revoke: script(REVOKE),
            page: script(PAGE),
            standing: script(STANDING),
        })
    }

    async fn connection(&self) -> Result<ClusterConnection, PortError> {
        self.cluster.connection().await
    }

    async fn apply_one(
        &self,
        mut connection: ClusterConnection,
        change: &BoardChange,
    ) -> Result<bool, PortError> {
        let keys = BoardKeys::of(&self.namespace, change.board());
        let expiry = |board: &BoardRef| {
            board
                .board
                .expires_at()
                .map(|at| at.unix_timestamp().to_string())
                .unwrap_or_default()
        };
        let invocation = match change {
            BoardChange::Offer { board, entry, .. } => {
                let key = entry.rank_key();
                let received = &key.as_str()[8..KEY_PREFIX_DIGITS];
                let mut invocation = self.offer.prepare_invoke();
                invocation
                    .key(&keys.order)
                    .key(&keys.players)
                    .key(&keys.revoked)
                    .arg(entry.user_id.as_str())
                    .arg(key.as_str())
                    .arg(received)
                    .arg(expiry(board));
                invocation
            }
            BoardChange::Revoke {
                board,
                user_id,
                through,
            } => {
                let through = u64::try_from(through.unix_timestamp_nanos()).unwrap_or(0);
                let mut invocation = self.revoke.prepare_invoke();
                invocation
                    .key(&keys.order)
                    .key(&keys.players)
                    .key(&keys.revoked)
                    .arg(user_id.as_str())
                    .arg(format!("{through:016x}"))
                    .arg(expiry(board));
                invocation
            }
        };
        let changed: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.cluster.error(error))?;
        Ok(changed == 1)
    }
}

/// A board's three keys, in one hash slot.
struct BoardKeys {
    order: String,
    players: String,
    revoked: String,
}

impl BoardKeys {
    fn of(namespace: &str, board: &BoardRef) -> Self {
        let tag = board.key();
        Self {
            order: format!("{namespace}:{{{tag}}}:order"),
            players: format!("{namespace}:{{{tag}}}:players"),
            revoked: format!("{namespace}:{{{tag}}}:revoked"),
        }
    }
}

fn ranked(first_index: u64, keys: Vec<String>) -> Result<Vec<RankedEntry>, PortError> {
    keys.into_iter()
        .enumerate()
        .map(|(offset, raw)| {
            let key = RankKey::parse(&raw).ok_or_else(|| PortError::Refused {
                service: SERVICE,
                detail: format!("the index holds a member that is not a rank key: {raw:?}"),
            })?;
            Ok(RankedEntry {
                rank: first_index + offset as u64 + 1,
                entry: key.entry(),
            })
        })
        .collect()
}

#[async_trait]
impl RankIndex for RedisRankIndex {
    async fn apply(&self, changes: &[BoardChange]) -> Result<Vec<bool>, PortError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.connection().await?;
        // One board's changes in order (an offer then a revocation must not swap); boards at once.
        let mut by_board: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            let key = change.board().key();
            match by_board.iter_mut().find(|(board, _)| *board == key) {
                Some((_, indexes)) => indexes.push(index),
                None => by_board.push((key, vec![index])),
            }
        }
        let runs = by_board.iter().map(|(_, indexes)| {
            let connection = connection.clone();
            async move {
                let mut results = Vec::with_capacity(indexes.len());
                for &index in indexes {
                    results.push((
                        index,
                        self.apply_one(connection.clone(), &changes[index]).await?,
                    ));
                }
                Ok::<_, PortError>(results)
            }
        });
        let mut changed = vec![false; changes.len()];
        for run in futures::future::join_all(runs).await {
            for (index, result) in run? {
                changed[index] = result;
            }
        }
        Ok(changed)
    }

    async fn page(
        &self,
        board: &BoardRef,
        after: Option<&RankKey>,
        limit: usize,
    ) -> Result<BoardPage, PortError> {
        if limit == 0 {
            return Ok(BoardPage::default());
        }
        let mut connection = self.connection().await?;
        let keys = BoardKeys::of(&self.namespace, board);
        let (skipped, members): (u64, Vec<String>) = self
            .page
            .key(&keys.order)
            .arg(after.map(RankKey::as_str).unwrap_or_default())
            .arg(limit + 1)
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.cluster.error(error))?;
        Ok(BoardPage::from_read(ranked(skipped, members)?, limit))
    }

    async fn standing(
        &self,
        board: &BoardRef,
        user_id: &UserId,
        around: usize,
    ) -> Result<Option<Standing>, PortError> {
        let mut connection = self.connection().await?;
        let keys = BoardKeys::of(&self.namespace, board);
        let found: Option<(u64, Vec<String>)> = self
            .standing
            .key(&keys.order)
            .key(&keys.players)
            .arg(user_id.as_str())
            .arg(around)
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.cluster.error(error))?;
        let Some((first, members)) = found else {
            return Ok(None);
        };
        let entries = ranked(first, members)?;
        let player = entries
            .iter()
            .find(|ranked| ranked.entry.user_id == *user_id)
            .cloned()
            .ok_or_else(|| PortError::Refused {
                service: SERVICE,
                detail: format!(
                    "the players hash names {user_id} but the board does not hold them"
                ),
            })?;
        Ok(Some(Standing { player, entries }))
    }
}
