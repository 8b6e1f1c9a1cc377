//! Newtypes at the boundary: values that arrive as strings (from a CSV, a job payload or
//! Flinks) are parsed once into types that cannot hold an invalid or leaked state.

mod flinks_code;
mod login_id;
mod request_id;

pub use flinks_code::FlinksCode;
pub use login_id::{LoginId, LoginIdError};
pub use request_id::RequestId;
