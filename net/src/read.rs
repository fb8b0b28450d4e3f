//! The reader's checks (browser and native): a blob against its leaf, and fraud evidence
//! (SPEC §7) when a provider signed bytes that do not match.

use chain_light::bytes::{Blob, G1Bytes, Sig65, H256};
use chain_light::tx::FraudEvidence;
use wasm_core::kzg::KzgSettings;
use wasm_core::merkle::{Leaf as WLeaf, MerkleTree};

use crate::proto::Leaf;

/// Why evidence could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    /// The leaf index is outside the MDU's leaves.
    #[error("leaf {0} outside the MDU")]
    NoLeaf(u32),
    /// The MDU index is outside the manifest.
    #[error("MDU {0} outside the manifest")]
    NoMdu(u32),
    /// The bytes match the leaf: there is no fraud.
    #[error("the bytes match the leaf")]
    Honest,
    /// The manifest could not be built.
    #[error("manifest: {0}")]
    Manifest(String),
}

/// Whether `bytes` are exactly the blob of leaf `index`.
pub fn blob_matches(leaves: &[Leaf], index: u32, bytes: &[u8]) -> bool {
    leaves
        .get(index as usize)
        .is_some_and(|l| l.blake3.0 == *blake3::hash(bytes).as_bytes())
}

/// The `mdu_root_fr` of an MDU's leaves (the manifest's element).
pub fn mdu_root(leaves: &[Leaf]) -> [u8; 32] {
    MerkleTree::new(&leaves.iter().map(|&l| WLeaf::from(l)).collect::<Vec<_>>()).root_fr()
}

/// Fraud evidence: the provider of `slot` signed `served_sig` over `bytes` for leaf
/// `leaf_index` of MDU `mdu`, and the bytes do not hash to the leaf. `mdu_leaves` are the
/// MDU's leaves and `mdu_roots` every MDU's root in order (the committed manifest).
#[allow(clippy::too_many_arguments)]
pub fn fraud_evidence(
    kzg: &KzgSettings,
    deal: u64,
    slot: u32,
    mdu: u32,
    leaf_index: u32,
    mdu_leaves: &[Leaf],
    mdu_roots: &[[u8; 32]],
    bytes: &[u8],
    served_sig: Sig65,
) -> Result<FraudEvidence, EvidenceError> {
    let leaf = mdu_leaves
        .get(leaf_index as usize)
        .ok_or(EvidenceError::NoLeaf(leaf_index))?;
    if blob_matches(mdu_leaves, leaf_index, bytes) {
        return Err(EvidenceError::Honest);
    }
    let root = *mdu_roots
        .get(mdu as usize)
        .ok_or(EvidenceError::NoMdu(mdu))?;
    let tree = MerkleTree::new(
        &mdu_leaves
            .iter()
            .map(|&l| WLeaf::from(l))
            .collect::<Vec<_>>(),
    );
    let path = tree
        .path(leaf_index as usize)
        .ok_or(EvidenceError::NoLeaf(leaf_index))?;
    let manifest = wasm_core::slab::manifest_polynomial(mdu_roots)
        .map_err(|e| EvidenceError::Manifest(e.to_string()))?;
    let z = *kzg
        .roots_brp()
        .get(mdu as usize)
        .ok_or(EvidenceError::NoMdu(mdu))?;
    let (proof, _) = kzg.proof_at(&manifest, &z);
    Ok(FraudEvidence {
        deal,
        slot,
        mdu,
        leaf_index,
        leaf_commitment: leaf.commitment,
        leaf_blake3: leaf.blake3,
        path: path.into_iter().map(H256).collect(),
        mdu_root: H256(root),
        manifest_proof: G1Bytes(proof.to_compressed()),
        bytes: Blob(bytes.to_vec()),
        served_sig,
    })
}
