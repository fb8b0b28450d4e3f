//! # nilstore-client
//!
//! The user-facing client library behind the `nilstore` CLI (and, later, the web app's
//! native twin): slab directories on disk, the EIP-4844 vector runner, benchmarks, and (with
//! the `network` feature) the one-process devnet.
//! Everything protocol-shaped lives in `wasm-core`; this crate adds files, processes and
//! clocks.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bench;
#[cfg(feature = "network")]
pub mod devnet;
#[cfg(feature = "network")]
pub mod remote;
pub mod slabdir;
pub mod vectors;
