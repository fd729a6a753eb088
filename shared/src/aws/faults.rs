//! SDK-level fault injection for tests: an interceptor that makes chosen calls fail with a
//! throttling error, as AWS answers under load. A throttled request is not carried out, so the
//! interceptor empties the request before it is sent (the emulator refuses it without side
//! effects) and replaces the answer with `ThrottlingException`. It runs below the adapters, so
//! their retries, and the SDK's own, are exercised over real HTTP (moto never throttles).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Whether the current attempt is being throttled (kept in the attempt's config bag between
/// the transmit and deserialization hooks).
#[derive(Clone, Copy, Debug)]
struct ThrottledAttempt(bool);

impl Storable for ThrottledAttempt {
    type Storer = StoreReplace<Self>;
}

/// Answers the first `n` attempts of one operation (say `BatchWriteItem`) with
/// `ThrottlingException`; clones share their counters.
#[derive(Clone, Debug)]
pub struct ThrottleInjector {
    operation: &'static str,
    remaining: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
}

impl ThrottleInjector {
    pub fn first(operation: &'static str, attempts: usize) -> Self {
        Self {
            operation,
            remaining: Arc::new(AtomicUsize::new(attempts)),
            injected: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Throttles every attempt of the operation.
    pub fn always(operation: &'static str) -> Self {
        Self::first(operation, usize::MAX)
    }

    /// How many answers were replaced so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    fn take(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                usize::MAX => Some(usize::MAX),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

impl Intercept for ThrottleInjector {
    fn name(&self) -> &'static str {
        "ThrottleInjector"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(Metadata::name);
        let throttle = operation == Some(self.operation) && self.take();
        cfg.interceptor_state()
            .store_put(ThrottledAttempt(throttle));
        if throttle {
            // An empty JSON document carries out nothing: the service refuses it as invalid.
            let request = context.request_mut();
            *request.body_mut() = SdkBody::from("{}");
            request.headers_mut().insert("content-length", "2");
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !cfg.load::<ThrottledAttempt>().is_some_and(|t| t.0) {
            return Ok(());
        }
        let response = context.response_mut();
        *response.status_mut() = StatusCode::try_from(400)?;
        // JSON-protocol services (DynamoDB, SQS) read the code from `__type`; SQS's
        // query-compatible header carries it too.
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        response
            .headers_mut()
            .insert("x-amzn-query-error", "ThrottlingException;Sender");
        *response.body_mut() = SdkBody::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded (injected)"}"#,
        );
        self.injected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
