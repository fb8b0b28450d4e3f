//! NilStore's shared networking crate, used by the provider, the relay and the client
//! (natively and in the browser): the wire protocols (`proto`), length-prefixed framing
//! with limits (`frame`), per-peer rate and concurrency limits (`limit`), the libp2p codec
//! and behaviours (`codec`, `behaviour`), and the native (`native`: TCP, QUIC,
//! WebRTC-direct, WebSocket, relay v2) and browser (`browser`: WebRTC-direct, WebSocket)
//! swarms.

pub mod behaviour;
#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod chain;
pub mod codec;
pub mod frame;
pub mod limit;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
pub mod proto;
pub mod read;
pub mod requester;

pub use libp2p;

/// Boxed error of swarm construction.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub use proto::{NetError, Protocol};
