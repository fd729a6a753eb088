//! Leaderboard reads: the query a client may make, and how the accepted submissions the store
//! returns are ranked. Pure; the store serves the records (on DynamoDB, the sparse `leaderboard`
//! index, which holds accepted submissions only).

use crate::limits::{LEADERBOARD_DEFAULT_ENTRIES, LEADERBOARD_MAX_ENTRIES};
use crate::record::{Outcome, SubmissionRecord};
use crate::submission::{FieldError, HeroId};

/// The only query parameter a leaderboard read takes.
pub const LIMIT_PARAMETER: &str = "limit";
/// The path parameter naming the hero.
pub const HERO_ID_PARAMETER: &str = "heroId";
/// Most problems one refused read reports.
pub const MAX_REPORTED_ERRORS: usize = 10;

/// A validated leaderboard read: the best `limit` accepted scores for one hero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderboardQuery {
    pub hero_id: HeroId,
    /// 1 to [`LEADERBOARD_MAX_ENTRIES`].
    pub limit: usize,
}

impl LeaderboardQuery {
    /// Validates the hero id from the path and the raw query string (`limit=N`, or nothing for
    /// [`LEADERBOARD_DEFAULT_ENTRIES`]). Every problem is reported, each naming its parameter;
    /// unknown parameters are refused, as unknown body fields are.
    pub fn parse(hero_id: &str, query: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let hero_id = HeroId::parse(hero_id)
            .map_err(|detail| errors.push(FieldError::parameter(HERO_ID_PARAMETER, detail)))
            .ok();
        let mut limit = None;
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        for (name, value) in pairs {
            if errors.len() >= MAX_REPORTED_ERRORS {
                // A long query of bad parameters must not buy a far longer answer.
                break;
            }
            if name.is_empty() && value.is_empty() {
                // `?&limit=5&`: empty pairs say nothing.
                continue;
            }
            if name != LIMIT_PARAMETER {
                let detail = if name.is_empty() {
                    "a parameter has no name".to_owned()
                } else {
                    format!("unknown parameter; the only one accepted is `{LIMIT_PARAMETER}`")
                };
                errors.push(FieldError::parameter(&printable(&name), detail));
            } else if limit.is_some() {
                errors.push(FieldError::parameter(
                    LIMIT_PARAMETER,
                    "given more than once",
                ));
            } else {
                match parse_limit(&value) {
                    Ok(value) => limit = Some(value),
                    Err(detail) => {
                        errors.push(FieldError::parameter(LIMIT_PARAMETER, detail));
                        // Counted as given, so a second one is still reported as a repeat.
                        limit = Some(0);
                    }
                }
            }
        }
        match hero_id {
            Some(hero_id) if errors.is_empty() => Ok(Self {
                hero_id,
                limit: limit.unwrap_or(LEADERBOARD_DEFAULT_ENTRIES),
            }),
            _ => Err(errors),
        }
    }
}

fn parse_limit(raw: &str) -> Result<usize, String> {
    let range = || format!("must be an integer from 1 to {LEADERBOARD_MAX_ENTRIES}");
    // Digits only (no sign, no spaces); leading zeros are fine, overlong numbers are not parsed.
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(range());
    }
    match raw.parse::<usize>() {
        Ok(limit) if (1..=LEADERBOARD_MAX_ENTRIES).contains(&limit) => Ok(limit),
        _ => Err(range()),
    }
}

/// A parameter name fit to echo in an error: short visible ASCII (or empty), or a placeholder.
fn printable(name: &str) -> String {
    const MAX_SHOWN: usize = 64;
    if name.len() <= MAX_SHOWN && name.bytes().all(|b| b.is_ascii_graphic()) {
        name.to_owned()
    } else {
        "(unprintable or overlong name)".to_owned()
    }
}

/// One place on the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderboardEntry {
    /// Standard competition ranking: equal scores share a rank, and the next rank skips the
    /// places they took (1, 2, 2, 4).
    pub rank: usize,
    pub record: SubmissionRecord,
}

