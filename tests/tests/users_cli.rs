//! The `users` operator tool against moto: add, suspend, activate, list, and revoke a suspended
//! user's scores.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::backend::aws::rank_index_from_env;
use pipeline_tests::change_feed::{ChangeFeed, DynamoStreamFeed};
use pipeline_tests::emulate::moto::Moto;
use processor::ranker::{FeedRecord, Ranker};
use shared::board::BoardRef;
use shared::ports::RankIndex;

use serde_json::Value;
use shared::aws::dynamodb::DynamoSubmissionStore;
use shared::aws::provision::{ensure_submissions_table, ensure_users_table};
use shared::aws::{AwsClients, load_sdk_config};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::ports::SubmissionStore;
use shared::record::{Outcome, SubmissionRecord};
use shared::rejection::RejectionReason;
use shared::submission::{HeroId, Score};

fn users(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_users"))
        // Only what each test passes: an operator's exported tables must not leak in.
        .env_remove("USERS_TABLE")
        .env_remove("SUBMISSIONS_TABLE")
        .arg("--table")
        .arg(table)
        .args(args)
        .output()
        .expect("the users tool runs")
}

fn listed(table: &str) -> Vec<Value> {
    let output = users(table, &["list", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn require_moto() {
    assert!(
        std::env::var("MOTO_ENDPOINT").is_ok_and(|v| !v.is_empty()),
        "MOTO_ENDPOINT is not set: run this test through `scripts/moto.sh run -- cargo test` (make test does this)"
    );
}

fn unique(what: &str) -> String {
    format!(
        "{what}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

#[tokio::test]
async fn operators_add_suspend_activate_and_list_users() {
    require_moto();
    let clients = AwsClients::new(&load_sdk_config().await);
    let table = unique("users-cli");
    ensure_users_table(&clients.dynamodb, &table).await.unwrap();

    assert!(users(&table, &["add", "zoe"]).status.success());
    assert!(
        users(
            &table,
            &["add", "yann", "--suspended", "--permission", "profile:read"]
        )
        .status
        .success()
    );
    let all = listed(&table);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["userId"], "yann");
    assert_eq!(all[0]["status"], "suspended");
    assert_eq!(all[1]["userId"], "zoe");
    assert_eq!(all[1]["permissions"][0], "scores:submit");

    assert!(users(&table, &["suspend", "zoe"]).status.success());
    assert_eq!(listed(&table)[1]["status"], "suspended");
    assert!(users(&table, &["activate", "zoe"]).status.success());
    assert_eq!(listed(&table)[1]["status"], "active");

    let missing = users(&table, &["suspend", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not in the directory"));
}

fn stored(user: &str, hero: &str, score: u32, outcome: Outcome) -> SubmissionRecord {
    SubmissionRecord {
        submission_id: SubmissionId::new_unique(),
        user_id: UserId::parse(user).unwrap(),
        hero_id: HeroId::parse(hero).unwrap(),
        score: Score::new(score).unwrap(),
        achieved_at: None,
        client_ref: None,
        received_at: time::OffsetDateTime::now_utc(),
        correlation_id: CorrelationId::generate(),
        outcome,
        decided_at: time::OffsetDateTime::now_utc(),
        notified_at: None,
    }
}

/// Ranks every change the feed holds, as the deployed ranker would.
async fn rank_everything(feed: &DynamoStreamFeed, index: Arc<dyn RankIndex>) {
    let ranker = Ranker::new(index);
    loop {
        let records = feed.read(100, Duration::from_millis(500)).await.unwrap();
        if records.is_empty() {
            return;
        }
        let records: Vec<FeedRecord> = records.iter().map(FeedRecord::from_stream).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let summary = ranker.rank(&records, deadline).await;
        assert_eq!(summary.retry_from, None);
        assert_eq!(summary.unreadable, 0);
    }
}

#[tokio::test]
async fn suspending_with_revoke_scores_takes_the_users_scores_off_every_leaderboard() {
    // GIVEN a cheater with accepted scores on two heroes' boards (and one already rejected), and
    // an honest player on the same board
    require_moto();
    let clients = AwsClients::new(&load_sdk_config().await);
    let (users_table, submissions_table) = (unique("users-revoke"), unique("subs-revoke"));
    ensure_users_table(&clients.dynamodb, &users_table)
        .await
        .unwrap();
    ensure_submissions_table(&clients.dynamodb, &submissions_table)
        .await
        .unwrap();
    let store = DynamoSubmissionStore::new(clients.dynamodb.clone(), &submissions_table);
    let cheats = [
        stored("cheater", "storm", 999_999, Outcome::Accepted),
        stored("cheater", "blade", 888_888, Outcome::Accepted),
        stored(
            "cheater",
            "storm",
            5,
            Outcome::Rejected(RejectionReason::RateLimited),
        ),
    ];
    let honest = stored("honest", "storm", 100, Outcome::Accepted);
    let mut all = cheats.to_vec();
    all.push(honest.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    store.write(&all, deadline).await.unwrap();
    assert!(users(&users_table, &["add", "cheater"]).status.success());

    // WHEN the operator suspends the cheater and revokes their scores
    let output = users(
        &users_table,
        &[
            "suspend",
            "cheater",
            "--revoke-scores",
            "--submissions-table",
            &submissions_table,
        ],
    );

    // THEN the user is suspended, both accepted scores are rejected as suspended_user and off
    // the boards, the already rejected one keeps its reason, and the honest player is untouched
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("2 accepted submission(s) of cheater revoked"),
        "{said}"
    );
    assert_eq!(listed(&users_table)[0]["status"], "suspended");
    // (the table's stream, written by both the fixtures and the revocation, ranked as the
    // deployed ranker does, into the Redis cluster)
    let index = rank_index_from_env(&submissions_table).unwrap_or_else(|reason| panic!("{reason}"));
    let feed = DynamoStreamFeed::new(
        Moto::new(std::env::var("MOTO_ENDPOINT").unwrap()),
        clients.dynamodb.clone(),
        &submissions_table,
    );
    rank_everything(&feed, index.clone()).await;
    let board_users = |board: BoardRef| {
        let index = index.clone();
        async move {
            index
                .page(&board, None, 10)
                .await
                .unwrap()
                .entries
                .into_iter()
                .map(|r| r.entry.user_id.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for board in BoardRef::containing(&HeroId::parse("storm").unwrap(), honest.received_at) {
        assert_eq!(
            board_users(board.clone()).await,
            ["honest"],
            "{}",
            board.key()
        );
    }
    for board in BoardRef::containing(&HeroId::parse("blade").unwrap(), honest.received_at) {
        assert!(
            board_users(board.clone()).await.is_empty(),
            "{}",
            board.key()
        );
    }
    let suspended = Outcome::Rejected(RejectionReason::SuspendedUser);
    for (record, expected) in cheats.iter().zip([
        suspended,
        suspended,
        Outcome::Rejected(RejectionReason::RateLimited),
    ]) {
        let now = store.get(&record.key()).await.unwrap().unwrap();
        assert_eq!(now.outcome, expected);
        assert_eq!(now.score, record.score, "only the verdict changes");
    }
    assert_eq!(
        store.get(&honest.key()).await.unwrap().unwrap().outcome,
        Outcome::Accepted
    );

    // AND revoking needs to know where the submissions are
    let refused = users(&users_table, &["suspend", "cheater", "--revoke-scores"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--submissions-table"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
