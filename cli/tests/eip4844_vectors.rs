//! EIP-4844 consensus-spec vectors (c-kzg-4844's test set) through the same runner
//! `nilstore kzg vector` uses: valid cases reproduce the output byte for byte, `output:
//! null` cases are rejected. Every case of the full set where it lies beside the clone
//! (`../shared/vectors/eip4844`), else the vendored subset (`tests/data/eip4844`, with its
//! provenance), so a fresh clone needs nothing beside it.

use std::path::{Path, PathBuf};

use nilstore_cli::vectors::{run_file, FUNCTIONS};
use wasm_core::kzg::KzgSettings;

/// The vector root and the number of cases it holds.
fn root() -> (PathBuf, usize) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/eip4844");
    if full.is_dir() {
        // 11 + 52 + 15 + 122 + 29 + 24 cases in the pinned set.
        (full, 253)
    } else {
        let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eip4844");
        (vendored, 10)
    }
}

#[test]
fn every_vector_case() {
    let settings = KzgSettings::ethereum();
    let (root, expected) = root();
    let mut total = 0;
    for function in FUNCTIONS {
        let dir = root.join(function).join("kzg-mainnet");
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
    assert_eq!(total, expected, "cases under {}", root.display());
}

#[test]
fn embedded_setup_is_the_pinned_ceremony_file() {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP.as_bytes());
    assert_eq!(
        hex::encode(digest),
        "d39b9f2d047cc9dca2de58f264b6a09448ccd34db967881a6713eacacf0f26b7"
    );
    // And byte for byte the vector set's copy, where the full set lies beside the clone.
    let file = root().0.join("trusted_setup.txt");
    if file.exists() {
        let shared = std::fs::read(&file).unwrap();
        assert_eq!(shared, wasm_core::kzg::ETHEREUM_TRUSTED_SETUP.as_bytes());
    }
}

#[test]
fn full_validation_loader_accepts_the_setup() {
    let s = KzgSettings::from_text(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP).unwrap();
    assert_eq!(
        s.g1_lagrange_brp(),
        KzgSettings::ethereum().g1_lagrange_brp()
    );
}
