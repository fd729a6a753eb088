//! The pipeline assembled outside Lambda: the local stack, its SQS event-source emulation and
//! token minting, used by the `local` binary, the end-to-end tests and the load generator.

pub mod backend;
pub mod change_feed;
pub mod emulate;
pub mod event_source;
pub mod load;
pub mod signals;
pub mod stack;
pub mod tokens;

pub use backend::Backend;
pub use stack::{LocalStack, StackError, StackOptions};
pub use tokens::TokenMinter;
