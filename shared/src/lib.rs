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
pub mod redis_index;
pub mod rejection;
pub mod retry;
pub mod submission;
pub mod telemetry;
pub mod users;
