//! Bearer-token verification: a JWT in, a [`Principal`] out.
//!
//! The algorithm is pinned by configuration. A token whose header names any other algorithm
//! (including `none`, or HS256 signed with an RSA/EC public key) is refused before its signature
//! is looked at.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::ids::UserId;
use crate::limits::MAX_TOKEN_BYTES;
use crate::message::Principal;

mod hs256;

/// The signing algorithms this service accepts, one of which is pinned per deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

impl TokenAlgorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

impl TokenAlgorithm {
    /// The name a token's header gives it (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

impl fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key material for the pinned algorithm.
#[derive(Clone)]
pub enum VerificationKey {
    /// HS256 shared secret.
    Secret(Vec<u8>),
    /// RS256 or ES256 public key, PEM encoded.
    PublicKeyPem(String),
    /// RS256 or ES256 public keys from an identity provider's JWKS document, chosen by `kid`.
    Jwks(JwkSet),
    /// A JWKS document still to be fetched from this URL (ingest fetches it at cold start).
    JwksUrl(String),
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
            Self::Jwks(set) => write!(f, "Jwks({} keys)", set.keys.len()),
            Self::JwksUrl(url) => write!(f, "JwksUrl({url})"),
        }
    }
}

/// Everything needed to verify tokens.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub algorithm: TokenAlgorithm,
    pub key: VerificationKey,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// When set, tokens must name this key in their `kid` header.
    pub key_id: Option<String>,
}

/// Why a verifier could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("{algorithm} needs {expected}")]
    WrongKeyKind {
        algorithm: TokenAlgorithm,
        expected: &'static str,
    },
    #[error("the HS256 secret must be at least 32 bytes long")]
    SecretTooShort,
    #[error("the JWKS document holds no {algorithm} key with a `kid`")]
    NoUsableJwk { algorithm: TokenAlgorithm },
    #[error("the JWKS document at {0} must be fetched before tokens can be verified")]
    JwksNotFetched(String),
    #[error("the public key is not a valid {algorithm} PEM key: {reason}")]
    BadPublicKey {
        algorithm: TokenAlgorithm,
        reason: String,
    },
}

/// Why a token was refused. Every variant is answered with 401; the text goes into the
/// `WWW-Authenticate` error description, so it names the problem without echoing the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token was sent")]
    Missing,
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not signed with the expected algorithm")]
    WrongAlgorithm,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("the token subject is not a valid user id")]
    InvalidSubject,
    #[error("the token is signed with an unknown key (kid)")]
    UnknownKey,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    /// OAuth 2 style: space-separated scopes.
    #[serde(default)]
    scope: Option<String>,
    /// Array style, as some identity providers send.
    #[serde(default)]
    scp: Option<Vec<String>>,
}

/// Verifies tokens against one pinned algorithm and key. Build it once at cold start.
pub struct TokenVerifier {
    algorithm: TokenAlgorithm,
    keys: Keys,
    /// jsonwebtoken's rules, for RS256 and ES256.
    validation: Validation,
    /// With a shared secret, the same rules without jsonwebtoken (see [`hs256`]).
    hs256: Option<hs256::Hs256Check>,
}

/// The keys a verifier accepts.
enum Keys {
    /// One key; when `key_id` is set, tokens must name it.
    Single {
        key: DecodingKey,
        key_id: Option<String>,
    },
    /// Keys by `kid` (from a JWKS document); tokens must name one of them.
    ByKid(HashMap<String, DecodingKey>),
}

