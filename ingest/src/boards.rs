//! The leaderboard reads: a board page by page, and a player's standing with the entries around
//! it, both from the rank index. Deployed as their own function (the boards function, beside the
//! rank index in its network), served by the same router plumbing as ingest.

use std::sync::{Arc, LazyLock};

use axum::Extension;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use shared::board::{
    BoardPage, BoardQuery, BoardRef, HERO_ID_PARAMETER, RankedEntry, Standing, StandingQuery,
    USER_ID_PARAMETER, encode_cursor,
};
use shared::lambda::by_deadline;
use shared::limits::LEADERBOARD_MAX_AGE_SECONDS;
use shared::ports::RankIndex;
use shared::submission::FieldError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Authenticator, IngestError, RequestContext, authenticate, json_body};

/// What the board handlers need, built once at cold start.
pub struct Boards {
    pub auth: Authenticator,
    pub index: Arc<dyn RankIndex>,
}

impl Boards {
    pub fn new(auth: impl Into<Authenticator>, index: Arc<dyn RankIndex>) -> Self {
        Self {
            auth: auth.into(),
            index,
        }
    }
}

/// The board routes, without the fallback and layers the full router adds.
pub(crate) fn routes(boards: Arc<Boards>) -> Router {
    Router::new()
        .route("/v1/leaderboards/{hero_id}", get(get_board))
        .route(
            "/v1/leaderboards/{hero_id}/players/{user_id}",
            get(get_standing),
        )
        .with_state(boards)
}

/// One page of a board. Any authenticated user may read any board.
async fn get_board(
    State(boards): State<Arc<Boards>>,
    Extension(RequestContext { deadline, .. }): Extension<RequestContext>,
    raw_hero_id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, IngestError> {
    authenticate(&boards.auth, &headers).await?;
    let Ok(Path(raw_hero_id)) = raw_hero_id else {
        return Err(not_utf8(HERO_ID_PARAMETER));
    };
    let today = OffsetDateTime::now_utc().date();
    let query =
        BoardQuery::parse(&raw_hero_id, uri.query(), today).map_err(IngestError::Validation)?;
    let reading = boards
        .index
        .page(&query.board, query.after.as_ref(), query.limit);
    let page = by_deadline(deadline, "rank index", reading)
        .await
        .map_err(IngestError::BoardsUnavailable)?;
    Ok(cached(json_body(&board_view(&query.board, &page))))
}

/// A player's rank and the entries around it; `me` is the caller.
async fn get_standing(
    State(boards): State<Arc<Boards>>,
    Extension(RequestContext { deadline, .. }): Extension<RequestContext>,
    raw_path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, IngestError> {
    let caller = authenticate(&boards.auth, &headers).await?;
    let Ok(Path((raw_hero_id, raw_user_id))) = raw_path else {
        return Err(IngestError::Validation(vec![FieldError::parameter(
            &format!("{HERO_ID_PARAMETER} or {USER_ID_PARAMETER}"),
            "is not UTF-8 once percent-decoded",
        )]));
    };
    let today = OffsetDateTime::now_utc().date();
    let query = StandingQuery::parse(&raw_hero_id, &raw_user_id, uri.query(), today)
        .map_err(IngestError::Validation)?;
    let user_id = query.player.resolve(&caller.subject);
    let reading = boards.index.standing(&query.board, &user_id, query.around);
    let standing = by_deadline(deadline, "rank index", reading)
        .await
        .map_err(IngestError::BoardsUnavailable)?
        .ok_or(IngestError::NoEntry)?;
    Ok(cached(json_body(&standing_view(&query.board, &standing))))
}

fn not_utf8(parameter: &str) -> IngestError {
    IngestError::Validation(vec![FieldError::parameter(
        parameter,
        "is not UTF-8 once percent-decoded",
    )])
}

/// `Cache-Control` of every board answer, built once from the limit.
static CACHE_CONTROL: LazyLock<HeaderValue> = LazyLock::new(|| {
    HeaderValue::from_str(&format!("private, max-age={LEADERBOARD_MAX_AGE_SECONDS}"))
        .unwrap_or_else(|_| HeaderValue::from_static("private"))
});

fn cached(mut response: Response) -> Response {
    if response.status() == StatusCode::OK {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, CACHE_CONTROL.clone());
    }
    response.into_response()
}

/// What every board answer starts with: which board it is.
fn board_fields(board: &BoardRef) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("heroId".into(), json!(board.hero_id.as_str()));
    fields.insert("period".into(), json!(board.board.period.as_str()));
    fields.insert("periodStart".into(), json!(board.board.start_text()));
    fields
}

