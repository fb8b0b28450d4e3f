//! The chain's decoders of outside bytes: a transaction as `POST /tx` receives it (JSON)
//! and in its canonical binary form (blocks, sync, the mempool), a block, fraud evidence
//! and attestations inside transactions, and a state proof as a light client receives it.
//!
//! Properties: nothing panics; a value the strict decoder accepts re-encodes to exactly
//! the input (one encoding per value, hence one hash); a transaction's signature check and
//! hash never panic, whatever its fields; a state proof is checked against a root without
//! panicking (and an accepted proof's record is the one it names).
#![no_main]

use chain_light::auth::StateProof;
use chain_light::block::{Block, MAX_BLOCK_BYTES};
use chain_light::bytes::H256;
use chain_light::codec;
use chain_light::tx::{Attestation, FraudEvidence, SignedTx};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest transaction decoded (the API's body limit is the same order).
const TX_LIMIT: usize = 2 << 20;

fn strict<T: Serialize + DeserializeOwned>(bytes: &[u8], limit: usize) -> Option<T> {
    let v = codec::decode::<T>(bytes, limit).ok()?;
    assert_eq!(
        codec::encode(&v),
        bytes,
        "an accepted encoding is not canonical"
    );
    Some(v)
}

fn check_tx(tx: &SignedTx) {
    let _ = tx.verify_signature();
    let h = tx.hash();
    assert_eq!(h, tx.hash(), "a transaction hash is not stable");
    let again: SignedTx = codec::decode(&codec::encode(tx), usize::MAX).expect("re-decodes");
    assert_eq!(&again, tx);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 6 {
        0 => {
            if let Some(tx) = strict::<SignedTx>(rest, TX_LIMIT) {
                check_tx(&tx);
            }
        }
        1 => {
            // `POST /tx`: JSON.
            if let Ok(tx) = serde_json::from_slice::<SignedTx>(rest) {
                check_tx(&tx);
                let json = serde_json::to_vec(&tx).expect("a transaction serializes");
                let back: SignedTx = serde_json::from_slice(&json).expect("its JSON parses");
                assert_eq!(back, tx, "JSON round trip differs");
            }
        }
        2 => {
            if let Some(b) = strict::<Block>(rest, MAX_BLOCK_BYTES) {
                let _ = b.header.hash();
                let _ = chain_light::block::tx_root(&b.txs);
                for tx in &b.txs {
                    check_tx(tx);
                }
            }
        }
        3 => {
            let _ = strict::<FraudEvidence>(rest, TX_LIMIT);
        }
        4 => {
            let _ = strict::<Attestation>(rest, TX_LIMIT);
        }
        _ => {
            // A state proof as the light client parses it, against a root taken from the
            // input (a forged root must not make a malformed proof panic either).
            let (root, proof) = rest.split_at(rest.len().min(32));
            let mut r = [0u8; 32];
            r[..root.len()].copy_from_slice(root);
            if let Some(p) = strict::<StateProof>(proof, TX_LIMIT) {
                let _ = p.verify(&H256(r));
            }
        }
    }
});
