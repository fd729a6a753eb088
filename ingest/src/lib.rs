//! The ingest HTTP app: authenticate, validate strictly, give each submission an id, enqueue,
//! answer 202. The same router serves API Gateway (through lambda_http) and the local stack.
//! The write path never touches the database.

pub mod boards;
pub mod connection;
pub mod error;
pub mod keys;
pub mod limiter;
pub mod openapi;
pub mod request_scope;

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use shared::auth::bearer_token;
use shared::ids::{CorrelationId, SubmissionId};
use shared::lambda::by_deadline;
use shared::limits::{ACHIEVED_AT_MAX_FUTURE, MAX_BODY_BYTES, PENDING_HORIZON};
use shared::message::{Principal, QueuedItem, QueuedRequest, REQUEST_MESSAGE_VERSION};
use shared::ports::{SubmissionQueue, SubmissionStore};
use shared::record::{SubmissionKey, SubmissionRecord, SubmissionStatus};
use shared::submission::{
    ClientRef, FieldError, ScoreSubmission, check_idempotency_key, parse_batch, parse_submission,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;

pub use error::IngestError;
pub use keys::{Authenticator, VerifyError};
pub use limiter::{BurstLimit, BurstLimiter};
pub use request_scope::{RequestContext, RequestScopeLayer};

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// What the handlers need, built once at cold start.
pub struct App {
    pub auth: Authenticator,
    pub queue: Arc<dyn SubmissionQueue>,
    pub store: Arc<dyn SubmissionStore>,
    /// Per-user burst limit of this instance; `None` turns it off.
    pub limiter: Option<BurstLimiter>,
}

impl App {
    /// An app without a burst limit.
    pub fn new(
        auth: impl Into<Authenticator>,
        queue: Arc<dyn SubmissionQueue>,
        store: Arc<dyn SubmissionStore>,
    ) -> Self {
        Self {
            auth: auth.into(),
            queue,
            store,
            limiter: None,
        }
    }

    pub fn with_burst_limit(mut self, limit: Option<BurstLimit>) -> Self {
        self.limiter = limit.map(BurstLimiter::new);
        self
    }

    /// Charges the user's bucket for `submissions`, or refuses with 429.
    fn admit(&self, principal: &Principal, submissions: usize) -> Result<(), IngestError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let cost = u32::try_from(submissions).unwrap_or(u32::MAX);
        limiter
            .take(&principal.subject, cost, Instant::now())
            .map_err(|wait| IngestError::RateLimited {
                retry_after_seconds: (wait.as_secs_f64().ceil() as u64).max(1),
            })
    }
}

/// The ingest function's HTTP API: submissions, their status, and the OpenAPI document.
pub fn router(app: Arc<App>) -> Router {
    finish(ingest_routes(app))
}

/// The boards function's HTTP API: the leaderboard reads.
pub fn boards_router(boards: Arc<boards::Boards>) -> Router {
    finish(boards::routes(boards))
}

/// Both, as one server (the local stack and the tests); deployed, API Gateway routes
/// `/v1/leaderboards/*` to the boards function and the rest to ingest.
pub fn full_router(app: Arc<App>, boards: Arc<boards::Boards>) -> Router {
    finish(ingest_routes(app).merge(boards::routes(boards)))
}

fn ingest_routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/scores", post(post_score))
        .route("/v1/scores/batch", post(post_batch))
        .route("/v1/submissions/{id}", get(get_submission))
        .route("/openapi.json", get(get_openapi))
        .with_state(app)
}

/// What every API answers the same way: unknown paths and methods as problem JSON, the
/// correlation id, and connection handling.
fn finish(routes: Router) -> Router {
    routes
        .fallback(|| async { IngestError::NotFound })
        .method_not_allowed_fallback(|| async { IngestError::MethodNotAllowed })
        .layer(RequestScopeLayer)
}

/// Serves `router` as a Lambda function behind API Gateway (the ingest and boards functions).
/// The first request of an execution environment writes the function's `ColdStart` EMF line,
/// and its log lines carry `cold_start: true` (`shared::lambda::invocation_span`).
pub async fn run_on_lambda(
    router: Router,
    function: &'static str,
) -> Result<(), lambda_http::Error> {
    use shared::lambda::{ColdStart, invocation_span};
    use shared::metrics::{EmfMetrics, Metric};
    let metrics = EmfMetrics::from_env(&shared::config::ProcessEnv, function);
    let cold_start = Arc::new(ColdStart::new());
    let first_request = move |request: Request, next: Next| {
        let cold = cold_start.take();
        if cold {
            metrics.emit(&[Metric::cold_start()]);
        }
        next.run(request).instrument(invocation_span(cold))
    };
    lambda_http::run(router.layer(middleware::from_fn(first_request))).await
}

