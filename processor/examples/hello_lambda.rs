//! The cold-start baseline: the smallest `lambda_runtime` function, built like the real ones
//! (same profile, same tokio runtime). It answers each event with the event itself.
//! `make coldstart` compares the three functions' cold starts with this one's.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
