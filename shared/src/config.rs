//! Configuration from environment variables, read once at cold start. Every error names the
//! variable that is missing or wrong and says what it should hold.

use std::str::FromStr;
use std::time::Duration;

use crate::auth::{AuthConfig, TokenAlgorithm, VerificationKey};
use crate::limits::{
    DEFAULT_TOKEN_LEEWAY_SECONDS, DEFAULT_USER_CACHE_TTL, DEFAULT_USER_QUOTA_LIMIT,
    DEFAULT_USER_QUOTA_WINDOW, MAX_USER_QUOTA_LIMIT,
};
use crate::quota::{QuotaPolicy, QuotaPolicyError};

pub const JWT_ALGORITHM: &str = "JWT_ALGORITHM";
pub const JWT_SECRET: &str = "JWT_SECRET";
pub const JWT_PUBLIC_KEY_PEM: &str = "JWT_PUBLIC_KEY_PEM";
pub const JWT_PUBLIC_KEY_FILE: &str = "JWT_PUBLIC_KEY_FILE";
pub const JWT_ISSUER: &str = "JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
pub const JWT_LEEWAY_SECONDS: &str = "JWT_LEEWAY_SECONDS";
pub const JWT_KEY_ID: &str = "JWT_KEY_ID";
pub const JWT_JWKS_URL: &str = "JWT_JWKS_URL";
pub const JWT_JWKS_FILE: &str = "JWT_JWKS_FILE";
pub const SUBMISSIONS_QUEUE_URL: &str = "SUBMISSIONS_QUEUE_URL";
pub const SUBMISSIONS_TABLE: &str = "SUBMISSIONS_TABLE";
pub const USERS_TABLE: &str = "USERS_TABLE";
pub const REJECTIONS_QUEUE_URL: &str = "REJECTIONS_QUEUE_URL";
pub const REJECTIONS_TOPIC_ARN: &str = "REJECTIONS_TOPIC_ARN";
pub const USER_CACHE_TTL_SECONDS: &str = "USER_CACHE_TTL_SECONDS";
pub const INGEST_BURST_LIMIT: &str = "INGEST_BURST_LIMIT";
pub const INGEST_RATE_PER_SECOND: &str = "INGEST_RATE_PER_SECOND";
pub const QUOTAS_TABLE: &str = "QUOTAS_TABLE";
/// Where the processor counts the per-user quota: `table` (the quotas table, `QUOTAS_TABLE`;
/// the default) or `cache` (the cache cluster at `RANK_INDEX_URL`, under `RANK_INDEX_NAMESPACE`).
pub const QUOTA_COUNTER: &str = "QUOTA_COUNTER";
pub const USER_QUOTA_LIMIT: &str = "USER_QUOTA_LIMIT";
pub const USER_QUOTA_WINDOW_SECONDS: &str = "USER_QUOTA_WINDOW_SECONDS";
pub const MAX_RECEIVE_COUNT: &str = "MAX_RECEIVE_COUNT";
/// The rank index: `redis://host:port`, or `rediss://` with TLS (a Redis or Valkey cluster).
pub const RANK_INDEX_URL: &str = "RANK_INDEX_URL";
/// What every rank index key starts with (letters, digits, `-`, `_`; `lb` when unset), so that
/// deployments can share one cluster.
pub const RANK_INDEX_NAMESPACE: &str = "RANK_INDEX_NAMESPACE";

/// Default burst a user may send to one ingest instance (two full batches).
pub const DEFAULT_BURST_LIMIT: u32 = 200;
/// Default submissions per second a user may sustain at one ingest instance.
pub const DEFAULT_RATE_PER_SECOND: f64 = 50.0;

/// Per-user burst size and sustained rate of one ingest instance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstLimit {
    /// Submissions a user may send at once (a full batch needs 100).
    pub burst: u32,
    /// Submissions per second a user may sustain.
    pub per_second: f64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set; it should hold {expected}")]
    Missing {
        name: &'static str,
        expected: &'static str,
    },
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where variables come from: the process environment, or a map in tests.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn required(
    env: &dyn EnvSource,
    name: &'static str,
    expected: &'static str,
) -> Result<String, ConfigError> {
    env.var(name).ok_or(ConfigError::Missing { name, expected })
}

fn parsed_or<T: FromStr>(
    env: &dyn EnvSource,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("{raw:?}: {e}"),
        }),
    }
}

