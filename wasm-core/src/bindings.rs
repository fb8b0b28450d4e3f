//! JavaScript API for Web Workers (wasm32 only): one [`KzgEngine`] per worker holds the
//! Ethereum setup with its fixed-base tables and commits or verifies whole blobs.
//!
//! ```text
//!   main thread                         worker
//!   ───────────                         ──────
//!   cache = OPFS.read() ─── bytes ────▶ engine = cache ? KzgEngine.fromCache(cache)
//!                                                      : new KzgEngine()
//!   blobs (N × 131072 bytes) ─────────▶ engine.commitBlobs(blobs)
//!                         ◀── N × 48 ─┘ (commitments, in blob order)
//! ```
//!
//! Every error reaches JavaScript as an `Error` whose message is the Display text of the
//! typed Rust error ([`BindingError`], [`KzgError`], [`SetupError`](crate::kzg::SetupError)).

use wasm_bindgen::prelude::*;

use crate::constants::{BYTES_PER_BLOB, BYTES_PER_COMMITMENT};
use crate::kzg::{CommitmentBytes, KzgError, KzgSettings, ProofBytes};

/// Shape errors of the byte-level JavaScript API (before any KZG work).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// Concatenated blobs whose length is not a whole number of blobs.
    #[error("{got} bytes are not a whole number of {blob}-byte blobs")]
    RaggedBlobs {
        /// Bytes given.
        got: usize,
        /// Bytes per blob.
        blob: usize,
    },
    /// A fixed-size argument with the wrong length.
    #[error("{what} has {got} bytes, expected {expected}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Bytes given.
        got: usize,
        /// Bytes required.
        expected: usize,
    },
}

/// The settings an engine uses: the process-wide Ethereum setup, or one loaded from a
/// table cache.
enum Settings {
    Shared(&'static KzgSettings),
    Owned(Box<KzgSettings>),
}

/// EIP-4844 KZG with the Ethereum setup and its precomputed MSM tables.
#[wasm_bindgen]
pub struct KzgEngine {
    settings: Settings,
}

fn fixed<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], BindingError> {
    bytes.try_into().map_err(|_| BindingError::Length {
        what,
        got: bytes.len(),
        expected: N,
    })
}

#[wasm_bindgen]
impl KzgEngine {
    /// The embedded Ethereum setup with its tables built now (seconds in a browser; see
    /// [`KzgEngine::from_cache`] for the fast path).
    #[wasm_bindgen(constructor)]
    #[allow(
        clippy::new_without_default,
        reason = "a JS constructor, not a Rust value type"
    )]
    pub fn new() -> KzgEngine {
        let settings = KzgSettings::ethereum();
        settings.tables();
        KzgEngine {
            settings: Settings::Shared(settings),
        }
    }

    /// The Ethereum setup with tables from bytes made by [`KzgEngine::cache_bytes`]
    /// (checked against the setup's fingerprint and a body hash).
    #[wasm_bindgen(js_name = fromCache)]
    pub fn from_cache(bytes: &[u8]) -> Result<KzgEngine, JsError> {
        let settings = KzgSettings::ethereum_from_cache(bytes)?;
        Ok(KzgEngine {
            settings: Settings::Owned(Box::new(settings)),
        })
    }

    fn settings(&self) -> &KzgSettings {
        match &self.settings {
            Settings::Shared(s) => s,
            Settings::Owned(s) => s,
        }
    }

    /// The precomputed tables as cache bytes, to store (e.g. in OPFS) for the next start.
    #[wasm_bindgen(js_name = cacheBytes)]
    pub fn cache_bytes(&self) -> Vec<u8> {
        self.settings().msm_cache_bytes()
    }

    /// Commits N concatenated blobs (N × 131072 bytes) into N × 48 bytes of commitments.
    #[wasm_bindgen(js_name = commitBlobs)]
    pub fn commit_blobs(&self, blobs: &[u8]) -> Result<Vec<u8>, JsError> {
        Ok(self.commit_blobs_typed(blobs)?)
    }

    /// `compute_blob_kzg_proof(blob, commitment)` (EIP-4844): 48 bytes.
    #[wasm_bindgen(js_name = computeBlobKzgProof)]
    pub fn compute_blob_kzg_proof(
        &self,
        blob: &[u8],
        commitment: &[u8],
    ) -> Result<Vec<u8>, JsError> {
        let commitment: CommitmentBytes = fixed(commitment, "commitment")?;
        Ok(self
            .settings()
            .compute_blob_kzg_proof(blob, &commitment)?
            .to_vec())
    }

    /// `verify_blob_kzg_proof(blob, commitment, proof)` (EIP-4844): `false` for a wrong
    /// proof, an error for malformed input.
    #[wasm_bindgen(js_name = verifyBlobKzgProof)]
    pub fn verify_blob_kzg_proof(
        &self,
        blob: &[u8],
        commitment: &[u8],
        proof: &[u8],
    ) -> Result<bool, JsError> {
        let commitment: CommitmentBytes = fixed(commitment, "commitment")?;
        let proof: ProofBytes = fixed(proof, "proof")?;
        Ok(self
            .settings()
            .verify_blob_kzg_proof(blob, &commitment, &proof)?)
    }
}

impl KzgEngine {
    /// [`KzgEngine::commit_blobs`] with the typed error.
    pub fn commit_blobs_typed(&self, blobs: &[u8]) -> Result<Vec<u8>, CommitBlobsError> {
        if !blobs.len().is_multiple_of(BYTES_PER_BLOB) {
            return Err(BindingError::RaggedBlobs {
                got: blobs.len(),
                blob: BYTES_PER_BLOB,
            }
            .into());
        }
        let chunks: Vec<&[u8]> = blobs.chunks_exact(BYTES_PER_BLOB).collect();
        let commitments = self.settings().blobs_to_kzg_commitments(&chunks)?;
        let mut out = Vec::with_capacity(commitments.len() * BYTES_PER_COMMITMENT);
        for c in &commitments {
            out.extend_from_slice(c);
        }
        Ok(out)
    }
}

/// Why [`KzgEngine::commit_blobs_typed`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitBlobsError {
    /// The bytes are not whole blobs.
    #[error(transparent)]
    Shape(#[from] BindingError),
    /// A blob is not canonical.
    #[error(transparent)]
    Kzg(#[from] KzgError),
}
