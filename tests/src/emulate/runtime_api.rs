//! The Lambda Runtime API (version 2018-06-01), as the Lambda service serves it to a function's
//! runtime: the real binary long-polls `invocation/next`, gets the event with the invocation's
//! headers (request id, deadline, function ARN, X-Ray trace id) and posts its response or error.
//!
//! One server serves every function; each function's runtime gets its own base path
//! (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/<function>`; Lambda gives `127.0.0.1:9001`,
//! without a path, which `lambda_runtime` reads the same way). One
//! process polls per function, so invocations of a function are handled one at a time, as by one
//! Lambda execution environment.
//!
//! Why not `cargo lambda watch --only-lambda-apis`: its `invocation/next` answers 204 when
//! nothing is queued instead of waiting, and it sends `Lambda-Runtime-Deadline-Ms: 600000`, a
//! deadline in January 1970, so a function that honours its deadline (ours do) gives up at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// What an invocation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function's response payload.
    Response(Bytes),
    /// The function reported an error (`invocation/<id>/error`): Lambda's `FunctionError`.
    Error(String),
    /// No answer before the function's timeout: Lambda's `Task timed out`.
    TimedOut,
    /// The function could not be reached (its process is gone and no runtime polls).
    Unavailable(String),
}

/// One pending invocation, waiting for a runtime to take it.
struct Invocation {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    function_arn: String,
    trace_id: String,
}

struct FunctionQueue {
    sender: mpsc::Sender<Invocation>,
    receiver: AsyncMutex<mpsc::Receiver<Invocation>>,
}

/// One invocation as Lambda's own records show it (the platform lines and the X-Ray segment):
/// the function, its request id and the trace header the runtime was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationRecord {
    pub function: String,
    pub request_id: String,
    pub trace_header: String,
}

#[derive(Default)]
struct Shared {
    invocations: Mutex<Vec<InvocationRecord>>,
    functions: Mutex<HashMap<String, Arc<FunctionQueue>>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<InvokeOutcome>>>,
    init_errors: Mutex<HashMap<String, String>>,
}

impl Shared {
    fn queue(&self, function: &str) -> Option<Arc<FunctionQueue>> {
        self.functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
            .cloned()
    }

    fn settle(&self, request_id: &str, outcome: InvokeOutcome) -> bool {
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id);
        waiter.is_some_and(|w| w.send(outcome).is_ok())
    }
}

/// The running Runtime API server.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/{function}/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/{function}/2018-06-01/runtime/invocation/{request_id}/response",
                post(response),
            )
            .route(
                "/{function}/2018-06-01/runtime/invocation/{request_id}/error",
                post(error),
            )
            .route(
                "/{function}/2018-06-01/runtime/init/error",
                post(init_error),
            )
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the Lambda Runtime API server stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// Registers a function; returns the `AWS_LAMBDA_RUNTIME_API` value its runtime gets.
    pub fn register(&self, function: &str) -> String {
        let (sender, receiver) = mpsc::channel(1024);
        self.shared
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                function.to_owned(),
                Arc::new(FunctionQueue {
                    sender,
                    receiver: AsyncMutex::new(receiver),
                }),
            );
        format!("http://{}/{function}", self.addr)
    }

    /// The init error a function's runtime reported, if any.
    pub fn init_error(&self, function: &str) -> Option<String> {
        self.shared
            .init_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
            .cloned()
    }

    /// Every invocation so far, in the order they were made.
    pub fn invocations(&self) -> Vec<InvocationRecord> {
        self.shared
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Invokes `function` synchronously (RequestResponse) with `payload`, giving it `timeout`
    /// as its configured timeout. `trace_id` is the X-Ray trace header the runtime receives.
    pub async fn invoke(
        &self,
        function: &str,
        function_arn: &str,
        payload: Bytes,
        timeout: Duration,
        trace_id: String,
    ) -> InvokeOutcome {
        let Some(queue) = self.shared.queue(function) else {
            return InvokeOutcome::Unavailable(format!("no function {function} is registered"));
        };
        let request_id = uuid::Uuid::now_v7().to_string();
        let deadline_ms = unix_ms() + timeout.as_millis() as u64;
        let (sender, receiver) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request_id.clone(), sender);
        self.shared
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(InvocationRecord {
                function: function.to_owned(),
                request_id: request_id.clone(),
                trace_header: trace_id.clone(),
            });
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            deadline_ms,
            function_arn: function_arn.to_owned(),
            trace_id,
        };
        if queue.sender.send(invocation).await.is_err() {
            self.shared.settle(&request_id, InvokeOutcome::TimedOut);
            return InvokeOutcome::Unavailable(format!("{function}'s queue is closed"));
        }
        // The timeout runs from the moment the invocation is queued, which includes any wait
        // for a busy runtime: Lambda would start another environment instead, so this errs on
        // the strict side.
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => InvokeOutcome::Unavailable("the invocation was dropped".to_owned()),
            Err(_) => {
                self.shared
                    .waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&request_id);
                InvokeOutcome::TimedOut
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `GET invocation/next`: waits for the next invocation of this function.
async fn next(State(shared): State<Arc<Shared>>, Path(function): Path<String>) -> Response {
    let Some(queue) = shared.queue(&function) else {
        return (StatusCode::NOT_FOUND, "unknown function").into_response();
    };
    loop {
        let invocation = {
            let mut receiver = queue.receiver.lock().await;
            receiver.recv().await
        };
        let Some(invocation) = invocation else {
            return (StatusCode::GONE, "the emulator is stopping").into_response();
        };
        let still_waiting = shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&invocation.request_id);
        if !still_waiting {
            // Its caller timed out while it queued: Lambda would not deliver it either.
            continue;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-aws-request-id",
            header(&invocation.request_id),
        );
        headers.insert(
            "lambda-runtime-deadline-ms",
            header(&invocation.deadline_ms.to_string()),
        );
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            header(&invocation.function_arn),
        );
        headers.insert("lambda-runtime-trace-id", header(&invocation.trace_id));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        return (StatusCode::OK, headers, invocation.payload).into_response();
    }
}

/// `POST invocation/<id>/response`.
async fn response(
    State(shared): State<Arc<Shared>>,
    Path((_function, request_id)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    shared.settle(&request_id, InvokeOutcome::Response(body));
    StatusCode::ACCEPTED
}

/// `POST invocation/<id>/error`.
async fn error(
    State(shared): State<Arc<Shared>>,
    Path((_function, request_id)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let detail = String::from_utf8_lossy(&body).into_owned();
    shared.settle(&request_id, InvokeOutcome::Error(detail));
    StatusCode::ACCEPTED
}

/// `POST init/error`: the runtime could not start; the process exits after this.
async fn init_error(
    State(shared): State<Arc<Shared>>,
    Path(function): Path<String>,
    body: Bytes,
) -> StatusCode {
    let detail = String::from_utf8_lossy(&body).into_owned();
    tracing::error!(function, %detail, "the function's init failed");
    shared
        .init_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(function, detail);
    StatusCode::ACCEPTED
}
