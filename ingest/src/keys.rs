//! Token verification keys at ingest: a fixed key, or an identity provider's JWKS document
//! fetched at cold start and fetched again when a token names a `kid` this instance does not
//! know (key rotation), at most once per refresh interval so unknown kids cannot make ingest
//! hammer the provider.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use shared::auth::{AuthConfig, AuthConfigError, TokenError, TokenVerifier, VerificationKey};
use shared::message::Principal;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Least time between two fetches of the JWKS document.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Longest a JWKS fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot fetch the JWKS document from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(transparent)]
    Config(#[from] AuthConfigError),
}

/// Verifies bearer tokens with the current keys.
pub struct Authenticator {
    current: RwLock<Arc<TokenVerifier>>,
    refresh: Option<JwksRefresh>,
}

struct JwksRefresh {
    url: String,
    config: AuthConfig,
    client: reqwest::Client,
    interval: Duration,
    last_fetch: Mutex<Instant>,
}

impl From<TokenVerifier> for Authenticator {
    fn from(verifier: TokenVerifier) -> Self {
        Self {
            current: RwLock::new(Arc::new(verifier)),
            refresh: None,
        }
    }
}

impl Authenticator {
    /// Builds the verifier; with a JWKS URL, fetches the document first.
    pub async fn from_config(config: &AuthConfig) -> Result<Self, KeysError> {
        Self::with_refresh_interval(config, JWKS_REFRESH_INTERVAL).await
    }

    pub async fn with_refresh_interval(
        config: &AuthConfig,
        interval: Duration,
    ) -> Result<Self, KeysError> {
        let VerificationKey::JwksUrl(url) = &config.key else {
            return Ok(TokenVerifier::new(config)?.into());
        };
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()
            .map_err(|e| KeysError::Fetch {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let set = fetch_jwks(&client, url).await?;
        let verifier = verifier_for(config, set)?;
        Ok(Self {
            current: RwLock::new(Arc::new(verifier)),
            refresh: Some(JwksRefresh {
                url: url.clone(),
                config: config.clone(),
                client,
                interval,
                last_fetch: Mutex::new(Instant::now()),
            }),
        })
    }

    fn verifier(&self) -> Arc<TokenVerifier> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Verifies a token; an unknown `kid` triggers one JWKS refresh (rate limited).
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let result = self.verifier().verify(token);
        match (&result, &self.refresh) {
            (Err(TokenError::UnknownKey), Some(refresh)) => {
                let before = self.verifier();
                let mut last_fetch = refresh.last_fetch.lock().await;
                // Another request may have refreshed while this one waited for the lock.
                if !Arc::ptr_eq(&before, &self.verifier()) {
                    return self.verifier().verify(token);
                }
                if last_fetch.elapsed() < refresh.interval {
                    return result;
                }
                *last_fetch = Instant::now();
                match fetch_jwks(&refresh.client, &refresh.url)
                    .await
                    .and_then(|set| verifier_for(&refresh.config, set))
                {
                    Ok(verifier) => {
                        tracing::info!(url = %refresh.url, "JWKS refreshed for an unknown key id");
                        *self
                            .current
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Arc::new(verifier);
                        self.verifier().verify(token)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "JWKS refresh failed; keeping the current keys");
                        result
                    }
                }
            }
            _ => result,
        }
    }
}

fn verifier_for(config: &AuthConfig, set: JwkSet) -> Result<TokenVerifier, KeysError> {
    let config = AuthConfig {
        key: VerificationKey::Jwks(set),
        ..config.clone()
    };
    Ok(TokenVerifier::new(&config)?)
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<JwkSet, KeysError> {
    let failed = |reason: String| KeysError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| failed(format!("not a JWKS document: {e}")))
}
