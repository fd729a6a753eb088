//! No hot partition: a simulated minute of 10,000 accepted submissions a second to one hero (and
//! more to others), counted write by write on every DynamoDB partition key the design writes,
//! and on every board of the rank index. The keys come from the real item mapping and the
//! table's partition key as provisioned (`record_to_item`, `SUBMISSIONS_TABLE_KEY`), the quota windows from the
//! real policy, and the board writes from the real write rule (the in-memory rank index applying
//! the ranker's changes: only improvements write). Time is simulated: nothing here is a timing.
//!
//! Run `cargo test -p score-tests --test hot_partitions -- --nocapture` for the table of figures
//! in docs/DYNAMODB.md.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shared::aws::dynamodb::{quota_attribute, record_to_item};
use shared::aws::provision::SUBMISSIONS_TABLE_KEY;
use shared::board::{BoardChange, StoredChange};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::limits::{DEFAULT_USER_QUOTA_LIMIT, DEFAULT_USER_QUOTA_WINDOW};
use shared::memory::MemoryRankIndex;
use shared::ports::RankIndex;
use shared::quota::QuotaPolicy;
use shared::record::{Outcome, SubmissionRecord};
use shared::submission::{HeroId, Score};
use time::{Duration, OffsetDateTime};

/// DynamoDB's limit per partition: 1,000 write units a second.
const PARTITION_WRITE_LIMIT: u64 = 1_000;
const SECONDS: i64 = 30;
/// Accepted submissions a second: the hot hero, the next two, and a long tail.
const HOT_HERO_RATE: usize = 10_000;
const WARM_HERO_RATE: usize = 1_500;
const TAIL_RATE: usize = 1_000;
const TAIL_HEROES: usize = 50;
const PLAYERS: usize = 150_000;

/// Writes per key per simulated second, for one place the design writes.
#[derive(Default)]
struct Counter {
    per_second: HashMap<(i64, String), u64>,
    total: u64,
}

impl Counter {
    fn write(&mut self, second: i64, key: String) {
        *self.per_second.entry((second, key)).or_default() += 1;
        self.total += 1;
    }

    /// The busiest key in its busiest second.
    fn hottest(&self) -> (String, u64) {
        self.per_second
            .iter()
            .max_by_key(|(_, writes)| **writes)
            .map(|((_, key), writes)| (key.clone(), *writes))
            .unwrap_or_default()
    }

    fn per_second_total(&self) -> u64 {
        self.total / SECONDS as u64
    }
}

/// A player: how good they are and how often they play (a few play far more than most).
struct Player {
    id: UserId,
    skill: f64,
}

fn text_value(item: &shared::aws::dynamodb::Item, name: &str) -> String {
    let value = item
        .get(name)
        .unwrap_or_else(|| panic!("the item has no `{name}`, a key the design writes"));
    value
        .as_s()
        .map(|s| s.to_owned())
        .or_else(|_| value.as_n().map(|n| n.to_owned()))
        .unwrap_or_else(|_| panic!("`{name}` is neither S nor N"))
}

