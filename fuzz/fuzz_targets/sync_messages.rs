//! Validators' block sync messages (p2p channel 4) as a peer sends them: the message, each
//! block in it, and each certificate checked against the validator set, as the validator's
//! sync task reads them before importing.
//!
//! Properties: nothing panics; an accepted message or block is the canonical encoding of
//! its value (one encoding, one hash); a `Have` built by the serving side from the blocks
//! it holds always decodes on the receiving side, whatever their sizes; a certificate the
//! fuzzer made up never verifies for a header it did not sign (the set's key is secret to
//! the harness and signs nothing here).
#![no_main]

use chain_light::block::{Block, Genesis, GenesisValidator, SyncMessage, MAX_BLOCK_BYTES};
use chain_light::codec;
use chain_light::params::Params;
use chain_light::state::SetMember;
use chain_light::Chain;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CHAIN_ID: u64 = 93;

fn validators() -> &'static Vec<SetMember> {
    static V: OnceLock<Vec<SetMember>> = OnceLock::new();
    V.get_or_init(|| {
        let key = chain_light::crypto::SecretKey::from_seed(b"fuzz-sync/validator");
        let (id, bls) = chain_light::light::dev_keys(CHAIN_ID, 0);
        let genesis = Genesis {
            chain_id: CHAIN_ID,
            time_ms: 1_700_000_000_000,
            params: Params::devnet(key.address()),
            accounts: Vec::new(),
            validators: vec![GenesisValidator {
                account: key.address(),
                consensus_key: chain_light::light::make_consensus_key(&id, &bls),
                stake: 10_000_000_000,
            }],
        };
        let chain = Chain::from_genesis(&genesis).expect("the genesis is valid");
        chain.state.g.validators.clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 1 {
        // The serving side: blocks of sizes taken from the input (up to twice the budget),
        // each answer must decode on the receiving side.
        let sizes: Vec<usize> = rest
            .chunks(3)
            .map(|c| c.iter().fold(0usize, |a, &b| (a << 8) | b as usize) * 4)
            .collect();
        let from = u64::from(sel >> 1);
        let have = SyncMessage::have(from, |h| {
            let i = usize::try_from(h - from).ok()?;
            let len = *sizes.get(i)?;
            Some((vec![0u8; len.min(2 * MAX_BLOCK_BYTES)], (i % 2 == 0).then(|| vec![1u8; 200])))
        });
        if let Some(have) = have {
            let bytes = codec::encode(&have);
            assert_eq!(SyncMessage::decode(&bytes).as_ref(), Ok(&have), "an answer does not decode");
        }
        return;
    }
    let Ok(msg) = SyncMessage::decode(rest) else {
        return;
    };
    assert_eq!(codec::encode(&msg), rest, "an accepted message is not canonical");
    let SyncMessage::Have { blocks } = msg else {
        return;
    };
    for (b, cert) in blocks {
        let Ok(block) = codec::decode::<Block>(&b.0, MAX_BLOCK_BYTES) else {
            break;
        };
        assert_eq!(codec::encode(&block), b.0, "an accepted block is not canonical");
        let _ = block.header.hash();
        if let Some(cert) = cert {
            let r = chain_light::light::verify_finalization(
                block.header.chain_id,
                validators(),
                &block.header,
                &cert.0,
            );
            assert!(r.is_err(), "a made-up certificate verified");
        }
    }
});
