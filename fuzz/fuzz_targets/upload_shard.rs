//! The provider's check of an uploaded shard before anything is stored
//! (`verify::prepare_upload` and `check_batch`, through `verify_upload`): structure against
//! the deal's shape, BLAKE3 of every blob, parity leaves, and the batched KZG check.
//!
//! Input: `[k][m][witness][mdu][slot][tamper][at: 2 bytes][content...]`. The harness
//! encodes a genuine MDU from the content with the real packer (a metadata MDU when
//! `mdu <= witness`, else a user MDU under RS(k, m)) and uploads slot `slot`'s shard of it,
//! then applies one tamper chosen by the input: a flipped byte in a blob, a commitment or a
//! hash; a missing or extra leaf or blob; a short blob; two blobs swapped; a non-canonical
//! field element; another slot's number. `k` and `m` come from a list of valid profiles
//! unless the top bit of `k` asks for the raw bytes (mostly invalid shapes).
//!
//! Properties: nothing panics; the untampered genuine shard is accepted, with the MDU root
//! the packer computed and exactly its bytes (completeness); an accepted shard — tampered
//! or not — has every blob's BLAKE3 and its naively recomputed KZG commitment equal to its
//! leaf, and a root that is the root of the leaves it carried (soundness).
#![no_main]

use chain_light::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use libfuzzer_sys::fuzz_target;
use nilstore_net::proto::{Leaf, UploadAuth, UploadShard, BLOB_BYTES};
use nilstore_provider::verify::{verify_upload, DealShape};
use wasm_core::constants::BYTES_PER_MDU;
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::merkle::{self, MerkleTree};
use wasm_core::rs::{Code, Profile};

const PROFILES: [(u32, u32); 6] = [(1, 1), (2, 1), (4, 2), (8, 4), (16, 2), (2, 0)];

/// 64 blobs of canonical field elements from `content` (repeated; each element's top byte
/// cleared).
fn mdu_from(content: &[u8]) -> Vec<u8> {
    let mut data = vec![0u8; BYTES_PER_MDU];
    if !content.is_empty() {
        for (i, b) in data.iter_mut().enumerate() {
            *b = if i % 32 == 0 { 0 } else { content[i % content.len()] };
        }
    }
    data
}

