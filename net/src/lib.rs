//! NilStore's shared networking crate, used by the provider, the relay and the client
//! (natively and in the browser): the wire protocols (`proto`), length-prefixed framing
//! with limits (`frame`), and per-peer rate and concurrency limits (`limit`).

pub mod frame;
pub mod limit;
pub mod proto;

pub use proto::{NetError, Protocol};
