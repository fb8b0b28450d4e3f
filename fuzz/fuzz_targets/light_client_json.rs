//! The light client's reading of a validator API's JSON (`ChainView`, used by the CLI, the
//! provider, the relay and the browser): `/status`, `/headers/H`, state proofs and
//! transaction status, answered by the fuzzer — forged JSON mixed with the genuine answers
//! of a real genesis chain, so the client gets far into its checks.
//!
//! Input: answers separated by `0xFF` (never part of UTF-8 JSON), one per request in order:
//! an empty answer is the genuine one (404 where the chain has nothing), `0xFE` alone is a
//! 404, anything else is the answer's body (not JSON: a transport error). When the input
//! runs out, every answer is genuine.
//!
//! Properties (a lying API can withhold data, never forge it): nothing panics; the trusted
//! header stays the genesis header (no certificate can be forged); every read that
//! succeeds returns exactly the genesis state's record — accounts, globals, and no deal.
#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;

use anyhow::{anyhow, Result};
use chain_light::block::{Chain, Genesis, GenesisAccount, GenesisValidator};
use chain_light::bytes::Address;
use chain_light::codec;
use chain_light::crypto::SecretKey;
use chain_light::params::Params;
use chain_light::state::{state_key, tag};
use libfuzzer_sys::fuzz_target;
use nilstore_net::chain::{ChainApi, ChainView};
use serde_json::{json, Value};
use std::sync::OnceLock;

const CHAIN_ID: u64 = 91;

struct Fixture {
    genesis: Genesis,
    chain: Chain,
    /// Funded accounts, then one that is not.
    addresses: Vec<Address>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys: Vec<SecretKey> = ["alice", "bob", "validator", "nobody"]
            .iter()
            .map(|n| SecretKey::from_seed(format!("fuzz-light/{n}").as_bytes()))
            .collect();
        let (id, bls) = chain_light::light::dev_keys(CHAIN_ID, 0);
        let genesis = Genesis {
            chain_id: CHAIN_ID,
            time_ms: 1_700_000_000_000,
            params: Params::devnet(keys[0].address()),
            accounts: keys[..3]
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisAccount {
                    address: k.address(),
                    balance: 1_000_000 * (i as u128 + 1),
                })
                .collect(),
            validators: vec![GenesisValidator {
                account: keys[2].address(),
                consensus_key: chain_light::light::make_consensus_key(&id, &bls),
                stake: 10_000_000_000,
            }],
        };
        let chain = Chain::from_genesis(&genesis).expect("the genesis is valid");
        Fixture {
            genesis,
            chain,
            addresses: keys.iter().map(SecretKey::address).collect(),
        }
    })
}

/// What the genuine API would answer at genesis: the key of a state path.
fn state_key_of(path: &str, f: &Fixture) -> Option<Vec<u8>> {
    if path == "/state/globals" {
        return Some(vec![tag::GLOBALS]);
    }
    if let Some(a) = path.strip_prefix("/state/account/") {
        let a = f.addresses.iter().find(|x| x.to_string() == a)?;
        return Some(state_key(tag::ACCOUNT, a));
    }
    if let Some(id) = path.strip_prefix("/state/deal/") {
        return Some(state_key(tag::DEAL, &id.parse::<u64>().ok()?));
    }
    None
}

fn genuine(path: &str, f: &Fixture) -> Option<Value> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path == "/status" {
        return Some(json!({ "height": 0 }));
    }
    if query != "height=0" {
        return None;
    }
    let key = state_key_of(path, f)?;
    let p = f.chain.prove(&key, 0).ok()?;
    Some(json!({
        "height": 0,
        "proof": {
            "key": format!("0x{}", hex::encode(&p.key)),
            "value": p.value.as_ref().map(|v| format!("0x{}", hex::encode(v))),
            "proof": format!("0x{}", hex::encode(&p.proof)),
        },
    }))
}

struct FuzzApi {
    answers: RefCell<VecDeque<Vec<u8>>>,
}

impl FuzzApi {
    fn answer(&self, path: &str) -> Result<Option<Value>> {
        let Some(a) = self.answers.borrow_mut().pop_front() else {
            return Ok(genuine(path, fixture()));
        };
        match a.as_slice() {
            [] => Ok(genuine(path, fixture())),
            [0xFE] => Ok(None),
            body => serde_json::from_slice(body)
                .map(Some)
                .map_err(|e| anyhow!("{path}: JSON: {e}")),
        }
    }
}

impl ChainApi for FuzzApi {
    async fn get(&self, path: &str) -> Result<Option<Value>> {
        self.answer(path)
    }

    async fn post(&self, path: &str, _body: Value) -> Result<Value> {
        self.answer(path)?.ok_or_else(|| anyhow!("{path}: 404"))
    }
}

fn account_bytes(f: &Fixture, a: &Address) -> Vec<u8> {
    codec::encode(&f.chain.state.accounts.get(a).cloned().unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let api = FuzzApi {
        answers: RefCell::new(data.split(|&b| b == 0xFF).map(<[u8]>::to_vec).collect()),
    };
    let view = ChainView::new(api, &f.genesis).expect("the genesis is valid");
    let genesis_header = f.chain.tip.clone();
    futures::executor::block_on(async {
        if let Ok(h) = view.sync().await {
            assert_eq!(h, 0, "sync advanced without a certificate");
            assert_eq!(view.epoch(), f.chain.state.g.epoch);
        }
        assert_eq!(view.trusted().unwrap(), genesis_header, "the trusted header moved");
        if let Ok(g) = view.globals().await {
            assert_eq!(codec::encode(&g), codec::encode(&f.chain.state.g), "forged globals");
        }
        for a in &f.addresses {
            if let Ok(acct) = view.account(a).await {
                assert_eq!(codec::encode(&acct), account_bytes(f, a), "forged account {a}");
            }
        }
        if let Ok(d) = view.deal(1).await {
            assert!(d.is_none(), "a deal that genesis does not have");
        }
        let _ = view.provider(&f.addresses[0]).await;
        let _ = view.work(1, 0).await;
        let _ = view.tx_status("00").await;
        let _ = view.tx_result("00").await;
        assert_eq!(view.trusted().unwrap(), genesis_header, "the trusted header moved");
    });
});