fn leaf_of(l: &merkle::Leaf) -> Leaf {
    Leaf {
        commitment: G1Bytes(l.commitment),
        blake3: H256(l.blake3),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, content)) = data.split_first_chunk::<8>() else {
        return;
    };
    let [k, m, witness, mdu, slot, tamper, at0, at1] = *head;
    let at = usize::from(u16::from_be_bytes([at0, at1]));
    let (k, m) = if k & 0x80 != 0 {
        (u32::from(k & 0x7f), u32::from(m))
    } else {
        PROFILES[usize::from(k) % PROFILES.len()]
    };
    let deal = DealShape {
        k,
        m,
        witness_mdus: u64::from(witness % 3),
    };
    let settings = KzgSettings::ethereum();
    let Ok(profile) = Profile::new(k as usize, m as usize) else {
        // No genuine shard for an invalid shape: any upload must be refused.
        let up = shard(u32::from(slot), mdu, vec![], vec![vec![0u8; BLOB_BYTES]]);
        assert!(verify_upload(settings, &up, &deal, &[3u8; 32]).is_err());
        return;
    };
    let bytes = mdu_from(content);
    let metadata = u64::from(mdu) <= deal.witness_mdus;
    // The genuine shard.
    let (leaves, blobs, root, genuine_slot) = if metadata {
        let (leaves, root) = wasm_core::slab::encode_metadata_mdu(settings, &bytes).expect("64 blobs");
        let blobs: Vec<Vec<u8>> = bytes.chunks(BLOB_BYTES).map(<[u8]>::to_vec).collect();
        (leaves, blobs, root, 0)
    } else {
        let code = Code::new(profile);
        let enc = wasm_core::slab::encode_user_mdu(settings, &code, &bytes).expect("64 blobs");
        let s = usize::from(slot) % profile.slots();
        let blobs: Vec<Vec<u8>> = enc.shards[s].chunks(BLOB_BYTES).map(<[u8]>::to_vec).collect();
        (enc.leaves, blobs, enc.root_fr, s)
    };
    let genuine_blobs = blobs.clone();
    let mut leaves: Vec<Leaf> = leaves.iter().map(leaf_of).collect();
    let genuine_leaves = leaves.clone();
    let mut blobs = blobs;
    let mut slot_no = if metadata { u32::from(slot) } else {
        u32::from(slot) % (k + m).max(1)
    };
    let nb = blobs.len();
    let nl = leaves.len();
    match tamper % 12 {
        0 => {}
        1 => blobs[at % nb][at % BLOB_BYTES] ^= ((at >> 8) as u8) | 1,
        2 => leaves[at % nl].commitment.0[at % 48] ^= 1,
        3 => leaves[at % nl].blake3.0[at % 32] ^= 1,
        4 => {
            leaves.remove(at % nl);
        }
        5 => {
            blobs.remove(at % nb);
        }
        6 => blobs[at % nb].truncate(at % BLOB_BYTES),
        7 => blobs.swap(at % nb, (at >> 3) % nb),
        8 => blobs[at % nb][(at % 4096) * 32] = 0xFF, // not a canonical field element
        9 => slot_no = slot_no.wrapping_add(1 + u32::from(at0)),
        10 => leaves.push(leaves[at % nl]),
        _ => blobs.push(blobs[at % nb].clone()),
    }
    let untouched = tamper % 12 == 0;
    let up = shard(slot_no, mdu, leaves.clone(), blobs.clone());
    let result = verify_upload(settings, &up, &deal, &[3u8; 32]);
    if untouched {
        let v = result.as_ref().expect("a genuine shard is refused");
        assert_eq!(v.mdu_root.0, root, "the root differs from the packer's");
        assert_eq!(v.data, genuine_blobs.concat(), "stored bytes differ");
    }
    let Ok(v) = result else { return };
    let core: Vec<merkle::Leaf> = leaves.iter().map(|&l| l.into()).collect();
    assert_eq!(v.mdu_root.0, MerkleTree::new(&core).root_fr(), "root of other leaves");
    assert_eq!(v.data, blobs.concat(), "stored bytes are not the uploaded ones");
    let rows = blobs.len();
    for (r, b) in blobs.iter().enumerate() {
        let li = if metadata { r } else { slot_no as usize * rows + r };
        let leaf = &leaves[li];
        assert_eq!(blake3::hash(b).as_bytes(), &leaf.blake3.0, "blob {r}: hash accepted");
        // The naive twin of the batched check: this blob's own commitment (the packer's,
        // when the blob is the genuine one of its leaf).
        let genuine_li = if metadata { r } else { genuine_slot * rows + r };
        let c = if genuine_blobs.get(r) == Some(b) && genuine_blobs.len() == rows {
            genuine_leaves[genuine_li].commitment.0
        } else {
            settings
                .commit_poly(&Polynomial::from_blob(b).expect("an accepted blob parses"))
                .to_compressed()
        };
        assert_eq!(c, leaf.commitment.0, "blob {r}: a wrong commitment was accepted");
    }
});

fn shard(slot: u32, mdu: u8, leaves: Vec<Leaf>, blobs: Vec<Vec<u8>>) -> UploadShard {
    UploadShard {
        chain_id: 1,
        deal: 1,
        slot,
        mdu: u32::from(mdu),
        generation: 1,
        leaves,
        blobs: blobs.into_iter().map(Blob).collect(),
        auth: UploadAuth {
            signer: Address([0; 20]),
            expires_ms: 0,
            sig: Sig65([0; 65]),
        },
    }
}
