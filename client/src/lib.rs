//! # nilstore-client
//!
//! The user-facing client library behind the `nilstore` CLI (and, later, the web app's
//! native twin): slab directories on disk, the EIP-4844 vector runner, benchmarks.
//! Everything protocol-shaped lives in `wasm-core`; this crate adds files, processes and
//! clocks.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bench;
pub mod slabdir;
pub mod vectors;
