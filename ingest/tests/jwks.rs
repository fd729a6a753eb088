//! Keys from an identity provider's JWKS document, served over HTTP on loopback: fetched when the
//! first token arrives (not at cold start), chosen by `kid`, fetched again (at most once per
//! interval) when a token names a new key; an unreachable provider is a retryable 503.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use ingest::{Authenticator, IngestError, VerifyError};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shared::auth::{AuthConfig, TokenAlgorithm, TokenError, VerificationKey};

const EC_PRIVATE: &str = include_str!("../../shared/testdata/ec-private.pem");

#[derive(Default)]
struct Provider {
    keys: Mutex<Vec<&'static str>>,
    fetches: AtomicUsize,
    /// Answer 500 instead of the document.
    failing: AtomicBool,
}

fn jwk(kid: &str) -> Jwk {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

async fn jwks(
    State(provider): State<Arc<Provider>>,
) -> Result<axum::Json<JwkSet>, axum::http::StatusCode> {
    provider.fetches.fetch_add(1, Ordering::SeqCst);
    if provider.failing.load(Ordering::SeqCst) {
        return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    let keys = provider
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|kid| jwk(kid))
        .collect();
    Ok(axum::Json(JwkSet { keys }))
}

async fn serve(provider: Arc<Provider>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(provider);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/jwks.json")
}

fn token(kid: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({ "sub": "alice", "iss": "idp", "aud": "scores", "exp": now + 600 });
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn config(url: String) -> AuthConfig {
    AuthConfig {
        algorithm: TokenAlgorithm::Es256,
        key: VerificationKey::JwksUrl(url),
        issuer: "idp".into(),
        audience: "scores".into(),
        leeway_seconds: 5,
        key_id: None,
    }
}

#[tokio::test]
async fn keys_are_fetched_with_the_first_token_and_again_when_a_new_kid_arrives() {
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push("k1");
    let url = serve(provider.clone()).await;
    let auth = Authenticator::with_refresh_interval(&config(url), Duration::ZERO).unwrap();
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        0,
        "nothing is fetched at cold start"
    );
    assert_eq!(
        auth.verify(&token("k1")).await.unwrap().subject.as_str(),
        "alice"
    );
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "the first token fetched the keys"
    );
    assert!(auth.verify(&token("k1")).await.is_ok());
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "known kids need no fetch"
    );

    // The provider rotates in a new key.
    provider.keys.lock().unwrap().push("k2");
    assert!(auth.verify(&token("k2")).await.is_ok());
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);

    // A kid the provider does not have stays refused.
    assert_eq!(
        auth.verify(&token("forged")).await,
        Err(VerifyError::Token(TokenError::UnknownKey))
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push("k1");
    let url = serve(provider.clone()).await;
    let auth =
        Authenticator::with_refresh_interval(&config(url), Duration::from_secs(3600)).unwrap();
    for i in 0..20 {
        assert_eq!(
            auth.verify(&token(&format!("junk-{i}"))).await,
            Err(VerifyError::Token(TokenError::UnknownKey))
        );
    }
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "the first token fetched; the flood of unknown kids after it fetches nothing"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_retryable_503_naming_its_url_and_the_cold_start_succeeds() {
    let auth = Authenticator::from_config(&config("http://127.0.0.1:9/jwks.json".into()))
        .expect("no network at cold start, so nothing to fail");
    let error = auth.verify(&token("k1")).await.unwrap_err();
    assert!(
        matches!(&error, VerifyError::KeysUnavailable(detail) if detail.contains("127.0.0.1:9")),
        "{error}"
    );
    let response = axum::response::IntoResponse::into_response(IngestError::from(error));
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // Within the retry pause the next token is answered at once, without a fetch.
    let again = auth.verify(&token("k1")).await.unwrap_err();
    assert!(matches!(again, VerifyError::KeysUnavailable(_)), "{again}");
}

#[tokio::test]
async fn a_provider_that_comes_back_is_used_after_the_retry_pause() {
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push("k1");
    provider.failing.store(true, Ordering::SeqCst);
    let url = serve(provider.clone()).await;
    let auth = Authenticator::from_config(&config(url)).unwrap();
    let error = auth.verify(&token("k1")).await.unwrap_err();
    assert!(matches!(error, VerifyError::KeysUnavailable(_)), "{error}");
    provider.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(ingest::keys::JWKS_FIRST_FETCH_RETRY).await;
    assert_eq!(
        auth.verify(&token("k1")).await.unwrap().subject.as_str(),
        "alice"
    );
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
}
