//! The NilStore storage provider (library part): the crash-safe shard store.

pub mod store;
