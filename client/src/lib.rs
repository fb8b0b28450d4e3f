//! # nilstore-client
//!
//! The user side of the NilStore protocol, shared by the `nilstore` CLI and the web app:
//! slab directories, the description of a network, and (with the `network` feature) the
//! network client — put, append, resume, get, mirror, ls, rm, deal and delegate operations,
//! receipts, hedged verified reads, fraud evidence and deputy fallback. Everything
//! protocol-shaped lives in `wasm-core`; this crate adds the conversation with the chain and
//! the providers. It depends on no daemon crate, no test oracle and no terminal UI, and it
//! builds for `wasm32-unknown-unknown`: the client's operations are futures over the
//! [`platform`] seams (chain transport, clock, spawner), the [`store`] and a
//! `nilstore_net::requester::Requester`, each with a native and a browser implementation.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(feature = "network")]
pub mod network;
#[cfg(feature = "network")]
pub mod platform;
#[cfg(feature = "network")]
pub mod remote;
pub mod slabdir;
pub mod store;
