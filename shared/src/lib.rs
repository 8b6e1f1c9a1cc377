//! nightly-refresh's library: everything the `producer` and `worker` binaries do lives here
//! so that tests drive the same code that ships.
//!
//! - [`domain`]: newtypes at the boundary (`LoginId`, `RequestId`, `FlinksCode`).
//! - [`keys`]: the only place Redis keys are built (namespace per deployment and per test).
//! - [`flinks`]: the typed Flinks client, outcome classification and the API call trace.
//! - [`queue`]: the durable Redis queue backend that apalis workers run on.

pub mod domain;
pub mod flinks;
pub mod keys;
pub mod queue;

pub use domain::{FlinksCode, LoginId, RequestId};
pub use keys::KeySpace;
