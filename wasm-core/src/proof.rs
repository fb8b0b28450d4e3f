//! Storage proofs: the triple proof, challenge derivation and fraud evidence
//! (docs/spec.md §6).
//!
//! ```text
//!  manifest_root ──KZG open at ω^{bitrev(m)}──► mdu_root_fr(m)
//!  mdu_root_fr   ──Merkle path (leaf ℓ)─────► leaf = (commitment, blake3)
//!  commitment    ──KZG open at z────────────► y = blob(z)
//! ```
//! Verification is two KZG openings and a Merkle path; many proofs share one random
//! linear combination ([`verify_batch`]).

use sha2::{Digest, Sha256};

use crate::constants::{BYTES_PER_COMMITMENT, BYTES_PER_FIELD_ELEMENT, BYTES_PER_PROOF};
use crate::curve::{Fr, G1Affine, PointError};
use crate::kzg::{KzgSettings, Opening, Polynomial};
use crate::merkle::{self, Hash, Leaf, MerkleTree, MAX_DEPTH};

const CHALLENGE_TAG: &[u8] = b"nilstore/chal/v1";

/// Errors of proof decoding, construction and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The encoding is too short, too long, or has an impossible length field.
    #[error("malformed proof encoding: {0}")]
    Malformed(&'static str),
    /// A point failed to decode.
    #[error("{what}: {source}")]
    BadPoint {
        /// Which point.
        what: &'static str,
        /// Why.
        source: PointError,
    },
    /// A scalar was not canonical.
    #[error("{0} is not a canonical field element")]
    NonCanonical(&'static str),
    /// An index is outside the deal.
    #[error("{what} index {got} out of range (< {limit})")]
    OutOfRange {
        /// What.
        what: &'static str,
        /// Given.
        got: u64,
        /// Bound.
        limit: u64,
    },
    /// The Merkle path does not lead to the MDU root.
    #[error("Merkle path does not match the MDU root")]
    BadPath,
    /// A KZG opening failed.
    #[error("KZG opening failed")]
    BadOpening,
}

/// Proof that element `z` of leaf `leaf_index` of MDU `mdu` evaluates to `y`, against the
/// manifest root alone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TripleProof {
    /// MDU index in the slab.
    pub mdu: u32,
    /// `mdu_root_fr` of that MDU.
    pub mdu_root: [u8; 32],
    /// KZG proof of the manifest at element `mdu`.
    pub manifest_proof: [u8; BYTES_PER_PROOF],
    /// Leaf index in the MDU tree.
    pub leaf_index: u32,
    /// The leaf (commitment and blake3).
    pub leaf: Leaf,
    /// Sibling path, bottom up.
    pub path: Vec<Hash>,
    /// Evaluation point.
    pub z: [u8; 32],
    /// Claimed value of the blob at `z`.
    pub y: [u8; 32],
    /// KZG proof of the blob at `z`.
    pub blob_proof: [u8; BYTES_PER_PROOF],
}

/// Fixed part of the encoding: everything but the path.
const FIXED_LEN: usize =
    4 + 32 + BYTES_PER_PROOF + 4 + BYTES_PER_COMMITMENT + 32 + 1 + 32 + 32 + BYTES_PER_PROOF;