/// The OpenAPI document; no token needed.
async fn get_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_text(),
    )
        .into_response()
}

async fn post_score(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, IngestError> {
    let (mut parts, body) = request.into_parts();
    let context = RequestContext::take(&mut parts.extensions);
    let principal = authenticate(&app.auth, &parts.headers).await?;
    require_json(&parts.headers)?;
    let idempotency_key = idempotency_key(&parts.headers)?;
    let bytes = read_body(&parts.headers, body).await?;
    let now = OffsetDateTime::now_utc();
    let submission = parse_submission(&bytes, now)?;
    app.admit(&principal, 1)?;
    let request = queued_request(
        &principal,
        idempotency_key.as_deref(),
        vec![submission],
        context.correlation_id,
        now,
    );
    let submission_id = request.submissions[0].submission_id;
    enqueue(&app, &request, context.deadline).await?;
    let status_url = status_url(submission_id);
    // Written out rather than built as a JSON value: a UUID and its path need no escaping, and
    // this is every accepted request's answer.
    let body = format!(r#"{{"submissionId":"{submission_id}","statusUrl":"{status_url}"}}"#);
    let mut response = (StatusCode::ACCEPTED, json_text(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn post_batch(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, IngestError> {
    let (mut parts, body) = request.into_parts();
    let context = RequestContext::take(&mut parts.extensions);
    let principal = authenticate(&app.auth, &parts.headers).await?;
    require_json(&parts.headers)?;
    let idempotency_key = idempotency_key(&parts.headers)?;
    let bytes = read_body(&parts.headers, body).await?;
    let now = OffsetDateTime::now_utc();
    let submissions = parse_batch(&bytes, now)?;
    app.admit(&principal, submissions.len())?;
    let request = queued_request(
        &principal,
        idempotency_key.as_deref(),
        submissions,
        context.correlation_id,
        now,
    );
    enqueue(&app, &request, context.deadline).await?;
    let items: Vec<_> = request
        .submission_ids()
        .map(|id| json!({ "submissionId": id, "statusUrl": status_url(id) }))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        json_body(&json!({ "submissions": items })),
    )
        .into_response())
}

async fn get_submission(
    State(app): State<Arc<App>>,
    Extension(RequestContext { deadline, .. }): Extension<RequestContext>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, IngestError> {
    let principal = authenticate(&app.auth, &headers).await?;
    // A path that does not decode (not UTF-8) names no submission.
    let Ok(Path(raw_id)) = raw_id else {
        return Err(IngestError::NotFound);
    };
    let id = SubmissionId::parse(&raw_id).ok_or(IngestError::NotFound)?;
    // The table is keyed by player: the caller's own records are the only ones it can name.
    let key = SubmissionKey::new(principal.subject.clone(), id);
    let record = by_deadline(deadline, "store", app.store.get(&key))
        .await
        .map_err(IngestError::StoreUnavailable)?;
    let view = status_view(&principal, id, record, OffsetDateTime::now_utc())
        .ok_or(IngestError::NotFound)?;
    Ok((StatusCode::OK, json_body(&view)).into_response())
}

/// What the caller may see of a submission. Another user's record is answered exactly like an
/// id with no record. Without a database write on ingest, an id with no record yet cannot be
/// told apart from one never issued, so a plausible id (derived, or fresh and issued within the
/// pending horizon) is `pending`; anything else is not found.
pub fn status_view(
    caller: &Principal,
    id: SubmissionId,
    record: Option<SubmissionRecord>,
    now: OffsetDateTime,
) -> Option<serde_json::Value> {
    if let Some(record) = record.filter(|r| r.user_id == caller.subject) {
        let status = SubmissionStatus::from(record.outcome);
        let mut view = json!({
            "submissionId": id,
            "heroId": record.hero_id.as_str(),
            "score": record.score.get(),
            "receivedAt": record.received_at.format(&Rfc3339).ok(),
        });
        merge(&mut view, serde_json::to_value(status).ok()?);
        return Some(view);
    }
    let plausible = match id.issued_at() {
        None => true,
        Some(issued) => issued <= now + ACHIEVED_AT_MAX_FUTURE && now - issued <= PENDING_HORIZON,
    };
    plausible.then(|| {
        let mut view = json!({ "submissionId": id });
        merge(&mut view, json!({ "status": "pending" }));
        view
    })
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

pub(crate) async fn authenticate(
    auth: &Authenticator,
    headers: &HeaderMap,
) -> Result<Principal, IngestError> {
    let header = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| shared::auth::TokenError::Malformed)?,
        ),
    };
    Ok(auth.verify(bearer_token(header)?).await?)
}

/// Accepts `application/json` and `application/<anything>+json`, with parameters.
fn require_json(headers: &HeaderMap) -> Result<(), IngestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(IngestError::UnsupportedMediaType)?;
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let (kind, subtype) = essence.split_once('/').unwrap_or_default();
    let suffix = subtype
        .len()
        .checked_sub(5)
        .and_then(|at| subtype.get(at..));
    let is_json = kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || suffix.is_some_and(|s| s.eq_ignore_ascii_case("+json")));
    if is_json {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType)
    }
}

