//! The OpenAPI 3.1 document served at `GET /openapi.json`. It is built from the constants in
//! `shared::limits` and the rejection reasons, so the documented limits cannot drift from the
//! enforced ones.

use std::sync::OnceLock;

use serde_json::{Value, json};
use shared::limits::{
    ACHIEVED_AT_EARLIEST_TEXT, ACHIEVED_AT_MAX_FUTURE, CLIENT_REF_MAX_CHARS,
    CORRELATION_ID_MAX_CHARS, HERO_ID_MAX_CHARS, IDEMPOTENCY_KEY_MAX_CHARS,
    LEADERBOARD_AROUND_DEFAULT, LEADERBOARD_AROUND_MAX, LEADERBOARD_DEFAULT_ENTRIES,
    LEADERBOARD_MAX_AGE_SECONDS, LEADERBOARD_MAX_ENTRIES, MAX_BATCH_SUBMISSIONS, MAX_BODY_BYTES,
    SCORE_MAX, SCORE_MIN,
};
use shared::period::{DAILY_RETENTION_DAYS, WEEKLY_RETENTION_WEEKS};
use shared::record::FailureReason;
use shared::rejection::RejectionReason;

/// Every problem `type` the API answers with, and when.
pub const PROBLEM_TYPES: [(&str, u16, &str); 14] = [
    (
        "invalid-json",
        400,
        "the body is empty, not UTF-8, not JSON, or nested too deeply",
    ),
    (
        "unreadable-body",
        400,
        "the body could not be read to its end (the client stopped sending)",
    ),
    (
        "validation-failed",
        400,
        "fields are wrong; `errors` lists each with a JSON `pointer` (or a `header` or `parameter` name) and a `detail`",
    ),
    (
        "unauthorized",
        401,
        "no, malformed, expired, not-yet-valid or wrongly signed token, or wrong issuer or audience",
    ),
    (
        "not-found",
        404,
        "unknown route, or an unknown or foreign submission id",
    ),
    (
        "no-entry",
        404,
        "the player has no accepted score on that board (hero, period and date)",
    ),
    (
        "method-not-allowed",
        405,
        "the route exists but not with this method",
    ),
    (
        "payload-too-large",
        413,
        "the body is larger than the limit",
    ),
    (
        "unsupported-media-type",
        415,
        "`Content-Type` is not `application/json` (or `application/*+json`)",
    ),
    (
        "rate-limited",
        429,
        "the user spent their burst at this ingest instance; nothing was accepted",
    ),
    (
        "queue-unavailable",
        503,
        "the queue still refused after retries; nothing was accepted",
    ),
    (
        "store-unavailable",
        503,
        "a read of a stored submission's status failed",
    ),
    (
        "boards-unavailable",
        503,
        "the rank index (the leaderboards) could not be read",
    ),
    (
        "keys-unavailable",
        503,
        "the identity provider's signing keys (JWKS) could not be fetched; nothing was accepted",
    ),
];

/// The document, serialized once.
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| document().to_string())
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn with_retry_after(mut response: Value) -> Value {
    response["headers"] = json!({ "Retry-After": { "$ref": "#/components/headers/RetryAfter" } });
    response
}

fn submit_responses(accepted_schema: &str, accepted: &str, location: bool) -> Value {
    let mut headers =
        json!({ "X-Correlation-Id": { "$ref": "#/components/headers/CorrelationId" } });
    if location {
        headers["Location"] = json!({
            "description": "The submission's status URL",
            "schema": { "type": "string" }
        });
    }
    json!({
        "202": {
            "description": accepted,
            "headers": headers,
            "content": { "application/json": { "schema": { "$ref": accepted_schema } } }
        },
        "400": problem_response("`invalid-json` or `validation-failed`"),
        "401": problem_response("`unauthorized`, with `WWW-Authenticate`"),
        "413": problem_response("`payload-too-large`"),
        "415": problem_response("`unsupported-media-type`"),
        "429": with_retry_after(problem_response("`rate-limited`: nothing was accepted")),
        "503": with_retry_after(problem_response(
            "`queue-unavailable`: the request was not queued, so nothing of it will be processed; \
             only when the queue did not answer in time may it have been queued after all. Either \
             way, retry after Retry-After seconds with the same Idempotency-Key (or the same \
             clientRefs): the retry maps to the same ids, so nothing is stored twice. A timeout or \
             another 5xx without this body (from a proxy or the gateway) may also come after the \
             request was queued: retry it the same way",
        )),
    })
}