impl TripleProof {
    /// Serialises: `mdu u32 ‖ mdu_root ‖ manifest_proof ‖ leaf_index u32 ‖ commitment ‖
    /// blake3 ‖ path_len u8 ‖ path ‖ z ‖ y ‖ blob_proof` (integers big-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 32 * self.path.len());
        out.extend_from_slice(&self.mdu.to_be_bytes());
        out.extend_from_slice(&self.mdu_root);
        out.extend_from_slice(&self.manifest_proof);
        out.extend_from_slice(&self.leaf_index.to_be_bytes());
        out.extend_from_slice(&self.leaf.commitment);
        out.extend_from_slice(&self.leaf.blake3);
        out.push(self.path.len() as u8);
        for p in &self.path {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.z);
        out.extend_from_slice(&self.y);
        out.extend_from_slice(&self.blob_proof);
        out
    }

    /// Parses [`Self::to_bytes`]; checks lengths only (points are checked on verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<TripleProof, ProofError> {
        let mut r = Reader(bytes);
        let mdu = u32::from_be_bytes(r.take()?);
        let mdu_root = r.take()?;
        let manifest_proof = r.take()?;
        let leaf_index = u32::from_be_bytes(r.take()?);
        let leaf = Leaf {
            commitment: r.take()?,
            blake3: r.take()?,
        };
        let [n] = r.take::<1>()?;
        if n as usize > MAX_DEPTH {
            return Err(ProofError::Malformed("path too deep"));
        }
        let path = (0..n).map(|_| r.take()).collect::<Result<Vec<Hash>, _>>()?;
        let p = TripleProof {
            mdu,
            mdu_root,
            manifest_proof,
            leaf_index,
            leaf,
            path,
            z: r.take()?,
            y: r.take()?,
            blob_proof: r.take()?,
        };
        if !r.0.is_empty() {
            return Err(ProofError::Malformed("trailing bytes"));
        }
        Ok(p)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProofError> {
        if self.0.len() < N {
            return Err(ProofError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
}

/// A storage challenge: which MDU, leaf and point a provider must open (SPEC §6.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Challenge {
    /// MDU index in the slab (a user MDU).
    pub mdu: u64,
    /// Row within the MDU.
    pub row: u64,
    /// Leaf index: `slot · rows + row`.
    pub leaf: u64,
    /// Evaluation point.
    pub z: Fr,
}

/// Inputs to challenge derivation.
#[derive(Clone, Copy, Debug)]
pub struct ChallengeInput<'a> {
    /// The epoch beacon `R_e`.
    pub beacon: &'a [u8; 32],
    /// Deal id.
    pub deal_id: u64,
    /// Content generation.
    pub generation: u64,
    /// Slot index.
    pub slot: u32,
    /// Ordinal of the challenge in the epoch.
    pub ordinal: u32,
    /// Witness MDUs W.
    pub witness_mdus: u64,
    /// User MDUs in the deal.
    pub user_mdus: u64,
    /// Rows per MDU (64 / K).
    pub rows: u64,
}

/// Derives a challenge as a pure function (SPEC §6.2):
/// `seed = H("nilstore/chal/v1" ‖ R_e ‖ deal_id ‖ generation ‖ slot ‖ i)` (integers
/// big-endian: u64, u64, u32, u32); `m = W + 1 + seed[0..8] mod user_mdus`;
/// `row = seed[8..16] mod rows`; `z = H(seed ‖ "z") mod r`.
pub fn derive_challenge(c: &ChallengeInput<'_>) -> Result<Challenge, ProofError> {
    if c.user_mdus == 0 || c.rows == 0 {
        return Err(ProofError::OutOfRange {
            what: "user MDUs / rows",
            got: 0,
            limit: 1,
        });
    }
    let mut h = Sha256::new();
    h.update(CHALLENGE_TAG);
    h.update(c.beacon);
    h.update(c.deal_id.to_be_bytes());
    h.update(c.generation.to_be_bytes());
    h.update(c.slot.to_be_bytes());
    h.update(c.ordinal.to_be_bytes());
    let seed: [u8; 32] = h.finalize().into();
    let word = |k: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&seed[8 * k..8 * k + 8]);
        u64::from_be_bytes(b)
    };
    let mdu = c.witness_mdus + 1 + word(0) % c.user_mdus;
    let row = word(1) % c.rows;
    let mut hz = Sha256::new();
    hz.update(seed);
    hz.update(b"z");
    Ok(Challenge {
        mdu,
        row,
        leaf: c.slot as u64 * c.rows + row,
        z: Fr::from_bytes_be_reduced(&hz.finalize()),
    })
}

