//! The ledger: drive more than 10,000 submissions through the assembled pipeline while every
//! port fails at random and handlers crash mid-batch, then account for every submission that
//! got a 202. One user sends far more than the per-user quota allows, so the processor's quota
//! counting (idempotent under redelivery) is in the ledger too, and so are the leaderboards the
//! stored scores fill. Seeded: the seed is printed, and LEDGER_SEED=<seed> repeats the same fault draws.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pipeline_tests::backend::memory::{MemoryParts, memory_backend};
use pipeline_tests::stack::Crashes;
use pipeline_tests::{LocalStack, StackOptions};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use shared::board::{BoardRef, Entry};
use shared::ids::{SubmissionId, UserId};
use shared::memory::QueueSettings;
use shared::message::{Rejection, decode, decode_submissions};
use shared::ports::RankIndex;
use shared::quota::QuotaPolicy;
use shared::record::Outcome;
use shared::rejection::RejectionReason;
use shared::users::User;
use time::OffsetDateTime;

/// Submissions to account for (at least 10,000).
const SUBMISSIONS: usize = 10_240;
/// Share of port calls, and of items within calls, that fail.
const FAULT_RATE: f64 = 0.05;
/// Share of handler invocations that crash.
const CRASH_RATE: f64 = 0.02;
/// Share of requests the client sends twice with the same Idempotency-Key.
const DUPLICATE_RATE: f64 = 0.1;
/// Share of requests sent with neither an Idempotency-Key nor clientRefs: each retry after a 503
/// gets fresh ids, so anything stored from a refused attempt would be stored without a 202.
const KEYLESS_RATE: f64 = 0.2;
const BATCH_SIZE: usize = 40;
const CONCURRENT_REQUESTS: usize = 16;
const MAX_RECEIVE_COUNT: u32 = 5;
/// Per-user quota: far above what any player sends, far below what the greedy user sends.
const QUOTA_LIMIT: u32 = 1_500;
/// One window for the whole run: ten years, so no run straddles two windows.
const QUOTA_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Share of requests that come from the greedy user.
const GREEDY_SHARE: f64 = 0.3;
const GREEDY_USER: &str = "greedy-0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Active,
    Suspended,
    Unknown,
    /// Active, but sends more than the quota allows.
    Greedy,
}

/// The verdicts a submission of this kind of user may get.
fn expected_outcomes(kind: Kind) -> &'static [Outcome] {
    match kind {
        Kind::Active => &[Outcome::Accepted],
        Kind::Suspended => &[Outcome::Rejected(RejectionReason::SuspendedUser)],
        Kind::Unknown => &[Outcome::Rejected(RejectionReason::UnknownUser)],
        Kind::Greedy => &[
            Outcome::Accepted,
            Outcome::Rejected(RejectionReason::RateLimited),
        ],
    }
}

/// Every submission id in a dead-letter queue.
fn parked_ids(memory: &MemoryParts) -> HashSet<SubmissionId> {
    let submissions = memory
        .submissions
        .dead_letters()
        .into_iter()
        .flat_map(|m| decode_submissions(Some(&m.body)).unwrap())
        .map(|s| s.submission_id);
    let rejections = memory
        .rejections
        .dead_letters()
        .into_iter()
        .map(|m| decode::<Rejection>(Some(&m.body)).unwrap().submission_id);
    submissions.chain(rejections).collect()
}

fn stored_outcomes(memory: &MemoryParts) -> HashMap<SubmissionId, Outcome> {
    memory
        .store
        .records()
        .into_iter()
        .map(|r| (r.submission_id, r.outcome))
        .collect()
}

/// One request the client will send (maybe twice), and what it is for.
struct Planned {
    user: String,
    kind: Kind,
    idempotency_key: Option<String>,
    path: &'static str,
    body: Value,
    submissions: usize,
    duplicate: bool,
}

fn plan(rng: &mut StdRng) -> Vec<Planned> {
    let users: Vec<(String, Kind)> = (0..20)
        .map(|i| (format!("player-{i}"), Kind::Active))
        .chain((0..5).map(|i| (format!("cheater-{i}"), Kind::Suspended)))
        .chain((0..3).map(|i| (format!("ghost-{i}"), Kind::Unknown)))
        .collect();
    let mut planned = Vec::new();
    let mut total = 0;
    while total < SUBMISSIONS {
        let (user, kind) = if rng.random_bool(GREEDY_SHARE) {
            (GREEDY_USER.to_owned(), Kind::Greedy)
        } else {
            users[rng.random_range(0..users.len())].clone()
        };
        let key = format!("k-{}", planned.len());
        let keyless = rng.random_bool(KEYLESS_RATE);
        let duplicate = !keyless && rng.random_bool(DUPLICATE_RATE);
        let item = |rng: &mut StdRng, i: usize| {
            let mut item = json!({ "heroId": format!("hero-{}", rng.random_range(0..50)), "score": rng.random_range(0..1_000_000u32) });
            if !keyless && i.is_multiple_of(3) {
                item["clientRef"] = json!(format!("{key}-ref-{i}"));
            }
            item
        };
        let (path, body, submissions) = if rng.random_bool(0.5) {
            ("/v1/scores", item(rng, 1), 1)
        } else {
            let items: Vec<Value> = (0..BATCH_SIZE).map(|i| item(rng, i)).collect();
            (
                "/v1/scores/batch",
                json!({ "submissions": items }),
                BATCH_SIZE,
            )
        };
        total += submissions;
        planned.push(Planned {
            user,
            kind,
            idempotency_key: (!keyless).then_some(key),
            path,
            body,
            submissions,
            duplicate,
        });
    }
    planned
}

