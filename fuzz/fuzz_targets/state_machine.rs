//! The chain's state machine under arbitrary transactions: every message type with any
//! field values (decoded from the input as canonical binary `Msg`s), any fee, from four
//! funded accounts, packed into blocks on a chain whose epochs close every two blocks (rent
//! release, challenges, unbonding, validator set).
//!
//! Input: records `[head][len: u16 BE][len bytes: postcard Msg]`. `head` bits: 0–1 the
//! sender, 2–3 the fee (zero, the minimum, ten times it, `u128::MAX`), 4 a real G1 point as
//! a commit's manifest root (random bytes almost never are one), 5 a stale nonce, 7 the
//! end of a block.
//!
//! Properties (the hardening issue's class guard; the proptest twin is
//! `chain-light/tests/invariants.rs`): no transaction makes block building fail or panic;
//! after every block the state accounts for exactly the supply, the supply is genesis plus
//! minted minus burned, and no balance exceeds it.
#![no_main]

use chain_light::block::{Chain, Genesis, GenesisAccount, GenesisValidator};
use chain_light::bytes::G1Bytes;
use chain_light::codec;
use chain_light::crypto::SecretKey;
use chain_light::exec::{Env, NoFaults};
use chain_light::params::Params;
use chain_light::tx::{Msg, SignedTx, Tx};
use chain_light::Amount;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wasm_core::kzg::KzgSettings;

const CHAIN_ID: u64 = 77;
const USERS: [&str; 4] = ["alice", "bob", "carol", "validator"];
/// 10^30 base units each: amounts in the 18-decimal range and beyond 2^64.
const START: Amount = 1_000_000_000_000_000_000_000_000_000_000;
/// A block holds at most this many fuzzed transactions.
const MAX_TXS: usize = 8;
/// Compressed G1 generator: a valid manifest root.
const G1_GEN: [u8; 48] = [
    0x97, 0xf1, 0xd3, 0xa7, 0x31, 0x97, 0xd7, 0x94, 0x26, 0x95, 0x63, 0x8c, 0x4f, 0xa9, 0xac, 0x0f,
    0xc3, 0x68, 0x8c, 0x4f, 0x97, 0x74, 0xb9, 0x05, 0xa1, 0x4e, 0x3a, 0x3f, 0x17, 0x1b, 0xac, 0x58,
    0x6c, 0x55, 0xe8, 0x3f, 0xf9, 0x7a, 0x1a, 0xef, 0xfb, 0x3a, 0xf0, 0x0a, 0xdb, 0x22, 0xc6, 0xbb,
];

struct Fixture {
    keys: Vec<SecretKey>,
    genesis: Genesis,
    genesis_supply: Amount,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys: Vec<SecretKey> = USERS
            .iter()
            .map(|n| SecretKey::from_seed(format!("fuzz/{n}").as_bytes()))
            .collect();
        let mut params = Params::devnet(keys[0].address());
        params.epoch_blocks = 2;
        let (id, bls) = chain_light::light::dev_keys(CHAIN_ID, 0);
        let genesis = Genesis {
            chain_id: CHAIN_ID,
            time_ms: 1_700_000_000_000,
            params,
            accounts: keys
                .iter()
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: START,
                })
                .collect(),
            validators: vec![GenesisValidator {
                account: keys[3].address(),
                consensus_key: chain_light::light::make_consensus_key(&id, &bls),
                stake: 10_000_000_000,
            }],
        };
        let genesis_supply = START * USERS.len() as Amount + 10_000_000_000;
        Fixture {
            keys,
            genesis,
            genesis_supply,
        }
    })
}

fn check(chain: &Chain, genesis_supply: Amount) {
    let s = &chain.state;
    assert_eq!(
        s.accounted_supply(),
        s.g.supply,
        "the state does not account for the supply"
    );
    assert_eq!(
        s.g.supply,
        genesis_supply + s.g.minted - s.g.burned,
        "supply is not genesis + minted - burned"
    );
    for (a, acct) in s.accounts.iter() {
        assert!(acct.balance <= s.g.supply, "{a} holds more than the supply");
        assert!(
            acct.rewards <= s.g.supply,
            "{a} is owed more than the supply"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut chain = Chain::from_genesis(&f.genesis).expect("the genesis is valid");
    let env = Env {
        kzg: KzgSettings::ethereum(),
        faults: &NoFaults,
    };
    let proposer = f.keys[3].address();
    let min_fee = f.genesis.params.min_fee;
    let mut time = f.genesis.time_ms;
    let mut txs: Vec<SignedTx> = Vec::new();
    let mut rest = data;
    let mut blocks = 0;
    while rest.len() >= 3 && blocks < 64 {
        let head = rest[0];
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        rest = &rest[3..];
        let (body, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        if let Ok(mut msg) = codec::decode::<Msg>(body, 1 << 20) {
            if head & 0x10 != 0 {
                if let Msg::CommitContent { manifest_root, .. } = &mut msg {
                    *manifest_root = G1Bytes(G1_GEN);
                }
            }
            let key = &f.keys[(head & 3) as usize];
            let from = key.address();
            let nonce = chain.state.accounts.get(&from).map_or(0, |a| a.nonce)
                + txs.iter().filter(|t| t.tx.from == from).count() as u64;
            let nonce = if head & 0x20 != 0 {
                nonce.saturating_sub(1)
            } else {
                nonce
            };
            let fee = match (head >> 2) & 3 {
                0 => 0,
                1 => min_fee,
                2 => min_fee.saturating_mul(10),
                _ => Amount::MAX,
            };
            txs.push(
                Tx {
                    chain_id: CHAIN_ID,
                    from,
                    nonce,
                    fee,
                    msg,
                }
                .sign(key),
            );
        }
        if head & 0x80 != 0 || txs.len() >= MAX_TXS || rest.len() < 3 {
            time += 1_000;
            chain
                .propose(&env, proposer, time, &txs)
                .expect("no transaction stops block building");
            check(&chain, f.genesis_supply);
            txs.clear();
            blocks += 1;
        }
    }
});
