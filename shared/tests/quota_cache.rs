//! The quota counter on the cache cluster, against a real Redis cluster (`scripts/redis.sh run`,
//! which `make test` uses, exports RANK_INDEX_URL; without it these tests fail and say so). Each
//! test counts for its own users, so the tests share one server; the in-memory counter is the
//! reference a random history is checked against.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;
use redis::cluster::ClusterClient;
use shared::ids::{SubmissionId, UserId};
use shared::limits::QUOTA_CACHE_RETENTION;
use shared::memory::MemoryQuotaCounter;
use shared::ports::{PortError, QuotaCounter};
use shared::quota::{QuotaPolicy, QuotaWindow};
use shared::redis_quota::RedisQuotaCounter;
use time::OffsetDateTime;

const NAMESPACE: &str = "quota-tests";

fn redis_url() -> String {
    std::env::var("RANK_INDEX_URL").unwrap_or_else(|_| {
        panic!(
            "RANK_INDEX_URL is not set: these tests need a Redis cluster; run them through \
             `scripts/redis.sh run -- cargo test -p score-shared --test quota_cache` (make test does)"
        )
    })
}

fn counter() -> RedisQuotaCounter {
    RedisQuotaCounter::with_namespace(&redis_url(), NAMESPACE).expect("a usable RANK_INDEX_URL")
}

/// A user no other test (or earlier run against a kept server) counts for.
fn unique_user(name: &str) -> UserId {
    let suffix = SubmissionId::new_unique().to_string();
    UserId::parse(format!("{name}-{}", &suffix[24..])).unwrap()
}

/// The current hour's window of a new user: a window that has not ended, so its set is kept.
fn hourly_window(name: &str) -> QuotaWindow {
    QuotaPolicy::new(1, Duration::from_secs(3600))
        .unwrap()
        .window_of(&unique_user(name), OffsetDateTime::now_utc())
}

fn new_ids(n: usize) -> Vec<SubmissionId> {
    (0..n).map(|_| SubmissionId::new_unique()).collect()
}

fn ids_of(ids: &[SubmissionId]) -> HashSet<SubmissionId> {
    ids.iter().copied().collect()
}

/// What the server holds under a window's key: its members and its expiry (unix seconds).
async fn stored(counter: &RedisQuotaCounter, window: &QuotaWindow) -> (HashSet<Vec<u8>>, i64) {
    let client = ClusterClient::new(vec![redis_url()]).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    let key = counter.key_of(window);
    let members: HashSet<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let expires: i64 = redis::cmd("EXPIRETIME")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    (members, expires)
}

#[tokio::test]
async fn a_window_admits_up_to_its_limit_and_counting_again_changes_nothing() {
    let counter = counter();
    let window = hourly_window("alice");
    let ids = new_ids(5);

    let first = counter.admit(&window, 3, &ids[..2]).await.expect("counted");
    assert_eq!(first, ids_of(&ids[..2]));

    // Room for one more: the two counted before, then the next, and the rest refused.
    let second = counter.admit(&window, 3, &ids).await.expect("counted");
    assert_eq!(second, ids_of(&ids[..3]));

    // A redelivery in another order gets the same verdicts and counts nothing new.
    let mut reversed = ids.clone();
    reversed.reverse();
    let third = counter.admit(&window, 3, &reversed).await.expect("counted");
    assert_eq!(third, ids_of(&ids[..3]));

    // The set holds the admitted ids' 16 bytes, kept QUOTA_CACHE_RETENTION past the window.
    let (members, expires) = stored(&counter, &window).await;
    assert_eq!(
        members,
        ids[..3].iter().map(|id| id.to_bytes().to_vec()).collect()
    );
    assert_eq!(expires, window.kept_until(QUOTA_CACHE_RETENTION));
}

#[tokio::test]
async fn users_and_windows_are_counted_apart() {
    let counter = counter();
    let alice = hourly_window("alice");
    let bob = hourly_window("bob");
    let next_hour = QuotaWindow {
        start: alice.start + 3600,
        ..alice.clone()
    };
    for window in [&alice, &bob, &next_hour] {
        let ids = new_ids(3);
        let admitted = counter.admit(window, 2, &ids).await.expect("counted");
        assert_eq!(admitted, ids_of(&ids[..2]), "{window:?}");
    }
}

