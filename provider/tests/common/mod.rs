//! Shared test data: real encoded MDUs and signed uploads.
#![allow(clippy::unwrap_used, dead_code)]

use chain_light::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use chain_light::crypto::SecretKey;
use chain_light::state::{Deal, Slot, SlotStatus};
use nilstore_net::proto::{Leaf, UploadAuth, UploadShard, BLOB_BYTES};
use nilstore_provider::verify::DealShape;
use rand::{Rng, SeedableRng};
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::{Code, Profile};
use wasm_core::slab::{encode_user_mdu, EncodedMdu};

pub const DEAL: DealShape = DealShape {
    k: 4,
    m: 2,
    witness_mdus: 1,
};
pub const SALT: [u8; 32] = [7; 32];

/// 64 blobs of packed random payload (every element canonical: byte 0 is zero).
pub fn mdu_bytes(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; 64 * BLOB_BYTES];
    for el in v.chunks_exact_mut(32) {
        rng.fill(&mut el[1..]);
    }
    v
}

pub fn encoded(seed: u64) -> EncodedMdu {
    let code = Code::new(Profile::new(DEAL.k as usize, DEAL.m as usize).unwrap());
    encode_user_mdu(KzgSettings::ethereum(), &code, &mdu_bytes(seed)).unwrap()
}

pub fn leaves(e: &[wasm_core::merkle::Leaf]) -> Vec<Leaf> {
    e.iter()
        .map(|l| Leaf {
            commitment: G1Bytes(l.commitment),
            blake3: H256(l.blake3),
        })
        .collect()
}

pub fn upload(mdu: u32, slot: u32, leaves: Vec<Leaf>, shard: &[u8]) -> UploadShard {
    UploadShard {
        chain_id: 1,
        deal: 1,
        slot,
        mdu,
        generation: 0,
        leaves,
        blobs: shard.chunks(BLOB_BYTES).map(|b| Blob(b.to_vec())).collect(),
        auth: UploadAuth {
            signer: Address::ZERO,
            expires_ms: 0,
            sig: Sig65([0; 65]),
        },
    }
    .sign(&owner(), u64::MAX)
}

pub fn owner() -> SecretKey {
    SecretKey::from_seed(b"owner")
}

/// A deal of shape [`DEAL`] owned by [`owner`], every slot assigned to `provider`.
pub fn deal(provider: Address) -> Deal {
    Deal {
        owner: owner().address(),
        k: DEAL.k,
        m: DEAL.m,
        capacity_mdus: 4,
        witness_mdus: DEAL.witness_mdus,
        reserved_mdus: 0,
        manifest_root: None,
        total_mdus: 0,
        size_bytes: 0,
        generation: 0,
        content_epoch: 0,
        start_epoch: 0,
        end_epoch: 10,
        escrow: 0,
        rent_reserved: 0,
        spend_cap: 0,
        spent_epoch: 0,
        spent: 0,
        slots: vec![
            Slot {
                provider,
                status: SlotStatus::Active,
                pending: None,
                health: 100,
            };
            6
        ],
        delegates: Default::default(),
    }
}
