//! The load generator behind the `loadgen` binary: a bounded, mixed load against the ingest
//! API (the local stack or a deployed one), with latency histograms and per-scenario counts.
//!
//! - [`cli`]: the command line and the validated, always bounded [`Plan`];
//! - [`mix`]: the scenarios and their weighted, deterministic interleaving;
//! - [`payload`]: bearer tokens (minted or from a file) and request bodies;
//! - [`client`]: one HTTP/1.1 connection per worker, plain or TLS;
//! - [`run`]: the closed and open (fixed-rate) models and live progress;
//! - [`stats`]: HdrHistogram latencies, counts, and the [`Summary`];
//! - [`startup`]: process start to first 202;
//! - [`soak`]: a server under sustained load, its memory watched, then a clean stop.

pub mod cli;
pub mod client;
pub mod mix;
pub mod payload;
pub mod run;
pub mod soak;
pub mod startup;
pub mod stats;

pub use cli::{Args, Cli, Command, Plan};
pub use mix::{Mix, Scenario};
pub use run::{LoadError, Progress, run};
pub use stats::Summary;
