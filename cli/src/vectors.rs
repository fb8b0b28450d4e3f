//! Runs one EIP-4844 consensus-spec test vector (`data.yaml`) through our KZG and returns
//! the output in the vector's own format: a hex string, a `[proof, y]` pair, a boolean,
//! or `null` when the call rejects its input.

use serde_json::Value;
use serde_yaml::Value as Yaml;
use wasm_core::kzg::KzgSettings;

/// The six EIP-4844 functions a vector can name.
pub const FUNCTIONS: [&str; 6] = [
    "blob_to_kzg_commitment",
    "compute_kzg_proof",
    "compute_blob_kzg_proof",
    "verify_kzg_proof",
    "verify_blob_kzg_proof",
    "verify_blob_kzg_proof_batch",
];

/// Why a vector could not be run at all (as opposed to a rejected input).
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The function name is not one of [`FUNCTIONS`].
    #[error("unknown function {0:?}; expected one of {FUNCTIONS:?}")]
    UnknownFunction(String),
    /// The file is not YAML with an `input` map.
    #[error("not a test vector: {0}")]
    Format(String),
}

fn bytes(v: &Yaml) -> Option<Vec<u8>> {
    hex::decode(v.as_str()?.trim_start_matches("0x")).ok()
}

fn fixed<const N: usize>(v: &Yaml) -> Option<[u8; N]> {
    bytes(v)?.try_into().ok()
}

fn list<const N: usize>(v: &Yaml) -> Option<Vec<[u8; N]>> {
    v.as_sequence()?.iter().map(fixed).collect()
}

fn hexs(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(b)))
}

/// Runs `function` on the `input` of a parsed vector; `Value::Null` when rejected.
pub fn run(settings: &KzgSettings, function: &str, input: &Yaml) -> Result<Value, VectorError> {
    if !FUNCTIONS.contains(&function) {
        return Err(VectorError::UnknownFunction(function.to_string()));
    }
    if !input.is_mapping() {
        return Err(VectorError::Format("missing `input` map".into()));
    }
    Ok(call(settings, function, input).unwrap_or(Value::Null))
}

/// `None` = rejected (malformed hex or lengths count as rejections, as in the vectors).
fn call(s: &KzgSettings, function: &str, input: &Yaml) -> Option<Value> {
    match function {
        "blob_to_kzg_commitment" => s
            .blob_to_kzg_commitment(&bytes(&input["blob"])?)
            .ok()
            .map(|c| hexs(&c)),
        "compute_kzg_proof" => s
            .compute_kzg_proof(&bytes(&input["blob"])?, &fixed(&input["z"])?)
            .ok()
            .map(|(p, y)| Value::Array(vec![hexs(&p), hexs(&y)])),
        "compute_blob_kzg_proof" => s
            .compute_blob_kzg_proof(&bytes(&input["blob"])?, &fixed(&input["commitment"])?)
            .ok()
            .map(|p| hexs(&p)),
        "verify_kzg_proof" => s
            .verify_kzg_proof(
                &fixed(&input["commitment"])?,
                &fixed(&input["z"])?,
                &fixed(&input["y"])?,
                &fixed(&input["proof"])?,
            )
            .ok()
            .map(Value::Bool),
        "verify_blob_kzg_proof" => s
            .verify_blob_kzg_proof(
                &bytes(&input["blob"])?,
                &fixed(&input["commitment"])?,
                &fixed(&input["proof"])?,
            )
            .ok()
            .map(Value::Bool),
        "verify_blob_kzg_proof_batch" => {
            let blobs: Vec<Vec<u8>> = input["blobs"]
                .as_sequence()?
                .iter()
                .map(bytes)
                .collect::<Option<_>>()?;
            let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
            s.verify_blob_kzg_proof_batch(
                &refs,
                &list(&input["commitments"])?,
                &list(&input["proofs"])?,
            )
            .ok()
            .map(Value::Bool)
        }
        _ => None,
    }
}

/// Parses a `data.yaml` and runs it; returns (our output, the vector's expected output).
pub fn run_file(
    settings: &KzgSettings,
    function: &str,
    text: &str,
) -> Result<(Value, Value), VectorError> {
    let doc: Yaml = serde_yaml::from_str(text).map_err(|e| VectorError::Format(e.to_string()))?;
    let got = run(settings, function, &doc["input"])?;
    let want =
        serde_json::to_value(&doc["output"]).map_err(|e| VectorError::Format(e.to_string()))?;
    Ok((got, want))
}
