//! Property tests: validation, submission-id derivation and leaderboard queries hold for generated
//! inputs, not just the examples in the unit tests.

use proptest::prelude::*;
use serde_json::json;
use shared::aws::dynamodb::{item_to_record, record_to_item};
use shared::board::{BoardQuery, MAX_REPORTED_ERRORS, StandingQuery};
use shared::ids::{SubmissionId, UserId};
use shared::limits::{
    ACHIEVED_AT_EARLIEST, ACHIEVED_AT_MAX_FUTURE, CLIENT_REF_MAX_CHARS, HERO_ID_MAX_CHARS,
    LEADERBOARD_AROUND_MAX, LEADERBOARD_MAX_ENTRIES, MAX_BATCH_SUBMISSIONS, SCORE_MAX,
};
use shared::record::{Outcome, SubmissionRecord};
use shared::submission::{InvalidInput, parse_batch, parse_submission};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-22 12:00:00 UTC);

fn hero_id() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{1,{HERO_ID_MAX_CHARS}}}")).unwrap()
}

fn client_ref() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[!-~]{{1,{CLIENT_REF_MAX_CHARS}}}")).unwrap()
}

/// Any RFC 3339 date-time, weighted toward the edges of the calendar and of the accepted range:
/// years 0000 and 9999, the epoch, offsets up to +-23:59, leap seconds, up to 12 fraction digits,
/// lower-case separators. Some are not valid dates (February 30th); those must be refused.
fn rfc3339_text() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        0..=1i32,
        1969..=1970i32,
        2026..=2026i32,
        0..=9999i32,
        9999..=9999i32
    ];
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        (any::<bool>(), 0..=23u8, 0..=59u8)
            .prop_map(|(east, h, m)| format!("{}{h:02}:{m:02}", if east { '+' } else { '-' })),
    ];
    let fraction = proptest::option::of("[0-9]{1,12}");
    (
        year,
        1..=12u8,
        1..=31u8,
        0..=23u8,
        0..=59u8,
        0..=60u8,
        fraction,
        any::<bool>(),
        offset,
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, lower_t, offset)| {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let t = if lower_t { 't' } else { 'T' };
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

fn submission() -> impl Strategy<Value = serde_json::Value> {
    (
        hero_id(),
        0..=SCORE_MAX,
        proptest::option::of(client_ref()),
        proptest::option::of(-86_400i64..=300),
    )
        .prop_map(|(hero, score, client_ref, offset)| {
            let mut body = json!({ "heroId": hero, "score": score });
            if let Some(r) = client_ref {
                body["clientRef"] = json!(r);
            }
            if let Some(offset) = offset {
                let at = NOW + time::Duration::seconds(offset);
                body["achievedAt"] = json!(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                );
            }
            body
        })
}

proptest! {
    #[test]
    fn every_well_formed_submission_is_accepted_as_sent(body in submission()) {
        let parsed = parse_submission(body.to_string().as_bytes(), NOW).unwrap();
        prop_assert_eq!(parsed.hero_id.as_str(), body["heroId"].as_str().unwrap());
        prop_assert_eq!(u64::from(parsed.score.get()), body["score"].as_u64().unwrap());
        prop_assert_eq!(parsed.client_ref.as_ref().map(|r| r.as_str()), body["clientRef"].as_str());
    }

    #[test]
    fn a_hero_id_with_any_character_outside_the_alphabet_is_refused(
        prefix in "[a-z]{0,10}",
        bad in any::<char>().prop_filter("outside the alphabet", |c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')),
    ) {
        let body = json!({ "heroId": format!("{prefix}{bad}"), "score": 1 });
        let refused = matches!(parse_submission(body.to_string().as_bytes(), NOW), Err(InvalidInput::Fields(_)));
        prop_assert!(refused);
    }

    #[test]
    fn scores_outside_the_range_are_refused(score in (u64::from(SCORE_MAX) + 1)..u64::MAX) {
        let body = json!({ "heroId": "a", "score": score });
        prop_assert!(parse_submission(body.to_string().as_bytes(), NOW).is_err());
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_submission(&bytes, NOW);
        let _ = parse_batch(&bytes, NOW);
    }

    #[test]
    fn a_batch_of_well_formed_submissions_keeps_its_order(
        items in proptest::collection::vec(submission(), 1..=MAX_BATCH_SUBMISSIONS),
    ) {
        // Distinct clientRefs are part of being well-formed in a batch.
        let mut seen = std::collections::HashSet::new();
        let items: Vec<_> = items
            .into_iter()
            .map(|mut item| {
                if let Some(r) = item["clientRef"].as_str().map(str::to_owned)
                    && !seen.insert(r)
                {
                    item.as_object_mut().unwrap().remove("clientRef");
                }
                item
            })
            .collect();
        let body = json!({ "submissions": items });
        let parsed = parse_batch(body.to_string().as_bytes(), NOW).unwrap();
        prop_assert_eq!(parsed.len(), items.len());
        for (parsed, sent) in parsed.iter().zip(&items) {
            prop_assert_eq!(parsed.hero_id.as_str(), sent["heroId"].as_str().unwrap());
        }
    }

    #[test]
    fn derived_ids_are_stable_and_separate_users_and_keys(
        user_a in "[a-z|:0-9]{1,20}",
        user_b in "[a-z|:0-9]{1,20}",
        key_a in "[!-~]{1,40}",
        key_b in "[!-~]{1,40}",
    ) {
        let (a, b) = (UserId::parse(user_a.clone()).unwrap(), UserId::parse(user_b.clone()).unwrap());
        prop_assert_eq!(SubmissionId::from_idempotency_key(&a, &key_a, 0), SubmissionId::from_idempotency_key(&a, &key_a, 0));
        prop_assert_eq!(SubmissionId::from_client_ref(&a, &key_a), SubmissionId::from_client_ref(&a, &key_a));
        prop_assert_ne!(SubmissionId::from_idempotency_key(&a, &key_a, 0), SubmissionId::from_client_ref(&a, &key_a));
        if user_a != user_b {
            prop_assert_ne!(SubmissionId::from_client_ref(&a, &key_a), SubmissionId::from_client_ref(&b, &key_a));
        }
        if key_a != key_b {
            prop_assert_ne!(SubmissionId::from_idempotency_key(&a, &key_a, 0), SubmissionId::from_idempotency_key(&a, &key_b, 0));
        }
        let id = SubmissionId::from_client_ref(&a, &key_a);
        prop_assert_eq!(SubmissionId::parse(&id.to_string()), Some(id));
    }

    /// What validation accepts, the submissions table can store and read back unchanged: the
    /// DynamoDB item codec round-trips every accepted `achievedAt`, and everything from the floor
    /// to the allowed clock skew is accepted.
    #[test]
    fn every_accepted_achieved_at_round_trips_through_the_item_codec(at in rfc3339_text()) {
        let body = json!({ "heroId": "storm", "score": 1, "achievedAt": at });
        let instant = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).ok();
        let in_range = instant
            .is_some_and(|t| t >= ACHIEVED_AT_EARLIEST && t <= NOW + ACHIEVED_AT_MAX_FUTURE);
        match parse_submission(body.to_string().as_bytes(), NOW) {
            Ok(submission) => {
                prop_assert!(in_range, "{} accepted outside the range", at);
                let record = SubmissionRecord {
                    achieved_at: submission.achieved_at,
                    ..accepted(1)
                };
                let item = record_to_item(&record).map_err(|e| TestCaseError::fail(format!("{at}: {e}")))?;
                let read = item_to_record(&item).map_err(|e| TestCaseError::fail(format!("{at}: {e}")))?;
                prop_assert_eq!(read, record);
            }
            Err(_) => prop_assert!(!in_range, "{} refused inside the range", at),
        }
    }

    #[test]
    fn a_board_or_standing_query_never_panics_and_reports_a_bounded_list(
        hero in ".{0,80}",
        user in ".{0,40}",
        query in ".{0,400}",
    ) {
        let today = time::macros::date!(2026 - 12 - 02);
        match BoardQuery::parse(&hero, Some(&query), today) {
            Ok(parsed) => prop_assert!((1..=LEADERBOARD_MAX_ENTRIES).contains(&parsed.limit)),
            Err(errors) => prop_assert!(!errors.is_empty() && errors.len() <= MAX_REPORTED_ERRORS + 2),
        }
        match StandingQuery::parse(&hero, &user, Some(&query), today) {
            Ok(parsed) => prop_assert!(parsed.around <= LEADERBOARD_AROUND_MAX),
            Err(errors) => prop_assert!(!errors.is_empty() && errors.len() <= MAX_REPORTED_ERRORS + 3),
        }
    }

    #[test]
    fn every_limit_in_range_is_taken(hero in hero_id(), limit in 1..=LEADERBOARD_MAX_ENTRIES) {
        let today = time::macros::date!(2026 - 12 - 02);
        let parsed = BoardQuery::parse(&hero, Some(&format!("limit={limit}")), today).unwrap();
        prop_assert_eq!(parsed.limit, limit);
        prop_assert_eq!(parsed.board.hero_id.as_str(), hero.as_str());
    }
}

fn accepted(score: u32) -> SubmissionRecord {
    SubmissionRecord {
        submission_id: SubmissionId::new_unique(),
        user_id: UserId::parse("alice").unwrap(),
        hero_id: shared::submission::HeroId::parse("storm").unwrap(),
        score: shared::submission::Score::new(score).unwrap(),
        achieved_at: None,
        client_ref: None,
        received_at: NOW,
        correlation_id: shared::ids::CorrelationId::generate(),
        outcome: Outcome::Accepted,
        decided_at: time::OffsetDateTime::now_utc(),
        notified_at: None,
    }
}
