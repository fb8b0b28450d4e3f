//! The Merkle tree of one MDU (docs/spec.md §3.4).
//!
//! ```text
//!  leaf_hash = H("nilstore/leaf/v1" ‖ commitment(48) ‖ blake3(blob)(32))
//!  node      = H("nilstore/node/v1" ‖ left ‖ right)
//!  padding   = H("nilstore/empty/v1")   up to the next power of two
//!
//!                 root ──► mdu_root_fr = root with byte 0 set to 0 (a canonical Fr)
//!               /      \
//!            n01        n23
//!           /   \      /   \
//!         L0    L1   L2    L3       user MDU: leaf = slot · rows + row
//! ```

use sha2::{Digest, Sha256};

use crate::constants::{BYTES_PER_BLAKE3, BYTES_PER_COMMITMENT, BYTES_PER_HASH};

/// A SHA-256 digest.
pub type Hash = [u8; BYTES_PER_HASH];

const LEAF_TAG: &[u8] = b"nilstore/leaf/v1";
const NODE_TAG: &[u8] = b"nilstore/node/v1";
const EMPTY_TAG: &[u8] = b"nilstore/empty/v1";
/// Deepest tree we accept in a path: 2^16 leaves is far above the 2048 of RS(1, 31).
pub const MAX_DEPTH: usize = 16;

/// What a leaf binds: the blob's KZG commitment and its BLAKE3 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Leaf {
    /// Compressed KZG commitment of the blob.
    pub commitment: [u8; BYTES_PER_COMMITMENT],
    /// BLAKE3 of the encoded blob.
    pub blake3: [u8; BYTES_PER_BLAKE3],
}

impl Leaf {
    /// The leaf for `blob` with `commitment`.
    pub fn new(commitment: [u8; BYTES_PER_COMMITMENT], blob: &[u8]) -> Leaf {
        Leaf {
            commitment,
            blake3: *blake3::hash(blob).as_bytes(),
        }
    }

    /// `H("nilstore/leaf/v1" ‖ commitment ‖ blake3)`.
    pub fn hash(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(LEAF_TAG);
        h.update(self.commitment);
        h.update(self.blake3);
        h.finalize().into()
    }
}

/// `H("nilstore/node/v1" ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(NODE_TAG);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The padding leaf `H("nilstore/empty/v1")`.
pub fn empty_hash() -> Hash {
    Sha256::digest(EMPTY_TAG).into()
}

/// The root as a canonical field element: byte 0 cleared.
pub fn root_to_fr_bytes(root: &Hash) -> [u8; 32] {
    let mut r = *root;
    r[0] = 0;
    r
}

/// A full tree, every level kept (for proofs).
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `levels[0]` are the padded leaf hashes; the last level is the root.
    levels: Vec<Vec<Hash>>,
    leaves: usize,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (at least one).
    pub fn new(leaves: &[Leaf]) -> MerkleTree {
        let mut level: Vec<Hash> = leaves.iter().map(Leaf::hash).collect();
        let width = level.len().max(1).next_power_of_two();
        level.resize(width, empty_hash());
        let mut levels = vec![level];
        while levels.last().map_or(0, Vec::len) > 1 {
            let prev = levels.last().expect("non-empty");
            let next = prev.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
            levels.push(next);
        }
        MerkleTree {
            levels,
            leaves: leaves.len(),
        }
    }

    /// The root.
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// `mdu_root_fr`: the root with byte 0 cleared.
    pub fn root_fr(&self) -> [u8; 32] {
        root_to_fr_bytes(&self.root())
    }

    /// Number of real (unpadded) leaves.
    pub fn len(&self) -> usize {
        self.leaves
    }

    /// Whether the tree has no real leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// The sibling path of leaf `index`, bottom up; `None` if out of range.
    pub fn path(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.leaves {
            return None;
        }
        let mut i = index;
        let mut out = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(level[i ^ 1]);
            i >>= 1;
        }
        Some(out)
    }
}

/// Recomputes the root from a leaf hash, its index and sibling path.
pub fn root_from_path(leaf: &Hash, index: usize, path: &[Hash]) -> Option<Hash> {
    if path.len() > MAX_DEPTH || index >> path.len() != 0 {
        return None;
    }
    let mut acc = *leaf;
    for (depth, sib) in path.iter().enumerate() {
        acc = if index >> depth & 1 == 0 {
            node_hash(&acc, sib)
        } else {
            node_hash(sib, &acc)
        };
    }
    Some(acc)
}

/// Checks a path against an `mdu_root_fr` (byte 0 of the recomputed root is ignored).
pub fn verify_path_fr(leaf: &Leaf, index: usize, path: &[Hash], root_fr: &[u8; 32]) -> bool {
    root_from_path(&leaf.hash(), index, path).is_some_and(|r| root_to_fr_bytes(&r) == *root_fr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Leaf> {
        (0..n)
            .map(|i| Leaf::new([i as u8; 48], &i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn paths_verify_and_tampering_fails() {
        for n in [1, 2, 3, 64, 96, 100] {
            let ls = leaves(n);
            let t = MerkleTree::new(&ls);
            for (i, l) in ls.iter().enumerate() {
                let p = t.path(i).unwrap();
                assert!(verify_path_fr(l, i, &p, &t.root_fr()));
                assert_eq!(root_from_path(&l.hash(), i, &p), Some(t.root()));
                let mut bad = *l;
                bad.blake3[0] ^= 1;
                assert!(!verify_path_fr(&bad, i, &p, &t.root_fr()));
                if n > 1 {
                    assert!(!verify_path_fr(l, i ^ 1, &p, &t.root_fr()));
                }
            }
            assert!(t.path(n).is_none());
        }
    }

    #[test]
    fn padding_is_the_empty_tag() {
        let ls = leaves(3);
        let t = MerkleTree::new(&ls);
        let expect = node_hash(
            &node_hash(&ls[0].hash(), &ls[1].hash()),
            &node_hash(&ls[2].hash(), &empty_hash()),
        );
        assert_eq!(t.root(), expect);
        assert_eq!(t.root_fr()[0], 0);
    }

    #[test]
    fn rejects_oversized_index() {
        assert!(root_from_path(&[0; 32], 4, &[[0; 32]; 2]).is_none());
        assert!(root_from_path(&[0; 32], 0, &[[0; 32]; MAX_DEPTH + 1]).is_none());
    }
}
