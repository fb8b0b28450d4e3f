//! wasm-core in headless Chromium (main thread): the golden commitment, EIP-4844 vectors,
//! start-up from an MSM table cache (timed), and the [`KzgEngine`] JavaScript API.
//!
//! Run with `scripts/test.sh` (tier e) or
//! `cargo test -p wasm-core --target wasm32-unknown-unknown --no-default-features -- --nocapture`
//! with `scripts/env.sh` sourced; `--nocapture` shows the timings.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{golden_blob, GOLDEN_COMMITMENT_HEX};
use serde_yaml::Value;
use wasm_bindgen::{JsCast, JsError, JsValue};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_core::bindings::{BindingError, CommitBlobsError, KzgEngine};
use wasm_core::constants::{BYTES_PER_BLOB, BYTES_PER_COMMITMENT, BYTES_PER_FIELD_ELEMENT};
use wasm_core::kzg::{CommitmentBytes, KzgError, KzgSettings, Polynomial, ScalarBytes, SetupError};
use wasm_core::msm::{CacheError, FixedBaseMsm, DEFAULT_WINDOW_BITS};

wasm_bindgen_test_configure!(run_in_browser);

/// Compressed G1 identity: the commitment of the zero blob.
const IDENTITY_HEX: &str = "c00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// `performance.now()` in milliseconds (window or worker global).
fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .expect("every browser global has `performance`")
        .unchecked_into::<web_sys::Performance>()
        .now()
}

/// The message of the `Error` a binding hands to JavaScript.
fn js_message(e: JsError) -> String {
    JsValue::from(e)
        .unchecked_into::<js_sys::Error>()
        .message()
        .into()
}

#[wasm_bindgen_test]
fn golden_blob_commitment_matches_native() {
    let settings = KzgSettings::ethereum();
    let blob = golden_blob();
    let poly = Polynomial::from_blob(&blob).expect("canonical blob");

    // A fresh table build (KzgSettings::ethereum() may already hold tables from an
    // earlier test in this page).
    let t0 = now_ms();
    let fresh = FixedBaseMsm::new(settings.g1_lagrange_brp(), DEFAULT_WINDOW_BITS);
    let t1 = now_ms();
    console_log!(
        "[timing] MSM tables built from the setup points: {:.1} ms",
        t1 - t0
    );
    assert_eq!(
        hex::encode(fresh.msm(&poly.0).to_compressed()),
        GOLDEN_COMMITMENT_HEX
    );

    settings.tables();
    // Median of several warm commitments (one sample swings with the host's load).
    let mut times = Vec::new();
    for _ in 0..7 {
        let t2 = now_ms();
        let commitment = settings
            .blob_to_kzg_commitment(&blob)
            .expect("canonical blob");
        times.push(now_ms() - t2);
        assert_eq!(hex::encode(commitment), GOLDEN_COMMITMENT_HEX);
    }
    times.sort_by(f64::total_cmp);
    console_log!(
        "[timing] one blob commitment (blob_to_kzg_commitment), median of {}: {:.1} ms (min {:.1} ms)",
        times.len(),
        times[times.len() / 2],
        times[0]
    );
}

/// One `verify_kzg_proof` case of the consensus-spec vectors (tests/data/README.md).
fn verify_case(yaml: &str) -> (Result<bool, KzgError>, Value) {
    let case: Value = serde_yaml::from_str(yaml).expect("vector is YAML");
    let input = |k: &str| -> Vec<u8> {
        let h = case["input"][k].as_str().expect("hex string");
        hex::decode(h.trim_start_matches("0x")).expect("hex")
    };
    let point = |k: &str| -> CommitmentBytes { input(k).try_into().expect("48-byte point") };
    let scalar = |k: &str| -> ScalarBytes { input(k).try_into().expect("32-byte scalar") };
    let got = KzgSettings::ethereum().verify_kzg_proof(
        &point("commitment"),
        &scalar("z"),
        &scalar("y"),
        &point("proof"),
    );
    (got, case["output"].clone())
}

#[wasm_bindgen_test]
fn verify_kzg_proof_vectors() {
    let (got, want) = verify_case(include_str!(
        "data/verify_kzg_proof_case_correct_proof_2_0.yaml"
    ));
    assert_eq!(want, Value::Bool(true));
    assert_eq!(got, Ok(true));

    let (got, want) = verify_case(include_str!(
        "data/verify_kzg_proof_case_incorrect_proof_2_0.yaml"
    ));
    assert_eq!(want, Value::Bool(false));
    assert_eq!(got, Ok(false));

    let (got, want) = verify_case(include_str!("data/verify_kzg_proof_case_invalid_y_0.yaml"));
    assert_eq!(want, Value::Null, "output: null means must reject");
    assert_eq!(got, Err(KzgError::NonCanonicalScalar { what: "y" }));
}