#[tokio::test]
async fn a_full_window_refuses_new_ids_without_counting_them() {
    let counter = counter();
    let window = hourly_window("mallory");
    let ids = new_ids(4);
    counter.admit(&window, 2, &ids[..2]).await.expect("counted");
    for id in &ids[2..] {
        let admitted = counter
            .admit(&window, 2, std::slice::from_ref(id))
            .await
            .expect("counted");
        assert!(admitted.is_empty());
    }
    let (members, _) = stored(&counter, &window).await;
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn a_duplicate_in_one_call_takes_one_place() {
    let counter = counter();
    let window = hourly_window("dup");
    let ids = new_ids(2);
    let admitted = counter
        .admit(&window, 2, &[ids[0], ids[0], ids[1]])
        .await
        .expect("counted");
    assert_eq!(admitted, ids_of(&ids));
}

#[tokio::test]
async fn concurrent_batches_of_one_user_never_share_out_more_than_the_limit() {
    let counter = counter();
    let window = hourly_window("racer");
    let batches: Vec<Vec<SubmissionId>> = (0..8).map(|_| new_ids(3)).collect();
    let results =
        futures::future::join_all(batches.iter().map(|batch| counter.admit(&window, 5, batch)))
            .await;
    let admitted: HashSet<SubmissionId> = results
        .into_iter()
        .flat_map(|result| result.expect("counted"))
        .collect();
    assert_eq!(admitted.len(), 5, "{admitted:?}");
    let (members, _) = stored(&counter, &window).await;
    assert_eq!(
        members,
        admitted.iter().map(|id| id.to_bytes().to_vec()).collect()
    );
}

#[tokio::test]
async fn a_window_past_its_retention_is_not_kept() {
    // A redelivery long after its window: the verdict is given, and nothing stays behind.
    let counter = counter();
    let window = QuotaWindow {
        start: 0,
        ..hourly_window("late")
    };
    let ids = new_ids(2);
    assert_eq!(
        counter.admit(&window, 1, &ids).await.expect("counted"),
        ids_of(&ids[..1])
    );
    let (members, _) = stored(&counter, &window).await;
    assert!(members.is_empty());
}

#[tokio::test]
async fn a_batchs_users_are_counted_together_each_in_their_own_window() {
    // 40 users (over every slot group) with three ids each, one user twice in two windows,
    // an empty window, and one window bigger than a call carries: one admit_all, checked
    // against the in-memory counter.
    let redis = counter();
    let memory = MemoryQuotaCounter::new();
    let mut windows: Vec<(QuotaWindow, Vec<SubmissionId>)> = (0..40)
        .map(|i| (hourly_window(&format!("batch{i}")), new_ids(3)))
        .collect();
    let twice = windows[0].0.clone();
    windows.push((
        QuotaWindow {
            start: twice.start + 3600,
            ..twice.clone()
        },
        new_ids(3),
    ));
    windows.push((hourly_window("empty"), Vec::new()));
    windows.push((hourly_window("big"), new_ids(700)));
    let from_redis = redis.admit_all(2, &windows).await;
    let from_memory = memory.admit_all(2, &windows).await;
    assert_eq!(from_redis.len(), windows.len());
    for (((window, ids), cached), reference) in windows.iter().zip(&from_redis).zip(&from_memory) {
        let cached = cached.as_ref().expect("counted");
        assert_eq!(cached, reference.as_ref().unwrap(), "{window:?}");
        assert_eq!(cached.len(), ids.len().min(2), "{window:?}");
    }
    // Counting the same batch again changes nothing.
    let again = redis.admit_all(2, &windows).await;
    assert_eq!(again, from_redis);
    let (members, _) = stored(&redis, &windows[42].0).await;
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn an_unreachable_cache_fails_every_window_of_a_batch() {
    let counter = RedisQuotaCounter::with_namespace("redis://127.0.0.1:1", NAMESPACE).unwrap();
    let windows = vec![
        (hourly_window("a"), new_ids(1)),
        (hourly_window("b"), new_ids(2)),
    ];
    let answers = counter.admit_all(5, &windows).await;
    assert_eq!(answers.len(), 2);
    for answer in answers {
        assert!(
            matches!(
                answer,
                Err(PortError::Unavailable { .. } | PortError::Timeout { .. })
            ),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_cache_is_an_error_worth_retrying_not_a_refusal() {
    // Port 1 on loopback: nothing listens there.
    let counter = RedisQuotaCounter::with_namespace("redis://127.0.0.1:1", NAMESPACE).unwrap();
    let error = counter
        .admit(&hourly_window("alice"), 5, &new_ids(1))
        .await
        .expect_err("no server");
    assert!(
        matches!(
            error,
            PortError::Unavailable { .. } | PortError::Timeout { .. }
        ),
        "{error}"
    );
}

#[test]
fn a_namespace_must_be_letters_digits_dashes_or_underscores() {
    assert!(RedisQuotaCounter::with_namespace("redis://127.0.0.1:6379", "ok_ns-1").is_ok());
    for bad in ["", "a:b", "a b", "{x}"] {
        assert!(
            RedisQuotaCounter::with_namespace("redis://127.0.0.1:6379", bad).is_err(),
            "{bad:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The cache and the in-memory reference give the same verdicts to any sequence of batches:
    /// each a few users' windows (two windows of one user may come in one batch), ids drawn from
    /// a small pool (so redeliveries and duplicates happen), limits small enough to be reached.
    #[test]
    fn the_cache_and_memory_agree_on_any_history(
        limit in 1u32..6,
        batches in proptest::collection::vec(
            proptest::collection::vec((0usize..3, proptest::collection::vec(0usize..8, 0..5)), 1..4),
            1..10,
        ),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let redis = counter();
            let memory = MemoryQuotaCounter::new();
            let users: Vec<QuotaWindow> = (0..3).map(|u| hourly_window(&format!("agree{u}"))).collect();
            let pool = new_ids(8);
            for batch in &batches {
                let windows: Vec<(QuotaWindow, Vec<SubmissionId>)> = batch
                    .iter()
                    .map(|(user, picks)| (users[*user].clone(), picks.iter().map(|&i| pool[i]).collect()))
                    .collect();
                let from_redis = redis.admit_all(limit, &windows).await;
                let from_memory = memory.admit_all(limit, &windows).await;
                assert_eq!(from_redis, from_memory, "limit {limit}, batches {batches:?}");
            }
        });
    }
}
