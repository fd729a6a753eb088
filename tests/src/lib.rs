//! The pipeline assembled outside Lambda: the local stack, its SQS event-source emulation and
//! token minting, used by the `local` binary, the end-to-end tests and the load generator.

pub mod backend;
pub mod change_feed;
pub mod emulate;
pub mod event_source;
pub mod load;
pub mod signals;
pub mod stack;
pub mod tokens;

pub use backend::Backend;
pub use stack::{LocalStack, StackError, StackOptions};
pub use tokens::TokenMinter;

/// Sends the request `request` builds, and again, up to four more times half a second apart,
/// while the answer is a 503 with `Retry-After`: what a client is told to do when a store or
/// the rank index did not answer in time (a first connection on a busy machine, say). Any
/// other answer, or the fifth 503, is returned as it is.
pub async fn send_retrying_unavailable(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    let mut response = request().send().await?;
    for _ in 0..4 {
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
            || !response
                .headers()
                .contains_key(reqwest::header::RETRY_AFTER)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        response = request().send().await?;
    }
    Ok(response)
}
