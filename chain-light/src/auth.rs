//! Authenticated state: a Jellyfish Merkle tree (jmt 0.12, SHA-256) over every record,
//! one version per block height, with inclusion and exclusion proofs.
//!
//! Keys are `tag ‖ encode(key)` ([`crate::state::state_key`]), hashed to the tree's key
//! space with SHA-256; values are the records' canonical encodings.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeWriter};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher, Version};
use serde::{Deserialize, Serialize};

use crate::bytes::H256;

type Sha = sha2::Sha256;

/// The tree's key for a state key.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Sha>(key)
}

/// Errors of the authenticated store and of proof checking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The tree failed (missing node: a version that was never written).
    #[error("state tree: {0}")]
    Tree(String),
    /// The proof does not verify against the root.
    #[error("state proof does not verify: {0}")]
    BadProof(String),
}

/// The node store: every node of every version in memory (the block log rebuilds it).
#[derive(Default)]
struct Nodes {
    nodes: RwLock<HashMap<NodeKey, Node>>,
    values: RwLock<HashMap<KeyHash, BTreeMap<Version, Option<OwnedValue>>>>,
}

impl TreeReader for Nodes {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let g = self
            .nodes
            .read()
            .map_err(|_| anyhow::anyhow!("poisoned node store"))?;
        Ok(g.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let g = self
            .values
            .read()
            .map_err(|_| anyhow::anyhow!("poisoned value store"))?;
        Ok(g.get(&key_hash)
            .and_then(|versions| versions.range(..=max_version).next_back())
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used when restoring a tree from chunks, which this store never does.
        Ok(None)
    }
}

impl TreeWriter for Nodes {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let mut n = self
            .nodes
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned node store"))?;
        for (k, v) in batch.nodes() {
            n.insert(k.clone(), v.clone());
        }
        let mut vals = self
            .values
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned value store"))?;
        for ((version, kh), v) in batch.values() {
            vals.entry(*kh).or_default().insert(*version, v.clone());
        }
        Ok(())
    }
}

/// Tree nodes of a computed but unwritten version.
pub struct Staged(NodeBatch);

/// The store seen through unwritten versions (newest layer wins).
struct Overlay<'a> {
    base: &'a Nodes,
    layers: &'a [&'a Staged],
}

impl TreeReader for Overlay<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        for l in self.layers.iter().rev() {
            if let Some(n) = l.0.nodes().get(node_key) {
                return Ok(Some(n.clone()));
            }
        }
        self.base.get_node_option(node_key)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        for l in self.layers.iter().rev() {
            let hit =
                l.0.values()
                    .iter()
                    .filter(|((v, k), _)| *k == key_hash && *v <= max_version)
                    .max_by_key(|((v, _), _)| *v);
            if let Some((_, v)) = hit {
                return Ok(v.clone());
            }
        }
        self.base.get_value_option(max_version, key_hash)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}

/// The authenticated store.
#[derive(Default)]
pub struct AuthStore {
    nodes: Nodes,
    roots: BTreeMap<Version, H256>,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthStore({} versions)", self.roots.len())
    }
}

impl AuthStore {
    /// Writes a block's changes as `version` (strictly increasing) and returns the new root.
    pub fn commit(
        &mut self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        version: Version,
    ) -> Result<H256, AuthError> {
        let (root, batch) = self.stage(changes, version)?;
        self.write(batch, version, root)?;
        Ok(root)
    }

    /// Computes the root after `changes` as `version` without writing anything.
    pub fn stage(
        &self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        version: Version,
    ) -> Result<(H256, Staged), AuthError> {
        self.stage_on(&[], changes, version)
    }

    /// [`AuthStore::stage`] on top of unwritten versions (`parents`, oldest first): how a
    /// block is executed on a parent that is notarized but not yet final.
    pub fn stage_on(
        &self,
        parents: &[&Staged],
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        version: Version,
    ) -> Result<(H256, Staged), AuthError> {
        if let Some((&last, _)) = self.roots.iter().next_back() {
            if version <= last {
                return Err(AuthError::Tree(format!(
                    "version {version} not after {last}"
                )));
            }
        }
        let set: Vec<(KeyHash, Option<OwnedValue>)> = changes
            .into_iter()
            .map(|(k, v)| (key_hash(&k), v))
            .collect();
        let overlay = Overlay {
            base: &self.nodes,
            layers: parents,
        };
        let tree = JellyfishMerkleTree::<_, Sha>::new(&overlay);
        let (root, batch) = tree
            .put_value_set(set, version)
            .map_err(|e| AuthError::Tree(e.to_string()))?;
        Ok((H256(root.0), Staged(batch.node_batch)))
    }

