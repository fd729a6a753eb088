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
//! [`RankIndex::apply`] makes one script call per board (and per [`APPLY_CHUNK`] changes) with
//! that board's changes in order, so a ranker batch pays a call's fixed cost once per board it
//! touches rather than once per offer.
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
/// Most changes one script call applies: a call blocks its shard while it runs (6 to 8 µs a
/// change that writes, in `make bench`, so a full call about 1.5 ms), so a large batch on one
/// board goes in several.
pub const APPLY_CHUNK: usize = 200;

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

/// Applies one board's changes in order, in one call. KEYS: order, players, revoked. ARGV: the
/// board's expiry (unix seconds, or empty for a board that is kept), then three values per
/// change: `o` and the user id and the rank key for an offer, or `r` and the user id and the
/// receipt time (16 hex) through which the player is revoked. Returns, per change, 1 if it
/// changed the board (an offer became the player's entry; a revocation took it off), else 0.
///
/// The expiry is set once per call, and only when the board's order lacks it (one `EXPIRETIME`
/// instead of three `EXPIREAT`s per offer): every key of a board gets the same expiry, and
/// order and players are created, and emptied, together (only eviction at the cache's storage
/// cap could part them; its alarm fires well before). A board whose expiry has passed is deleted
/// at the end of the call, as it was after each offer before; the answers of a call's later
/// changes on it can differ from then (they see the call's earlier changes), which only the
/// ranker's count of board writes shows.
const APPLY: &str = r"
local expiry = ARGV[1]
local results = {}
local offered, revoked = false, false
for i = 2, #ARGV, 3 do
  local kind, user, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local changed = 0
  if kind == 'o' then
    local through = redis.call('HGET', KEYS[3], user)
    if not through or before(through, string.sub(value, 9, 24)) then
      local current = redis.call('HGET', KEYS[2], user)
      if not current or before(string.sub(value, 1, 24), string.sub(current, 1, 24)) then
        if current then redis.call('ZREM', KEYS[1], current) end
        redis.call('ZADD', KEYS[1], 0, value)
        redis.call('HSET', KEYS[2], user, value)
        offered = true
        changed = 1
      end
    end
  else
    local kept = redis.call('HGET', KEYS[3], user)
    if kept and before(value, kept) then value = kept end
    redis.call('HSET', KEYS[3], user, value)
    revoked = true
    local current = redis.call('HGET', KEYS[2], user)
    if current and not before(value, string.sub(current, 9, 24)) then
      redis.call('ZREM', KEYS[1], current)
      redis.call('HDEL', KEYS[2], user)
      changed = 1
    end
  end
  results[#results + 1] = changed
end
if expiry ~= '' then
  if revoked then redis.call('EXPIREAT', KEYS[3], expiry) end
  if offered and redis.call('EXPIRETIME', KEYS[1]) ~= tonumber(expiry) then
    for k = 1, 3 do redis.call('EXPIREAT', KEYS[k], expiry) end
  end
end
return results
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
    apply: Script,
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
            apply: script(APPLY),
            page: script(PAGE),
            standing: script(STANDING),
        })
    }

    async fn connection(&self) -> Result<ClusterConnection, PortError> {
        self.cluster.connection().await
    }

    /// One script call for `changes`, all of one board, in order.
    async fn apply_to_board(
        &self,
        mut connection: ClusterConnection,
        board: &BoardRef,
        changes: &[&BoardChange],
    ) -> Result<Vec<bool>, PortError> {
        let keys = BoardKeys::of(&self.namespace, board);
        let expiry = board
            .board
            .expires_at()
            .map(|at| at.unix_timestamp().to_string())
            .unwrap_or_default();
        let mut invocation = self.apply.prepare_invoke();
        invocation
            .key(&keys.order)
            .key(&keys.players)
            .key(&keys.revoked)
            .arg(expiry);
        for change in changes {
            match change {
                BoardChange::Offer { entry, .. } => {
                    invocation
                        .arg("o")
                        .arg(entry.user_id.as_str())
                        .arg(entry.rank_key().as_str());
                }
                BoardChange::Revoke {
                    user_id, through, ..
                } => {
                    let through = u64::try_from(through.unix_timestamp_nanos()).unwrap_or(0);
                    invocation
                        .arg("r")
                        .arg(user_id.as_str())
                        .arg(format!("{through:016x}"));
                }
            }
        }
        let changed: Vec<i64> = self
            .cluster
            .invoke_per_item(
                &invocation,
                &mut connection,
                changes.len(),
                "apply (changes)",
            )
            .await?;
        Ok(changed.into_iter().map(|c| c == 1).collect())
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
        // One board's changes in order (an offer then a revocation must not swap), a script call
        // per board and chunk; boards at once.
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
                let board = changes[indexes[0]].board();
                let mut results = Vec::with_capacity(indexes.len());
                for chunk in indexes.chunks(APPLY_CHUNK) {
                    let chunk_changes: Vec<&BoardChange> =
                        chunk.iter().map(|&index| &changes[index]).collect();
                    let changed = self
                        .apply_to_board(connection.clone(), board, &chunk_changes)
                        .await?;
                    results.extend(chunk.iter().copied().zip(changed));
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