#[tokio::test]
async fn ten_thousand_accepted_submissions_a_second_to_one_hero_heat_no_partition() {
    let mut rng = StdRng::seed_from_u64(13);
    let players: Vec<Player> = (0..PLAYERS)
        .map(|i| Player {
            id: UserId::parse(format!("player-{i:06}")).unwrap(),
            skill: rng.random_range(0.2..1.0),
        })
        .collect();
    // Zipf-like activity: player i plays with weight 1/(i+1)^0.6, capped by the quota below.
    let weights: Vec<f64> = (0..PLAYERS)
        .map(|i| 1.0 / ((i + 1) as f64).powf(0.6))
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |sum, w| {
            *sum += w / total_weight;
            Some(*sum)
        })
        .collect();
    let pick = |rng: &mut StdRng| {
        let x: f64 = rng.random();
        cumulative.partition_point(|c| *c < x).min(PLAYERS - 1)
    };
    let heroes: Vec<HeroId> = ["storm", "blade", "cyclops"]
        .into_iter()
        .map(String::from)
        .chain((0..TAIL_HEROES).map(|i| format!("hero-{i}")))
        .map(|h| HeroId::parse(&h).unwrap())
        .collect();
    let quota = QuotaPolicy::new(DEFAULT_USER_QUOTA_LIMIT, DEFAULT_USER_QUOTA_WINDOW).unwrap();

    let mut table = Counter::default();
    let mut quotas = Counter::default();
    let mut boards = Counter::default();
    // What the design replaced: a `leaderboard` index keyed by hero (for contrast only).
    let mut by_hero = Counter::default();
    let mut quota_used: HashMap<(UserId, i64), u32> = HashMap::new();
    let mut over_quota = 0u64;
    let index = MemoryRankIndex::new();
    let start = time::macros::datetime!(2026-12-02 12:00 UTC);
    // Steady state: every player already has a best on each board of the hero they play most
    // (the best of three earlier games this morning), so what follows writes a board only when
    // it improves on that.
    let mut history: Vec<BoardChange> = Vec::new();
    for (i, player) in players.iter().enumerate() {
        let hero = &heroes[if i % 4 == 0 { 1 + i % 2 } else { 0 }];
        let best = (0..3)
            .map(|_| (player.skill * rng.random_range(0.5..1.0) * 1_000_000.0) as u32)
            .max()
            .unwrap_or(0);
        let earlier = SubmissionRecord {
            submission_id: SubmissionId::new_unique(),
            user_id: player.id.clone(),
            hero_id: hero.clone(),
            score: Score::new(best).unwrap(),
            achieved_at: None,
            client_ref: None,
            received_at: start - Duration::hours(3),
            correlation_id: CorrelationId::generate(),
            outcome: Outcome::Accepted,
            decided_at: start - Duration::hours(3),
            notified_at: None,
        };
        history.extend(
            StoredChange {
                old: None,
                new: Some(earlier),
            }
            .board_changes(),
        );
    }
    index.apply(&history).await.unwrap();
    let mut offers = 0u64;

    for second in 0..SECONDS {
        let mut arrivals: Vec<(OffsetDateTime, usize, usize)> = Vec::new();
        for (hero, rate) in [(0, HOT_HERO_RATE), (1, WARM_HERO_RATE), (2, WARM_HERO_RATE)]
            .into_iter()
            .chain((0..TAIL_RATE).map(|i| (3 + i % TAIL_HEROES, 1)))
        {
            for _ in 0..rate {
                let at = start
                    + Duration::seconds(second)
                    + Duration::nanoseconds(rng.random_range(0..1_000_000_000));
                arrivals.push((at, hero, pick(&mut rng)));
            }
        }
        arrivals.sort_by_key(|(at, _, _)| *at);
        let mut changes: Vec<BoardChange> = Vec::new();
        for (received_at, hero, player) in arrivals {
            let player = &players[player];
            // The processor admits at most the quota per window; the rest are rejected, and a
            // rejection writes no board. Only accepted submissions are simulated past here.
            let window = quota.window_of(&player.id, received_at);
            let used = quota_used
                .entry((player.id.clone(), window.start))
                .or_default();
            quotas.write(
                second,
                format!("{}={}", quota_attribute::USER_ID, player.id),
            );
            if *used >= quota.limit {
                over_quota += 1;
                continue;
            }
            *used += 1;
            let score = (player.skill * rng.random_range(0.5..1.0) * 1_000_000.0) as u32;
            let record = SubmissionRecord {
                submission_id: SubmissionId::new_unique(),
                user_id: player.id.clone(),
                hero_id: heroes[hero].clone(),
                score: Score::new(score).unwrap(),
                achieved_at: None,
                client_ref: None,
                received_at,
                correlation_id: CorrelationId::generate(),
                outcome: Outcome::Accepted,
                decided_at: received_at,
                notified_at: None,
            };
            let item = record_to_item(&record).unwrap();
            // A write lands on its item's partition: the table's partition key.
            table.write(second, text_value(&item, SUBMISSIONS_TABLE_KEY[0]));
            by_hero.write(second, record.hero_id.as_str().to_owned());
            changes.extend(
                StoredChange {
                    old: None,
                    new: Some(record),
                }
                .board_changes(),
            );
        }
        offers += changes.len() as u64;
        let changed = index.apply(&changes).await.unwrap();
        for (change, changed) in changes.iter().zip(changed) {
            if changed {
                boards.write(second, change.board().key());
            }
        }
    }

    let rows = vec![
        (
            format!("submissions table ({})", SUBMISSIONS_TABLE_KEY[0]),
            &table,
        ),
        ("quotas table (userId)".to_owned(), &quotas),
    ];
    println!("| where | writes a second (all keys) | busiest key in its busiest second |");
    println!("| --- | --- | --- |");
    for (name, counter) in &rows {
        let (key, writes) = counter.hottest();
        println!(
            "| {name} | {} | {writes} (`{key}`) |",
            counter.per_second_total()
        );
    }
    let (board, board_writes) = boards.hottest();
    println!(
        "| rank index boards (improvements only) | {} | {board_writes} (`{board}`) |",
        boards.per_second_total()
    );
    let (hero, hero_writes) = by_hero.hottest();
    println!(
        "| (replaced) a `leaderboard` index keyed by hero | {} | {hero_writes} (`{hero}`) |",
        by_hero.per_second_total()
    );
    println!(
        "accepted {} a second, {over_quota} refused by the quota in {SECONDS} s; {} board offers a \
         second, of which {} wrote ({:.1}%)",
        table.per_second_total(),
        offers / SECONDS as u64,
        boards.per_second_total(),
        100.0 * boards.total as f64 / offers.max(1) as f64
    );

    // The hot hero's load really arrived: the hero-keyed design would have been over the limit.
    assert!(table.per_second_total() >= HOT_HERO_RATE as u64);
    assert!(
        hero_writes > 9 * PARTITION_WRITE_LIMIT,
        "the simulation puts {hero_writes} writes a second on {hero}"
    );
    // And no partition key of the design takes more than the limit.
    for (name, counter) in &rows {
        let (key, writes) = counter.hottest();
        assert!(
            writes <= PARTITION_WRITE_LIMIT,
            "{name}: {writes} writes in one second on {key}"
        );
    }
    // Only improvements write a board: most offers change nothing.
    assert_eq!(
        offers,
        3 * table.total,
        "every accepted submission offers to three boards"
    );
    assert!(
        boards.total * 2 < offers,
        "{} of {offers} offers wrote a board",
        boards.total
    );
}
