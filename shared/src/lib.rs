//! The score pipeline's shared core: the domain (submissions, rejection reasons, validation),
//! token verification, the ports the handlers talk through and their adapters, configuration
//! and telemetry.

pub mod auth;
pub mod aws;
pub mod board;
pub mod config;
#[cfg(feature = "faults")]
pub mod faults;
pub mod ids;
pub mod lambda;
pub mod limits;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod period;
pub mod ports;
pub mod quota;
pub mod record;
pub mod redis_cluster;
pub mod redis_index;
pub mod redis_quota;
pub mod rejection;
pub mod retry;
pub mod submission;
pub mod telemetry;
pub mod users;

/// The global allocator of every binary the project ships (and of the benches that measure
/// them): `#[global_allocator] static ALLOCATOR: shared::Allocator = shared::Allocator;`.
/// mimalloc's thread-local free lists cost less per request than glibc's malloc and free, which
/// the profiles put at a sixth of ingest's CPU and two fifths of the processor's
/// (docs/BENCHMARKS.md).
pub use mimalloc::MiMalloc as Allocator;
