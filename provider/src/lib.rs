//! The NilStore storage provider (library part): upload verification and the crash-safe
//! shard store.

pub mod auth;
pub mod chain;
pub mod daemon;
pub mod service;
pub mod store;
pub mod verify;