/// Token verification settings.
pub fn auth_from_env(env: &dyn EnvSource) -> Result<AuthConfig, ConfigError> {
    let algorithm_name = required(env, JWT_ALGORITHM, "HS256, RS256 or ES256")?;
    let algorithm =
        TokenAlgorithm::parse(algorithm_name.trim()).ok_or_else(|| ConfigError::Invalid {
            name: JWT_ALGORITHM,
            reason: format!("{algorithm_name:?} is not one of HS256, RS256, ES256"),
        })?;
    let key = match algorithm {
        TokenAlgorithm::Hs256 => VerificationKey::Secret(
            required(
                env,
                JWT_SECRET,
                "the HS256 shared secret (at least 32 bytes)",
            )?
            .into_bytes(),
        ),
        TokenAlgorithm::Rs256 | TokenAlgorithm::Es256 => public_keys(env)?,
    };
    Ok(AuthConfig {
        algorithm,
        key,
        issuer: required(env, JWT_ISSUER, "the expected `iss` claim")?,
        audience: required(env, JWT_AUDIENCE, "the expected `aud` claim")?,
        leeway_seconds: parsed_or(env, JWT_LEEWAY_SECONDS, DEFAULT_TOKEN_LEEWAY_SECONDS)?,
        key_id: env.var(JWT_KEY_ID),
    })
}

/// RS256/ES256 keys: a JWKS URL, a JWKS file, a PEM, or a PEM file, in that order.
fn public_keys(env: &dyn EnvSource) -> Result<VerificationKey, ConfigError> {
    if let Some(url) = env.var(JWT_JWKS_URL) {
        return Ok(VerificationKey::JwksUrl(url));
    }
    if let Some(path) = env.var(JWT_JWKS_FILE) {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
            name: JWT_JWKS_FILE,
            reason: format!("cannot read {path}: {e}"),
        })?;
        let set = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
            name: JWT_JWKS_FILE,
            reason: format!("{path} is not a JWKS document: {e}"),
        })?;
        return Ok(VerificationKey::Jwks(set));
    }
    public_key_pem(env).map(VerificationKey::PublicKeyPem)
}

fn public_key_pem(env: &dyn EnvSource) -> Result<String, ConfigError> {
    if let Some(pem) = env.var(JWT_PUBLIC_KEY_PEM) {
        return Ok(pem);
    }
    let Some(path) = env.var(JWT_PUBLIC_KEY_FILE) else {
        return Err(ConfigError::Missing {
            name: JWT_PUBLIC_KEY_PEM,
            expected: "the PEM public key (or JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL or JWT_JWKS_FILE)",
        });
    };
    std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
        name: JWT_PUBLIC_KEY_FILE,
        reason: format!("cannot read {path}: {e}"),
    })
}

/// The ingest function's settings.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub auth: AuthConfig,
    pub submissions_queue_url: String,
    pub submissions_table: String,
    /// `None` when `INGEST_BURST_LIMIT` is 0.
    pub burst_limit: Option<BurstLimit>,
}

impl IngestConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            auth: auth_from_env(env)?,
            submissions_queue_url: required(
                env,
                SUBMISSIONS_QUEUE_URL,
                "the submissions queue URL",
            )?,
            submissions_table: required(env, SUBMISSIONS_TABLE, "the submissions table name")?,
            burst_limit: burst_limit_from_env(env)?,
        })
    }
}

fn burst_limit_from_env(env: &dyn EnvSource) -> Result<Option<BurstLimit>, ConfigError> {
    let burst: u32 = parsed_or(env, INGEST_BURST_LIMIT, DEFAULT_BURST_LIMIT)?;
    let per_second: f64 = parsed_or(env, INGEST_RATE_PER_SECOND, DEFAULT_RATE_PER_SECOND)?;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(ConfigError::Invalid {
            name: INGEST_RATE_PER_SECOND,
            reason: format!("{per_second} is not a positive number"),
        });
    }
    Ok((burst > 0).then_some(BurstLimit { burst, per_second }))
}

/// The processor function's settings.
#[derive(Clone, Debug)]
pub struct ProcessorConfig {
    pub users_table: String,
    pub submissions_table: String,
    pub rejections_queue_url: String,
    pub user_cache_ttl: Duration,
    /// `None` when `USER_QUOTA_LIMIT` is 0.
    pub quota: Option<ProcessorQuota>,
    /// The submissions queue's redrive limit (`MAX_RECEIVE_COUNT`): on a message's last receive,
    /// what cannot be finished is marked `failed`. `None` when unset: nothing is marked.
    pub max_receive_count: Option<u32>,
}

