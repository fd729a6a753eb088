//! Token verification keys at ingest: a fixed key, or an identity provider's JWKS document
//! fetched when the first token arrives and fetched again when a token names a `kid` this
//! instance does not know (key rotation), at most once per refresh interval so unknown kids
//! cannot make ingest hammer the provider.
//!
//! The first fetch waits for the first token rather than running at cold start: the first
//! request waits for it either way, but a provider that cannot be reached then costs one 503
//! with `Retry-After` (`keys-unavailable`) instead of a failed init, which API Gateway would
//! answer with a bare 500 and Lambda would retry on every request. Until keys were fetched
//! once, a failed fetch is tried again after [`JWKS_FIRST_FETCH_RETRY`].

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
/// Until the keys were fetched once, the least time between two attempts.
pub const JWKS_FIRST_FETCH_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot fetch the JWKS document from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(transparent)]
    Config(#[from] AuthConfigError),
}

/// Why a token could not be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No keys were ever fetched, and fetching them failed now.
    #[error("{0}")]
    KeysUnavailable(String),
}

/// Verifies bearer tokens with the current keys.
pub struct Authenticator {
    /// `None` until the JWKS document was first fetched.
    current: RwLock<Option<Arc<TokenVerifier>>>,
    refresh: Option<JwksRefresh>,
}

struct JwksRefresh {
    url: String,
    config: AuthConfig,
    client: reqwest::Client,
    interval: Duration,
    /// When the document was last fetched (or, before the first success, last tried).
    last_fetch: Mutex<Option<Instant>>,
}

impl From<TokenVerifier> for Authenticator {
    fn from(verifier: TokenVerifier) -> Self {
        Self {
            current: RwLock::new(Some(Arc::new(verifier))),
            refresh: None,
        }
    }
}

impl Authenticator {
    /// Builds the verifier. With a JWKS URL nothing is fetched yet (see the module doc).
    pub fn from_config(config: &AuthConfig) -> Result<Self, KeysError> {
        Self::with_refresh_interval(config, JWKS_REFRESH_INTERVAL)
    }

    pub fn with_refresh_interval(
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
        Ok(Self {
            current: RwLock::new(None),
            refresh: Some(JwksRefresh {
                url: url.clone(),
                config: config.clone(),
                client,
                interval,
                last_fetch: Mutex::new(None),
            }),
        })
    }

    fn verifier(&self) -> Option<Arc<TokenVerifier>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Verifies a token; the first token fetches the keys, and an unknown `kid` triggers one
    /// JWKS refresh (rate limited).
    pub async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        let before = self.verifier();
        let result = before.as_ref().map(|v| v.verify(token));
        let Some(refresh) = &self.refresh else {
            return Ok(result.expect("a fixed key is always there")?);
        };
        match result {
            Some(Err(TokenError::UnknownKey)) | None => {}
            Some(other) => return Ok(other?),
        }
        let mut last_fetch = refresh.last_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let now_current = self.verifier();
        let changed = match (&before, &now_current) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, Some(_)) => true,
            _ => false,
        };
        if let (true, Some(verifier)) = (changed, &now_current) {
            return Ok(verifier.verify(token)?);
        }
        let wait = if now_current.is_some() {
            refresh.interval
        } else {
            JWKS_FIRST_FETCH_RETRY
        };
        if last_fetch.is_some_and(|at| at.elapsed() < wait) {
            return match now_current {
                Some(_) => Err(TokenError::UnknownKey.into()),
                None => Err(VerifyError::KeysUnavailable(format!(
                    "the JWKS document at {} could not be fetched; the next attempt is due shortly",
                    refresh.url
                ))),
            };
        }
        *last_fetch = Some(Instant::now());
        match fetch_jwks(&refresh.client, &refresh.url)
            .await
            .and_then(|set| verifier_for(&refresh.config, set))
        {
            Ok(verifier) => {
                let verifier = Arc::new(verifier);
                tracing::info!(url = %refresh.url, first = now_current.is_none(), "JWKS fetched");
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(verifier.clone());
                Ok(verifier.verify(token)?)
            }
            Err(error) if now_current.is_some() => {
                tracing::warn!(%error, "JWKS refresh failed; keeping the current keys");
                Err(TokenError::UnknownKey.into())
            }
            Err(error) => {
                tracing::error!(%error, "JWKS fetch failed; tokens cannot be checked until it succeeds");
                Err(VerifyError::KeysUnavailable(error.to_string()))
            }
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
