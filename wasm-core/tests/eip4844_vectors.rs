//! Every EIP-4844 consensus-spec vector in `../shared/vectors/eip4844` (c-kzg-4844's test
//! set, provenance in its README): valid cases reproduce the output byte for byte,
//! `output: null` cases are rejected with a typed error.

use std::path::{Path, PathBuf};

use serde_yaml::Value;
use wasm_core::kzg::{KzgError, KzgSettings};

fn vectors_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/eip4844")
}

fn cases(function: &str) -> Vec<(String, Value)> {
    let dir = vectors_root().join(function).join("kzg-mainnet");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(path.join("data.yaml")).unwrap();
            (path.file_name().unwrap().to_string_lossy().into_owned(), serde_yaml::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no vectors for {function}");
    out
}

/// Hex string to bytes; `None` if the hex itself is malformed (then the call must fail).
fn bytes(v: &Value) -> Option<Vec<u8>> {
    hex::decode(v.as_str()?.trim_start_matches("0x")).ok()
}

fn fixed<const N: usize>(v: &Value) -> Option<[u8; N]> {
    bytes(v)?.try_into().ok()
}

fn list(v: &Value) -> Vec<Value> {
    v.as_sequence().cloned().unwrap_or_default()
}

fn hexs(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(b)))
}

/// Runs one case; `None` means the call rejected its input.
fn run(function: &str, input: &Value) -> Option<Value> {
    let s = KzgSettings::ethereum();
    let ok = |r: Result<Value, KzgError>| r.ok();
    match function {
        "blob_to_kzg_commitment" => {
            let blob = bytes(&input["blob"])?;
            ok(s.blob_to_kzg_commitment(&blob).map(|c| hexs(&c)))
        }
        "compute_kzg_proof" => {
            let blob = bytes(&input["blob"])?;
            let z = fixed(&input["z"])?;
            ok(s.compute_kzg_proof(&blob, &z)
                .map(|(p, y)| Value::Sequence(vec![hexs(&p), hexs(&y)])))
        }
        "compute_blob_kzg_proof" => {
            let blob = bytes(&input["blob"])?;
            let c = fixed(&input["commitment"])?;
            ok(s.compute_blob_kzg_proof(&blob, &c).map(|p| hexs(&p)))
        }
        "verify_kzg_proof" => ok(s
            .verify_kzg_proof(
                &fixed(&input["commitment"])?,
                &fixed(&input["z"])?,
                &fixed(&input["y"])?,
                &fixed(&input["proof"])?,
            )
            .map(Value::Bool)),
        "verify_blob_kzg_proof" => ok(s
            .verify_blob_kzg_proof(
                &bytes(&input["blob"])?,
                &fixed(&input["commitment"])?,
                &fixed(&input["proof"])?,
            )
            .map(Value::Bool)),
        "verify_blob_kzg_proof_batch" => {
            let blobs: Vec<Vec<u8>> = list(&input["blobs"]).iter().map(bytes).collect::<Option<_>>()?;
            let cs: Vec<[u8; 48]> = list(&input["commitments"]).iter().map(fixed).collect::<Option<_>>()?;
            let ps: Vec<[u8; 48]> = list(&input["proofs"]).iter().map(fixed).collect::<Option<_>>()?;
            let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
            ok(s.verify_blob_kzg_proof_batch(&refs, &cs, &ps).map(Value::Bool))
        }
        other => panic!("unknown function {other}"),
    }
}

fn check(function: &str) {
    let mut count = 0;
    for (name, case) in cases(function) {
        let got = run(function, &case["input"]);
        let want = &case["output"];
        match (got, want) {
            (None, Value::Null) => {}
            (Some(g), w) => assert_eq!(&g, w, "{function}/{name}"),
            (None, w) => panic!("{function}/{name}: rejected, expected {w:?}"),
        }
        count += 1;
    }
    assert!(count > 0);
}

#[test]
fn blob_to_kzg_commitment() {
    check("blob_to_kzg_commitment");
}

#[test]
fn compute_kzg_proof() {
    check("compute_kzg_proof");
}

#[test]
fn compute_blob_kzg_proof() {
    check("compute_blob_kzg_proof");
}

#[test]
fn verify_kzg_proof() {
    check("verify_kzg_proof");
}

#[test]
fn verify_blob_kzg_proof() {
    check("verify_blob_kzg_proof");
}

#[test]
fn verify_blob_kzg_proof_batch() {
    check("verify_blob_kzg_proof_batch");
}

#[test]
fn embedded_setup_is_the_pinned_ceremony_file() {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP.as_bytes());
    assert_eq!(
        hex::encode(digest),
        "d39b9f2d047cc9dca2de58f264b6a09448ccd34db967881a6713eacacf0f26b7"
    );
}

#[test]
fn full_validation_loader_accepts_the_setup() {
    let s = KzgSettings::from_text(wasm_core::kzg::ETHEREUM_TRUSTED_SETUP).unwrap();
    assert_eq!(s.g1_lagrange_brp(), KzgSettings::ethereum().g1_lagrange_brp());
}
