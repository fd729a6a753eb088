//! HS256 tokens checked without jsonwebtoken on the request path.
//!
//! jsonwebtoken's `decode` builds an HMAC key for every token, parses the header into its full
//! `Header` (after [`super::TokenVerifier`] has already read it once) and the claims twice
//! (into the caller's type, then into its own for validation). With a shared secret that is
//! about two thirds of what a request to the ingest function costs in verification. Here the key
//! is made once, at cold start, and the claims are parsed once into one struct that holds both
//! what the principal needs and what validation reads.
//!
//! The rules are jsonwebtoken 11's, as [`super::TokenVerifier`] configures it: a token is three
//! base64url parts without padding; the signature is checked before the claims are read; `exp`,
//! `iss`, `aud` and `sub` are required; `exp` and `nbf` are numbers (a non-negative integer, or
//! a finite non-negative float, rounded), and a claim that is present but cannot be read as one
//! counts as missing (`nbf`: as malformed); `iss` and `aud` are a string or an array of
//! strings, one of which must be the configured value; the leeway applies to both times. The
//! differential test in `super::tests` holds the two to the same answers.
//!
//! One difference is deliberate: the header is read only for `alg` and `kid` (by
//! [`super::TokenVerifier`]); jsonwebtoken also refuses a header whose other registered fields
//! (`jwk`, `x5c`, ...) have the wrong JSON type. Such a header can only come with a valid
//! signature from a holder of the shared secret, so it says nothing about who sent the token.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use super::{Claims, TokenError};

/// The HS256 key and the claim rules, built once.
pub(super) struct Hs256Check {
    key: hmac::Key,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

impl Hs256Check {
    pub(super) fn new(secret: &[u8], issuer: &str, audience: &str, leeway_seconds: u64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds,
        }
    }

    /// The claims of a token whose header names HS256 (and the right `kid`, if one is set),
    /// at `now` (Unix seconds): the signature is checked first, then the claims.
    pub(super) fn claims(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signed = &token[..header.len() + 1 + payload.len()];
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        // serde reads a JSON array into a struct by position; a claims set is an object.
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(TokenError::Malformed);
        }
        let claims: SignedClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        self.validate(&claims, now)?;
        Ok(Claims {
            sub: claims.sub,
            jti: claims.jti,
            scope: claims.scope,
            scp: claims.scp,
        })
    }

    fn validate(&self, claims: &SignedClaims, now: u64) -> Result<(), TokenError> {
        let missing = |claim: &str| TokenError::MissingClaim(claim.to_owned());
        let NumericDate::Parsed(exp) = claims.exp else {
            return Err(missing("exp"));
        };
        let issuers = Names::of(claims.iss.as_ref()).ok_or_else(|| missing("iss"))?;
        let audiences = Names::of(claims.aud.as_ref()).ok_or_else(|| missing("aud"))?;
        if claims.sub.is_none() {
            return Err(missing("sub"));
        }
        if matches!(claims.nbf, NumericDate::Unreadable) {
            return Err(TokenError::Malformed);
        }
        if exp < now.saturating_sub(self.leeway_seconds) {
            return Err(TokenError::Expired);
        }
        if let NumericDate::Parsed(nbf) = claims.nbf
            && nbf > now.saturating_add(self.leeway_seconds)
        {
            return Err(TokenError::NotYetValid);
        }
        if !issuers.include(&self.issuer) {
            return Err(TokenError::WrongIssuer);
        }
        if !audiences.include(&self.audience) {
            return Err(TokenError::WrongAudience);
        }
        Ok(())
    }
}

/// Everything read from a token's claims, in one pass.
/// The first four fields are `super::Claims`'s, repeated rather than `#[serde(flatten)]`ed:
/// flatten buffers the whole object into an intermediate map first, the cost this path removes.
#[derive(Deserialize)]
struct SignedClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: NumericDate,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: NumericDate,
    /// `Some(Value::Null)` for an explicit `null`, `None` when absent: both count as missing.
    #[serde(default, deserialize_with = "present")]
    iss: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
}

/// `exp` or `nbf`: absent, readable as Unix seconds, or present but not a usable number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum NumericDate {
    #[default]
    Absent,
    Parsed(u64),
    Unreadable,
}

/// A non-negative integer, or a finite non-negative float rounded to the second; anything else
/// (a negative number, a string, `null`, ...) is [`NumericDate::Unreadable`].
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NumericDate, D::Error> {
    struct Seconds;
    impl Visitor<'_> for Seconds {
        type Value = NumericDate;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a NumericDate: seconds since the epoch")
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<NumericDate, E> {
            Ok(NumericDate::Parsed(value))
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<NumericDate, E> {
            if value.is_finite() && value >= 0.0 && value < u64::MAX as f64 {
                Ok(NumericDate::Parsed(value.round() as u64))
            } else {
                Err(de::Error::custom("not representable as seconds"))
            }
        }
    }
    Ok(deserializer
        .deserialize_any(Seconds)
        .unwrap_or(NumericDate::Unreadable))
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// `iss` or `aud`: one name, or a set of them.
enum Names<'a> {
    One(&'a str),
    Set(&'a [Value]),
}

impl<'a> Names<'a> {
    /// `None` when absent, `null`, or neither a string nor an array of strings.
    fn of(value: Option<&'a Value>) -> Option<Self> {
        match value? {
            Value::String(name) => Some(Self::One(name)),
            Value::Array(names) if names.iter().all(Value::is_string) => Some(Self::Set(names)),
            _ => None,
        }
    }

    fn include(&self, wanted: &str) -> bool {
        match self {
            Self::One(name) => *name == wanted,
            Self::Set(names) => names.iter().any(|name| name.as_str() == Some(wanted)),
        }
    }
}