/// Ranks the records a store returned for `query`, best first, keeping at most `query.limit`.
/// Only accepted submissions of the queried hero count, whatever the store returned. Among equal
/// scores the store's order is kept.
pub fn rank(query: &LeaderboardQuery, records: Vec<SubmissionRecord>) -> Vec<LeaderboardEntry> {
    let mut records: Vec<SubmissionRecord> = records
        .into_iter()
        .filter(|r| r.outcome == Outcome::Accepted && r.hero_id == query.hero_id)
        .collect();
    records.sort_by_key(|r| std::cmp::Reverse(r.score.get()));
    records.truncate(query.limit);
    let mut entries: Vec<LeaderboardEntry> = Vec::with_capacity(records.len());
    for (place, record) in records.into_iter().enumerate() {
        let rank = match entries.last() {
            Some(previous) if previous.record.score == record.score => previous.rank,
            _ => place + 1,
        };
        entries.push(LeaderboardEntry { rank, record });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::example_record;
    use crate::rejection::RejectionReason;
    use crate::submission::FieldLocation;

    fn query(hero: &str, limit: usize) -> LeaderboardQuery {
        LeaderboardQuery {
            hero_id: HeroId::parse(hero).unwrap(),
            limit,
        }
    }

    fn record(hero: &str, user: &str, score: u32, outcome: Outcome) -> SubmissionRecord {
        example_record(user, hero, score, outcome)
    }

    fn accepted(user: &str, score: u32) -> SubmissionRecord {
        record("storm", user, score, Outcome::Accepted)
    }

    fn locations(errors: &[FieldError]) -> Vec<(FieldLocation, &str)> {
        errors
            .iter()
            .map(|e| (e.location.clone(), e.detail.as_str()))
            .collect()
    }

    #[test]
    fn without_a_limit_the_default_number_of_entries_is_asked_for() {
        assert_eq!(
            LeaderboardQuery::parse("storm", None),
            Ok(query("storm", LEADERBOARD_DEFAULT_ENTRIES))
        );
        assert_eq!(
            LeaderboardQuery::parse("storm", Some("")),
            Ok(query("storm", LEADERBOARD_DEFAULT_ENTRIES))
        );
    }

    #[test]
    fn a_limit_from_one_to_the_maximum_is_taken() {
        assert_eq!(
            LeaderboardQuery::parse("storm", Some("limit=1")),
            Ok(query("storm", 1))
        );
        let max = format!("limit={LEADERBOARD_MAX_ENTRIES}");
        assert_eq!(
            LeaderboardQuery::parse("storm", Some(&max)),
            Ok(query("storm", LEADERBOARD_MAX_ENTRIES))
        );
        assert_eq!(
            LeaderboardQuery::parse("storm", Some("limit=%33")),
            Ok(query("storm", 3)),
            "percent-encoded digits are digits"
        );
    }

    #[test]
    fn a_limit_outside_the_range_or_not_an_integer_is_refused_by_name() {
        let over = format!("limit={}", LEADERBOARD_MAX_ENTRIES + 1);
        for bad in [
            "limit=0",
            over.as_str(),
            "limit=-1",
            "limit=1.5",
            "limit=ten",
            "limit=",
            "limit",
            "limit=+5",
            "limit=99999999999999999999",
        ] {
            let errors = LeaderboardQuery::parse("storm", Some(bad)).unwrap_err();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(
                errors[0].location,
                FieldLocation::Parameter(LIMIT_PARAMETER.into()),
                "{bad}"
            );
            assert!(errors[0].detail.contains("from 1 to"), "{bad}");
        }
    }

    #[test]
    fn empty_pairs_are_ignored_and_leading_zeros_are_digits() {
        assert_eq!(
            LeaderboardQuery::parse("storm", Some("&&limit=5&")),
            Ok(query("storm", 5))
        );
        assert_eq!(
            LeaderboardQuery::parse("storm", Some("limit=0010")),
            Ok(query("storm", 10))
        );
    }

    #[test]
    fn a_parameter_without_a_name_is_refused_as_such() {
        let errors = LeaderboardQuery::parse("storm", Some("=5")).unwrap_err();
        assert_eq!(
            locations(&errors),
            vec![(
                FieldLocation::Parameter(String::new()),
                "a parameter has no name"
            )]
        );
    }

    #[test]
    fn a_long_query_of_bad_parameters_reports_a_bounded_number_of_problems() {
        let query_string = "a&".repeat(10_000);
        let errors = LeaderboardQuery::parse("storm", Some(&query_string)).unwrap_err();
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
    }

    #[test]
    fn a_repeated_limit_is_refused() {
        let errors = LeaderboardQuery::parse("storm", Some("limit=5&limit=6")).unwrap_err();
        assert_eq!(
            locations(&errors),
            vec![(
                FieldLocation::Parameter(LIMIT_PARAMETER.into()),
                "given more than once"
            )]
        );
    }

    #[test]
    fn unknown_parameters_are_refused_and_unprintable_names_are_not_echoed() {
        let errors = LeaderboardQuery::parse("storm", Some("limit=5&page=2")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location, FieldLocation::Parameter("page".into()));

        let long = format!("{}=1", "x".repeat(65));
        for hostile in ["%00evil=1", "a%0Ab=1", long.as_str()] {
            let errors = LeaderboardQuery::parse("storm", Some(hostile)).unwrap_err();
            assert_eq!(
                errors[0].location,
                FieldLocation::Parameter("(unprintable or overlong name)".into()),
                "{hostile}"
            );
        }
    }

    #[test]
    fn a_bad_hero_id_and_a_bad_limit_are_both_reported() {
        let errors = LeaderboardQuery::parse("../etc", Some("limit=0")).unwrap_err();
        let named: Vec<FieldLocation> = errors.iter().map(|e| e.location.clone()).collect();
        assert_eq!(
            named,
            vec![
                FieldLocation::Parameter(HERO_ID_PARAMETER.into()),
                FieldLocation::Parameter(LIMIT_PARAMETER.into()),
            ]
        );
    }

    #[test]
    fn entries_are_ranked_best_first_and_equal_scores_share_a_rank() {
        let records = vec![
            accepted("c", 50),
            accepted("a", 90),
            accepted("b", 70),
            accepted("d", 70),
            accepted("e", 10),
        ];
        let entries = rank(&query("storm", 10), records);
        let board: Vec<(usize, &str, u32)> = entries
            .iter()
            .map(|e| (e.rank, e.record.user_id.as_str(), e.record.score.get()))
            .collect();
        assert_eq!(
            board,
            vec![
                (1, "a", 90),
                (2, "b", 70),
                (2, "d", 70),
                (4, "c", 50),
                (5, "e", 10)
            ]
        );
    }

    #[test]
    fn a_tie_across_the_limit_keeps_the_first_of_the_tied_in_the_stores_order() {
        let records = vec![accepted("a", 90), accepted("b", 70), accepted("c", 70)];
        let entries = rank(&query("storm", 2), records);
        let board: Vec<(usize, &str)> = entries
            .iter()
            .map(|e| (e.rank, e.record.user_id.as_str()))
            .collect();
        assert_eq!(board, vec![(1, "a"), (2, "b")]);
    }

    #[test]
    fn only_the_limit_is_kept() {
        let records = (0..20).map(|i| accepted("p", i)).collect();
        let entries = rank(&query("storm", 3), records);
        let scores: Vec<u32> = entries.iter().map(|e| e.record.score.get()).collect();
        assert_eq!(scores, vec![19, 18, 17]);
    }

    #[test]
    fn rejected_submissions_and_other_heroes_never_reach_the_board() {
        let records = vec![
            record(
                "storm",
                "mallory",
                1_000,
                Outcome::Rejected(RejectionReason::SuspendedUser),
            ),
            record("blade", "bob", 900, Outcome::Accepted),
            accepted("alice", 5),
        ];
        let entries = rank(&query("storm", 10), records);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].record.user_id.as_str(), "alice");
        assert_eq!(entries[0].rank, 1);
    }
}
