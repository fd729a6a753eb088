//! What every request of the ingest and boards APIs goes through, in one layer: its
//! correlation id (the caller's `X-Correlation-Id` if well-formed, else a new one) and work
//! deadline in a [`RequestContext`], a span that carries the correlation id, the one log line
//! of a refused or failed request, the id echoed in the response, and the connection kept usable
//! when the handler left the body unread ([`crate::connection`]).
//!
//! A hand-written tower layer rather than `axum::middleware::from_fn`: each `from_fn` boxes the
//! rest of the stack and its own future per request, and this is on every request's path (the
//! profile in docs/BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{Extensions, HeaderValue};
use axum::response::Response;
use shared::ids::CorrelationId;
use shared::limits::INGEST_WORK_BUDGET;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{CORRELATION_ID_HEADER, connection, error};

/// What the layer found out about a request, for its handler.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub correlation_id: CorrelationId,
    /// By when the request's enqueue or read must be done.
    pub deadline: tokio::time::Instant,
}

impl RequestContext {
    /// Takes the context the layer put on a request; makes one now if it is missing (a
    /// handler called without the layer, as some tests do).
    pub fn take(extensions: &mut Extensions) -> RequestContext {
        extensions
            .remove::<RequestContext>()
            .unwrap_or_else(|| RequestContext {
                correlation_id: CorrelationId::generate(),
                deadline: work_deadline(extensions),
            })
    }
}

/// [`INGEST_WORK_BUDGET`] from now and, under Lambda, no later than the invocation's deadline
/// less [`shared::lambda::DEADLINE_MARGIN`].
fn work_deadline(extensions: &Extensions) -> tokio::time::Instant {
    let budget = tokio::time::Instant::now() + INGEST_WORK_BUDGET;
    match extensions.get::<lambda_http::Context>() {
        Some(invocation) => budget.min(shared::lambda::work_deadline(invocation.deadline)),
        None => budget,
    }
}

/// Where a request came from, for the line of a refusal or a failure (API Gateway's access log
/// is off by default, so this is where an operator finds a misbehaving client's address): API
/// Gateway's `sourceIp` under Lambda, the peer's address when the server keeps connect info.
/// An address, not text, so that a request that is served costs no allocation for it.
fn source_ip(extensions: &Extensions) -> Option<std::net::IpAddr> {
    use lambda_http::request::RequestContext as Event;
    // Both routes are HTTP API payload 2.0 integrations (infra/lib/score-pipeline-stack.ts).
    if let Some(Event::ApiGatewayV2(context)) = extensions.get::<Event>() {
        return context.http.source_ip.as_deref()?.parse().ok();
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|connected| connected.0.ip())
}

/// A source address as the outcome line shows it, `-` when unknown; written only if a line is.
struct SourceIp(Option<std::net::IpAddr>);

impl std::fmt::Display for SourceIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The correlation id a request asked for, if it sent exactly one well-formed id. A repeated
/// header is ignored like a malformed one: API Gateway would join the values with a comma,
/// which no correlation id contains, so both fronts generate a fresh id.
fn requested_correlation_id(request: &Request) -> Option<CorrelationId> {
    let mut sent = request.headers().get_all(CORRELATION_ID_HEADER).iter();
    match (sent.next(), sent.next()) {
        (Some(value), None) => value.to_str().ok().and_then(CorrelationId::parse),
        _ => None,
    }
}

/// The layer (see the module).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestScopeLayer;