    /// Writes a staged version.
    pub fn write(&mut self, staged: Staged, version: Version, root: H256) -> Result<(), AuthError> {
        if let Some((&last, _)) = self.roots.iter().next_back() {
            if version <= last {
                return Err(AuthError::Tree(format!(
                    "version {version} not after {last}"
                )));
            }
        }
        self.nodes
            .write_node_batch(&staged.0)
            .map_err(|e| AuthError::Tree(e.to_string()))?;
        self.roots.insert(version, root);
        Ok(())
    }

    /// The root at `version`.
    pub fn root(&self, version: Version) -> Option<H256> {
        self.roots.get(&version).copied()
    }

    /// The latest version written.
    pub fn latest(&self) -> Option<Version> {
        self.roots.keys().next_back().copied()
    }

    /// The value of `key` at `version` with a proof of inclusion (or exclusion).
    pub fn prove(&self, key: &[u8], version: Version) -> Result<StateProof, AuthError> {
        if !self.roots.contains_key(&version) {
            return Err(AuthError::Tree(format!("no state at version {version}")));
        }
        let tree = JellyfishMerkleTree::<_, Sha>::new(&self.nodes);
        let (value, proof) = tree
            .get_with_proof(key_hash(key), version)
            .map_err(|e| AuthError::Tree(e.to_string()))?;
        let proof = postcard::to_allocvec(&proof).map_err(|e| AuthError::Tree(e.to_string()))?;
        Ok(StateProof {
            key: key.to_vec(),
            value,
            proof,
        })
    }
}

/// A value (or its absence) with a sparse Merkle proof against a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateProof {
    /// The state key (`tag ‖ encode(key)`).
    pub key: Vec<u8>,
    /// The record's encoding, or None for a proof of absence.
    pub value: Option<Vec<u8>>,
    /// The encoded `jmt::proof::SparseMerkleProof<Sha256>`.
    pub proof: Vec<u8>,
}

impl StateProof {
    /// Verifies the proof against `root`. Runs anywhere, the browser included.
    pub fn verify(&self, root: &H256) -> Result<(), AuthError> {
        if self.proof.len() > 64 * 1024 {
            return Err(AuthError::BadProof("proof too large".into()));
        }
        let proof: jmt::proof::SparseMerkleProof<Sha> =
            postcard::from_bytes(&self.proof).map_err(|e| AuthError::BadProof(e.to_string()))?;
        proof
            .verify(
                jmt::RootHash(root.0),
                key_hash(&self.key),
                self.value.as_ref(),
            )
            .map_err(|e| AuthError::BadProof(e.to_string()))
    }
}

/// SHA-256 as jmt's hasher (re-exported so callers need not depend on jmt).
pub fn hash(data: &[u8]) -> [u8; 32] {
    let mut h = <Sha as SimpleHasher>::new();
    SimpleHasher::update(&mut h, data);
    SimpleHasher::finalize(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_exclusion_and_history() {
        let mut s = AuthStore::default();
        let r1 = s
            .commit(
                vec![
                    (b"a".to_vec(), Some(b"1".to_vec())),
                    (b"b".to_vec(), Some(b"2".to_vec())),
                ],
                1,
            )
            .unwrap();
        let r2 = s
            .commit(
                vec![(b"a".to_vec(), None), (b"c".to_vec(), Some(b"3".to_vec()))],
                2,
            )
            .unwrap();
        assert_ne!(r1, r2);
        // Old versions stay provable.
        let p = s.prove(b"a", 1).unwrap();
        assert_eq!(p.value.as_deref(), Some(&b"1"[..]));
        p.verify(&r1).unwrap();
        assert!(p.verify(&r2).is_err());
        // Deleted: a proof of absence.
        let p = s.prove(b"a", 2).unwrap();
        assert_eq!(p.value, None);
        p.verify(&r2).unwrap();
        // A forged value fails.
        let mut f = s.prove(b"c", 2).unwrap();
        f.value = Some(b"4".to_vec());
        assert!(f.verify(&r2).is_err());
        // Absent key claimed present fails.
        let mut f = s.prove(b"zz", 2).unwrap();
        f.value = Some(b"x".to_vec());
        assert!(f.verify(&r2).is_err());
        assert!(s.commit(vec![], 2).is_err());
        assert!(s.prove(b"a", 9).is_err());
    }
}