/// Builds a triple proof (prover side): the manifest, the MDU's leaves, and the blob.
pub fn prove(
    settings: &KzgSettings,
    manifest: &Polynomial,
    mdu: u32,
    leaves: &[Leaf],
    leaf_index: u32,
    blob: &Polynomial,
    z: &Fr,
) -> Result<TripleProof, ProofError> {
    let limit = manifest.0.len() as u64;
    let m = mdu as usize;
    let zm = *settings.roots_brp().get(m).ok_or(ProofError::OutOfRange {
        what: "MDU",
        got: mdu as u64,
        limit,
    })?;
    let tree = MerkleTree::new(leaves);
    let path = tree
        .path(leaf_index as usize)
        .ok_or(ProofError::OutOfRange {
            what: "leaf",
            got: leaf_index as u64,
            limit: leaves.len() as u64,
        })?;
    let (manifest_proof, root) = settings.proof_at(manifest, &zm);
    if root.to_bytes_be() != tree.root_fr() {
        return Err(ProofError::BadPath);
    }
    let (blob_proof, y) = settings.proof_at(blob, z);
    Ok(TripleProof {
        mdu,
        mdu_root: tree.root_fr(),
        manifest_proof: manifest_proof.to_compressed(),
        leaf_index,
        leaf: leaves[leaf_index as usize],
        path,
        z: z.to_bytes_be(),
        y: y.to_bytes_be(),
        blob_proof: blob_proof.to_compressed(),
    })
}

fn point(b: &[u8; 48], what: &'static str) -> Result<crate::curve::G1, ProofError> {
    G1Affine::from_compressed(b)
        .map(|p| p.to_projective())
        .map_err(|source| ProofError::BadPoint { what, source })
}

fn scalar(b: &[u8; BYTES_PER_FIELD_ELEMENT], what: &'static str) -> Result<Fr, ProofError> {
    Fr::from_bytes_be(b).map_err(|_| ProofError::NonCanonical(what))
}

/// Phases 1–2 of verification: shape, decoding, and the Merkle path; returns the two KZG
/// openings still to check.
fn decode_and_check_path(
    settings: &KzgSettings,
    manifest_root: &[u8; 48],
    p: &TripleProof,
) -> Result<[Opening; 2], ProofError> {
    // 1. Shape.
    let zm = *settings
        .roots_brp()
        .get(p.mdu as usize)
        .ok_or(ProofError::OutOfRange {
            what: "MDU",
            got: p.mdu as u64,
            limit: settings.roots_brp().len() as u64,
        })?;
    // 2. Bytes to points and scalars; the Merkle path.
    let manifest = point(manifest_root, "manifest root")?;
    let root = scalar(&p.mdu_root, "MDU root")?;
    if !merkle::verify_path_fr(&p.leaf, p.leaf_index as usize, &p.path, &p.mdu_root) {
        return Err(ProofError::BadPath);
    }
    Ok([
        Opening {
            c: manifest,
            z: zm,
            y: root,
            pi: point(&p.manifest_proof, "manifest proof")?,
        },
        Opening {
            c: point(&p.leaf.commitment, "leaf commitment")?,
            z: scalar(&p.z, "z")?,
            y: scalar(&p.y, "y")?,
            pi: point(&p.blob_proof, "blob proof")?,
        },
    ])
}

/// Verifies one triple proof against `manifest_root` (docs/spec.md §6.1).
pub fn verify(
    settings: &KzgSettings,
    manifest_root: &[u8; 48],
    p: &TripleProof,
) -> Result<(), ProofError> {
    let [a, b] = decode_and_check_path(settings, manifest_root, p)?;
    // 3. Pairings.
    if settings.check_opening(&a.c, &a.z, &a.y, &a.pi)
        && settings.check_opening(&b.c, &b.z, &b.y, &b.pi)
    {
        Ok(())
    } else {
        Err(ProofError::BadOpening)
    }
}

/// Verifies many proofs (each with its deal's manifest root) with one random linear
/// combination over all 2n openings: two pairings in total. On failure, callers that need
/// to know *which* proof failed fall back to [`verify`] one by one.
pub fn verify_batch(
    settings: &KzgSettings,
    items: &[(&[u8; 48], &TripleProof)],
) -> Result<(), ProofError> {
    let mut openings = Vec::with_capacity(2 * items.len());
    for (root, p) in items {
        openings.extend(decode_and_check_path(settings, root, p)?);
    }
    if settings.check_openings_batch(&openings) {
        Ok(())
    } else {
        Err(ProofError::BadOpening)
    }
}