/// The per-user quota the processor enforces, and where it is counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorQuota {
    pub policy: QuotaPolicy,
    pub counter: QuotaCounterSettings,
}

/// Where the quota is counted (`QUOTA_COUNTER`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaCounterSettings {
    /// The quotas table: one conditional write per user and batch.
    Table(String),
    /// The cache cluster that holds the rank index: one script call per user and batch.
    Cache(RankIndexSettings),
}

impl QuotaCounterSettings {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        match env.var(QUOTA_COUNTER).as_deref().map(str::trim) {
            None | Some("table") => Ok(Self::Table(required(
                env,
                QUOTAS_TABLE,
                "the quotas table name (or QUOTA_COUNTER=cache to count in the cache, or \
                 USER_QUOTA_LIMIT=0 to turn the quota off)",
            )?)),
            Some("cache") => Ok(Self::Cache(RankIndexSettings {
                url: required(
                    env,
                    RANK_INDEX_URL,
                    "the cache URL the quota is counted in (rediss://host:port), as QUOTA_COUNTER=cache asks",
                )?,
                namespace: env.var(RANK_INDEX_NAMESPACE),
            })),
            Some(other) => Err(ConfigError::Invalid {
                name: QUOTA_COUNTER,
                reason: format!("{other:?} is neither \"table\" nor \"cache\""),
            }),
        }
    }
}

/// The per-user quota policy: `USER_QUOTA_LIMIT` submissions per `USER_QUOTA_WINDOW_SECONDS`;
/// `None` when the limit is 0.
pub fn quota_policy_from_env(env: &dyn EnvSource) -> Result<Option<QuotaPolicy>, ConfigError> {
    let limit: u32 = parsed_or(env, USER_QUOTA_LIMIT, DEFAULT_USER_QUOTA_LIMIT)?;
    let window: u64 = parsed_or(
        env,
        USER_QUOTA_WINDOW_SECONDS,
        DEFAULT_USER_QUOTA_WINDOW.as_secs(),
    )?;
    if limit == 0 {
        return Ok(None);
    }
    QuotaPolicy::new(limit, Duration::from_secs(window))
        .map(Some)
        .map_err(|error| match error {
            QuotaPolicyError::Limit(limit) => ConfigError::Invalid {
                name: USER_QUOTA_LIMIT,
                reason: format!(
                    "{limit} is more than {MAX_USER_QUOTA_LIMIT}; use 0 to turn the quota off"
                ),
            },
            error @ QuotaPolicyError::Window(_) => ConfigError::Invalid {
                name: USER_QUOTA_WINDOW_SECONDS,
                reason: error.to_string(),
            },
        })
}

impl ProcessorConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            users_table: required(env, USERS_TABLE, "the users table name")?,
            submissions_table: required(env, SUBMISSIONS_TABLE, "the submissions table name")?,
            rejections_queue_url: required(env, REJECTIONS_QUEUE_URL, "the rejections queue URL")?,
            user_cache_ttl: Duration::from_secs(parsed_or(
                env,
                USER_CACHE_TTL_SECONDS,
                DEFAULT_USER_CACHE_TTL.as_secs(),
            )?),
            quota: match quota_policy_from_env(env)? {
                None => None,
                Some(policy) => Some(ProcessorQuota {
                    policy,
                    counter: QuotaCounterSettings::from_env(env)?,
                }),
            },
            max_receive_count: match env.var(MAX_RECEIVE_COUNT) {
                None => None,
                Some(raw) => Some(
                    raw.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| ConfigError::Invalid {
                            name: MAX_RECEIVE_COUNT,
                            reason: format!(
                                "{raw:?} is not a whole number of at least 1 (the queue's maxReceiveCount)"
                            ),
                        })?,
                ),
            },
        })
    }
}

/// Where the rank index is and which of its keys are this deployment's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankIndexSettings {
    pub url: String,
    /// `None`: the adapter's default namespace.
    pub namespace: Option<String>,
}

impl RankIndexSettings {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            url: required(
                env,
                RANK_INDEX_URL,
                "the rank index URL (rediss://host:port)",
            )?,
            namespace: env.var(RANK_INDEX_NAMESPACE),
        })
    }
}

/// The ranker function's settings: where the rank index is.
#[derive(Clone, Debug)]
pub struct RankerConfig {
    pub rank_index: RankIndexSettings,
}

impl RankerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            rank_index: RankIndexSettings::from_env(env)?,
        })
    }
}

