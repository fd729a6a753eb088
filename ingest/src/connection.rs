//! Keeps HTTP/1.1 connections honest after an early answer.
//!
//! Ingest refuses some requests before reading their body: a bad token (401), a wrong content
//! type (415), a declared length over the limit (413). hyper then drains what it has already
//! buffered and otherwise closes the connection, but only after it may have written the response
//! head without `Connection: close`. A client that pooled that connection sends its next request
//! into a socket the server is closing and gets a connection error instead of an answer.
//!
//! So every request body is wrapped: when the handler drops it unread, the rest comes back here,
//! is read and discarded (up to [`DRAIN_LIMIT_BYTES`], within [`DRAIN_TIMEOUT`]) and the
//! connection stays usable; a body too large or too slow to drain gets `Connection: close`, so
//! the client knows not to reuse the connection. Under Lambda the body is already in memory and
//! draining it costs nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use tokio::sync::oneshot;

/// Most of an unread body that is read and discarded to keep the connection.
pub const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;
/// Longest time spent discarding an unread body.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The request body to give the handler, and where the rest of it comes back if the handler
/// drops it unread.
pub fn returning_unread(body: Body) -> (Body, oneshot::Receiver<Body>) {
    let (returned, unread) = oneshot::channel();
    let body = Body::new(ReturnedUnread {
        inner: Some(body),
        ended: false,
        back: Some(returned),
    });
    (body, unread)
}

/// Once the handler has answered: drains what it left unread of the body, or marks the
/// response `Connection: close` (see the module).
pub async fn drain_unread(mut response: Response, unread: oneshot::Receiver<Body>) -> Response {
    // The handler has finished with its request, so the body came back if it was left unread.
    let Ok(rest) = unread.await else {
        return response;
    };
    let drained = tokio::time::timeout(
        DRAIN_TIMEOUT,
        Limited::new(rest, DRAIN_LIMIT_BYTES).collect(),
    )
    .await
    .is_ok_and(|read| read.is_ok());
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that hands itself back, unread part and all, when dropped before its end.
struct ReturnedUnread {
    inner: Option<Body>,
    ended: bool,
    back: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for ReturnedUnread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for ReturnedUnread {
    fn drop(&mut self) {
        let ended = self.ended || http_body::Body::is_end_stream(self);
        if let (false, Some(rest), Some(back)) = (ended, self.inner.take(), self.back.take()) {
            let _ = back.send(rest);
        }
    }
}
