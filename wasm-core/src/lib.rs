//! # wasm-core: NilStore's verifiable data engine
//!
//! Pure functions and types, no I/O, no clock, no ambient randomness; the same code runs
//! natively and on `wasm32` in the browser. Layout and formats are normative in
//! `docs/spec.md`.
//!
//! | module | what |
//! |---|---|
//! | [`constants`] | every unit and size, derived |
//! | [`curve`] | our names for BLS12-381 (the only module that names blst) |
//! | [`packing`] | 31 payload bytes per field element |
//! | [`kzg`] | EIP-4844 KZG with the Ethereum setup |
//! | [`msm`] | fixed-base MSM with batch-affine buckets, and its naive twin |
//! | `bindings` | (wasm32 only) `KzgEngine`, the JavaScript API for Web Workers |
//! | [`merkle`] | per-MDU Merkle tree over (commitment, blake3) leaves |
//! | [`proof`] | triple proofs, challenges, fraud evidence |
//! | [`rs`] | Reed–Solomon over Fr with derived parity commitments |
//! | [`slab`] | file table, witness and user MDUs, striping, manifest, streaming builder |
//! | [`aead`] | client-side XChaCha20-Poly1305 STREAM encryption and deal keys |
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod aead;
#[cfg(target_arch = "wasm32")]
pub mod bindings;
pub mod constants;
pub mod curve;
pub mod kzg;
pub mod merkle;
pub mod msm;
pub mod packing;
mod par;
pub mod proof;
pub mod rs;
pub mod slab;
