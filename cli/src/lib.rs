//! # nilstore-cli
//!
//! The library half of the `nilstore` binary: the EIP-4844 vector runner, the benchmarks
//! (compared side by side with c-kzg-4844 in the same run) and, with the `network`
//! feature, the ingest benchmark through an in-process devnet. The commands themselves
//! live in `main.rs`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bench;
#[cfg(feature = "network")]
pub mod ingest;
pub mod vectors;
