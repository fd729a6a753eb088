//! The whole pipeline in one process: the ingest router on a TCP listener, and the processor
//! and notifier fed by SQS-like in-memory queues.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use ingest::boards::Boards;
use ingest::{App, BurstLimit};
use notifier::RejectionNotifier;
use processor::ranker::{FeedRecord, Ranker};
use processor::{Ports, Processor, Quota, UserCache};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shared::auth::{AuthConfig, TokenVerifier};
use shared::faults::{FaultPlan, Faulty};
use shared::ids::{SubmissionId, UserId};
use shared::message::Rejection;
use shared::ports::{
    Notifier, PortError, RankIndex, RejectionSink, SubmissionQueue, SubmissionStore, UserDirectory,
};
use shared::quota::QuotaPolicy;
use shared::record::{SubmissionKey, SubmissionRecord};
use shared::users::User;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Backend, DeadLetters};
use crate::change_feed::{FeedProgress, StreamHandler, StreamHandlerFuture, spawn_stream_consumer};
use crate::event_source::{HandlerFuture, PollSettings, SqsHandler, spawn_consumer};
use crate::tokens::TokenMinter;

/// Time the processor gets per batch, like a Lambda timeout.
pub const PROCESSOR_BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the notifier gets per batch.
pub const NOTIFIER_BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the ranker gets per batch.
pub const RANKER_BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most change records one ranker batch takes (the stream mapping's batch size).
pub const RANKER_BATCH_SIZE: usize = 100;
/// How long one read of the change feed waits for a first record.
const RANKER_READ_WAIT: Duration = Duration::from_millis(200);
/// How long a drain check waits for the ranker to show it has caught up.
const RANKER_CATCH_UP: Duration = Duration::from_secs(5);

/// How to assemble the stack around a backend.
pub struct StackOptions {
    pub addr: SocketAddr,
    /// Put into the users directory at start.
    pub users: Vec<User>,
    pub minter: TokenMinter,
    /// How ingest verifies tokens; by default it accepts exactly the minter's tokens.
    pub auth: Option<AuthConfig>,
    pub processor_poll: PollSettings,
    pub notifier_poll: PollSettings,
    pub user_cache_ttl: Duration,
    /// Per-user burst limit at ingest; off by default in the local stack.
    pub burst_limit: Option<BurstLimit>,
    /// Make handler invocations crash at random (see [`Crashes`]).
    pub crashes: Option<Crashes>,
    /// Per-user quota the processor enforces; off by default in tests.
    pub quota: Option<QuotaPolicy>,
}

/// Handler invocations that crash: with probability `rate` an invocation is cut off after a
/// random moment (0-2 ms, possibly after all its work is done) and never reports back, as when
/// a Lambda runs out of memory or time. SQS then delivers the whole batch again.
#[derive(Clone, Copy, Debug)]
pub struct Crashes {
    pub rate: f64,
    pub seed: u64,
}

/// Draws which invocations crash, and counts them.
struct CrashDice {
    plan: Option<Mutex<(f64, StdRng)>>,
    crashed: AtomicU64,
}

impl CrashDice {
    fn new(crashes: Option<Crashes>) -> Self {
        Self {
            plan: crashes.map(|c| Mutex::new((c.rate, StdRng::seed_from_u64(c.seed)))),
            crashed: AtomicU64::new(0),
        }
    }

    /// When to cut this invocation off, if it is to crash.
    fn roll(&self) -> Option<Duration> {
        let mut plan = self
            .plan
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (rate, rng) = &mut *plan;
        let rate = *rate;
        rng.random_bool(rate)
            .then(|| Duration::from_micros(rng.random_range(0..2_000)))
    }

    /// Runs an invocation, crashing it if the dice say so.
    async fn run<T>(&self, invocation: impl Future<Output = T>) -> T {
        let Some(cutoff) = self.roll() else {
            return invocation.await;
        };
        let _ = tokio::time::timeout(cutoff, invocation).await;
        self.crashed.fetch_add(1, Ordering::SeqCst);
        // Unwinds without the panic hook's message; the event source sees a crashed invocation.
        std::panic::resume_unwind(Box::new("injected handler crash"))
    }
}

impl StackOptions {
    /// Loopback on an ephemeral port, short polls: for tests.
    pub fn for_tests(users: Vec<User>) -> Self {
        let poll = PollSettings {
            batch_size: 10,
            wait: Duration::from_millis(50),
            batching_window: Duration::ZERO,
        };
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            users,
            minter: TokenMinter::random_local(),
            auth: None,
            processor_poll: poll,
            notifier_poll: poll,
            user_cache_ttl: Duration::from_secs(60),
            burst_limit: None,
            crashes: None,
            quota: None,
        }
    }
}

