//! The rank index on a real Redis cluster (redis-server 7 as a one-node cluster, as
//! `scripts/redis.sh run` starts it) with one board of 1,000,000 players: a player's standing
//! (rank, and the entries around them) near the top, in the middle and at the bottom; a page at
//! the top and one deep in the board through a cursor; and an offer that does not improve. Every
//! one is a single script call whose work is logarithmic in the board's size, so the figures do
//! not grow with the rank.
//!
//! After the benches it measures the server's own time per call (`INFO commandstats`) against a
//! plain `GET`, the basis of the ECPU estimate in docs/BENCHMARKS.md, and per submission for a
//! ranker batch of 100 players new to their boards (every offer writes); the same for the quota
//! counter's script (`shared/src/redis_quota.rs`), on a new window and on a known one, and the
//! memory a window of one id takes (`INFO memory`), the basis of the quota's cache cost in
//! docs/COSTS.md.
//!
//! Run: `scripts/redis.sh run -- cargo bench -p score-shared --bench rank_index` (`make bench`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use shared::board::{BoardChange, BoardRef, Entry, RankKey};
use shared::ids::{SubmissionId, UserId};
use shared::period::Period;
use shared::ports::{QuotaCounter, RankIndex};
use shared::quota::QuotaPolicy;
use shared::redis_index::RedisRankIndex;
use shared::redis_quota::RedisQuotaCounter;
use shared::submission::{HeroId, Score};
use time::OffsetDateTime;

const PLAYERS: u32 = 1_000_000;
const NAMESPACE: &str = "bench";

fn url() -> String {
    std::env::var("RANK_INDEX_URL").unwrap_or_else(|_| {
        panic!(
            "RANK_INDEX_URL is not set: run `scripts/redis.sh run -- cargo bench -p score-shared \
             --bench rank_index` (make bench does)"
        )
    })
}

fn board() -> BoardRef {
    BoardRef {
        hero_id: HeroId::parse("bench").unwrap(),
        board: Period::AllTime.board_of(OffsetDateTime::now_utc().date()),
    }
}

/// Player `i` scores `PLAYERS - i`, so player `i` ranks `i + 1`.
fn entry(i: u32) -> Entry {
    Entry {
        user_id: UserId::parse(format!("player-{i:07}")).unwrap(),
        score: Score::new(PLAYERS - i).unwrap(),
        submission_id: SubmissionId::new_unique(),
        received_at: time::macros::datetime!(2026-12-02 12:00 UTC),
    }
}

/// Fills the board through the adapter (the real write rule): one script call per player, in
/// parallel chunks, once per server.
fn seed(runtime: &tokio::runtime::Runtime, index: &RedisRankIndex) {
    let board = board();
    let filled = runtime
        .block_on(index.standing(&board, &entry(PLAYERS - 1).user_id, 0))
        .unwrap();
    if filled.is_some_and(|s| s.player.rank == u64::from(PLAYERS)) {
        return;
    }
    eprintln!("seeding {PLAYERS} players (once per server)...");
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let chunks: Vec<Vec<BoardChange>> = (0..PLAYERS)
            .collect::<Vec<_>>()
            .chunks(10_000)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&i| BoardChange::Offer {
                        board: board.clone(),
                        entry: entry(i),
                        expires_at: None,
                    })
                    .collect()
            })
            .collect();
        // One call applies one board's changes in order, so spread the chunks over calls.
        for batch in chunks.chunks(16) {
            let calls = batch.iter().map(|chunk| index.apply(chunk));
            for result in futures::future::join_all(calls).await {
                result.unwrap();
            }
        }
    });
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
}

/// A score of 1 for the player at rank 500,001: below their best, so it changes nothing.
fn offer_below_best(board: &BoardRef) -> BoardChange {
    let mut worse = entry(500_000);
    worse.score = Score::new(1).unwrap();
    BoardChange::Offer {
        board: board.clone(),
        entry: worse,
        expires_at: None,
    }
}

