//! NilStore's web app. The page ([`app`], Leptos) shows; the worker ([`worker`]) works:
//! `nilstore-client` runs in a dedicated Web Worker (packing, encryption, KZG, erasure
//! coding, OPFS, the light client and the providers' traffic over WebSocket), so the page's
//! main thread only renders. They talk through [`protocol`]'s messages ([`bridge`] is the
//! page's end). `scripts/build-web.sh` builds it; `nilstore devnet up --web` serves it.
//!
//! Natively the crate is its page-worker protocol only (unit-tested there).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod protocol;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod bridge;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use app::page_main;
#[cfg(target_arch = "wasm32")]
pub use worker::worker_main;
