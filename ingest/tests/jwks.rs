//! Keys from an identity provider's JWKS document, served over HTTP on loopback: fetched at cold
//! start, chosen by `kid`, fetched again (at most once per interval) when a token names a new key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use ingest::Authenticator;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shared::auth::{AuthConfig, TokenAlgorithm, TokenError, VerificationKey};

const EC_PRIVATE: &str = include_str!("../../shared/testdata/ec-private.pem");

#[derive(Default)]
struct Provider {
    keys: Mutex<Vec<&'static str>>,
    fetches: AtomicUsize,
}

fn jwk(kid: &str) -> Jwk {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

async fn jwks(State(provider): State<Arc<Provider>>) -> axum::Json<JwkSet> {
    provider.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = provider
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|kid| jwk(kid))
        .collect();
    axum::Json(JwkSet { keys })
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
async fn keys_are_fetched_at_start_and_again_when_a_new_kid_arrives() {
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push("k1");
    let url = serve(provider.clone()).await;
    let auth = Authenticator::with_refresh_interval(&config(url), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "fetched at cold start"
    );
    assert_eq!(
        auth.verify(&token("k1")).await.unwrap().subject.as_str(),
        "alice"
    );
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
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push("k1");
    let url = serve(provider.clone()).await;
    let auth = Authenticator::with_refresh_interval(&config(url), Duration::from_secs(3600))
        .await
        .unwrap();
    for i in 0..20 {
        assert_eq!(
            auth.verify(&token(&format!("junk-{i}"))).await,
            Err(TokenError::UnknownKey)
        );
    }
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "a flood of unknown kids fetches nothing"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_fails_the_cold_start_with_its_url() {
    let error = Authenticator::from_config(&config("http://127.0.0.1:9/jwks.json".into()))
        .await
        .err()
        .expect("no keys, no start");
    assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
}
