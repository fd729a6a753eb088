//! What goes on the wire: bearer tokens (minted or read from a file) and request bodies.

use bytes::Bytes;
use hyper::header::HeaderValue;
use shared::limits::MAX_TOKEN_BYTES;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::mix::{Scenario, hero_id};
use crate::tokens::TokenMinter;

/// The name of synthetic user `index` (`load-user-000000`, ...). A stack that should accept
/// their submissions must have these users in its directory.
pub fn synthetic_user(index: usize) -> String {
    format!("load-user-{index:06}")
}

/// `Authorization` header values: valid ones, and the same tokens with a broken signature.
#[derive(Clone, Debug)]
pub struct Tokens {
    valid: Vec<HeaderValue>,
    tampered: Vec<HeaderValue>,
}

impl Tokens {
    /// Tokens for `subjects`, valid for `ttl_seconds`.
    pub fn mint(
        minter: &TokenMinter,
        subjects: &[String],
        ttl_seconds: i64,
    ) -> Result<Self, String> {
        let tokens: Vec<String> = subjects
            .iter()
            .map(|s| minter.mint(s, ttl_seconds))
            .collect();
        Self::from_tokens(tokens)
    }

    /// One token per line; blank lines and lines starting with `#` are skipped, and a leading
    /// `Bearer ` is tolerated.
    pub fn parse_lines(text: &str) -> Result<Self, String> {
        let tokens: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.strip_prefix("Bearer ").unwrap_or(l).trim().to_owned())
            .collect();
        Self::from_tokens(tokens)
    }

    fn from_tokens(tokens: Vec<String>) -> Result<Self, String> {
        if tokens.is_empty() {
            return Err("no tokens: the token file has no token lines".to_owned());
        }
        let mut valid = Vec::with_capacity(tokens.len());
        let mut tampered = Vec::with_capacity(tokens.len());
        for (line, token) in tokens.iter().enumerate() {
            let line = line + 1;
            if token.len() > MAX_TOKEN_BYTES {
                return Err(format!(
                    "token {line} is longer than {MAX_TOKEN_BYTES} bytes"
                ));
            }
            if token.split('.').count() != 3 {
                return Err(format!(
                    "token {line} is not a JWT (three dot-separated parts)"
                ));
            }
            valid.push(bearer(token).ok_or_else(|| {
                format!("token {line} has characters that cannot go in an HTTP header")
            })?);
            tampered.push(bearer(&tamper(token)).ok_or_else(|| {
                format!("token {line} has characters that cannot go in an HTTP header")
            })?);
        }
        Ok(Self { valid, tampered })
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// The header for request `index` (tokens are used round robin).
    pub fn valid(&self, index: u64) -> &HeaderValue {
        &self.valid[(index % self.valid.len() as u64) as usize]
    }

    /// A header whose token has a broken signature (the API must answer 401).
    pub fn tampered(&self, index: u64) -> &HeaderValue {
        &self.tampered[(index % self.tampered.len() as u64) as usize]
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

/// The token with the first character of its signature changed, so the signature no longer
/// verifies while the token stays well-formed. (The first base64url character carries the top
/// six bits of the first signature byte; the last one may only carry padding bits.)
pub fn tamper(token: &str) -> String {
    let Some(dot) = token.rfind('.') else {
        return format!("{token}x");
    };
    let (head, signature) = token.split_at(dot + 1);
    let mut chars = signature.chars();
    let first = match chars.next() {
        Some('A') => 'B',
        Some(_) => 'A',
        None => return format!("{head}AAAA"),
    };
    format!("{head}{first}{}", chars.as_str())
}

/// Builds request bodies. Valid submissions carry a recent `achievedAt`, as a real client would.
#[derive(Clone, Debug)]
pub struct Bodies {
    achieved_at: String,
    batch_size: usize,
}

impl Bodies {
    pub fn new(batch_size: usize) -> Self {
        let achieved = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let achieved_at = achieved
            .replace_nanosecond(0)
            .unwrap_or(achieved)
            .format(&Rfc3339)
            .unwrap_or_else(|_| "2026-01-01T00:00:00Z".to_owned());
        Self {
            achieved_at,
            batch_size,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The body of request `index` of `scenario`.
    pub fn body(&self, scenario: Scenario, index: u64) -> Bytes {
        match scenario {
            Scenario::Single | Scenario::InvalidToken => Bytes::from(self.submission(index)),
            Scenario::Batch => {
                let items: Vec<String> = (0..self.batch_size as u64)
                    .map(|i| self.submission(index.wrapping_mul(1000).wrapping_add(i)))
                    .collect();
                Bytes::from(format!("{{\"submissions\":[{}]}}", items.join(",")))
            }
            // Two kinds of refusal: fields that fail validation, and a body that is not JSON.
            Scenario::InvalidBody if index.is_multiple_of(2) => {
                Bytes::from_static(br#"{"heroId":"no spaces allowed","score":-1}"#)
            }
            Scenario::InvalidBody => Bytes::from_static(br#"{"heroId":"storm","score":"#),
            Scenario::Leaderboard => Bytes::new(),
        }
    }

    /// How many submissions a 202 to this scenario accepts.
    pub fn submissions_per_request(&self, scenario: Scenario) -> u64 {
        match scenario {
            Scenario::Single => 1,
            Scenario::Batch => self.batch_size as u64,
            Scenario::InvalidToken | Scenario::InvalidBody | Scenario::Leaderboard => 0,
        }
    }

    fn submission(&self, n: u64) -> String {
        format!(
            r#"{{"heroId":"{}","score":{},"achievedAt":"{}"}}"#,
            hero_id(n),
            n % 1_000_000,
            self.achieved_at
        )
    }
}
