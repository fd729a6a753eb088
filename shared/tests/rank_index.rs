//! The rank index port, on both adapters: every scenario runs against the in-memory index and
//! against a real Redis cluster (`scripts/redis.sh run`, which `make test` uses, exports
//! RANK_INDEX_URL; without it the Redis tests fail and say so). Each test works on its own hero,
//! so the tests share one server.

use std::collections::HashMap;

use proptest::prelude::*;
use shared::board::{BoardChange, BoardRef, Entry, RankKey, RankedEntry};
use shared::ids::{SubmissionId, UserId};
use shared::memory::MemoryRankIndex;
use shared::period::Period;
use shared::ports::{PortError, RankIndex};
use shared::redis_index::{APPLY_CHUNK, RedisRankIndex};
use shared::submission::{HeroId, Score};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-12-02 12:00 UTC);

fn redis_url() -> String {
    std::env::var("RANK_INDEX_URL").unwrap_or_else(|_| {
        panic!(
            "RANK_INDEX_URL is not set: these tests need a Redis cluster; run them through \
             `scripts/redis.sh run -- cargo test -p score-shared --test rank_index` (make test does)"
        )
    })
}

fn redis_index() -> RedisRankIndex {
    RedisRankIndex::new(&redis_url()).expect("a usable RANK_INDEX_URL")
}

/// A hero id no other test (or earlier run against a kept server) uses.
fn unique_hero(name: &str) -> HeroId {
    let suffix = SubmissionId::new_unique().to_string();
    HeroId::parse(&format!("{name}-{}", &suffix[24..])).unwrap()
}

fn all_time(hero: &HeroId) -> BoardRef {
    BoardRef {
        hero_id: hero.clone(),
        board: Period::AllTime.board_of(date!(2026 - 12 - 02)),
    }
}

fn entry(user: &str, score: u32, received_at: OffsetDateTime) -> Entry {
    Entry {
        user_id: UserId::parse(user).unwrap(),
        score: Score::new(score).unwrap(),
        submission_id: SubmissionId::new_unique(),
        received_at,
    }
}

fn offer(board: &BoardRef, entry: &Entry) -> BoardChange {
    BoardChange::Offer {
        board: board.clone(),
        entry: entry.clone(),
        expires_at: board.board.expires_at(),
    }
}

fn revoke(board: &BoardRef, user: &str, through: OffsetDateTime) -> BoardChange {
    BoardChange::Revoke {
        board: board.clone(),
        user_id: UserId::parse(user).unwrap(),
        through,
    }
}

/// The whole board, page by page with cursors; panics on a repeat or a gap in the ranks.
async fn read_all(index: &dyn RankIndex, board: &BoardRef, page: usize) -> Vec<RankedEntry> {
    let mut all: Vec<RankedEntry> = Vec::new();
    let mut after: Option<RankKey> = None;
    loop {
        let read = index.page(board, after.as_ref(), page).await.unwrap();
        assert!(read.entries.len() <= page);
        for ranked in &read.entries {
            assert_eq!(
                ranked.rank,
                all.len() as u64 + 1,
                "ranks run on across pages"
            );
            all.push(ranked.clone());
        }
        match read.next {
            Some(next) => {
                assert_eq!(
                    read.entries.len(),
                    page,
                    "only a full page says more follow"
                );
                after = Some(next);
            }
            None => return all,
        }
    }
}

fn users(entries: &[RankedEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|r| r.entry.user_id.as_str().to_owned())
        .collect()
}

async fn keeps_each_players_best_and_ranks_ties_by_receipt(index: &dyn RankIndex) {
    let hero = unique_hero("best");
    let board = all_time(&hero);
    let alice_first = entry("alice", 70, T0);
    let alice_best = entry("alice", 90, T0 + Duration::seconds(5));
    let alice_lower = entry("alice", 80, T0 + Duration::seconds(9));
    let bob_tie = entry("bob", 90, T0 + Duration::seconds(6));
    let carol_tie_earlier = entry("carol", 90, T0 + Duration::seconds(1));
    let changes = [
        offer(&board, &alice_first),
        offer(&board, &alice_best),
        offer(&board, &bob_tie),
        offer(&board, &alice_lower),
        offer(&board, &carol_tie_earlier),
    ];
    let changed = index.apply(&changes).await.unwrap();
    assert_eq!(changed, [true, true, true, false, true]);
    // The same changes again (a redelivery) change nothing.
    assert_eq!(index.apply(&changes).await.unwrap(), [false; 5]);
    // An equal score reached later does not replace the player's entry.
    let alice_equal_later = entry("alice", 90, T0 + Duration::seconds(30));
    assert_eq!(
        index
            .apply(&[offer(&board, &alice_equal_later)])
            .await
            .unwrap(),
        [false]
    );
    let all = read_all(index, &board, 2).await;
    assert_eq!(users(&all), ["carol", "alice", "bob"]);
    assert_eq!(
        all[1].entry, alice_best,
        "the entry is the best submission itself"
    );
}