fn entry_view(ranked: &RankedEntry) -> Value {
    let entry = &ranked.entry;
    json!({
        "rank": ranked.rank,
        "userId": entry.user_id.as_str(),
        "score": entry.score.get(),
        "submissionId": entry.submission_id,
        "receivedAt": entry.received_at.format(&Rfc3339).ok(),
    })
}

/// A page of a board as the API shows it.
pub fn board_view(board: &BoardRef, page: &BoardPage) -> Value {
    let mut view = board_fields(board);
    view.insert(
        "entries".into(),
        page.entries.iter().map(entry_view).collect(),
    );
    if let Some(next) = &page.next {
        view.insert("nextCursor".into(), json!(encode_cursor(board, next)));
    }
    Value::Object(view)
}

/// A player's standing as the API shows it: their own entry's fields, and the entries around.
pub fn standing_view(board: &BoardRef, standing: &Standing) -> Value {
    let mut view = board_fields(board);
    if let Value::Object(own) = entry_view(&standing.player) {
        view.extend(own);
    }
    view.insert(
        "entries".into(),
        standing.entries.iter().map(entry_view).collect(),
    );
    Value::Object(view)
}

#[cfg(test)]
mod tests {
    use shared::board::Entry;
    use shared::ids::{SubmissionId, UserId};
    use shared::period::Period;
    use shared::submission::{HeroId, Score};
    use time::macros::{date, datetime};

    use super::*;

    fn ranked(rank: u64, user: &str, score: u32) -> RankedEntry {
        RankedEntry {
            rank,
            entry: Entry {
                user_id: UserId::parse(user).unwrap(),
                score: Score::new(score).unwrap(),
                submission_id: SubmissionId::parse("019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a").unwrap(),
                received_at: datetime!(2026-12-02 12:00:00.5 UTC),
            },
        }
    }

    #[test]
    fn a_page_names_its_board_and_its_entries_and_the_next_cursor() {
        let board = BoardRef {
            hero_id: HeroId::parse("storm").unwrap(),
            board: Period::Weekly.board_of(date!(2026 - 12 - 02)),
        };
        let page = BoardPage {
            entries: vec![ranked(1, "alice", 90)],
            next: Some(ranked(1, "alice", 90).entry.rank_key()),
        };
        let view = board_view(&board, &page);
        assert_eq!(view["heroId"], "storm");
        assert_eq!(view["period"], "weekly");
        assert_eq!(view["periodStart"], "2026-11-30");
        assert_eq!(
            view["entries"][0],
            json!({"rank": 1, "userId": "alice", "score": 90,
                   "submissionId": "019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a",
                   "receivedAt": "2026-12-02T12:00:00.5Z"})
        );
        assert!(view["nextCursor"].as_str().is_some_and(|c| !c.is_empty()));
        let last = board_view(
            &board,
            &BoardPage {
                entries: vec![],
                next: None,
            },
        );
        assert!(last.get("nextCursor").is_none());
        let all_time = BoardRef {
            board: Period::AllTime.board_of(date!(2026 - 12 - 02)),
            ..board
        };
        assert_eq!(board_view(&all_time, &page)["periodStart"], Value::Null);
    }

    #[test]
    fn a_standing_carries_the_players_own_fields_and_the_entries_around() {
        let board = BoardRef {
            hero_id: HeroId::parse("storm").unwrap(),
            board: Period::AllTime.board_of(date!(2026 - 12 - 02)),
        };
        let standing = Standing {
            player: ranked(2, "bob", 50),
            entries: vec![
                ranked(1, "alice", 90),
                ranked(2, "bob", 50),
                ranked(3, "carol", 10),
            ],
        };
        let view = standing_view(&board, &standing);
        assert_eq!(view["userId"], "bob");
        assert_eq!(view["rank"], 2);
        assert_eq!(view["score"], 50);
        let ranks: Vec<u64> = view["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["rank"].as_u64().unwrap())
            .collect();
        assert_eq!(ranks, [1, 2, 3]);
    }
}
