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
            match refusal {
                Some(error::Refusal(error)) if status >= 500 => {
                    tracing::error!(parent: &span, method, path, status, elapsed_us, error, "request failed")
                }
                Some(error::Refusal(error)) => {
                    tracing::info!(parent: &span, method, path, status, error, "request refused")
                }
                None if status >= 500 => {
                    tracing::error!(parent: &span, method, path, status, elapsed_us, "request failed")
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
        let local = work_deadline(&axum::http::Extensions::new());
        let left = local - tokio::time::Instant::now();
        assert!(
            left <= INGEST_WORK_BUDGET
                && left > INGEST_WORK_BUDGET - std::time::Duration::from_secs(1)
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
}