#[wasm_bindgen_test]
fn setup_loads_from_msm_cache() {
    let cache = KzgSettings::ethereum().msm_cache_bytes();
    let t0 = now_ms();
    let loaded = KzgSettings::ethereum_from_cache(&cache).expect("own cache loads");
    let t1 = now_ms();
    let commitment = loaded
        .blob_to_kzg_commitment(&golden_blob())
        .expect("canonical blob");
    let t2 = now_ms();
    console_log!(
        "[timing] setup loaded from a {:.1} MiB MSM cache: {:.1} ms",
        cache.len() as f64 / (1024.0 * 1024.0),
        t1 - t0
    );
    console_log!(
        "[timing] one blob commitment with the cached tables: {:.1} ms",
        t2 - t1
    );
    assert_eq!(hex::encode(commitment), GOLDEN_COMMITMENT_HEX);

    let mut corrupt = cache;
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert_eq!(
        KzgSettings::ethereum_from_cache(&corrupt).map(|_| ()),
        Err(SetupError::Cache(CacheError::Corrupt))
    );
}

#[wasm_bindgen_test]
fn engine_commits_and_verifies_blobs() {
    let engine = KzgEngine::new();
    let golden = golden_blob();
    let mut blobs = golden.clone();
    blobs.resize(2 * BYTES_PER_BLOB, 0); // golden blob, then the zero blob
    let out = engine.commit_blobs(&blobs).expect("two canonical blobs");
    assert_eq!(out.len(), 2 * BYTES_PER_COMMITMENT);
    let (c_golden, c_zero) = out.split_at(BYTES_PER_COMMITMENT);
    assert_eq!(hex::encode(c_golden), GOLDEN_COMMITMENT_HEX);
    assert_eq!(hex::encode(c_zero), IDENTITY_HEX);
    assert!(engine.commit_blobs(&[]).expect("no blobs").is_empty());

    let proof = engine
        .compute_blob_kzg_proof(&golden, c_golden)
        .expect("valid inputs");
    assert!(engine
        .verify_blob_kzg_proof(&golden, c_golden, &proof)
        .expect("well-formed"));
    let zero_proof = engine
        .compute_blob_kzg_proof(&blobs[BYTES_PER_BLOB..], c_zero)
        .expect("valid inputs");
    assert!(!engine
        .verify_blob_kzg_proof(&golden, c_golden, &zero_proof)
        .expect("well-formed"));

    let reloaded = KzgEngine::from_cache(&engine.cache_bytes()).expect("own cache loads");
    assert_eq!(
        reloaded.commit_blobs(&blobs).expect("two canonical blobs"),
        out
    );
}

#[wasm_bindgen_test]
fn engine_errors_carry_the_typed_display_text() {
    let engine = KzgEngine::new();
    let ragged = vec![0u8; BYTES_PER_BLOB + 1];
    let typed = BindingError::RaggedBlobs {
        got: ragged.len(),
        blob: BYTES_PER_BLOB,
    };
    assert_eq!(
        engine.commit_blobs_typed(&ragged),
        Err(CommitBlobsError::Shape(typed.clone()))
    );
    let err = engine.commit_blobs(&ragged).expect_err("ragged input");
    assert_eq!(js_message(err), typed.to_string());

    let mut bad = vec![0u8; BYTES_PER_BLOB];
    bad[..BYTES_PER_FIELD_ELEMENT].fill(0xff); // element 0 ≥ r
    let err = engine
        .commit_blobs(&bad)
        .expect_err("non-canonical element");
    assert_eq!(
        js_message(err),
        KzgError::NonCanonicalElement { index: 0 }.to_string()
    );

    let err = KzgEngine::from_cache(&[1, 2, 3])
        .map(|_| ())
        .expect_err("not a cache");
    assert_eq!(js_message(err), CacheError::Malformed.to_string());

    let blob = golden_blob();
    let err = engine
        .verify_blob_kzg_proof(
            &blob,
            &[0u8; BYTES_PER_COMMITMENT - 1],
            &[0u8; BYTES_PER_COMMITMENT],
        )
        .expect_err("short commitment");
    assert_eq!(
        js_message(err),
        BindingError::Length {
            what: "commitment",
            got: BYTES_PER_COMMITMENT - 1,
            expected: BYTES_PER_COMMITMENT
        }
        .to_string()
    );
}

/// The two base-field multipliers side by side in one run (blst's portable C with 32-bit
/// limbs, and our 30-bit-limb Montgomery product, which the MSM uses on wasm32). Both
/// chains must also agree: same inputs, same product.
#[wasm_bindgen_test]
fn field_multipliers_side_by_side() {
    use wasm_core::curve::bench_support::{
        mul_chain_blst, mul_chain_f30, mul_chain_wide30, sub_chain_f30,
    };
    const N: usize = 200_000;
    assert_eq!(mul_chain_blst(1000), mul_chain_wide30(1000));
    let t0 = now_ms();
    let a = mul_chain_blst(N);
    let t1 = now_ms();
    let b = mul_chain_wide30(N);
    let t2 = now_ms();
    assert_eq!(a, b);
    let c = mul_chain_f30(N);
    let t3 = now_ms();
    assert_eq!(a, c);
    let _ = sub_chain_f30(N);
    let t4 = now_ms();
    console_log!(
        "[timing] Fp multiplication: blst (C, 32-bit limbs) {:.1} ns, ours (30-bit limbs) {:.1} ns, \
         ours kept in 30-bit limbs {:.1} ns; subtraction kept in 30-bit limbs {:.1} ns",
        (t1 - t0) * 1e6 / N as f64,
        (t2 - t1) * 1e6 / N as f64,
        (t3 - t2) * 1e6 / N as f64,
        (t4 - t3) * 1e6 / N as f64
    );
}