/// The boards function's settings: how callers authenticate and where the rank index is.
#[derive(Clone, Debug)]
pub struct BoardsConfig {
    pub auth: AuthConfig,
    pub rank_index: RankIndexSettings,
}

impl BoardsConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            auth: auth_from_env(env)?,
            rank_index: RankIndexSettings::from_env(env)?,
        })
    }
}

/// The notifier function's settings.
#[derive(Clone, Debug)]
pub struct NotifierConfig {
    pub rejections_topic_arn: String,
    /// The outbox: which rejections are already notified, and where published ones are marked.
    pub submissions_table: String,
}

impl NotifierConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            rejections_topic_arn: required(
                env,
                REJECTIONS_TOPIC_ARN,
                "the rejections SNS topic ARN",
            )?,
            submissions_table: required(env, SUBMISSIONS_TABLE, "the submissions table name")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl EnvSource {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    const HS: &[(&str, &str)] = &[
        (JWT_ALGORITHM, "HS256"),
        (JWT_SECRET, "0123456789abcdef0123456789abcdef"),
        (JWT_ISSUER, "iss"),
        (JWT_AUDIENCE, "aud"),
    ];

    #[test]
    fn hs256_settings_are_read_with_a_default_leeway() {
        let auth = auth_from_env(&env(HS)).unwrap();
        assert_eq!(auth.algorithm, TokenAlgorithm::Hs256);
        assert_eq!(auth.leeway_seconds, DEFAULT_TOKEN_LEEWAY_SECONDS);
        assert_eq!(auth.issuer, "iss");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = auth_from_env(&env(&HS[..3])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: JWT_AUDIENCE,
                expected: "the expected `aud` claim"
            }
        );
        assert!(err.to_string().contains("JWT_AUDIENCE"));
    }

    #[test]
    fn an_invalid_value_is_named_with_the_reason() {
        let err = auth_from_env(&env(&[(JWT_ALGORITHM, "none")])).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: JWT_ALGORITHM,
                    ..
                }
            ),
            "{err}"
        );
        let mut pairs = HS.to_vec();
        pairs.push((JWT_LEEWAY_SECONDS, "soon"));
        let err = auth_from_env(&env(&pairs)).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: JWT_LEEWAY_SECONDS,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn asymmetric_algorithms_need_a_public_key() {
        let pairs = [
            (JWT_ALGORITHM, "ES256"),
            (JWT_ISSUER, "i"),
            (JWT_AUDIENCE, "a"),
        ];
        let err = auth_from_env(&env(&pairs)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                name: JWT_PUBLIC_KEY_PEM,
                ..
            }
        ));
        let mut with_file = pairs.to_vec();
        with_file.push((JWT_PUBLIC_KEY_FILE, "/nonexistent/key.pem"));
        let err = auth_from_env(&env(&with_file)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: JWT_PUBLIC_KEY_FILE,
                ..
            }
        ));
    }

    #[test]
    fn the_burst_limit_defaults_on_and_zero_turns_it_off() {
        let base = [(SUBMISSIONS_QUEUE_URL, "q"), (SUBMISSIONS_TABLE, "t")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = HS.to_vec();
            pairs.extend_from_slice(&base);
            pairs.extend_from_slice(extra);
            IngestConfig::from_env(&env(&pairs))
        };
        assert_eq!(
            with(&[]).unwrap().burst_limit,
            Some(BurstLimit {
                burst: DEFAULT_BURST_LIMIT,
                per_second: DEFAULT_RATE_PER_SECOND
            })
        );
        assert_eq!(
            with(&[(INGEST_BURST_LIMIT, "0")]).unwrap().burst_limit,
            None
        );
        let err = with(&[(INGEST_RATE_PER_SECOND, "-3")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: INGEST_RATE_PER_SECOND,
                ..
            }
        ));
    }

    #[test]
    fn processor_settings_default_the_cache_ttl() {
        let cfg = ProcessorConfig::from_env(&env(&[
            (USERS_TABLE, "users"),
            (SUBMISSIONS_TABLE, "subs"),
            (REJECTIONS_QUEUE_URL, "http://q"),
            (QUOTAS_TABLE, "quotas"),
        ]))
        .unwrap();
        assert_eq!(cfg.user_cache_ttl, DEFAULT_USER_CACHE_TTL);
    }

    /// The processor's settings from its three required variables plus `extra`.
    fn processor_config_with(
        extra: &[(&'static str, &'static str)],
    ) -> Result<ProcessorConfig, ConfigError> {
        let mut pairs = vec![
            (USERS_TABLE, "users"),
            (SUBMISSIONS_TABLE, "subs"),
            (REJECTIONS_QUEUE_URL, "http://q"),
        ];
        pairs.extend_from_slice(extra);
        ProcessorConfig::from_env(&env(&pairs))
    }

    #[test]
    fn quota_counter_cache_counts_in_the_rank_index_cache_and_needs_its_url() {
        let with = processor_config_with;
        let quota = with(&[
            (QUOTA_COUNTER, "cache"),
            (RANK_INDEX_URL, "rediss://cache:6379"),
            (RANK_INDEX_NAMESPACE, "prod"),
        ])
        .unwrap()
        .quota
        .unwrap();
        assert_eq!(
            quota.counter,
            QuotaCounterSettings::Cache(RankIndexSettings {
                url: "rediss://cache:6379".to_owned(),
                namespace: Some("prod".to_owned()),
            })
        );
        // The cache needs its URL, not the table.
        let err = with(&[(QUOTA_COUNTER, "cache"), (QUOTAS_TABLE, "quotas")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    name: RANK_INDEX_URL,
                    ..
                }
            ),
            "{err}"
        );
        // "table" is the default, said or not; anything else is named as wrong.
        let quota = with(&[(QUOTA_COUNTER, "table"), (QUOTAS_TABLE, "quotas")])
            .unwrap()
            .quota
            .unwrap();
        assert_eq!(
            quota.counter,
            QuotaCounterSettings::Table("quotas".to_owned())
        );
        let err = with(&[(QUOTA_COUNTER, "redis"), (QUOTAS_TABLE, "quotas")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: QUOTA_COUNTER,
                    ..
                }
            ),
            "{err}"
        );
        // With the quota off, neither is needed.
        assert_eq!(
            with(&[(QUOTA_COUNTER, "cache"), (USER_QUOTA_LIMIT, "0")])
                .unwrap()
                .quota,
            None
        );
    }

    #[test]
    fn the_quota_defaults_on_needs_its_table_and_zero_turns_it_off() {
        let with = processor_config_with;
        let err = with(&[]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    name: QUOTAS_TABLE,
                    ..
                }
            ),
            "{err}"
        );
        let quota = with(&[(QUOTAS_TABLE, "quotas")]).unwrap().quota.unwrap();
        assert_eq!(
            quota.counter,
            QuotaCounterSettings::Table("quotas".to_owned())
        );
        assert_eq!(quota.policy.limit, DEFAULT_USER_QUOTA_LIMIT);
        assert_eq!(quota.policy.window, DEFAULT_USER_QUOTA_WINDOW);
        let custom = with(&[
            (QUOTAS_TABLE, "quotas"),
            (USER_QUOTA_LIMIT, "5"),
            (USER_QUOTA_WINDOW_SECONDS, "3600"),
        ])
        .unwrap()
        .quota
        .unwrap();
        assert_eq!(custom.policy.limit, 5);
        assert_eq!(custom.policy.window, Duration::from_secs(3600));
        assert_eq!(with(&[(USER_QUOTA_LIMIT, "0")]).unwrap().quota, None);
        for (name, value) in [
            (USER_QUOTA_LIMIT, "10001"),
            (USER_QUOTA_LIMIT, "-1"),
            (USER_QUOTA_WINDOW_SECONDS, "0"),
            (USER_QUOTA_WINDOW_SECONDS, "315360001"),
        ] {
            let err = with(&[(QUOTAS_TABLE, "quotas"), (name, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn the_rank_index_needs_a_url_and_may_name_a_namespace() {
        let err = RankerConfig::from_env(&env(&[])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Missing { name, .. } if *name == RANK_INDEX_URL),
            "{err}"
        );
        let plain = RankerConfig::from_env(&env(&[(RANK_INDEX_URL, "rediss://cache:6379")]))
            .unwrap()
            .rank_index;
        assert_eq!(plain.url, "rediss://cache:6379");
        assert_eq!(plain.namespace, None);
        let shared = BoardsConfig::from_env(&env(&[
            HS,
            &[
                (RANK_INDEX_URL, "rediss://cache:6379"),
                (RANK_INDEX_NAMESPACE, "staging"),
            ],
        ]
        .concat()))
        .unwrap()
        .rank_index;
        assert_eq!(shared.namespace.as_deref(), Some("staging"));
    }
}
