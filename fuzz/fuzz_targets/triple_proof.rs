//! Triple-proof decoding and verification (wasm_core::proof, docs/spec.md §6.1).
//!
//! ```text
//!   data: | manifest_root (48) | TripleProof::to_bytes encoding ... |
//! ```
//!
//! Properties: `from_bytes` never panics and an accepted encoding round-trips exactly;
//! `verify` and `verify_batch` on any decoded proof and any 48-byte root return `Ok` or a
//! typed `Err`, never panic, and agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nilstore_fuzz::Input;
use wasm_core::constants::BYTES_PER_COMMITMENT;
use wasm_core::kzg::KzgSettings;
use wasm_core::proof::{verify, verify_batch, TripleProof};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let root: [u8; BYTES_PER_COMMITMENT] = input.take();
    let encoded = input.rest();
    let Ok(proof) = TripleProof::from_bytes(encoded) else {
        return;
    };
    assert_eq!(proof.to_bytes(), encoded, "TripleProof round trip differs");
    let settings = KzgSettings::ethereum();
    let one = verify(settings, &root, &proof);
    let batch = verify_batch(settings, &[(&root, &proof)]);
    assert_eq!(
        one.is_ok(),
        batch.is_ok(),
        "verify {one:?} vs verify_batch {batch:?}"
    );
});