/// The whole OpenAPI document.
pub fn document() -> Value {
    let reasons: Vec<&str> = RejectionReason::ALL.iter().map(|r| r.code()).collect();
    let stored_reasons: Vec<&str> = RejectionReason::ALL
        .iter()
        .filter(|r| **r != RejectionReason::IdempotencyConflict)
        .map(|r| r.code())
        .collect();
    let failures: Vec<&str> = FailureReason::ALL.iter().map(|r| r.code()).collect();
    let problem_types: Vec<String> = PROBLEM_TYPES
        .iter()
        .map(|(slug, _, _)| format!("/problems/{slug}"))
        .collect();
    let problem_table: String = PROBLEM_TYPES
        .iter()
        .map(|(slug, status, when)| format!("\n- `/problems/{slug}` ({status}): {when}"))
        .collect();
    let submit_body = |schema: &str| {
        json!({
            "required": true,
            "description": format!("JSON, at most {MAX_BODY_BYTES} bytes. Unknown fields and duplicate keys are refused."),
            "content": { "application/json": { "schema": { "$ref": schema } } }
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Score ingest API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Accepts superhero score submissions, queues them and answers 202; the pipeline \
                 then stores each one as accepted or rejected and notifies rejections. A 202 means \
                 the request is durably queued, as a whole: a request is accepted or refused as a \
                 whole, never in part. Each submission then ends in one outcome, and the first \
                 verdict stands: a retry or a redelivery never changes it. A submission's id is its \
                 clientRef's, else the request's Idempotency-Key with the submission's position \
                 (0 for a single post), else fresh; the same id with another hero, score or \
                 achievedAt is refused as `idempotency_conflict` and the stored one stays. \
                 Errors are RFC 9457 problem JSON:{problem_table}"
            ),
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/scores": {
                "post": {
                    "operationId": "submitScore",
                    "summary": "Submit one score",
                    "parameters": [
                        { "$ref": "#/components/parameters/IdempotencyKey" },
                        { "$ref": "#/components/parameters/CorrelationId" }
                    ],
                    "requestBody": submit_body("#/components/schemas/ScoreSubmission"),
                    "responses": submit_responses("#/components/schemas/Accepted", "Queued", true),
                }
            },
            "/v1/scores/batch": {
                "post": {
                    "operationId": "submitScores",
                    "summary": format!("Submit 1 to {MAX_BATCH_SUBMISSIONS} scores, all or none"),
                    "parameters": [
                        { "$ref": "#/components/parameters/IdempotencyKey" },
                        { "$ref": "#/components/parameters/CorrelationId" }
                    ],
                    "requestBody": submit_body("#/components/schemas/ScoreBatch"),
                    "responses": submit_responses(
                        "#/components/schemas/BatchAccepted",
                        "Every submission is queued; ids in request order",
                        false,
                    ),
                }
            },
            "/v1/submissions/{id}": {
                "get": {
                    "operationId": "getSubmission",
                    "summary": "A submission's status (its owner only)",
                    "description": "An id with no record yet, or another user's id, reads as `pending` while it is plausible, and as 404 otherwise.",
                    "parameters": [
                        {
                            "name": "id", "in": "path", "required": true,
                            "schema": { "type": "string", "format": "uuid" }
                        },
                        { "$ref": "#/components/parameters/CorrelationId" }
                    ],
                    "responses": {
                        "200": {
                            "description": "The status",
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubmissionStatus" } } }
                        },
                        "401": problem_response("`unauthorized`"),
                        "404": problem_response("`not-found`"),
                        "503": with_retry_after(problem_response("`store-unavailable`")),
                    }
                }
            },
            "/v1/leaderboards/{heroId}": {
                "get": {
                    "operationId": "getLeaderboard",
                    "summary": "A hero's board for a period: one entry per player, page by page",
                    "description": format!(
                        "Any authenticated user may read any board. A player's entry is their best accepted score among the submissions received in the period (by the server's clock, not achievedAt). Order: higher score first; on equal scores, the player who reached it first (earlier receivedAt), then by user id. Ranks are positions in that order: 1, 2, 3, with no ties. A score shows up a moment after it is accepted. Page with `nextCursor`: on an unchanged board, pages never repeat or skip an entry. Daily boards stay readable {DAILY_RETENTION_DAYS} days after their day, weekly boards {WEEKLY_RETENTION_WEEKS} weeks after their last day. Unknown and repeated query parameters are refused."
                    ),
                    "parameters": [
                        { "$ref": "#/components/parameters/HeroId" },
                        { "$ref": "#/components/parameters/Period" },
                        { "$ref": "#/components/parameters/Date" },
                        {
                            "name": "limit", "in": "query", "required": false,
                            "description": "How many entries to return",
                            "schema": { "type": "integer", "minimum": 1, "maximum": LEADERBOARD_MAX_ENTRIES, "default": LEADERBOARD_DEFAULT_ENTRIES }
                        },
                        {
                            "name": "cursor", "in": "query", "required": false,
                            "description": "A previous page's `nextCursor`: this page starts after it. Only valid with the same hero, period and date",
                            "schema": { "type": "string" }
                        },
                        { "$ref": "#/components/parameters/CorrelationId" }
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of the board, possibly empty",
                            "headers": { "Cache-Control": { "$ref": "#/components/headers/BoardCacheControl" } },
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Leaderboard" } } }
                        },
                        "400": problem_response("`validation-failed`, naming the `parameter`"),
                        "401": problem_response("`unauthorized`"),
                        "503": with_retry_after(problem_response("`boards-unavailable`")),
                    }
                }
            },
            "/v1/leaderboards/{heroId}/players/{userId}": {
                "get": {
                    "operationId": "getStanding",
                    "summary": "A player's rank on a board and the entries around it",
                    "description": "Any authenticated user may read any player's standing. `entries` holds up to `around` entries above the player, the player's own and up to `around` below, in rank order.",
                    "parameters": [
                        { "$ref": "#/components/parameters/HeroId" },
                        {
                            "name": "userId", "in": "path", "required": true,
                            "description": "The player's user id (the token subject, percent-encoded), or `me` for the caller",
                            "schema": { "type": "string", "minLength": 1 }
                        },
                        { "$ref": "#/components/parameters/Period" },
                        { "$ref": "#/components/parameters/Date" },
                        {
                            "name": "around", "in": "query", "required": false,
                            "description": "How many entries above and below the player to return",
                            "schema": { "type": "integer", "minimum": 0, "maximum": LEADERBOARD_AROUND_MAX, "default": LEADERBOARD_AROUND_DEFAULT }
                        },
                        { "$ref": "#/components/parameters/CorrelationId" }
                    ],
                    "responses": {
                        "200": {
                            "description": "The player's entry, rank and neighbours",
                            "headers": { "Cache-Control": { "$ref": "#/components/headers/BoardCacheControl" } },
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Standing" } } }
                        },
                        "400": problem_response("`validation-failed`, naming the `parameter`"),
                        "401": problem_response("`unauthorized`"),
                        "404": problem_response("`no-entry`: the player has no entry on that board"),
                        "503": with_retry_after(problem_response("`boards-unavailable`")),
                    }
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": { "200": { "description": "The OpenAPI document", "content": { "application/json": {} } } }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "Retries with the same key map to the same submission id(s): item i of the request gets the id of (user, key, i) unless it carries a clientRef, whose id wins. Reusing a key for another payload is refused as `idempotency_conflict`.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_CHARS, "pattern": "^[!-+\\--~]+$" }
                },
                "HeroId": {
                    "name": "heroId", "in": "path", "required": true,
                    "schema": { "type": "string", "minLength": 1, "maxLength": HERO_ID_MAX_CHARS, "pattern": "^[A-Za-z0-9_-]+$" }
                },
                "Period": {
                    "name": "period", "in": "query", "required": false,
                    "description": "`all-time`, `daily` (the UTC day) or `weekly` (the ISO week, from Monday 00:00 UTC)",
                    "schema": { "enum": ["all-time", "daily", "weekly"], "default": "all-time" }
                },
                "Date": {
                    "name": "date", "in": "query", "required": false,
                    "description": format!("A UTC date: the board of the period containing it. Defaults to today; not after today, and within the retention ({DAILY_RETENTION_DAYS} days, {WEEKLY_RETENTION_WEEKS} weeks)"),
                    "schema": { "type": "string", "format": "date" }
                },
                "CorrelationId": {
                    "name": "X-Correlation-Id", "in": "header", "required": false,
                    "description": "Echoed in the response and carried through every stage; one is generated when absent or malformed.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": CORRELATION_ID_MAX_CHARS, "pattern": "^[A-Za-z0-9._:-]+$" }
                }
            },
            "headers": {
                "RetryAfter": { "description": "Seconds to wait before retrying", "schema": { "type": "integer", "minimum": 1 } },
                "CorrelationId": { "description": "The request's correlation id", "schema": { "type": "string" } },
                "BoardCacheControl": {
                    "description": format!("`private, max-age={LEADERBOARD_MAX_AGE_SECONDS}`: an answer may be reused for that long"),
                    "schema": { "type": "string" }
                }
            },
            "schemas": {
                "ScoreSubmission": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["heroId", "score"],
                    "properties": {
                        "heroId": { "type": "string", "minLength": 1, "maxLength": HERO_ID_MAX_CHARS, "pattern": "^[A-Za-z0-9_-]+$" },
                        "score": { "type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX },
                        "achievedAt": {
                            "type": "string", "format": "date-time",
                            "description": format!("RFC 3339; not before {ACHIEVED_AT_EARLIEST_TEXT} and at most {} seconds in the future", ACHIEVED_AT_MAX_FUTURE.as_secs())
                        },
                        "clientRef": {
                            "type": "string", "minLength": 1, "maxLength": CLIENT_REF_MAX_CHARS, "pattern": "^[!-~]+$",
                            "description": "The client's own reference; makes the submission id deterministic"
                        }
                    }
                },
                "ScoreBatch": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["submissions"],
                    "properties": {
                        "submissions": {
                            "type": "array", "minItems": 1, "maxItems": MAX_BATCH_SUBMISSIONS,
                            "items": { "$ref": "#/components/schemas/ScoreSubmission" }
                        }
                    }
                },
                "Accepted": {
                    "type": "object",
                    "required": ["submissionId", "statusUrl"],
                    "properties": {
                        "submissionId": { "type": "string", "format": "uuid" },
                        "statusUrl": { "type": "string" }
                    }
                },
                "BatchAccepted": {
                    "type": "object",
                    "required": ["submissions"],
                    "properties": {
                        "submissions": { "type": "array", "items": { "$ref": "#/components/schemas/Accepted" } }
                    }
                },
                "SubmissionStatus": {
                    "type": "object",
                    "required": ["submissionId", "status"],
                    "properties": {
                        "submissionId": { "type": "string", "format": "uuid" },
                        "status": {
                            "enum": ["pending", "accepted", "rejected", "failed"],
                            "description": "`pending`: queued, no outcome yet (also another user's id). `accepted`: stored, on the leaderboards; final. `rejected`: refused, with `reason`, and notified; final. `failed`: the pipeline could not decide it and an operator holds it (a dead-letter queue); after a redrive it becomes accepted or rejected"
                        },
                        "reason": {
                            "enum": stored_reasons.iter().chain(&failures).collect::<Vec<_>>(),
                            "description": "Present when rejected (why it was refused) or failed (what kept it from being decided)"
                        },
                        "heroId": { "type": "string" },
                        "score": { "type": "integer" },
                        "receivedAt": { "type": "string", "format": "date-time" }
                    }
                },
                "RejectionNotification": {
                    "type": "object",
                    "description": "The body of each SNS notification (message attributes userId and reason repeat the fields). Every copy of one notification is identical; duplicates are rare (a crash between publishing and recording it), so de-duplicate on submissionId and reason.",
                    "required": ["v", "submissionId", "userId", "heroId", "score", "reason", "rejectedAt", "correlationId"],
                    "properties": {
                        "v": { "const": 1 },
                        "submissionId": { "type": "string", "format": "uuid" },
                        "userId": { "type": "string" },
                        "heroId": { "type": "string" },
                        "score": { "type": "integer" },
                        "reason": {
                            "enum": reasons,
                            "description": "`idempotency_conflict`: a submission reused the id of a stored one with another hero, score or achievedAt; the stored one stands, and this notification names the refused score"
                        },
                        "rejectedAt": { "type": "string", "format": "date-time", "description": "When the processor decided (for a conflict: when the refused request was received)" },
                        "correlationId": { "type": "string" }
                    }
                },
                "Leaderboard": {
                    "type": "object",
                    "required": ["heroId", "period", "periodStart", "entries"],
                    "properties": {
                        "heroId": { "type": "string" },
                        "period": { "enum": ["all-time", "daily", "weekly"] },
                        "periodStart": { "type": ["string", "null"], "format": "date", "description": "The board's first day (a Monday for weekly boards); null for all-time" },
                        "entries": {
                            "type": "array", "maxItems": LEADERBOARD_MAX_ENTRIES,
                            "items": { "$ref": "#/components/schemas/LeaderboardEntry" }
                        },
                        "nextCursor": { "type": "string", "description": "Present while more entries follow: pass it as `cursor` for the next page" }
                    }
                },
                "Standing": {
                    "type": "object",
                    "required": ["heroId", "period", "periodStart", "rank", "userId", "score", "submissionId", "receivedAt", "entries"],
                    "properties": {
                        "heroId": { "type": "string" },
                        "period": { "enum": ["all-time", "daily", "weekly"] },
                        "periodStart": { "type": ["string", "null"], "format": "date" },
                        "rank": { "type": "integer", "minimum": 1 },
                        "userId": { "type": "string" },
                        "score": { "type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX },
                        "submissionId": { "type": "string", "format": "uuid" },
                        "receivedAt": { "type": "string", "format": "date-time" },
                        "entries": {
                            "type": "array", "maxItems": 2 * LEADERBOARD_AROUND_MAX + 1,
                            "items": { "$ref": "#/components/schemas/LeaderboardEntry" }
                        }
                    }
                },
                "LeaderboardEntry": {
                    "type": "object",
                    "required": ["rank", "userId", "score", "submissionId", "receivedAt"],
                    "properties": {
                        "rank": { "type": "integer", "minimum": 1 },
                        "userId": { "type": "string", "description": "The player (the token subject that submitted the score)" },
                        "score": { "type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX },
                        "submissionId": { "type": "string", "format": "uuid", "description": "The submission that set this best" },
                        "receivedAt": { "type": "string", "format": "date-time", "description": "When that submission was received" }
                    }
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "enum": problem_types },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "pointer": { "type": "string", "description": "JSON pointer into the body" },
                                    "header": { "type": "string", "description": "A request header's name" },
                                    "parameter": { "type": "string", "description": "A path or query parameter's name" },
                                    "detail": { "type": "string" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