/// One fault plan per port.
pub struct StackFaults {
    pub submissions_queue: Arc<FaultPlan>,
    pub store: Arc<FaultPlan>,
    pub directory: Arc<FaultPlan>,
    pub rejections_queue: Arc<FaultPlan>,
    pub notifier: Arc<FaultPlan>,
    pub quota: Arc<FaultPlan>,
    pub rank_index: Arc<FaultPlan>,
}

impl StackFaults {
    /// Plans that inject nothing until a test arms them.
    pub fn idle() -> Self {
        Self {
            submissions_queue: FaultPlan::new(),
            store: FaultPlan::new(),
            directory: FaultPlan::new(),
            rejections_queue: FaultPlan::new(),
            notifier: FaultPlan::new(),
            quota: FaultPlan::new(),
            rank_index: FaultPlan::new(),
        }
    }
}

pub struct LocalStack {
    pub url: String,
    pub addr: SocketAddr,
    pub minter: TokenMinter,
    pub backend: Backend,
    /// Fault plans for every port; idle unless a test arms them.
    pub faults: StackFaults,
    crashes: Arc<CrashDice>,
    stop_http: watch::Sender<bool>,
    stop_consumers: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    consumers: Vec<JoinHandle<()>>,
    /// How far the ranker has read the change feed; `None` when nothing here feeds it.
    ranking: Option<Arc<FeedProgress>>,
    /// What else runs for this stack (the emulation's function processes); dropped last.
    held: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// The parts of a stack assembled elsewhere (the emulated deployment): its HTTP front, its
/// event-source consumers, and whatever must live as long as the stack.
pub struct AssembledParts {
    pub url: String,
    pub addr: SocketAddr,
    pub minter: TokenMinter,
    pub backend: Backend,
    pub stop_http: watch::Sender<bool>,
    pub http: JoinHandle<std::io::Result<()>>,
    pub stop_consumers: watch::Sender<bool>,
    pub consumers: Vec<JoinHandle<()>>,
    pub ranking: Option<Arc<FeedProgress>>,
    pub held: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot listen on {addr}: {source} (is the port in use? try port 0)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the token settings are invalid: {0}")]
    Tokens(#[from] shared::auth::AuthConfigError),
    #[error(
        "a user quota is set but the backend has no quotas table; set QUOTAS_TABLE, provision one, or turn the quota off (USER_QUOTA_LIMIT=0)"
    )]
    NoQuotaTable,
    #[error("cannot seed user {user}: {source}")]
    Seed { user: String, source: PortError },
}