/// Checks that the manifest committed to by `manifest_root` has element `mdu` equal to
/// `mdu_root` (phase 1 of a triple proof on its own: what fraud evidence needs to tie a leaf
/// to a deal).
pub fn verify_manifest_opening(
    settings: &KzgSettings,
    manifest_root: &[u8; 48],
    mdu: u32,
    mdu_root: &[u8; 32],
    proof: &[u8; BYTES_PER_PROOF],
) -> Result<(), ProofError> {
    let zm = *settings
        .roots_brp()
        .get(mdu as usize)
        .ok_or(ProofError::OutOfRange {
            what: "MDU",
            got: mdu as u64,
            limit: settings.roots_brp().len() as u64,
        })?;
    let c = point(manifest_root, "manifest root")?;
    let y = scalar(mdu_root, "MDU root")?;
    let pi = point(proof, "manifest proof")?;
    if settings.check_opening(&c, &zm, &y, &pi) {
        Ok(())
    } else {
        Err(ProofError::BadOpening)
    }
}

/// The verdict on fraud evidence: bytes a provider served for a leaf.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FraudVerdict {
    /// The leaf is proven in the MDU and the bytes do not hash to it: fraud.
    Fraud,
    /// The bytes match the leaf: no fraud.
    Honest,
    /// The leaf is not proven in the MDU: the evidence proves nothing.
    Unproven,
}

