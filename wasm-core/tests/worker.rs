//! wasm-core in a dedicated Web Worker of headless Chromium: the golden blob commits to the
//! same bytes as natively (`golden_native.rs`) and on the main thread (`browser.rs`),
//! through both the Rust API and the [`KzgEngine`] worker API.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{golden_blob, GOLDEN_COMMITMENT_HEX};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_core::bindings::KzgEngine;
use wasm_core::kzg::KzgSettings;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
fn golden_blob_commitment_in_a_worker() {
    let blob = golden_blob();
    let commitment = KzgSettings::ethereum()
        .blob_to_kzg_commitment(&blob)
        .expect("canonical blob");
    assert_eq!(hex::encode(commitment), GOLDEN_COMMITMENT_HEX);

    let engine = KzgEngine::new();
    let out = engine.commit_blobs(&blob).expect("one canonical blob");
    assert_eq!(hex::encode(out), GOLDEN_COMMITMENT_HEX);
}
