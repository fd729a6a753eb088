//! Mints tokens for the local stack, the tests and the load generator.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use shared::auth::{AuthConfig, TokenAlgorithm, VerificationKey};
use shared::limits::DEFAULT_TOKEN_LEEWAY_SECONDS;
use time::OffsetDateTime;
use uuid::Uuid;

/// The users the `local` and `emulate` binaries seed, and print a token for.
pub const SEEDED_ACTIVE: &str = "alice";
pub const SEEDED_SUSPENDED: &str = "mallory";

/// The seeded users: `alice` active, `mallory` suspended.
pub fn seeded_users() -> Vec<shared::users::User> {
    let id = |raw: &str| shared::ids::UserId::parse(raw).expect("a seeded user id is valid");
    vec![
        shared::users::User::active(id(SEEDED_ACTIVE)),
        shared::users::User::suspended(id(SEEDED_SUSPENDED)),
    ]
}

/// A token for each seeded user, valid for `ttl_seconds`: the ready line's `tokens`.
pub fn seeded_tokens(
    minter: &TokenMinter,
    ttl_seconds: i64,
) -> std::collections::BTreeMap<&'static str, String> {
    [SEEDED_ACTIVE, SEEDED_SUSPENDED]
        .into_iter()
        .map(|user| (user, minter.mint(user, ttl_seconds)))
        .collect()
}

/// Issuer and audience of locally minted tokens.
pub const LOCAL_ISSUER: &str = "score-pipeline-local";
pub const LOCAL_AUDIENCE: &str = "scores-api";

/// Signs tokens: HS256 with a shared secret, or RS256/ES256 with a private key.
#[derive(Clone)]
pub struct TokenMinter {
    algorithm: TokenAlgorithm,
    signing_key: EncodingKey,
    verification_key: VerificationKey,
    issuer: String,
    audience: String,
}

/// Why a minter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign {algorithm} tokens: {reason}")]
pub struct MinterError {
    algorithm: TokenAlgorithm,
    reason: String,
}

impl TokenMinter {
    /// HS256 with a shared secret.
    pub fn new(
        secret: impl Into<Vec<u8>>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let secret = secret.into();
        Self {
            algorithm: TokenAlgorithm::Hs256,
            signing_key: EncodingKey::from_secret(&secret),
            verification_key: VerificationKey::Secret(secret),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// RS256 or ES256 with a PEM key pair.
    pub fn asymmetric(
        algorithm: TokenAlgorithm,
        private_pem: &str,
        public_pem: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, MinterError> {
        let signing_key = match algorithm {
            TokenAlgorithm::Rs256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
            TokenAlgorithm::Es256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            TokenAlgorithm::Hs256 => {
                return Err(MinterError {
                    algorithm,
                    reason: "HS256 takes a shared secret (TokenMinter::new)".to_owned(),
                });
            }
        }
        .map_err(|e| MinterError {
            algorithm,
            reason: e.to_string(),
        })?;
        Ok(Self {
            algorithm,
            signing_key,
            verification_key: VerificationKey::PublicKeyPem(public_pem.to_owned()),
            issuer: issuer.into(),
            audience: audience.into(),
        })
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
            algorithm: self.algorithm,
            key: self.verification_key.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_seconds: DEFAULT_TOKEN_LEEWAY_SECONDS,
            key_id: None,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
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
        self.mint_with_header(&Header::new(jwt_algorithm(self.algorithm)), claims)
    }

    /// A token with this header and these claims (for tests of refused tokens).
    pub fn mint_with_header(&self, header: &Header, claims: &serde_json::Value) -> String {
        encode(header, claims, &self.signing_key).unwrap_or_else(|e| {
            unreachable!("signing with a key parsed at construction cannot fail: {e}")
        })
    }
}

fn jwt_algorithm(algorithm: TokenAlgorithm) -> Algorithm {
    match algorithm {
        TokenAlgorithm::Hs256 => Algorithm::HS256,
        TokenAlgorithm::Rs256 => Algorithm::RS256,
        TokenAlgorithm::Es256 => Algorithm::ES256,
    }
}
