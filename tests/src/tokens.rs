//! Mints tokens for the local stack, the tests and the load generator.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use shared::auth::{AuthConfig, TokenAlgorithm, VerificationKey};
use shared::limits::DEFAULT_TOKEN_LEEWAY_SECONDS;
use time::OffsetDateTime;
use uuid::Uuid;

/// Issuer and audience of locally minted tokens.
pub const LOCAL_ISSUER: &str = "score-pipeline-local";
pub const LOCAL_AUDIENCE: &str = "scores-api";

/// Signs HS256 tokens with a shared secret.
#[derive(Clone)]
pub struct TokenMinter {
    secret: Vec<u8>,
    issuer: String,
    audience: String,
}

impl TokenMinter {
    pub fn new(
        secret: impl Into<Vec<u8>>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            secret: secret.into(),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// A minter with a fresh random 256-bit secret and the local issuer and audience.
    pub fn random_local() -> Self {
        let bytes: [u8; 32] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self::new(secret, LOCAL_ISSUER, LOCAL_AUDIENCE)
    }

    /// The verifier configuration that accepts this minter's tokens.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            algorithm: TokenAlgorithm::Hs256,
            key: VerificationKey::Secret(self.secret.clone()),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_seconds: DEFAULT_TOKEN_LEEWAY_SECONDS,
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// A token for `subject`, valid for `ttl_seconds` from now.
    pub fn mint(&self, subject: &str, ttl_seconds: i64) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.mint_claims(&json!({
            "sub": subject,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": Uuid::now_v7().to_string(),
            "scope": "scores:write",
        }))
    }

    /// A token with exactly these claims (for tests of refused tokens).
    pub fn mint_claims(&self, claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .unwrap_or_else(|e| unreachable!("HS256 signing with a byte secret cannot fail: {e}"))
    }
}