impl TokenVerifier {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let single = |key| Keys::Single {
            key,
            key_id: config.key_id.clone(),
        };
        let mut hs256 = None;
        let keys = match (config.algorithm, &config.key) {
            (TokenAlgorithm::Hs256, VerificationKey::Secret(secret)) => {
                if secret.len() < 32 {
                    return Err(AuthConfigError::SecretTooShort);
                }
                hs256 = Some(hs256::Hs256Check::new(
                    secret,
                    &config.issuer,
                    &config.audience,
                    config.leeway_seconds,
                ));
                single(DecodingKey::from_secret(secret))
            }
            (TokenAlgorithm::Rs256, VerificationKey::PublicKeyPem(pem)) => {
                single(DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad_key(config, e))?)
            }
            (TokenAlgorithm::Es256, VerificationKey::PublicKeyPem(pem)) => {
                single(DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad_key(config, e))?)
            }
            (
                algorithm @ (TokenAlgorithm::Rs256 | TokenAlgorithm::Es256),
                VerificationKey::Jwks(set),
            ) => Keys::ByKid(usable_jwks(algorithm, set)?),
            (_, VerificationKey::JwksUrl(url)) => {
                return Err(AuthConfigError::JwksNotFetched(url.clone()));
            }
            (algorithm @ TokenAlgorithm::Hs256, _) => {
                return Err(AuthConfigError::WrongKeyKind {
                    algorithm,
                    expected: "a shared secret",
                });
            }
            (algorithm, _) => {
                return Err(AuthConfigError::WrongKeyKind {
                    algorithm,
                    expected: "a PEM public key or a JWKS document",
                });
            }
        };
        let mut validation = Validation::new(config.algorithm.jwt());
        validation.algorithms = vec![config.algorithm.jwt()];
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = config.leeway_seconds;
        Ok(Self {
            algorithm: config.algorithm,
            keys,
            validation,
            hs256,
        })
    }

    /// Verifies a bearer token and returns who sent it.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let key = self.check_header(token)?;
        let claims = match &self.hs256 {
            Some(hs256) => hs256.claims(token, unix_now())?,
            None => self.decode(token, key)?,
        };
        let sub = claims
            .sub
            .ok_or_else(|| TokenError::MissingClaim("sub".to_owned()))?;
        let subject = UserId::parse(sub).map_err(|_| TokenError::InvalidSubject)?;
        let scopes = match (claims.scope, claims.scp) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(scp)) => scp,
            (None, None) => Vec::new(),
        };
        Ok(Principal {
            subject,
            token_id: claims.jti,
            scopes,
        })
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

impl TokenVerifier {
    /// The claims of a token checked by jsonwebtoken, with the header already checked.
    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| token_error(e.kind()))
    }

    /// Reads the header before anything else, so that any algorithm but the pinned one (`none`
    /// included) and any key but the configured one are refused by name.
    fn check_header(&self, token: &str) -> Result<&DecodingKey, TokenError> {
        use base64::Engine as _;
        let encoded = token.split('.').next().ok_or(TokenError::Malformed)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        let header: RawHeader = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if header.alg.as_deref() != Some(self.algorithm.as_str()) {
            return Err(TokenError::WrongAlgorithm);
        }
        match &self.keys {
            Keys::Single {
                key_id: Some(expected),
                ..
            } if header.kid.as_ref() != Some(expected) => Err(TokenError::UnknownKey),
            Keys::Single { key, .. } => Ok(key),
            Keys::ByKid(keys) => header
                .kid
                .as_ref()
                .and_then(|kid| keys.get(kid))
                .ok_or(TokenError::UnknownKey),
        }
    }
}

/// The keys of a JWKS document that can verify the pinned algorithm, by `kid`. Keys without a
/// `kid`, with another `alg`, or of another type are left out.
fn usable_jwks(
    algorithm: TokenAlgorithm,
    set: &JwkSet,
) -> Result<HashMap<String, DecodingKey>, AuthConfigError> {
    let wanted_alg = match algorithm {
        TokenAlgorithm::Rs256 => KeyAlgorithm::RS256,
        TokenAlgorithm::Es256 => KeyAlgorithm::ES256,
        TokenAlgorithm::Hs256 => return Err(AuthConfigError::NoUsableJwk { algorithm }),
    };
    let keys: HashMap<String, DecodingKey> = set
        .keys
        .iter()
        .filter(|jwk| jwk.common.key_algorithm.is_none_or(|alg| alg == wanted_alg))
        .filter(|jwk| match (&jwk.algorithm, algorithm) {
            (AlgorithmParameters::RSA(_), TokenAlgorithm::Rs256) => true,
            (AlgorithmParameters::EllipticCurve(ec), TokenAlgorithm::Es256) => {
                ec.curve == EllipticCurve::P256
            }
            _ => false,
        })
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
        .collect();
    if keys.is_empty() {
        return Err(AuthConfigError::NoUsableJwk { algorithm });
    }
    Ok(keys)
}

fn bad_key(config: &AuthConfig, error: jsonwebtoken::errors::Error) -> AuthConfigError {
    AuthConfigError::BadPublicKey {
        algorithm: config.algorithm,
        reason: error.to_string(),
    }
}

/// Seconds since the epoch, as jsonwebtoken reads the clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed,
    }
}

