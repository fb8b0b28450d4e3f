//! The golden blob commitment, natively: our KZG and the c-kzg-4844 oracle must both give
//! [`common::GOLDEN_COMMITMENT_HEX`], the value `browser.rs` and `worker.rs` expect in
//! Chromium.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{golden_blob, GOLDEN_COMMITMENT_HEX};
use wasm_core::constants::BYTES_PER_BLOB;
use wasm_core::kzg::KzgSettings;

#[test]
fn golden_blob_commitment_matches_hard_coded_hex() {
    let blob = golden_blob();
    assert_eq!(blob.len(), BYTES_PER_BLOB);
    let ours = KzgSettings::ethereum()
        .blob_to_kzg_commitment(&blob)
        .expect("the golden blob is canonical");
    assert_eq!(hex::encode(ours), GOLDEN_COMMITMENT_HEX);
}

#[test]
fn golden_blob_commitment_matches_c_kzg() {
    let blob = c_kzg::Blob::from_bytes(&golden_blob()).expect("blob length");
    let oracle = c_kzg::ethereum_kzg_settings(0)
        .blob_to_kzg_commitment(&blob)
        .expect("the golden blob is canonical");
    assert_eq!(hex::encode(*oracle.to_bytes()), GOLDEN_COMMITMENT_HEX);
}

#[test]
fn golden_blob_commitment_with_settings_from_msm_cache() {
    let cache = KzgSettings::ethereum().msm_cache_bytes();
    let loaded = KzgSettings::ethereum_from_cache(&cache).expect("our own cache loads");
    let commitment = loaded
        .blob_to_kzg_commitment(&golden_blob())
        .expect("the golden blob is canonical");
    assert_eq!(hex::encode(commitment), GOLDEN_COMMITMENT_HEX);
}