fn rank_index(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let index = RedisRankIndex::with_namespace(&url(), NAMESPACE).unwrap();
    seed(&runtime, &index);
    let board = board();

    let mut group = c.benchmark_group("standing");
    for (rank, around) in [(1, 0), (500_000, 0), (PLAYERS, 0), (500_000, 25)] {
        let user = entry(rank - 1).user_id;
        let standing = runtime
            .block_on(index.standing(&board, &user, around))
            .unwrap()
            .unwrap();
        assert_eq!(standing.player.rank, u64::from(rank), "the seeded order");
        group.bench_function(
            BenchmarkId::new(format!("around={around}"), format!("rank={rank}")),
            |b| {
                b.to_async(&runtime).iter(|| async {
                    black_box(index.standing(&board, &user, around).await.unwrap())
                });
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("page");
    let deep: RankKey = runtime
        .block_on(index.standing(&board, &entry(899_999).user_id, 0))
        .unwrap()
        .unwrap()
        .player
        .entry
        .rank_key();
    for (name, after) in [("top", None), ("after-rank=900000", Some(deep))] {
        let page = runtime
            .block_on(index.page(&board, after.as_ref(), 100))
            .unwrap();
        assert_eq!(page.entries.len(), 100);
        group.bench_function(BenchmarkId::new("limit=100", name), |b| {
            b.to_async(&runtime).iter(|| async {
                black_box(index.page(&board, after.as_ref(), 100).await.unwrap())
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("offer");
    let offer = [offer_below_best(&board)];
    group.bench_function("not-an-improvement", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(index.apply(&offer).await.unwrap()) });
    });
    group.finish();

    server_time_per_call(&runtime, &index, &board);
}

/// The server's own microseconds per script call (`INFO commandstats`, reset before each
/// measurement) for standings at three depths and pages at two, next to a plain `GET`: what the
/// server spends, without the client's round trip, and the basis of the ECPU estimate.
fn server_time_per_call(
    runtime: &tokio::runtime::Runtime,
    index: &RedisRankIndex,
    board: &BoardRef,
) {
    const CALLS: u32 = 20_000;
    runtime.block_on(async {
        let client = redis::cluster::ClusterClient::new(vec![url()]).unwrap();
        let mut connection = client.get_async_connection().await.unwrap();
        let deep = index
            .standing(board, &entry(899_999).user_id, 0)
            .await
            .unwrap()
            .unwrap()
            .player
            .entry
            .rank_key();
        for (rank, around) in [(1u32, 0usize), (500_000, 0), (PLAYERS, 0), (500_000, 25)] {
            reset_stats(&mut connection).await;
            let user = entry(rank - 1).user_id;
            for _ in 0..CALLS {
                index.standing(board, &user, around).await.unwrap();
            }
            let us = per_call(&mut connection, "evalsha").await;
            eprintln!("server time per call, standing rank={rank} around={around}: {us:?} us");
        }
        for (name, after) in [("top", None), ("after rank 900000", Some(&deep))] {
            reset_stats(&mut connection).await;
            for _ in 0..CALLS {
                index.page(board, after, 100).await.unwrap();
            }
            let us = per_call(&mut connection, "evalsha").await;
            eprintln!("server time per call, page limit=100 {name}: {us:?} us");
        }
        let offer = [offer_below_best(board)];
        reset_stats(&mut connection).await;
        for _ in 0..CALLS {
            index.apply(&offer).await.unwrap();
        }
        let us = per_call(&mut connection, "evalsha").await;
        eprintln!("server time per call, an offer that does not improve: {us:?} us");

        // What the ranker sends for a batch of 100 accepted submissions, each from a player new
        // to its boards (the worst case: every offer writes), in one apply: with 40 heroes in
        // play, and with every submission of its own hero.
        let run = SubmissionId::new_unique().to_string();
        for heroes in [40usize, 100] {
            const BATCHES: usize = 100;
            reset_stats(&mut connection).await;
            let now = OffsetDateTime::now_utc();
            for batch in 0..BATCHES {
                let changes: Vec<BoardChange> = (0..100)
                    .flat_map(|i| {
                        let hero =
                            HeroId::parse(&format!("h{heroes}-{}-{}", &run[24..], i % heroes))
                                .unwrap();
                        let entry = Entry {
                            user_id: UserId::parse(format!("new-{batch:04}-{i:03}")).unwrap(),
                            score: Score::new(1_000 + i as u32).unwrap(),
                            submission_id: SubmissionId::new_unique(),
                            received_at: now,
                        };
                        BoardRef::containing(&hero, now).map(|board| BoardChange::Offer {
                            expires_at: board.board.expires_at(),
                            board,
                            entry: entry.clone(),
                        })
                    })
                    .collect();
                let changed = index.apply(&changes).await.unwrap();
                assert!(changed.iter().all(|&c| c), "every offer is a new player's");
            }
            let (calls, usec) = calls_and_usec(&mut connection, "evalsha")
                .await
                .expect("INFO commandstats counts the script calls");
            eprintln!(
                "server time per submission, a ranker batch of 100 new players over {heroes} \
                 heroes (three boards each): {:.2} us ({calls} calls for {BATCHES} batches)",
                usec as f64 / (BATCHES * 100) as f64
            );
        }
        reset_stats(&mut connection).await;
        for _ in 0..CALLS {
            let _: Option<String> = redis::cmd("GET")
                .arg("bench:{plain}")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        let us = per_call(&mut connection, "get").await;
        eprintln!("server time per call, plain GET: {us:?} us ({CALLS} calls each)");

        // The quota counter: a single submission of a user new to the window (what every call
        // is in the worst case of docs/COSTS.md), then a user's known window gaining an id.
        let counter = RedisQuotaCounter::with_namespace(&url(), NAMESPACE).unwrap();
        let policy = QuotaPolicy::new(120, Duration::from_secs(60)).unwrap();
        let now = OffsetDateTime::now_utc();
        let run = SubmissionId::new_unique().to_string();
        let before = used_memory(&mut connection).await;
        reset_stats(&mut connection).await;
        for i in 0..CALLS {
            let user = UserId::parse(format!("quota-{}-{i:06}", &run[24..])).unwrap();
            let window = policy.window_of(&user, now);
            let admitted = counter
                .admit(&window, policy.limit, &[SubmissionId::new_unique()])
                .await
                .unwrap();
            assert_eq!(admitted.len(), 1);
        }
        let us = per_call(&mut connection, "evalsha").await;
        let bytes = (used_memory(&mut connection).await - before) / i64::from(CALLS);
        eprintln!(
            "server time per call, quota admit of one id on a new window: {us:?} us; \
             {bytes} bytes of memory per window"
        );
        let user = UserId::parse(format!("quota-{}-known", &run[24..])).unwrap();
        let window = policy.window_of(&user, now);
        reset_stats(&mut connection).await;
        for _ in 0..CALLS {
            counter
                .admit(&window, CALLS + 1, &[SubmissionId::new_unique()])
                .await
                .unwrap();
        }
        let us = per_call(&mut connection, "evalsha").await;
        eprintln!("server time per call, quota admit of one id on a known window: {us:?} us");

        // A processor batch of singles from 100 users new to the window, as the processor
        // counts it: one admit_all, one script call per slot group.
        const BATCHES: u32 = 200;
        reset_stats(&mut connection).await;
        for batch in 0..BATCHES {
            let windows: Vec<_> = (0..100)
                .map(|i| {
                    let user =
                        UserId::parse(format!("quota-{}-b{batch:04}-{i:03}", &run[24..])).unwrap();
                    (
                        policy.window_of(&user, now),
                        vec![SubmissionId::new_unique()],
                    )
                })
                .collect();
            for answer in counter.admit_all(policy.limit, &windows).await {
                assert_eq!(answer.unwrap().len(), 1);
            }
        }
        let (calls, usec) = calls_and_usec(&mut connection, "evalsha")
            .await
            .expect("INFO commandstats counts the script calls");
        eprintln!(
            "server time per user, a batch of 100 new users' singles: {:.2} us ({calls} calls for \
             {BATCHES} batches)",
            usec as f64 / f64::from(BATCHES * 100)
        );
    });
}

/// `calls` and `usec` of `command` from `INFO commandstats`. The cluster client answers with a
/// map of node to text, so the figures are read from the answer as a whole.
async fn calls_and_usec(
    connection: &mut redis::cluster_async::ClusterConnection,
    command: &str,
) -> Option<(u64, u64)> {
    let stats: redis::Value = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    let text = format!("{stats:?}");
    let line = text.split(&format!("cmdstat_{command}:")).nth(1)?;
    let field = |name: &str| {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("calls")?, field("usec")?))
}

/// The server's `used_memory` in bytes (`INFO memory`).
async fn used_memory(connection: &mut redis::cluster_async::ClusterConnection) -> i64 {
    let info: redis::Value = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
        .unwrap();
    let text = format!("{info:?}");
    text.split("used_memory:")
        .nth(1)
        .and_then(|rest| rest.split(['\\', '\r', '\n']).next())
        .and_then(|v| v.parse::<i64>().ok())
        .expect("INFO memory names used_memory")
}

async fn reset_stats(connection: &mut redis::cluster_async::ClusterConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(connection)
        .await
        .unwrap();
}

/// Microseconds per call of `command` from `INFO commandstats` (`None` if it was not called).
async fn per_call(
    connection: &mut redis::cluster_async::ClusterConnection,
    command: &str,
) -> Option<f64> {
    let (calls, usec) = calls_and_usec(connection, command).await?;
    (calls > 0).then(|| (usec as f64 / calls as f64 * 100.0).round() / 100.0)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = rank_index
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