/// Pulls the token out of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
    const RSA_PRIVATE: &str = include_str!("../testdata/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("../testdata/rsa-public.pem");
    const OTHER_RSA_PRIVATE: &str = include_str!("../testdata/other-rsa-private.pem");
    const EC_PRIVATE: &str = include_str!("../testdata/ec-private.pem");
    const EC_PUBLIC: &str = include_str!("../testdata/ec-public.pem");

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn config(algorithm: TokenAlgorithm, key: VerificationKey) -> AuthConfig {
        AuthConfig {
            algorithm,
            key,
            issuer: "https://issuer.test".into(),
            audience: "scores-api".into(),
            leeway_seconds: 5,
            key_id: None,
        }
    }

    fn hs256() -> TokenVerifier {
        TokenVerifier::new(&config(
            TokenAlgorithm::Hs256,
            VerificationKey::Secret(SECRET.to_vec()),
        ))
        .unwrap()
    }

    fn rs256() -> TokenVerifier {
        TokenVerifier::new(&config(
            TokenAlgorithm::Rs256,
            VerificationKey::PublicKeyPem(RSA_PUBLIC.into()),
        ))
        .unwrap()
    }

    fn claims() -> Value {
        json!({"sub": "alice", "iss": "https://issuer.test", "aud": "scores-api",
               "exp": now() + 300, "iat": now(), "jti": "t-1", "scope": "scores:write profile"})
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn sign_hs(claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn sign_rs(claims: &Value, private_pem: &str) -> String {
        encode(
            &Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        // Minimal base64url without padding, to build tokens the library refuses to produce.
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn a_valid_hs256_token_yields_its_principal() {
        let principal = hs256().verify(&sign_hs(&claims())).unwrap();
        assert_eq!(principal.subject.as_str(), "alice");
        assert_eq!(principal.token_id.as_deref(), Some("t-1"));
        assert_eq!(principal.scopes, ["scores:write", "profile"]);
    }

    #[test]
    fn valid_rs256_and_es256_tokens_are_accepted() {
        assert_eq!(
            rs256()
                .verify(&sign_rs(&claims(), RSA_PRIVATE))
                .unwrap()
                .subject
                .as_str(),
            "alice"
        );
        let es = TokenVerifier::new(&config(
            TokenAlgorithm::Es256,
            VerificationKey::PublicKeyPem(EC_PUBLIC.into()),
        ))
        .unwrap();
        let token = encode(
            &Header::new(Algorithm::ES256),
            &claims(),
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(es.verify(&token).unwrap().subject.as_str(), "alice");
    }

    #[test]
    fn an_expired_token_is_refused_beyond_the_leeway() {
        assert_eq!(
            hs256().verify(&sign_hs(&with(claims(), "exp", json!(now() - 60)))),
            Err(TokenError::Expired)
        );
        // Within the 5 s leeway it still passes.
        assert!(
            hs256()
                .verify(&sign_hs(&with(claims(), "exp", json!(now() - 2))))
                .is_ok()
        );
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let token = sign_hs(&with(claims(), "nbf", json!(now() + 120)));
        assert_eq!(hs256().verify(&token), Err(TokenError::NotYetValid));
    }

    #[test]
    fn wrong_issuer_and_audience_are_refused() {
        assert_eq!(
            hs256().verify(&sign_hs(&with(claims(), "iss", json!("https://evil.test")))),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            hs256().verify(&sign_hs(&with(claims(), "aud", json!("other-api")))),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn missing_required_claims_are_named() {
        let mut no_sub = claims();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert_eq!(
            hs256().verify(&sign_hs(&no_sub)),
            Err(TokenError::MissingClaim("sub".into()))
        );
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            hs256().verify(&sign_hs(&no_exp)),
            Err(TokenError::MissingClaim("exp".into()))
        );
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let token = sign_rs(&claims(), OTHER_RSA_PRIVATE);
        assert_eq!(rs256().verify(&token), Err(TokenError::BadSignature));
        // Change one character in the middle of the signature (the last one may only carry
        // padding bits, which decoders ignore).
        let token = sign_hs(&claims());
        let middle = token.len() - 20;
        let replacement = if &token[middle..=middle] == "A" {
            "B"
        } else {
            "A"
        };
        let tampered = format!("{}{replacement}{}", &token[..middle], &token[middle + 1..]);
        assert_eq!(hs256().verify(&tampered), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(claims().to_string().as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(
                hs256().verify(&token),
                Err(TokenError::WrongAlgorithm),
                "{token}"
            );
            assert_eq!(
                rs256().verify(&token),
                Err(TokenError::WrongAlgorithm),
                "{token}"
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_refused() {
        // The classic algorithm-confusion attack: the public key used as an HMAC secret.
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert_eq!(rs256().verify(&token), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn an_rs256_token_is_refused_by_an_hs256_verifier() {
        assert_eq!(
            hs256().verify(&sign_rs(&claims(), RSA_PRIVATE)),
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[test]
    fn truncated_and_oversized_tokens_are_refused() {
        let token = sign_hs(&claims());
        assert_eq!(
            hs256().verify(&token[..token.len() / 2]),
            Err(TokenError::Malformed)
        );
        assert_eq!(hs256().verify("not-a-jwt"), Err(TokenError::Malformed));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(hs256().verify(&huge), Err(TokenError::TooLarge));
    }

    #[test]
    fn a_subject_with_control_characters_is_refused() {
        assert_eq!(
            hs256().verify(&sign_hs(&with(claims(), "sub", json!("a\u{7}b")))),
            Err(TokenError::InvalidSubject)
        );
    }

    #[test]
    fn a_configured_key_id_must_be_named_by_the_token() {
        let mut cfg = config(
            TokenAlgorithm::Hs256,
            VerificationKey::Secret(SECRET.to_vec()),
        );
        cfg.key_id = Some("key-2026".into());
        let verifier = TokenVerifier::new(&cfg).unwrap();
        let with_kid = |kid: Option<&str>| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid.map(str::to_owned);
            encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap()
        };
        assert!(verifier.verify(&with_kid(Some("key-2026"))).is_ok());
        assert_eq!(
            verifier.verify(&with_kid(Some("key-2025"))),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            verifier.verify(&with_kid(None)),
            Err(TokenError::UnknownKey)
        );
        assert!(
            hs256().verify(&with_kid(Some("anything"))).is_ok(),
            "without a configured kid, kid is not checked"
        );
    }

    fn jwk(private_pem: &str, algorithm: Algorithm, kid: &str) -> jsonwebtoken::jwk::Jwk {
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        };
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, algorithm).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    fn es_token(kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        encode(
            &header,
            &claims(),
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid() {
        let set = JwkSet {
            keys: vec![
                jwk(EC_PRIVATE, Algorithm::ES256, "ec-1"),
                jwk(RSA_PRIVATE, Algorithm::RS256, "rsa-1"),
            ],
        };
        let verifier =
            TokenVerifier::new(&config(TokenAlgorithm::Es256, VerificationKey::Jwks(set))).unwrap();
        assert_eq!(
            verifier
                .verify(&es_token(Some("ec-1")))
                .unwrap()
                .subject
                .as_str(),
            "alice"
        );
        assert_eq!(
            verifier.verify(&es_token(Some("ec-2"))),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            verifier.verify(&es_token(None)),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            verifier.verify(&es_token(Some("rsa-1"))),
            Err(TokenError::UnknownKey),
            "an RSA key is not usable for ES256"
        );
    }

    #[test]
    fn a_jwks_without_a_usable_key_is_refused_at_start() {
        let set = JwkSet {
            keys: vec![jwk(RSA_PRIVATE, Algorithm::RS256, "rsa-1")],
        };
        assert!(matches!(
            TokenVerifier::new(&config(TokenAlgorithm::Es256, VerificationKey::Jwks(set))),
            Err(AuthConfigError::NoUsableJwk { .. })
        ));
        assert!(matches!(
            TokenVerifier::new(&config(
                TokenAlgorithm::Es256,
                VerificationKey::JwksUrl("https://x".into())
            )),
            Err(AuthConfigError::JwksNotFetched(_))
        ));
    }

    #[test]
    fn a_header_that_is_not_base64_json_is_malformed() {
        assert_eq!(hs256().verify("%%%.e30.sig"), Err(TokenError::Malformed));
        assert_eq!(
            hs256().verify(&format!("{}.e30.sig", b64(b"[1,2]"))),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn scopes_may_come_as_an_array() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["scores:write"]);
        assert_eq!(
            hs256().verify(&sign_hs(&c)).unwrap().scopes,
            ["scores:write"]
        );
    }

    #[test]
    fn misconfigured_keys_are_reported_at_start() {
        assert!(matches!(
            TokenVerifier::new(&config(
                TokenAlgorithm::Hs256,
                VerificationKey::Secret(b"short".to_vec())
            )),
            Err(AuthConfigError::SecretTooShort)
        ));
        assert!(matches!(
            TokenVerifier::new(&config(
                TokenAlgorithm::Rs256,
                VerificationKey::Secret(SECRET.to_vec())
            )),
            Err(AuthConfigError::WrongKeyKind { .. })
        ));
        assert!(matches!(
            TokenVerifier::new(&config(
                TokenAlgorithm::Es256,
                VerificationKey::PublicKeyPem("garbage".into())
            )),
            Err(AuthConfigError::BadPublicKey { .. })
        ));
    }

    #[test]
    fn bearer_tokens_are_taken_from_the_authorization_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(TokenError::Missing));
        assert_eq!(
            bearer_token(Some("Basic dXNlcjpwYXNz")),
            Err(TokenError::Missing)
        );
        assert_eq!(bearer_token(Some("Bearer ")), Err(TokenError::Missing));
        assert_eq!(bearer_token(Some("Bearer")), Err(TokenError::Malformed));
    }

    /// The same verifier on jsonwebtoken's path: the reference the HS256 fast path must match.
    fn hs256_by_jsonwebtoken() -> TokenVerifier {
        let mut verifier = hs256();
        verifier.hs256 = None;
        verifier
    }

    fn hmac_token(header: &str, payload: &str, secret: &[u8]) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, signed.as_bytes());
        format!("{signed}.{}", b64(tag.as_ref()))
    }

    /// Both verifiers give the same answer. jsonwebtoken checks required claims in the order of
    /// a `HashSet`, so when several are missing it may name another one first.
    fn same_verdict(
        fast: &TokenVerifier,
        reference: &TokenVerifier,
        token: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let (ours, theirs) = (fast.verify(token), reference.verify(token));
        if let (Err(TokenError::MissingClaim(_)), Err(TokenError::MissingClaim(_))) =
            (&ours, &theirs)
        {
            return Ok(());
        }
        proptest::prop_assert_eq!(ours, theirs, "token {}", token);
        Ok(())
    }

    /// Claim values around every rule, the usual one first. Times are an hour from the edges (the leeway is 5 s),
    /// so that the two verifiers, which read the clock one after the other, never straddle one.
    fn claim_choices() -> Vec<(&'static str, Vec<Option<Value>>)> {
        let (soon, ago) = (now() + 3600, now() - 3600);
        let issuer = json!("https://issuer.test");
        let audience = json!("scores-api");
        vec![
            (
                "exp",
                vec![
                    Some(json!(soon)),
                    None,
                    Some(json!(ago)),
                    Some(json!(soon as f64 + 0.4)),
                    Some(json!(ago as f64)),
                    Some(json!("soon")),
                    Some(Value::Null),
                    Some(json!(-1)),
                    Some(json!([soon])),
                    Some(json!({"at": soon})),
                    Some(json!(1e30)),
                ],
            ),
            (
                "nbf",
                vec![
                    None,
                    Some(json!(ago)),
                    Some(json!(soon)),
                    Some(Value::Null),
                    Some(json!("x")),
                    Some(json!(ago as f64 + 0.5)),
                    Some(json!(-3)),
                ],
            ),
            (
                "iss",
                vec![
                    Some(issuer.clone()),
                    None,
                    Some(json!("https://other.test")),
                    Some(json!([issuer.clone()])),
                    Some(json!(["x", issuer.clone()])),
                    Some(json!([])),
                    Some(json!([5])),
                    Some(json!(5)),
                    Some(Value::Null),
                ],
            ),
            (
                "aud",
                vec![
                    Some(audience.clone()),
                    None,
                    Some(json!("other-api")),
                    Some(json!([audience.clone(), "x"])),
                    Some(json!([])),
                    Some(json!(["x"])),
                    Some(json!({"a": 1})),
                    Some(Value::Null),
                    Some(json!([audience.clone(), 1])),
                ],
            ),
            (
                "sub",
                vec![
                    Some(json!("alice")),
                    None,
                    Some(json!("")),
                    Some(json!(5)),
                    Some(Value::Null),
                    Some(json!("al\u{7}ice")),
                    Some(json!(["alice"])),
                ],
            ),
            (
                "jti",
                vec![Some(json!("t-1")), None, Some(json!(7)), Some(Value::Null)],
            ),
            (
                "scope",
                vec![Some(json!("a b")), None, Some(json!(3)), Some(json!(""))],
            ),
            (
                "scp",
                vec![
                    None,
                    Some(json!(["a", "b"])),
                    Some(json!("a")),
                    Some(json!([1])),
                ],
            ),
            ("iat", vec![Some(json!(now())), None, Some(json!("now"))]),
        ]
    }

    /// The HS256 fast path accepts exactly the tokens jsonwebtoken accepts, with the same
    /// principal, and refuses the rest for the same reason. Each claim takes its usual value
    /// most of the time, so that a good share of the tokens is valid; the counts at the end
    /// make sure both answers were given often.
    #[test]
    fn the_hs256_fast_path_answers_as_jsonwebtoken_does() {
        use proptest::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (fast, reference) = (hs256(), hs256_by_jsonwebtoken());
        let choices = claim_choices();
        let headers = [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"JWT","alg":"HS256","cty":"x"}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"HS256""#,
        ];
        let strategy = (
            proptest::collection::vec(((0u8..4).prop_map(|n| n != 0), 0usize..64), choices.len()),
            (0usize..headers.len() + 6).prop_map(|i| i.saturating_sub(6)),
            proptest::sample::select(vec![
                None,
                None,
                None,
                Some("sub"),
                Some("exp"),
                Some("extra"),
            ]),
            0u8..10,
        );
        let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut runner =
            proptest::test_runner::TestRunner::new(proptest::test_runner::Config::with_cases(3000));
        runner
            .run(&strategy, |(picks, header, duplicate, signing)| {
                let header = headers[header];
                let mut claims = serde_json::Map::new();
                for ((name, options), (usual, pick)) in choices.iter().zip(picks) {
                    // The first option is the claim's usual value.
                    let at = if usual { 0 } else { pick % options.len() };
                    if let Some(value) = &options[at] {
                        claims.insert((*name).to_owned(), value.clone());
                    }
                }
                let mut payload = Value::Object(claims).to_string();
                if let Some(name) = duplicate {
                    payload.pop();
                    let comma = if payload.len() > 1 { "," } else { "" };
                    payload.push_str(&format!(r#"{comma}"{name}":"again"}}"#));
                }
                let signed = hmac_token(header, &payload, SECRET);
                let token = match signing {
                    0 => hmac_token(header, &payload, b"another-secret-another-secret-12"),
                    1 => {
                        // Signed, then the claims swapped for others.
                        let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
                        parts[1] = b64(br#"{"sub":"mallory"}"#);
                        parts.join(".")
                    }
                    2 => format!("{}.!!", signed.rsplit_once('.').unwrap().0),
                    3 => format!("{signed}.x"),
                    _ => signed,
                };
                let counter = if fast.verify(&token).is_ok() {
                    &accepted
                } else {
                    &refused
                };
                counter.fetch_add(1, Ordering::Relaxed);
                same_verdict(&fast, &reference, &token)
            })
            .unwrap();
        let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
        assert!(
            accepted >= 100 && refused >= 100,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn the_hs256_fast_path_refuses_what_jsonwebtoken_refuses_in_the_token_shape() {
        let (fast, reference) = (hs256(), hs256_by_jsonwebtoken());
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let good = claims().to_string();
        let padded = {
            let token = hmac_token(header, &good, SECRET);
            let (signed, signature) = token.rsplit_once('.').unwrap();
            format!("{signed}.{signature}=")
        };
        let cases = [
            hmac_token(header, &format!("[{good}]"), SECRET),
            hmac_token(header, "\"alice\"", SECRET),
            hmac_token(header, "5", SECRET),
            hmac_token(header, &format!("{good} x"), SECRET),
            hmac_token(header, &format!(" \n{good}\n"), SECRET),
            hmac_token(header, "{}", SECRET),
            padded,
            hmac_token(header, &good, SECRET).replacen('.', "..", 1),
            format!(
                "{}.",
                hmac_token(header, &good, SECRET)
                    .rsplit_once('.')
                    .unwrap()
                    .0
            ),
            "a.b".to_owned(),
            "..".to_owned(),
        ];
        for token in &cases {
            same_verdict(&fast, &reference, token).unwrap();
        }
        // The whitespace-wrapped claims are a valid token for both.
        assert!(fast.verify(&cases[4]).is_ok());
    }
}