/// The `Idempotency-Key`, sent once. A repeated header is refused, and so is a comma: API
/// Gateway joins repeated headers into one value with commas, so a key that was sent twice
/// must not become a third key behind the gateway when a local server would take the first.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, IngestError> {
    let invalid = |detail: String| {
        IngestError::Validation(vec![FieldError::header("Idempotency-Key", detail)])
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.as_bytes().contains(&b',') {
        return Err(invalid(
            "must be sent once, as one value without commas".to_owned(),
        ));
    }
    let key = value
        .to_str()
        .map_err(|_| invalid("may only contain visible ASCII characters".to_owned()))?;
    check_idempotency_key(key).map_err(invalid)?;
    Ok(Some(key.to_owned()))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (early when Content-Length says so).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(IngestError::PayloadTooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(IngestError::PayloadTooLarge)
        }
        Err(e) => Err(IngestError::UnreadableBody(e.to_string())),
    }
}

/// One request's queue message, each submission with its id by
/// [`SubmissionId::for_submission`].
fn queued_request(
    principal: &Principal,
    idempotency_key: Option<&str>,
    submissions: Vec<ScoreSubmission>,
    correlation_id: CorrelationId,
    received_at: OffsetDateTime,
) -> QueuedRequest {
    let submissions = submissions
        .into_iter()
        .enumerate()
        .map(|(index, submission)| QueuedItem {
            submission_id: SubmissionId::for_submission(
                &principal.subject,
                submission.client_ref.as_ref().map(ClientRef::as_str),
                idempotency_key,
                index,
            ),
            submission,
        })
        .collect();
    QueuedRequest {
        v: REQUEST_MESSAGE_VERSION,
        correlation_id,
        received_at,
        principal: principal.clone(),
        submissions,
    }
}

/// Enqueues the request as one message, by `deadline`: all of it is accepted, or none.
async fn enqueue(
    app: &App,
    request: &QueuedRequest,
    deadline: tokio::time::Instant,
) -> Result<(), IngestError> {
    by_deadline(deadline, "sqs", app.queue.enqueue(request, deadline))
        .await
        .map_err(IngestError::QueueUnavailable)?;
    // One line per request: the correlation id ties it to the processor's lines and to the
    // stored items, which carry the submission ids and the user. Most requests hold one
    // submission, and every byte here is paid per request: the count is given when it is not 1.
    match request.submissions.len() {
        1 => tracing::info!("request enqueued"),
        submissions => tracing::info!(submissions, "request enqueued"),
    }
    Ok(())
}

fn status_url(id: SubmissionId) -> String {
    format!("/v1/submissions/{id}")
}

pub(crate) fn json_body(value: &serde_json::Value) -> Response {
    json_text(value.to_string())
}