async fn pages_through_many_players_without_a_repeat_or_a_gap(index: &dyn RankIndex) {
    let hero = unique_hero("pages");
    let board = all_time(&hero);
    let changes: Vec<BoardChange> = (0..250u32)
        .map(|i| {
            let e = entry(
                &format!("player-{i:03}"),
                (i * 37) % 101,
                T0 + Duration::milliseconds(i64::from(i)),
            );
            offer(&board, &e)
        })
        .collect();
    index.apply(&changes).await.unwrap();
    let all = read_all(index, &board, 7).await;
    assert_eq!(all.len(), 250);
    let mut expected: Vec<(std::cmp::Reverse<u32>, OffsetDateTime)> = all
        .iter()
        .map(|r| (std::cmp::Reverse(r.entry.score.get()), r.entry.received_at))
        .collect();
    expected.sort();
    let read: Vec<(std::cmp::Reverse<u32>, OffsetDateTime)> = all
        .iter()
        .map(|r| (std::cmp::Reverse(r.entry.score.get()), r.entry.received_at))
        .collect();
    assert_eq!(
        read, expected,
        "board order: best score, then earliest receipt"
    );
    let mut seen = std::collections::HashSet::new();
    assert!(all.iter().all(|r| seen.insert(r.entry.user_id.clone())));
    // The whole board in one page reads the same.
    let one = index.page(&board, None, 100).await.unwrap();
    assert_eq!(one.entries[..], all[..100]);
}

async fn a_standing_agrees_with_the_board(index: &dyn RankIndex) {
    let hero = unique_hero("standing");
    let board = all_time(&hero);
    let changes: Vec<BoardChange> = (0..20u32)
        .map(|i| offer(&board, &entry(&format!("p{i:02}"), 100 - i, T0)))
        .collect();
    index.apply(&changes).await.unwrap();
    let all = read_all(index, &board, 100).await;
    for (user, around, first, last) in [
        ("p00", 3, 1, 4),
        ("p10", 3, 8, 14),
        ("p19", 3, 17, 20),
        ("p05", 0, 6, 6),
        ("p05", 25, 1, 20),
    ] {
        let standing = index
            .standing(&board, &UserId::parse(user).unwrap(), around)
            .await
            .unwrap()
            .expect("the player has an entry");
        assert_eq!(standing.player.entry.user_id.as_str(), user);
        assert_eq!(standing.player, all[standing.player.rank as usize - 1]);
        let ranks: Vec<u64> = standing.entries.iter().map(|r| r.rank).collect();
        assert_eq!(
            ranks,
            (first..=last).collect::<Vec<u64>>(),
            "{user} around {around}"
        );
        assert_eq!(standing.entries[..], all[first as usize - 1..last as usize]);
    }
    assert_eq!(
        index
            .standing(&board, &UserId::parse("nobody").unwrap(), 5)
            .await
            .unwrap(),
        None
    );
    let empty = all_time(&unique_hero("empty"));
    assert_eq!(index.page(&empty, None, 10).await.unwrap().entries, []);
}

async fn a_revocation_takes_the_player_off_and_keeps_earlier_scores_out(index: &dyn RankIndex) {
    let hero = unique_hero("revoke");
    let board = all_time(&hero);
    let best = entry("mallory", 900, T0);
    let next_best = entry("mallory", 800, T0 - Duration::seconds(10));
    let bob = entry("bob", 100, T0);
    index
        .apply(&[offer(&board, &best), offer(&board, &bob)])
        .await
        .unwrap();
    let revoked_at = T0 + Duration::minutes(1);
    let changed = index
        .apply(&[revoke(&board, "mallory", revoked_at)])
        .await
        .unwrap();
    assert_eq!(changed, [true]);
    // The next-best score arriving late (another stream shard) does not bring them back, nor
    // does a redelivered best; an earlier revocation arriving late changes nothing either.
    let late = [
        offer(&board, &next_best),
        offer(&board, &best),
        revoke(&board, "mallory", T0 - Duration::hours(1)),
    ];
    assert_eq!(index.apply(&late).await.unwrap(), [false, false, false]);
    assert_eq!(users(&read_all(index, &board, 10).await), ["bob"]);
    // A score received after the revocation (the user was reactivated) counts.
    let after = entry("mallory", 50, revoked_at + Duration::seconds(1));
    assert_eq!(index.apply(&[offer(&board, &after)]).await.unwrap(), [true]);
    assert_eq!(
        users(&read_all(index, &board, 10).await),
        ["bob", "mallory"]
    );
    // A revocation does not touch an entry received after it.
    let earlier_revocation = revoke(&board, "mallory", revoked_at - Duration::seconds(1));
    assert_eq!(index.apply(&[earlier_revocation]).await.unwrap(), [false]);
    assert_eq!(read_all(index, &board, 10).await.len(), 2);
}

macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(&shared::memory::MemoryRankIndex::new()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(&super::redis_index()).await;
                }
            )*
        }
    };
}

on_both![
    keeps_each_players_best_and_ranks_ties_by_receipt,
    pages_through_many_players_without_a_repeat_or_a_gap,
    a_standing_agrees_with_the_board,
    a_revocation_takes_the_player_off_and_keeps_earlier_scores_out,
];

async fn expire_time(
    connection: &mut ::redis::cluster_async::ClusterConnection,
    name: &str,
) -> i64 {
    ::redis::cmd("EXPIRETIME")
        .arg(name)
        .query_async(connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_daily_and_weekly_boards_expire_with_their_retention_and_all_time_is_kept() {
    let index = redis_index();
    let hero = unique_hero("expiry");
    // Today's boards: a fixed date's daily board would, 90 days on, expire as it is written.
    let today = OffsetDateTime::now_utc().date();
    let mut expected = HashMap::new();
    for period in Period::ALL {
        let board = BoardRef {
            hero_id: hero.clone(),
            board: period.board_of(today),
        };
        index
            .apply(&[offer(&board, &entry("alice", 1, T0))])
            .await
            .unwrap();
        // The board's order already has its expiry: a later call that also creates the
        // revocations hash must still give that key the board's expiry.
        index
            .apply(&[
                offer(&board, &entry("bob", 2, T0)),
                revoke(&board, "alice", T0),
            ])
            .await
            .unwrap();
        expected.insert(board.key(), board.board.expires_at());
    }
    let client = ::redis::cluster::ClusterClient::new(vec![redis_url()]).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    for (key, expires_at) in expected {
        for part in ["order", "players", "revoked"] {
            let name = format!("lb:{{{key}}}:{part}");
            let at = expire_time(&mut connection, &name).await;
            assert_eq!(at, expires_at.map_or(-1, |t| t.unix_timestamp()), "{name}");
        }
    }
}

/// More changes on one board than three script calls take, with a few on the other boards
/// between them: players offering again across the calls' boundaries, revocations among them,
/// and one revocation at the end of a call that must hold back the player's offer at the start
/// of the next. The same answers and boards as the in-memory reference, and every daily key with
/// its expiry.
#[tokio::test]
async fn redis_a_batch_longer_than_one_call_applies_in_order_on_every_board() {
    let redis = redis_index();
    let memory = MemoryRankIndex::new();
    let hero = unique_hero("long");
    // Boards of now, not of T0: an expired daily board would be dropped as it is written.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let boards = BoardRef::containing(&hero, now);
    let daily = boards
        .iter()
        .find(|b| b.board.expires_at().is_some())
        .expect("a submission counts on an expiring board")
        .clone();
    let mut changes = Vec::new();
    let mut on_daily = 0;
    let mut held_back = None;
    for i in 0..APPLY_CHUNK * 3 + 117 {
        let at = now + Duration::seconds(i as i64);
        let edge_case = [0, APPLY_CHUNK - 1, APPLY_CHUNK].contains(&on_daily);
        if i % 10 == 9 && !edge_case {
            let board = &boards[(i / 10) % 3];
            changes.push(offer(board, &entry(&format!("p{}", i % 97), 5, at)));
            if *board != daily {
                continue;
            }
        } else if on_daily == 0 {
            changes.push(offer(&daily, &entry("edge", 999, at)));
        } else if on_daily == APPLY_CHUNK - 1 {
            // The last change of the daily board's first call: a revocation through tomorrow.
            changes.push(revoke(&daily, "edge", now + Duration::days(1)));
        } else if on_daily == APPLY_CHUNK {
            // The first of its second call: an offer received before that revocation's time.
            held_back = Some(changes.len());
            changes.push(offer(&daily, &entry("edge", 1_000, at)));
        } else if i % 41 == 40 {
            changes.push(revoke(&daily, &format!("p{}", i % 97), at));
        } else {
            let score = ((i * 7919) % 1000) as u32;
            changes.push(offer(&daily, &entry(&format!("p{}", i % 97), score, at)));
        }
        on_daily += 1;
    }
    assert!(
        on_daily > APPLY_CHUNK * 3,
        "the daily board takes four calls"
    );
    let from_redis = redis.apply(&changes).await.unwrap();
    assert_eq!(from_redis, memory.apply(&changes).await.unwrap());
    assert!(from_redis[0], "the edge player's first offer enters");
    assert!(
        !from_redis[held_back.unwrap()],
        "the revocation at the end of one call holds back the offer at the start of the next"
    );
    assert!(
        from_redis.iter().filter(|&&c| c).count() > 97,
        "most offers change a board"
    );
    for board in &boards {
        let on_redis = read_all(&redis, board, 50).await;
        assert!(!on_redis.is_empty());
        assert_eq!(
            on_redis,
            read_all(&memory, board, 50).await,
            "{}",
            board.key()
        );
        if *board == daily {
            assert!(!users(&on_redis).contains(&"edge".to_owned()));
        }
    }
    let client = ::redis::cluster::ClusterClient::new(vec![redis_url()]).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    let expected = daily.board.expires_at().unwrap().unix_timestamp();
    for part in ["order", "players", "revoked"] {
        let name = format!("lb:{{{}}}:{part}", daily.key());
        assert_eq!(
            expire_time(&mut connection, &name).await,
            expected,
            "{name}"
        );
    }
}

/// A daily board past its retention (a late redelivery): what the call wrote is gone at its end.
#[tokio::test]
async fn redis_a_board_past_its_retention_keeps_nothing() {
    let index = redis_index();
    let board = BoardRef {
        hero_id: unique_hero("past"),
        board: Period::Daily.board_of(OffsetDateTime::now_utc().date() - Duration::days(400)),
    };
    assert!(board.board.expires_at().unwrap() < OffsetDateTime::now_utc());
    index
        .apply(&[
            offer(&board, &entry("alice", 1, T0)),
            revoke(&board, "bob", T0),
            offer(&board, &entry("carol", 2, T0)),
        ])
        .await
        .unwrap();
    assert!(
        index
            .page(&board, None, 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    let client = ::redis::cluster::ClusterClient::new(vec![redis_url()]).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    for part in ["order", "players", "revoked"] {
        let name = format!("lb:{{{}}}:{part}", board.key());
        assert_eq!(
            expire_time(&mut connection, &name).await,
            -2,
            "{name} exists"
        );
    }
}

#[tokio::test]
async fn redis_an_unreachable_cluster_is_a_transient_port_error_not_a_panic() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let index = RedisRankIndex::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let board = all_time(&unique_hero("down"));
    let error = index.page(&board, None, 10).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    let error = index
        .apply(&[offer(&board, &entry("alice", 1, T0))])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            PortError::Unavailable { .. } | PortError::Timeout { .. }
        ),
        "{error}"
    );
}

/// One generated operation: an offer by one of a few players, or a revocation.
#[derive(Clone, Debug)]
enum Op {
    Offer { player: u8, score: u32, second: i64 },
    Revoke { player: u8, second: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..6, 0u32..50, 0i64..100).prop_map(|(player, score, second)| Op::Offer { player, score, second }),
        1 => (0u8..6, 0i64..100).prop_map(|(player, second)| Op::Revoke { player, second }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Redis and the in-memory reference agree on every board a random history leaves, entry
    /// for entry and standing for standing.
    #[test]
    fn redis_and_memory_agree_on_any_history(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let redis = redis_index();
            let memory = MemoryRankIndex::new();
            let board = all_time(&unique_hero("agree"));
            let changes: Vec<BoardChange> = ops
                .iter()
                .map(|op| match *op {
                    Op::Offer { player, score, second } => {
                        offer(&board, &entry(&format!("p{player}"), score, T0 + Duration::seconds(second)))
                    }
                    Op::Revoke { player, second } => {
                        revoke(&board, &format!("p{player}"), T0 + Duration::seconds(second))
                    }
                })
                .collect();
            let from_redis = redis.apply(&changes).await.unwrap();
            let from_memory = memory.apply(&changes).await.unwrap();
            assert_eq!(from_redis, from_memory, "{ops:?}");
            let board_in_redis = read_all(&redis, &board, 3).await;
            assert_eq!(board_in_redis, read_all(&memory, &board, 3).await, "{ops:?}");
            for player in 0..6 {
                let user = UserId::parse(format!("p{player}")).unwrap();
                assert_eq!(
                    redis.standing(&board, &user, 1).await.unwrap(),
                    memory.standing(&board, &user, 1).await.unwrap(),
                    "{ops:?}"
                );
            }
        });
    }
}
