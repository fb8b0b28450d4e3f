//! Every EIP-4844 consensus-spec vector in `../shared/vectors/eip4844` (c-kzg-4844's test
//! set; provenance in its README) through the same runner `nilstore kzg vector` uses:
//! valid cases reproduce the output byte for byte, `output: null` cases are rejected.

use std::path::{Path, PathBuf};

use nilstore_client::vectors::{run_file, FUNCTIONS};
use wasm_core::kzg::KzgSettings;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/eip4844")
}

#[test]
fn every_vector_case() {
    let settings = KzgSettings::ethereum();
    let mut total = 0;
    for function in FUNCTIONS {
        let dir = root().join(function).join("kzg-mainnet");
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        assert!(!cases.is_empty(), "no cases for {function}");
        for case in cases {
            let text = std::fs::read_to_string(case.join("data.yaml")).unwrap();
            let (got, want) = run_file(settings, function, &text).unwrap();
            assert_eq!(got, want, "{}", case.display());
            total += 1;
        }
    }
    // 11 + 52 + 15 + 122 + 29 + 24 cases in the pinned set.
    assert_eq!(total, 253);
}

#[test]
fn embedded_setup_is_the_pinned_ceremony_file() {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP.as_bytes());
    assert_eq!(
        hex::encode(digest),
        "d39b9f2d047cc9dca2de58f264b6a09448ccd34db967881a6713eacacf0f26b7"
    );
    let shared = std::fs::read(root().join("trusted_setup.txt")).unwrap();
    assert_eq!(shared, wasm_core::kzg::ETHEREUM_TRUSTED_SETUP.as_bytes());
}

#[test]
fn full_validation_loader_accepts_the_setup() {
    let s = KzgSettings::from_text(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP).unwrap();
    assert_eq!(
        s.g1_lagrange_brp(),
        KzgSettings::ethereum().g1_lagrange_brp()
    );
}