fn json_text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::UserId;
    use shared::record::Outcome;
    use shared::rejection::RejectionReason;
    use shared::submission::{HeroId, Score};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00:00 UTC);

    fn principal(name: &str) -> Principal {
        Principal {
            subject: UserId::parse(name).unwrap(),
            token_id: None,
            scopes: vec![],
        }
    }

    fn record(id: SubmissionId, owner: &str, outcome: Outcome) -> SubmissionRecord {
        SubmissionRecord {
            submission_id: id,
            user_id: UserId::parse(owner).unwrap(),
            hero_id: HeroId::parse("storm").unwrap(),
            score: Score::new(7).unwrap(),
            achieved_at: None,
            client_ref: None,
            received_at: NOW,
            correlation_id: CorrelationId::generate(),
            outcome,
            decided_at: time::OffsetDateTime::now_utc(),
            notified_at: None,
        }
    }

    #[test]
    fn json_and_json_suffixed_media_types_are_accepted_with_parameters_in_any_case() {
        let accepts = |content_type: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            require_json(&headers).is_ok()
        };
        for yes in [
            "application/json",
            "Application/JSON",
            " application/json ; charset=utf-8",
            "application/vnd.scores+json",
            "application/merge-patch+JSON;v=1",
        ] {
            assert!(accepts(yes), "{yes}");
        }
        for no in [
            "text/json",
            "application/jsonx",
            "application/xml",
            "application/json-seq",
            "json",
            "applicationjson",
            "application/+jso",
            "",
        ] {
            assert!(!accepts(no), "{no}");
        }
        assert!(require_json(&HeaderMap::new()).is_err(), "no Content-Type");
    }

    #[test]
    fn the_owner_sees_a_rejection_with_its_reason() {
        let id = SubmissionId::from_client_ref(&UserId::parse("alice").unwrap(), "r1");
        let rec = record(
            id,
            "alice",
            Outcome::Rejected(RejectionReason::SuspendedUser),
        );
        let view = status_view(&principal("alice"), id, Some(rec), NOW).unwrap();
        assert_eq!(view["status"], "rejected");
        assert_eq!(view["reason"], "suspended_user");
        assert_eq!(view["score"], 7);
    }

    #[test]
    fn another_users_record_looks_exactly_like_an_unprocessed_id() {
        let id = SubmissionId::from_client_ref(&UserId::parse("alice").unwrap(), "r1");
        let theirs = status_view(
            &principal("mallory"),
            id,
            Some(record(id, "alice", Outcome::Accepted)),
            NOW,
        );
        let unknown = status_view(&principal("mallory"), id, None, NOW);
        assert_eq!(theirs, unknown);
        assert_eq!(unknown.unwrap()["status"], "pending");
    }

    #[test]
    fn an_old_fresh_id_without_a_record_is_not_found() {
        let id = SubmissionId::new_unique();
        let issued = id.issued_at().unwrap();
        assert!(
            status_view(
                &principal("a"),
                id,
                None,
                issued + time::Duration::minutes(1)
            )
            .is_some()
        );
        assert!(
            status_view(
                &principal("a"),
                id,
                None,
                issued + PENDING_HORIZON + time::Duration::seconds(1)
            )
            .is_none()
        );
        assert!(
            status_view(&principal("a"), id, None, issued - time::Duration::hours(1)).is_none(),
            "issued in the future"
        );
    }

    #[test]
    fn a_request_is_one_message_with_one_id_rule_for_every_submission() {
        let p = principal("alice");
        let item = |client_ref: Option<&str>| ScoreSubmission {
            hero_id: HeroId::parse("h").unwrap(),
            score: Score::new(1).unwrap(),
            achieved_at: None,
            client_ref: client_ref.map(|r| shared::submission::ClientRef::parse(r).unwrap()),
        };
        let correlation_id = CorrelationId::generate();
        let request = queued_request(
            &p,
            Some("k"),
            vec![item(None), item(Some("r")), item(None)],
            correlation_id.clone(),
            NOW,
        );
        assert_eq!(request.v, REQUEST_MESSAGE_VERSION);
        assert_eq!(request.correlation_id, correlation_id);
        assert_eq!(
            request.submission_ids().collect::<Vec<_>>(),
            [
                SubmissionId::from_idempotency_key(&p.subject, "k", 0),
                SubmissionId::from_client_ref(&p.subject, "r"),
                SubmissionId::from_idempotency_key(&p.subject, "k", 2),
            ]
        );
        let single = queued_request(&p, Some("k"), vec![item(Some("r"))], correlation_id, NOW);
        assert_eq!(
            single.submission_ids().next(),
            Some(SubmissionId::from_client_ref(&p.subject, "r")),
            "a single post follows the same rule: clientRef first"
        );
    }
}
