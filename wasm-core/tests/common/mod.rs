//! The golden blob shared by `golden_native.rs` (native, checked against c-kzg),
//! `browser.rs` (Chromium main thread) and `worker.rs` (Chromium dedicated worker): the
//! same input and the same expected commitment, so native and browser builds must agree.
//!
//! ```text
//!   payload[31·j .. 31·j + 31] = SHA-256(GOLDEN_BLOB_TAG ‖ u32_be(j))[..31],  j < 4096
//!   blob = pack_blob(payload)     element j = 00 ‖ payload[31·j ..]  (canonical, < r)
//! ```

use sha2::{Digest, Sha256};
use wasm_core::constants::{
    FIELD_ELEMENTS_PER_BLOB, PAYLOAD_BYTES_PER_BLOB, PAYLOAD_BYTES_PER_ELEMENT,
};
use wasm_core::packing::pack_blob;

/// Domain tag hashed into every element of the golden blob.
pub const GOLDEN_BLOB_TAG: &[u8] = b"nilstore/golden/blob";

/// `blob_to_kzg_commitment(golden_blob())` with the Ethereum setup, as computed by
/// c-kzg-4844 (see `golden_native.rs`). Changing it is a reviewed format change.
pub const GOLDEN_COMMITMENT_HEX: &str =
    "b1a1a838a9e7fd3331ca5e68667ea7e9f2ad220897515187d4d89753a1724d535ff728e906d75c525722579f5052cc1d";

/// The golden blob (see the module docs).
pub fn golden_blob() -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_BYTES_PER_BLOB);
    for j in 0..FIELD_ELEMENTS_PER_BLOB as u32 {
        let digest = Sha256::new()
            .chain_update(GOLDEN_BLOB_TAG)
            .chain_update(j.to_be_bytes())
            .finalize();
        payload.extend_from_slice(&digest[..PAYLOAD_BYTES_PER_ELEMENT]);
    }
    pack_blob(&payload).expect("4096 × 31 bytes is exactly one blob of payload")
}
