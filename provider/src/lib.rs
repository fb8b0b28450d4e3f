//! The NilStore storage provider (library part): upload verification, the crash-safe
//! shard store, serving, the chain duties (challenge proofs, receipts, garbage collection)
//! and repair.

pub mod auth;
pub mod checkpoint;
pub mod daemon;
pub mod repair;
pub mod service;
pub mod store;
pub mod verify;
pub mod worker;
