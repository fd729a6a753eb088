//! Every limit of the pipeline, in one place. The OpenAPI document and the README quote these.

use std::time::Duration;

/// Largest request body ingest reads, in bytes. A full batch of 100 maximal submissions is about 25 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most submissions in one `POST /v1/scores/batch`.
pub const MAX_BATCH_SUBMISSIONS: usize = 100;
/// `heroId`: 1 to this many characters of `[A-Za-z0-9_-]`.
pub const HERO_ID_MAX_CHARS: usize = 64;
/// `score`: an integer in `SCORE_MIN..=SCORE_MAX`.
pub const SCORE_MIN: u32 = 0;
pub const SCORE_MAX: u32 = 1_000_000_000;
/// `achievedAt` may be at most this far in the future (client clock skew).
pub const ACHIEVED_AT_MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// `achievedAt` may be no earlier than this (the Unix epoch). RFC 3339 allows year 0000 with a
/// positive offset, an instant before year 0 in UTC that no RFC 3339 timestamp can store.
pub const ACHIEVED_AT_EARLIEST: time::OffsetDateTime = time::OffsetDateTime::UNIX_EPOCH;
/// [`ACHIEVED_AT_EARLIEST`] as the API documents it.
pub const ACHIEVED_AT_EARLIEST_TEXT: &str = "1970-01-01T00:00:00Z";
/// `clientRef`: 1 to this many visible ASCII characters.
pub const CLIENT_REF_MAX_CHARS: usize = 64;
/// `Idempotency-Key` header: 1 to this many visible ASCII characters.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;
/// `X-Correlation-Id` header: 1 to this many characters of `[A-Za-z0-9._:-]`; otherwise one is generated.
pub const CORRELATION_ID_MAX_CHARS: usize = 128;
/// `GET /v1/leaderboards/{heroId}`: entries returned when `limit` is not given.
pub const LEADERBOARD_DEFAULT_ENTRIES: usize = 10;
/// `GET /v1/leaderboards/{heroId}`: most entries one page may ask for (`limit`).
pub const LEADERBOARD_MAX_ENTRIES: usize = 100;
/// `GET /v1/leaderboards/{heroId}/players/{userId}`: entries above and below the player when
/// `around` is not given.
pub const LEADERBOARD_AROUND_DEFAULT: usize = 5;
/// `GET /v1/leaderboards/{heroId}/players/{userId}`: most entries above and below (`around`).
pub const LEADERBOARD_AROUND_MAX: usize = 25;
/// Leaderboard reads: how long a client may reuse an answer (`Cache-Control: private,
/// max-age`). A board is already a moment behind the processor; polling clients need not ask
/// more often than this.
pub const LEADERBOARD_MAX_AGE_SECONDS: u32 = 5;
/// Longest bearer token accepted, in bytes; longer ones are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest token subject (user id) accepted, in characters.
pub const SUBJECT_MAX_CHARS: usize = 128;
/// Default leeway for `exp` and `nbf`, in seconds.
pub const DEFAULT_TOKEN_LEEWAY_SECONDS: u64 = 30;
/// A submission id without a stored record is reported `pending` for this long after it was issued
/// (the longest an SQS message can be retained); older unknown ids are `404`.
pub const PENDING_HORIZON: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Every SDK client: the longest wait for a connection to open.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Every SDK client: the longest wait for the answer to one attempt of a call.
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Every SDK client: the longest one call may take with the SDK's own retries. Callers bound
/// their calls more tightly still, by the time their invocation has left.
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
/// Ingest: the longest a request may spend on its enqueue or its read, and never past the
/// invocation's deadline less [`crate::lambda::DEADLINE_MARGIN`]. The function timeout is 10 s,
/// so a stalled queue gets the client a 503 with Retry-After, not API Gateway's bare 5xx.
pub const INGEST_WORK_BUDGET: Duration = Duration::from_secs(5);

/// The rank index (Redis): the longest wait for a connection to open.
pub const RANK_INDEX_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The rank index (Redis): the longest wait for the answer to one command.
pub const RANK_INDEX_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// DynamoDB BatchWriteItem takes at most 25 items a call.
pub const STORE_WRITE_BATCH: usize = 25;
/// Conditional PutItem (and notification UpdateItem) calls one store call keeps in flight.
pub const STORE_PUT_CONCURRENCY: usize = 50;
/// DynamoDB BatchGetItem takes at most 100 keys a call.
pub const DIRECTORY_LOOKUP_BATCH: usize = 100;
/// Largest SQS message body of the classic limit (256 KiB); one request's message stays far below it.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS SendMessageBatch takes at most 10 entries a call.
pub const QUEUE_SEND_BATCH: usize = 10;
/// SNS PublishBatch takes at most 10 entries a call.
pub const NOTIFY_PUBLISH_BATCH: usize = 10;
/// Default time a users-directory entry is cached across warm invocations.
pub const DEFAULT_USER_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most directory entries a warm processor keeps cached.
pub const USER_CACHE_MAX_ENTRIES: usize = 10_000;
/// Largest per-user quota per window. The DynamoDB adapter keeps a window's admitted ids in one
/// item (a string set of 36-character ids), and an item holds at most 400 KB.
pub const MAX_USER_QUOTA_LIMIT: u32 = 10_000;
/// Longest quota window: ten years (a window is aligned to multiples of its length since 1970).
pub const MAX_USER_QUOTA_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Default submissions a user may make per quota window.
pub const DEFAULT_USER_QUOTA_LIMIT: u32 = 120;
/// Default quota window.
pub const DEFAULT_USER_QUOTA_WINDOW: Duration = Duration::from_secs(60);
/// How long a quota window's counts are kept after it ends, so that redeliveries of its messages
/// (retries, an operator's redrive from the dead-letter queue) meet the same verdict.
pub const QUOTA_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the cache keeps a quota window's ids after it ends. Shorter than the table's
/// [`QUOTA_RETENTION`] because cache storage costs about 250 times as much per byte-hour
/// (docs/COSTS.md); still longer than the submissions queue's redelivery span as deployed
/// (visibility timeout times maxReceiveCount), so every redelivery of a message meets its verdict.
/// A redrive from the dead-letter queue after that counts its ids afresh; the verdicts already
/// stored stand either way.
pub const QUOTA_CACHE_RETENTION: Duration = Duration::from_secs(60 * 60);