impl LocalStack {
    pub async fn start(options: StackOptions, backend: Backend) -> Result<Self, StackError> {
        for user in &options.users {
            backend
                .observe
                .put_user(user)
                .await
                .map_err(|source| StackError::Seed {
                    user: user.user_id.to_string(),
                    source,
                })?;
        }
        let faults = StackFaults::idle();
        let quota = match (options.quota, &backend.quota_counter) {
            (None, _) => None,
            (Some(_), None) => return Err(StackError::NoQuotaTable),
            (Some(policy), Some(counter)) => Some(Quota {
                policy,
                counter: Arc::new(Faulty::new(counter.clone(), faults.quota.clone())),
            }),
        };
        // Every port goes through a fault injector; an idle one costs an atomic load per call.
        let queue_port: Arc<dyn SubmissionQueue> = Arc::new(Faulty::new(
            backend.submissions_queue.clone(),
            faults.submissions_queue.clone(),
        ));
        let store_port: Arc<dyn SubmissionStore> =
            Arc::new(Faulty::new(backend.store.clone(), faults.store.clone()));
        let directory_port: Arc<dyn UserDirectory> = Arc::new(Faulty::new(
            backend.directory.clone(),
            faults.directory.clone(),
        ));
        let sink_port: Arc<dyn RejectionSink> = Arc::new(Faulty::new(
            backend.rejections_sink.clone(),
            faults.rejections_queue.clone(),
        ));
        let notifier_port: Arc<dyn Notifier> = Arc::new(Faulty::new(
            backend.notifier.clone(),
            faults.notifier.clone(),
        ));
        let rank_port: Arc<dyn RankIndex> = Arc::new(Faulty::new(
            backend.rank_index.clone(),
            faults.rank_index.clone(),
        ));

        let auth = options
            .auth
            .clone()
            .unwrap_or_else(|| options.minter.auth_config());
        let app = Arc::new(
            App::new(TokenVerifier::new(&auth)?, queue_port, store_port.clone())
                .with_burst_limit(options.burst_limit),
        );
        let boards = Arc::new(Boards::new(TokenVerifier::new(&auth)?, rank_port.clone()));
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| StackError::Listen {
                    addr: options.addr,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StackError::Listen {
            addr: options.addr,
            source,
        })?;
        let (stop_http, mut http_stopped) = watch::channel(false);
        let http = tokio::spawn(async move {
            // With the peer's address, which a refused or failed request's line names.
            let router = ingest::full_router(app, boards);
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = http_stopped.wait_for(|stop| *stop).await;
            })
            .await
        });

        let mut processor = Processor::new(
            Ports {
                users: directory_port,
                store: store_port.clone(),
                rejections: sink_port,
            },
            UserCache::new(options.user_cache_ttl),
        );
        if let Some(max_receive_count) = backend.max_receive_count {
            processor = processor.with_max_receive_count(max_receive_count);
        }
        if let Some(quota) = quota {
            processor = processor.with_quota(quota);
        }
        let processor = Arc::new(processor);
        let crashes = Arc::new(CrashDice::new(options.crashes));
        let dice = crashes.clone();
        let process: SqsHandler = Arc::new(move |event: SqsEvent| -> HandlerFuture {
            let processor = processor.clone();
            let dice = dice.clone();
            Box::pin(async move {
                let deadline = Instant::now() + PROCESSOR_BATCH_TIMEOUT;
                dice.run(async {
                    processor
                        .process(&event.records, deadline)
                        .await
                        .into_response()
                })
                .await
            })
        });
        let rejection_notifier = Arc::new(RejectionNotifier::new(notifier_port, store_port));
        let dice = crashes.clone();
        let notify: SqsHandler = Arc::new(move |event: SqsEvent| -> HandlerFuture {
            let handler = rejection_notifier.clone();
            let dice = dice.clone();
            Box::pin(async move {
                let deadline = Instant::now() + NOTIFIER_BATCH_TIMEOUT;
                dice.run(async {
                    handler
                        .handle(&event.records, deadline)
                        .await
                        .into_response()
                })
                .await
            })
        });
        let ranker = Arc::new(Ranker::new(rank_port));
        let dice = crashes.clone();
        let rank: StreamHandler = Arc::new(move |event| -> StreamHandlerFuture {
            let ranker = ranker.clone();
            let dice = dice.clone();
            Box::pin(async move {
                let deadline = Instant::now() + RANKER_BATCH_TIMEOUT;
                let records: Vec<FeedRecord> =
                    event.records.iter().map(FeedRecord::from_stream).collect();
                dice.run(async { ranker.rank(&records, deadline).await.into_response() })
                    .await
            })
        });
        let (stop_consumers, consumers_stopped) = watch::channel(false);
        let (ranker_task, ranking) = spawn_stream_consumer(
            backend.changes.clone(),
            rank,
            RANKER_BATCH_SIZE,
            RANKER_READ_WAIT,
            consumers_stopped.clone(),
        );
        let consumers = vec![
            ranker_task,
            spawn_consumer(
                backend.submissions_source.clone(),
                process,
                options.processor_poll,
                consumers_stopped.clone(),
            ),
            spawn_consumer(
                backend.rejections_source.clone(),
                notify,
                options.notifier_poll,
                consumers_stopped,
            ),
        ];

        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            minter: options.minter,
            backend,
            faults,
            crashes,
            stop_http,
            stop_consumers,
            http,
            consumers,
            ranking: Some(ranking),
            held: Vec::new(),
        })
    }

    /// A stack whose parts run elsewhere (real binaries, an emulated gateway): the fault plans
    /// are idle and reach nothing, so scenarios that arm faults do not apply to it.
    pub fn assembled(parts: AssembledParts) -> Self {
        Self {
            url: parts.url,
            addr: parts.addr,
            minter: parts.minter,
            backend: parts.backend,
            faults: StackFaults::idle(),
            crashes: Arc::new(CrashDice::new(None)),
            stop_http: parts.stop_http,
            stop_consumers: parts.stop_consumers,
            http: parts.http,
            consumers: parts.consumers,
            ranking: parts.ranking,
            held: parts.held,
        }
    }

    /// How many handler invocations were crashed on purpose.
    pub fn crashed_invocations(&self) -> u64 {
        self.crashes.crashed.load(Ordering::SeqCst)
    }

    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.minter.mint(user, 3600)
    }

    /// Whether both queues have nothing visible or in flight and the ranker has taken every
    /// change stored so far (false when it cannot be told).
    pub async fn is_drained(&self) -> bool {
        let queues = match self.backend.observe.is_drained().await {
            Ok(drained) => drained,
            Err(error) => {
                tracing::warn!(%error, "cannot read the queue depths");
                false
            }
        };
        match (&self.ranking, queues) {
            (_, false) => false,
            (None, true) => true,
            (Some(ranking), true) => ranking.caught_up(RANKER_CATCH_UP).await,
        }
    }

    /// Waits until both queues are drained; false if `timeout` passed first.
    pub async fn wait_until_drained(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.is_drained().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_drained().await
    }

    /// The stored record of `user`'s submission `id`, read through the store port.
    pub async fn stored(&self, user: &UserId, id: SubmissionId) -> Option<SubmissionRecord> {
        self.backend
            .store
            .get(&SubmissionKey::new(user.clone(), id))
            .await
            .unwrap_or_else(|e| panic!("reading {id} from the store: {e}"))
    }

    pub async fn stored_count(&self) -> usize {
        self.backend
            .observe
            .stored_count()
            .await
            .unwrap_or_else(|e| panic!("counting stored submissions: {e}"))
    }

    /// Every notification published so far.
    pub async fn published(&self) -> Vec<Rejection> {
        self.backend
            .observe
            .published()
            .await
            .unwrap_or_else(|e| panic!("reading the notifications: {e}"))
    }

    pub async fn dead_letters(&self) -> DeadLetters {
        self.backend
            .observe
            .dead_letters()
            .await
            .unwrap_or_else(|e| panic!("reading the dead-letter queues: {e}"))
    }

    /// Stops taking requests, lets queued work finish (up to `drain_timeout`), then stops the
    /// consumers. Returns whether everything drained.
    pub async fn shutdown(mut self, drain_timeout: Duration) -> bool {
        let _ = self.stop_http.send(true);
        match (&mut self.http).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "HTTP server failed"),
            Err(error) => tracing::error!(%error, "HTTP server task failed"),
        }
        let drained = self.wait_until_drained(drain_timeout).await;
        let _ = self.stop_consumers.send(true);
        for consumer in self.consumers {
            let _ = consumer.await;
        }
        drop(self.held);
        drained
    }
}
