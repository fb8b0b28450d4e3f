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
//! | [`merkle`] | per-MDU Merkle tree over (commitment, blake3) leaves |
//! | [`proof`] | triple proofs, challenges, fraud evidence |
//! | [`rs`] | Reed–Solomon over Fr with derived parity commitments |
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod constants;
pub mod curve;
pub mod kzg;
pub mod merkle;
pub mod msm;
pub mod packing;
pub mod proof;
pub mod rs;
mod par;