/// Sends a request until it is accepted (a 503 is retried with the same key, if it has one, as a
/// client should); returns the ids and how many 503s it took.
async fn send(
    client: &reqwest::Client,
    stack: &LocalStack,
    token: &str,
    request: &Planned,
) -> (Vec<SubmissionId>, u32) {
    let mut refusals = 0;
    loop {
        let mut post = client
            .post(format!("{}{}", stack.url, request.path))
            .bearer_auth(token)
            .header("content-type", "application/json");
        if let Some(key) = &request.idempotency_key {
            post = post.header("idempotency-key", key);
        }
        let response = post.body(request.body.to_string()).send().await.unwrap();
        match response.status().as_u16() {
            202 => {
                let body: Value = response.json().await.unwrap();
                let items = match body.get("submissions") {
                    Some(items) => items.as_array().unwrap().clone(),
                    None => vec![body],
                };
                let ids = items
                    .iter()
                    .map(|i| SubmissionId::parse(i["submissionId"].as_str().unwrap()).unwrap())
                    .collect();
                return (ids, refusals);
            }
            503 => {
                refusals += 1;
                // A request is one message, so a queue failing 5% of calls and 5% of messages
                // refuses about one in ten; a thousand in a row means it never will pass.
                assert!(
                    refusals < 1_000,
                    "the queue refused the same request 1,000 times"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_submission_ends_in_exactly_one_terminal_state_under_faults() {
    let seed: u64 = std::env::var("LEDGER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("ledger seed: {seed} (repeat with LEDGER_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let planned = plan(&mut rng);

    let directory: Vec<User> = planned
        .iter()
        .filter(|p| p.kind != Kind::Unknown)
        .map(|p| (p.user.clone(), p.kind))
        .collect::<HashMap<_, _>>()
        .into_iter()
        .map(|(user, kind)| {
            let user_id = UserId::parse(user).unwrap();
            match kind {
                Kind::Suspended => User::suspended(user_id),
                _ => User::active(user_id),
            }
        })
        .collect();
    let settings = QueueSettings {
        visibility_timeout: Duration::from_millis(20),
        max_receive_count: MAX_RECEIVE_COUNT,
    };
    let (backend, memory) = memory_backend(settings, None);
    let mut options = StackOptions::for_tests(directory);
    options.user_cache_ttl = Duration::ZERO; // every batch looks users up, and meets faults there
    options.quota = Some(QuotaPolicy::new(QUOTA_LIMIT, QUOTA_WINDOW).unwrap());
    options.crashes = Some(Crashes {
        rate: CRASH_RATE,
        seed: seed ^ 0xC0FFEE,
    });
    let stack = Arc::new(LocalStack::start(options, backend).await.unwrap());
    let plans = [
        &stack.faults.submissions_queue,
        &stack.faults.store,
        &stack.faults.directory,
        &stack.faults.rejections_queue,
        &stack.faults.notifier,
        &stack.faults.quota,
        &stack.faults.rank_index,
    ];
    for (i, plan) in plans.iter().enumerate() {
        plan.fail_at_random(FAULT_RATE, seed.wrapping_add(i as u64));
    }

    // Send everything, some requests twice, 16 at a time.
    let client = reqwest::Client::new();
    let tokens: HashMap<String, String> = planned
        .iter()
        .map(|p| (p.user.clone(), stack.token(&p.user)))
        .collect();
    let results: Vec<(usize, Vec<SubmissionId>, u32)> = futures::stream::iter(
        planned
            .iter()
            .enumerate()
            .flat_map(|(i, p)| std::iter::repeat_n(i, if p.duplicate { 2 } else { 1 })),
    )
    .map(|i| {
        let (client, stack, planned, tokens) = (&client, &stack, &planned, &tokens);
        async move {
            let request = &planned[i];
            let (ids, refusals) = send(client, stack, &tokens[&request.user], request).await;
            (i, ids, refusals)
        }
    })
    .buffer_unordered(CONCURRENT_REQUESTS)
    .collect()
    .await;

    let mut accepted: HashMap<SubmissionId, Kind> = HashMap::new();
    let mut ids_by_request: HashMap<usize, Vec<SubmissionId>> = HashMap::new();
    let mut refusals = 0;
    for (i, ids, refused) in results {
        refusals += refused;
        assert_eq!(ids.len(), planned[i].submissions);
        if let Some(first) = ids_by_request.insert(i, ids.clone()) {
            assert_eq!(first, ids, "a retried request maps to the same ids");
        }
        for id in ids {
            accepted.insert(id, planned[i].kind);
        }
    }
    assert!(
        accepted.len() >= 10_000,
        "{} distinct submissions",
        accepted.len()
    );

    assert!(
        stack.wait_until_drained(Duration::from_secs(300)).await,
        "the queues did not drain within 300 s"
    );

    // Before any redrive: what each 202 stands at while some messages are parked.
    let parked_before = parked_ids(&memory);
    let stored_before = stored_outcomes(&memory);
    let (mut marked_failed, mut stuck) = (0, 0);
    for id in accepted.keys() {
        match stored_before.get(id) {
            Some(Outcome::Failed(_)) => {
                marked_failed += 1;
                assert!(
                    parked_before.contains(id),
                    "{id}: marked failed but not parked"
                );
            }
            None => {
                assert!(
                    parked_before.contains(id),
                    "{id} got a 202 but was neither stored nor dead-lettered: lost"
                );
                // Parked while even its failed marker could not be written.
                stuck += 1;
            }
            Some(_) => {}
        }
    }
    let parked_messages =
        memory.submissions.dead_letters().len() + memory.rejections.dead_letters().len();

    // The operator's redrive, once the faults are over: every parked message goes back to its
    // queue, and everything that got a 202 reaches its outcome.
    for plan in &plans {
        plan.heal();
    }
    memory.submissions.redrive();
    memory.rejections.redrive();
    assert!(
        stack.wait_until_drained(Duration::from_secs(300)).await,
        "the queues did not drain within 300 s after the redrive"
    );
    assert!(
        parked_ids(&memory).is_empty(),
        "nothing is parked after a redrive without faults"
    );

    // The ledger.
    let stored = stored_outcomes(&memory);
    let published = memory.notifier.published();
    let mut notifications: HashMap<SubmissionId, Vec<&Rejection>> = HashMap::new();
    for rejection in &published {
        notifications
            .entry(rejection.submission_id)
            .or_default()
            .push(rejection);
    }
    let (mut stored_accepted, mut stored_rejected, mut notified_repeatedly) = (0, 0, 0);
    for (id, kind) in &accepted {
        let outcome = stored.get(id).unwrap_or_else(|| {
            panic!("{id} got a 202 and has no stored outcome after the redrive")
        });
        assert!(
            expected_outcomes(*kind).contains(outcome),
            "{id}: verdict {outcome:?} for a {kind:?} user"
        );
        let told = notifications.get(id).map_or(&[][..], Vec::as_slice);
        match outcome {
            Outcome::Accepted => {
                stored_accepted += 1;
                assert!(told.is_empty(), "{id}: accepted but notified");
            }
            Outcome::Rejected(reason) => {
                stored_rejected += 1;
                assert!(!told.is_empty(), "{id}: rejected but never notified");
                assert!(
                    told.iter().all(|r| r.reason == *reason && *r == told[0]),
                    "{id}: its notifications differ: {told:?}"
                );
                if told.len() > 1 {
                    notified_repeatedly += 1;
                }
            }
            Outcome::Failed(reason) => panic!("{id}: still failed ({reason}) after the redrive"),
        }
    }
    assert_eq!(stored_accepted + stored_rejected, accepted.len());
    for id in stored.keys() {
        assert!(
            accepted.contains_key(id),
            "{id} is stored but never got a 202 (a refused request was partly processed)"
        );
    }
    for id in notifications.keys() {
        assert!(
            accepted.contains_key(id),
            "{id} was notified but never got a 202"
        );
    }
    assert_eq!(
        memory.store.verdict_changes(),
        0,
        "a stored verdict was changed by a redelivery or a retry"
    );
    assert!(
        notified_repeatedly * 100 <= stored_rejected,
        "{notified_repeatedly} of {stored_rejected} rejections were notified more than once (more than 1%)"
    );
    let notified = &published;
    // The quota: the greedy user's window admitted at most the limit; what was stored as accepted
    // was admitted, what was stored as rate limited was not, and only a full window refused.
    let window = QuotaPolicy::new(QUOTA_LIMIT, QUOTA_WINDOW)
        .unwrap()
        .window_of(
            &UserId::parse(GREEDY_USER).unwrap(),
            OffsetDateTime::now_utc(),
        );
    let admitted = memory.quotas.counted(&window);
    assert!(
        admitted.len() <= QUOTA_LIMIT as usize,
        "{} admitted",
        admitted.len()
    );
    let mut rate_limited = 0;
    for (id, kind) in &accepted {
        match (kind, stored.get(id)) {
            (Kind::Greedy, Some(Outcome::Accepted)) => {
                assert!(
                    admitted.contains(id),
                    "{id}: accepted without being counted"
                );
            }
            (Kind::Greedy, Some(Outcome::Rejected(_))) => {
                rate_limited += 1;
                assert!(!admitted.contains(id), "{id}: counted yet rate limited");
            }
            _ => {}
        }
    }
    assert!(rate_limited > 0, "the greedy user went over the quota");
    assert_eq!(
        admitted.len(),
        QUOTA_LIMIT as usize,
        "refusals come only from a full window"
    );

    // The boards, after every redelivery, crash and failed ranking: each board of each hero and
    // period holds exactly one entry per player who has a stored accepted submission received
    // in the period, and that entry is the player's best of them (the earliest on a tie), in
    // board order; and the HTTP answer of each board's first page is that order's top 100.
    // The index stops failing first: these reads check the data, not the retry path.
    stack.faults.rank_index.heal();
    let records = memory.store.records();
    let mut expected: HashMap<String, (BoardRef, HashMap<UserId, Entry>)> = HashMap::new();
    for record in records.iter().filter(|r| r.outcome == Outcome::Accepted) {
        let entry = Entry::from_record(record).unwrap();
        for board in BoardRef::containing(&record.hero_id, record.received_at) {
            let players = &mut expected
                .entry(board.key())
                .or_insert_with(|| (board.clone(), HashMap::new()))
                .1;
            match players.get(&entry.user_id) {
                Some(best) if best.ranks_above(&entry) => {}
                _ => {
                    players.insert(entry.user_id.clone(), entry.clone());
                }
            }
        }
    }
    let token = stack.token("player-0");
    for (key, (board, players)) in &expected {
        let mut best: Vec<Entry> = players.values().cloned().collect();
        best.sort_by_key(Entry::rank_key);
        let page = memory
            .rank_index
            .page(board, None, usize::MAX - 1)
            .await
            .unwrap();
        let on_board: Vec<Entry> = page.entries.iter().map(|r| r.entry.clone()).collect();
        assert_eq!(on_board, best, "{key}: the board is not each player's best");

        let period = board.board.period.as_str();
        let date = board
            .board
            .start_text()
            .unwrap_or_else(|| "2026-12-02".to_owned());
        let query = if board.board.start.is_some() {
            format!("period={period}&date={date}&limit=100")
        } else {
            format!("period={period}&limit=100")
        };
        let read: Value = client
            .get(format!(
                "{}/v1/leaderboards/{}?{query}",
                stack.url,
                board.hero_id.as_str()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let shown: Vec<(String, u64)> = read["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {read}"))
            .iter()
            .map(|e| {
                (
                    e["userId"].as_str().unwrap().to_owned(),
                    e["score"].as_u64().unwrap(),
                )
            })
            .collect();
        let top: Vec<(String, u64)> = best
            .iter()
            .take(100)
            .map(|e| (e.user_id.as_str().to_owned(), u64::from(e.score.get())))
            .collect();
        assert_eq!(shown, top, "{key}: the top 100 over HTTP");
    }
    let boards = expected.len();

    let faults: u64 = plans.iter().map(|p| p.injected()).sum();
    println!(
        "ledger: {} submissions in {} requests ({} sent twice, {} without a key), {} answered 503 first; \
         {faults} faults injected, {} handler invocations crashed; before the redrive {parked_messages} \
         messages were parked, {marked_failed} submissions showed failed and {stuck} pending; after it \
         {stored_accepted} stored as accepted, {stored_rejected} stored as rejected and notified \
         ({rate_limited} over the quota); {} notifications for {stored_rejected} rejections ({:.3} each), \
         {notified_repeatedly} notified more than once; {} stored verdicts changed; {boards} boards \
         each held every player's best",
        accepted.len(),
        planned.len(),
        planned.iter().filter(|p| p.duplicate).count(),
        planned
            .iter()
            .filter(|p| p.idempotency_key.is_none())
            .count(),
        refusals,
        stack.crashed_invocations(),
        notified.len(),
        notified.len() as f64 / stored_rejected.max(1) as f64,
        memory.store.verdict_changes(),
    );
    assert!(faults > 100, "faults were injected ({faults})");
    assert!(stack.crashed_invocations() > 0, "handlers were crashed");
}