impl<S> Layer<S> for RequestScopeLayer {
    type Service = RequestScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestScope { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RequestScope<S> {
    inner: S,
}

impl<S> Service<Request> for RequestScope<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone stays for the next call; the one that was polled ready serves this one.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let correlation_id =
            requested_correlation_id(&request).unwrap_or_else(CorrelationId::generate);
        // The span holds the correlation id alone: it is on every line of the request, and
        // the request's one info line costs every submission its bytes (see shared::telemetry).
        let span = tracing::info_span!("request", correlation_id = %correlation_id);
        let deadline = work_deadline(request.extensions());
        let (body, unread) = connection::returning_unread(std::mem::take(request.body_mut()));
        *request.body_mut() = body;
        // Kept for the outcome's line, which only refusals and failures write.
        let method = request.method().clone();
        let path = request.uri().clone();
        let source = source_ip(request.extensions());
        let header = HeaderValue::from_str(correlation_id.as_str()).ok();
        request.extensions_mut().insert(RequestContext {
            correlation_id,
            deadline,
        });
        let started = Instant::now();
        let served = ready.call(request).instrument(span.clone());
        Box::pin(async move {
            let Ok(mut response) = served.await;
            let status = response.status();
            let refusal = response.extensions_mut().remove::<error::Refusal>();
            let elapsed_us = started.elapsed().as_micros() as u64;
            let (method, path, status) = (method.as_str(), path.path(), status.as_u16());
            let source_ip = SourceIp(source);
            match refusal {
                Some(error::Refusal(error)) if status >= 500 => {
                    tracing::error!(parent: &span, method, path, status, %source_ip, elapsed_us, error, "request failed")
                }
                Some(error::Refusal(error)) => {
                    tracing::info!(parent: &span, method, path, status, %source_ip, error, "request refused")
                }
                None if status >= 500 => {
                    tracing::error!(parent: &span, method, path, status, %source_ip, elapsed_us, "request failed")
                }
                None => {
                    tracing::debug!(parent: &span, method, path, status, elapsed_us, "request done")
                }
            }
            if let Some(header) = header {
                response.headers_mut().insert(CORRELATION_ID_HEADER, header);
            }
            Ok(connection::drain_unread(response, unread).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_deadline_is_the_budget_and_never_past_the_invocations_deadline() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let started = tokio::time::Instant::now();
        let local = work_deadline(&axum::http::Extensions::new());
        // The budget from a moment between `started` and now, however long that took.
        let held_up = started.elapsed();
        let left = local - started;
        assert!(
            left >= INGEST_WORK_BUDGET && left <= INGEST_WORK_BUDGET + held_up,
            "{left:?} after {held_up:?}"
        );

        // Under Lambda with 3 s left: the invocation's deadline less the margin comes first.
        let mut invocation = lambda_http::Context::default();
        invocation.deadline = now_ms + 3_000;
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(invocation);
        let left = work_deadline(&extensions) - tokio::time::Instant::now();
        assert!(
            left <= std::time::Duration::from_millis(1_500),
            "{left:?}: 3 s left less the 1.5 s margin"
        );
    }

    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use serde_json::Value;
    use shared::ports::PortError;
    use tower::ServiceExt;

    use crate::error::IngestError;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The Lambda JSON lines (at `info`, as deployed) that serving `request` through the layer
    /// writes, with the response's status.
    fn lines_of(request: Request) -> (u16, Vec<Value>) {
        let router = Router::new()
            .route("/refused", get(|| async { IngestError::NotFound }))
            .route(
                "/failed",
                get(|| async {
                    IngestError::QueueUnavailable(PortError::Unavailable {
                        service: "submissions queue",
                        detail: "connection reset".to_owned(),
                    })
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .layer(RequestScopeLayer);
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = shared::telemetry::lambda_json_subscriber(
            tracing_subscriber::EnvFilter::new("info"),
            move || writer.clone(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async { router.oneshot(request).await.unwrap().status() })
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        (status.as_u16(), lines)
    }

    fn from_api_gateway(path: &str, source_ip: &str) -> Request {
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.source_ip = Some(source_ip.to_owned());
        let mut request = Request::builder()
            .uri(path)
            .header(crate::CORRELATION_ID_HEADER, "client-42")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(lambda_http::request::RequestContext::ApiGatewayV2(context));
        request
    }

    #[test]
    fn a_refusal_is_one_info_line_with_its_reason_and_where_it_came_from() {
        let (status, lines) = lines_of(from_api_gateway("/refused", "203.0.113.7"));
        assert_eq!(status, 404);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request refused");
        assert_eq!(line["correlation_id"], "client-42");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/refused");
        assert_eq!(line["status"], 404);
        assert_eq!(line["error"], "not found");
        assert_eq!(line["source_ip"], "203.0.113.7");
    }

    #[test]
    fn a_failure_is_an_error_line_with_the_whole_cause_and_its_time() {
        let (status, lines) = lines_of(from_api_gateway("/failed", "198.51.100.1"));
        assert_eq!(status, 503);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "request failed");
        assert_eq!(line["status"], 503);
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains("submissions queue") && error.contains("connection reset"),
            "{error}"
        );
        assert!(line["elapsed_us"].is_u64(), "{line}");
        assert_eq!(line["source_ip"], "198.51.100.1");
    }

    #[test]
    fn the_peer_address_stands_in_off_lambda_and_a_success_writes_no_outcome_line() {
        let connected = |path: &str| {
            let mut request = Request::builder().uri(path).body(Body::empty()).unwrap();
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                std::net::SocketAddr::from(([127, 0, 0, 9], 4000)),
            ));
            request
        };
        let (_, lines) = lines_of(connected("/refused"));
        assert_eq!(lines[0]["source_ip"], "127.0.0.9");
        let (status, lines) = lines_of(connected("/fine"));
        assert_eq!(status, 200);
        assert!(lines.is_empty(), "{lines:?}");
        // Nothing to tell where a request came from: the field says so.
        let bare = Request::builder()
            .uri("/refused")
            .body(Body::empty())
            .unwrap();
        let (_, lines) = lines_of(bare);
        assert_eq!(lines[0]["source_ip"], "-");
    }
}
