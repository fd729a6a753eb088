//! The cache cluster (Valkey or Redis in cluster mode, as ElastiCache Serverless runs) that holds
//! the rank index ([`crate::redis_index`]) and, when the processor counts there, the per-user
//! quota ([`crate::redis_quota`]): one lazily connected client per adapter, and the mapping of
//! the client's errors to [`PortError`]s.

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::limits::{RANK_INDEX_CONNECT_TIMEOUT, RANK_INDEX_RESPONSE_TIMEOUT};
use crate::ports::PortError;

/// The namespace every key starts with unless the settings name another.
pub const DEFAULT_NAMESPACE: &str = "lb";

/// A cluster client that connects on first use (and again after a failed connect), so a cold
/// start does not wait for, or fail on, the cluster.
pub struct LazyCluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
    /// The port's name in errors ("rank index", "quota counter").
    service: &'static str,
}

impl LazyCluster {
    /// `url` is `redis://host:port` or, with TLS, `rediss://host:port` (ElastiCache Serverless
    /// always uses TLS).
    pub fn new(url: &str, service: &'static str) -> Result<Self, PortError> {
        let client = ClusterClient::builder([url])
            .connection_timeout(RANK_INDEX_CONNECT_TIMEOUT)
            .response_timeout(RANK_INDEX_RESPONSE_TIMEOUT)
            .retries(2)
            .build()
            .map_err(|error| PortError::Refused {
                service,
                detail: format!("the cache URL is not usable: {error}"),
            })?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            service,
        })
    }

    pub async fn connection(&self) -> Result<ClusterConnection, PortError> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
            .map_err(|error| self.error(error))
    }

    /// Runs `invocation`, a script that answers once per item it was given (`expected` of
    /// them), and checks that it did; `what` names the script and its items in the refusal.
    pub async fn invoke_per_item<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        connection: &mut ClusterConnection,
        expected: usize,
        what: &str,
    ) -> Result<Vec<T>, PortError> {
        let answers: Vec<T> = invocation
            .invoke_async(connection)
            .await
            .map_err(|error| self.error(error))?;
        if answers.len() != expected {
            return Err(PortError::Refused {
                service: self.service,
                detail: format!("the {what} script answered {} of {expected}", answers.len()),
            });
        }
        Ok(answers)
    }

    /// A client error as this port's: a timeout, the cluster unavailable (worth retrying), or a
    /// refusal (a script error, a wrong type).
    pub fn error(&self, error: redis::RedisError) -> PortError {
        let service = self.service;
        let detail = error.to_string();
        if error.is_timeout() {
            PortError::Timeout { service, detail }
        } else if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_cluster_error()
            || matches!(
                error.code(),
                Some("BUSY" | "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN")
            )
        {
            PortError::Unavailable { service, detail }
        } else {
            PortError::Refused { service, detail }
        }
    }
}

/// Checks a key namespace: letters, digits, `-` and `_`, not empty.
pub fn checked_namespace(namespace: &str, service: &'static str) -> Result<String, PortError> {
    if namespace.is_empty()
        || !namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PortError::Refused {
            service,
            detail: format!("{namespace:?} is not a key namespace (letters, digits, - and _)"),
        });
    }
    Ok(namespace.to_owned())
}