/// Checks fraud evidence with hashes alone (SPEC §7): `bytes` served for leaf `index` of
/// the MDU with `mdu_root_fr`, with the leaf and its sibling path.
pub fn check_fraud(
    bytes: &[u8],
    leaf: &Leaf,
    index: usize,
    path: &[Hash],
    mdu_root_fr: &[u8; 32],
) -> FraudVerdict {
    if !merkle::verify_path_fr(leaf, index, path, mdu_root_fr) {
        FraudVerdict::Unproven
    } else if blake3::hash(bytes).as_bytes() == &leaf.blake3 {
        FraudVerdict::Honest
    } else {
        FraudVerdict::Fraud
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{BYTES_PER_BLOB, FIELD_ELEMENTS_PER_BLOB};

    struct World {
        manifest: Polynomial,
        manifest_root: [u8; 48],
        leaves: Vec<Leaf>,
        blobs: Vec<Polynomial>,
    }

    fn world(seed: u8) -> World {
        let s = KzgSettings::ethereum();
        let blobs: Vec<Polynomial> = (0..3u64)
            .map(|i| {
                let mut v = vec![Fr::ZERO; FIELD_ELEMENTS_PER_BLOB];
                for (j, e) in v.iter_mut().enumerate().take(50) {
                    *e = Fr::from_u64(seed as u64 * 1000 + i * 100 + j as u64);
                }
                Polynomial(v)
            })
            .collect();
        let leaves: Vec<Leaf> = blobs
            .iter()
            .map(|b| Leaf::new(s.commit_poly(b).to_compressed(), &b.to_blob()))
            .collect();
        let root = MerkleTree::new(&leaves).root_fr();
        let mut m = vec![Fr::ZERO; FIELD_ELEMENTS_PER_BLOB];
        m[5] = Fr::from_bytes_be(&root).unwrap();
        let manifest = Polynomial(m);
        let manifest_root = s.commit_poly(&manifest).to_compressed();
        World {
            manifest,
            manifest_root,
            leaves,
            blobs,
        }
    }

    #[test]
    fn prove_verify_roundtrip_and_batch() {
        let s = KzgSettings::ethereum();
        let w = world(1);
        let z = Fr::from_u64(123_456_789);
        let p = prove(s, &w.manifest, 5, &w.leaves, 2, &w.blobs[2], &z).unwrap();
        assert_eq!(verify(s, &w.manifest_root, &p), Ok(()));
        let back = TripleProof::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(back, p);
        let p0 = prove(
            s,
            &w.manifest,
            5,
            &w.leaves,
            0,
            &w.blobs[0],
            &Fr::from_u64(9),
        )
        .unwrap();
        assert_eq!(
            verify_batch(s, &[(&w.manifest_root, &p), (&w.manifest_root, &p0)]),
            Ok(())
        );

        let mut bad = p.clone();
        bad.y = Fr::from_u64(1).to_bytes_be();
        assert_eq!(
            verify(s, &w.manifest_root, &bad),
            Err(ProofError::BadOpening)
        );
        assert_eq!(
            verify_batch(s, &[(&w.manifest_root, &bad), (&w.manifest_root, &p0)]),
            Err(ProofError::BadOpening)
        );
        let mut bad = p.clone();
        bad.leaf_index = 1;
        assert_eq!(verify(s, &w.manifest_root, &bad), Err(ProofError::BadPath));
        let mut bad = p.clone();
        bad.mdu = 6;
        assert_eq!(
            verify(s, &w.manifest_root, &bad),
            Err(ProofError::BadOpening)
        );
        // Phase 1 alone: the manifest opening that fraud evidence uses.
        assert_eq!(
            verify_manifest_opening(s, &w.manifest_root, 5, &p.mdu_root, &p.manifest_proof),
            Ok(())
        );
        assert_eq!(
            verify_manifest_opening(s, &w.manifest_root, 4, &p.mdu_root, &p.manifest_proof),
            Err(ProofError::BadOpening)
        );
        assert!(matches!(
            verify_manifest_opening(s, &w.manifest_root, 4096, &p.mdu_root, &p.manifest_proof),
            Err(ProofError::OutOfRange { .. })
        ));
        // Another deal's manifest root does not verify this proof.
        let other = world(2);
        assert_eq!(
            verify(s, &other.manifest_root, &p),
            Err(ProofError::BadOpening)
        );
    }

    #[test]
    fn decoding_rejects_garbage() {
        assert!(TripleProof::from_bytes(&[]).is_err());
        let s = KzgSettings::ethereum();
        let w = world(3);
        let p = prove(
            s,
            &w.manifest,
            5,
            &w.leaves,
            1,
            &w.blobs[1],
            &Fr::from_u64(5),
        )
        .unwrap();
        let mut b = p.to_bytes();
        b.push(0);
        assert_eq!(
            TripleProof::from_bytes(&b),
            Err(ProofError::Malformed("trailing bytes"))
        );
        let mut b = p.to_bytes();
        let path_len_at = 4 + 32 + 48 + 4 + 48 + 32;
        b[path_len_at] = 200;
        assert!(TripleProof::from_bytes(&b).is_err());
        let mut bad = p.clone();
        bad.blob_proof = [0xff; 48];
        assert!(matches!(
            verify(s, &w.manifest_root, &bad),
            Err(ProofError::BadPoint { .. })
        ));
    }

    #[test]
    fn challenges_are_deterministic_and_in_range() {
        let beacon = [7u8; 32];
        let input = |ordinal| ChallengeInput {
            beacon: &beacon,
            deal_id: 42,
            generation: 3,
            slot: 5,
            ordinal,
            witness_mdus: 2,
            user_mdus: 10,
            rows: 8,
        };
        let a = derive_challenge(&input(0)).unwrap();
        assert_eq!(a, derive_challenge(&input(0)).unwrap());
        assert_ne!(a, derive_challenge(&input(1)).unwrap());
        for i in 0..200 {
            let c = derive_challenge(&input(i)).unwrap();
            assert!((3..13).contains(&c.mdu));
            assert!(c.row < 8);
            assert_eq!(c.leaf, 5 * 8 + c.row);
        }
        let mut zero = input(0);
        zero.user_mdus = 0;
        assert!(derive_challenge(&zero).is_err());
    }

    #[test]
    fn fraud_evidence() {
        let blob = vec![1u8; BYTES_PER_BLOB];
        let leaves: Vec<Leaf> = (0..4).map(|i| Leaf::new([i; 48], &blob)).collect();
        let t = MerkleTree::new(&leaves);
        let path = t.path(2).unwrap();
        assert_eq!(
            check_fraud(&blob, &leaves[2], 2, &path, &t.root_fr()),
            FraudVerdict::Honest
        );
        let mut served = blob.clone();
        served[7] ^= 1;
        assert_eq!(
            check_fraud(&served, &leaves[2], 2, &path, &t.root_fr()),
            FraudVerdict::Fraud
        );
        assert_eq!(
            check_fraud(&served, &leaves[2], 1, &path, &t.root_fr()),
            FraudVerdict::Unproven
        );
    }
}
