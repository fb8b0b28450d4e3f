//! Test world: a chain with named keys, one block per submitted transaction, a real slab
//! whose slots answer challenges with real triple proofs.
// Test support: an unwrap here is a failed test setup, not external input.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chain_light::block::{Block, Chain, Executed, Genesis, GenesisAccount, GenesisValidator};
use chain_light::bytes::{Address, Blob, G1Bytes, H256};
use chain_light::crypto::SecretKey;
use chain_light::exec::{Env, FaultVerifier, Outcome, TxResult};
use chain_light::params::Params;
use chain_light::state::Deal;
use chain_light::tx::{Msg, ProofItem, SignedTx, Tx};
use chain_light::Amount;
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::proof::{self, Challenge, TripleProof};
use wasm_core::rs::Profile;
use wasm_core::slab::{EncodedMdu, Layout, ShardSink, SlabBuilder, SlabError, SlabOutput};

pub const CHAIN_ID: u64 = 4242;
pub const PROVIDERS: usize = 5;
pub const DEPUTIES: usize = 5;
pub const START_BALANCE: Amount = 1_000_000_000_000_000;

/// A slab of one deal, with everything a provider keeps.
pub struct Content {
    pub out: SlabOutput,
    pub mdus: Vec<EncodedMdu>,
    pub manifest: Polynomial,
    pub profile: Profile,
    pub capacity: u64,
}

struct Collect(Vec<EncodedMdu>);

impl ShardSink for Collect {
    type Error = SlabError;
    fn user_mdu(&mut self, _mdu: u64, e: &EncodedMdu) -> Result<(), SlabError> {
        self.0.push(e.clone());
        Ok(())
    }
}

impl Content {
    /// RS(2, 1), capacity 2 user MDUs, `user_mdus` of them filled.
    pub fn build(seed: u8, user_mdus: usize) -> Content {
        let kzg = KzgSettings::ethereum();
        let profile = Profile::new(2, 1).unwrap();
        let capacity = 2;
        let layout = Layout::new(profile, capacity).unwrap();
        let mut b = SlabBuilder::new(kzg, layout);
        let mut sink = Collect(Vec::new());
        for i in 0..user_mdus {
            b.begin_file(&format!("f{i}.bin"), 0, 0).unwrap();
            // xorshift64: every blob differs.
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ ((seed as u64) << 8 | i as u64);
            let data: Vec<u8> = (0..8_000_000u32)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            b.write(&data, &mut sink).unwrap();
            b.end_file().unwrap();
        }
        let out = b.finish(&mut sink).unwrap();
        let manifest = Polynomial::from_blob(&out.manifest).unwrap();
        Content {
            out,
            mdus: sink.0,
            manifest,
            profile,
            capacity,
        }
    }

    pub fn root(&self) -> G1Bytes {
        G1Bytes(self.out.manifest_root)
    }

    /// A triple proof for a challenge of `slot`.
    pub fn prove(&self, slot: u32, c: &Challenge) -> TripleProof {
        let kzg = KzgSettings::ethereum();
        let first = self.out.layout.first_user_mdu();
        let enc = &self.mdus[(c.mdu - first) as usize];
        let row = c.row as usize;
        let blob_len = wasm_core::constants::BYTES_PER_BLOB;
        let shard = &enc.shards[slot as usize];
        let blob = Polynomial::from_blob(&shard[row * blob_len..(row + 1) * blob_len]).unwrap();
        proof::prove(
            kzg,
            &self.manifest,
            c.mdu as u32,
            &enc.leaves,
            c.leaf as u32,
            &blob,
            &c.z,
        )
        .unwrap()
    }
}

/// The shared content of most tests (built once: KZG work takes seconds).
pub fn content() -> &'static Content {
    static C: OnceLock<Content> = OnceLock::new();
    C.get_or_init(|| Content::build(7, 1))
}

/// Accepts evidence "fault:<id>" for any key (unit-test double of the engine verifier).
pub struct TestFaults;

impl FaultVerifier for TestFaults {
    /// `fault:<id>` is a test fault; anything else goes to the real simplex verifier.
    fn verify(
        &self,
        chain_id: u64,
        sets: &[(u64, &[chain_light::state::SetMember])],
        key: &[u8],
        evidence: &[u8],
    ) -> Result<H256, String> {
        match evidence.strip_prefix(b"fault:") {
            Some(id) => Ok(H256(chain_light::crypto::keccak256(id))),
            None => chain_light::light::SimplexFaults.verify(chain_id, sets, key, evidence),
        }
    }
}

pub struct World {
    pub chain: Chain,
    pub genesis: Genesis,
    pub keys: BTreeMap<String, SecretKey>,
    pub blocks: Vec<Block>,
    pub time: u64,
    pub faults: TestFaults,
}

pub fn names() -> Vec<String> {
    let mut v: Vec<String> = ["gov", "alice", "bob", "carol", "val"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend((0..PROVIDERS).map(|i| format!("p{i}")));
    v.extend((0..DEPUTIES).map(|i| format!("d{i}")));
    v
}

impl World {
    pub fn new(params: impl FnOnce(&mut Params)) -> World {
        World::new_with(params, |_| {})
    }

    /// A world whose genesis document `genesis` may change (balances, stakes) first.
    pub fn new_with(params: impl FnOnce(&mut Params), genesis: impl FnOnce(&mut Genesis)) -> World {
        let keys: BTreeMap<String, SecretKey> = names()
            .into_iter()
            .map(|n| {
                let k = SecretKey::from_seed(n.as_bytes());
                (n, k)
            })
            .collect();
        let mut p = Params::devnet(keys["gov"].address());
        params(&mut p);
        let mut doc = Genesis {
            chain_id: CHAIN_ID,
            time_ms: 1_700_000_000_000,
            params: p,
            accounts: keys
                .values()
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: START_BALANCE,
                })
                .collect(),
            validators: vec![GenesisValidator {
                account: keys["val"].address(),
                consensus_key: {
                    let (id, bls) = chain_light::light::dev_keys(CHAIN_ID, 0);
                    chain_light::light::make_consensus_key(&id, &bls)
                },
                stake: 10_000_000_000,
            }],
        };
        genesis(&mut doc);
        let genesis = doc;
        let chain = Chain::from_genesis(&genesis).unwrap();
        World {
            chain,
            genesis: genesis.clone(),
            keys,
            blocks: Vec::new(),
            time: genesis.time_ms,
            faults: TestFaults,
        }
    }

    pub fn addr(&self, n: &str) -> Address {
        self.keys[n].address()
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            kzg: KzgSettings::ethereum(),
            faults: &self.faults,
        }
    }

    pub fn nonce(&self, n: &str) -> u64 {
        self.chain
            .state
            .accounts
            .get(&self.addr(n))
            .map_or(0, |a| a.nonce)
    }

    pub fn tx(&self, n: &str, msg: Msg) -> SignedTx {
        self.tx_nonce(n, self.nonce(n), msg)
    }

    pub fn tx_nonce(&self, n: &str, nonce: u64, msg: Msg) -> SignedTx {
        Tx {
            chain_id: CHAIN_ID,
            from: self.addr(n),
            nonce,
            fee: self.chain.state.g.params.min_fee,
            msg,
        }
        .sign(&self.keys[n])
    }

    /// Proposes one block with `txs`.
    pub fn block(&mut self, txs: &[SignedTx]) -> Executed {
        self.time += 1_000;
        let proposer = self.addr("val");
        let env = Env {
            kzg: KzgSettings::ethereum(),
            faults: &self.faults,
        };
        let ex = self.chain.propose(&env, proposer, self.time, txs).unwrap();
        self.blocks.push(ex.block.clone());
        self.check_invariants();
        ex
    }

    /// Submits one transaction in its own block and returns its result (Invalid ones are
    /// left out of the block: then the result is recomputed against a copy of the state).
    pub fn send(&mut self, n: &str, msg: Msg) -> TxResult {
        let t = self.tx(n, msg);
        self.send_tx(t)
    }

    pub fn send_tx(&mut self, t: SignedTx) -> TxResult {
        let mut copy = self.chain.state.clone();
        let len = chain_light::codec::encode(&t).len();
        let probe = copy.apply_tx(&self.env(), &t, len);
        if let Outcome::Invalid { .. } = probe.outcome {
            return probe;
        }
        let ex = self.block(std::slice::from_ref(&t));
        ex.results.into_iter().next().unwrap()
    }

    /// Sends and expects success.
    pub fn ok(&mut self, n: &str, msg: Msg) -> TxResult {
        let r = self.send(n, msg.clone());
        assert_eq!(r.outcome, Outcome::Ok, "{n}: {msg:?}");
        r
    }

    pub fn advance_to_epoch(&mut self, e: u64) {
        while self.chain.state.g.epoch < e {
            self.block(&[]);
        }
    }

    pub fn check_invariants(&self) {
        let g = &self.chain.state.g;
        assert_eq!(
            self.chain.state.accounted_supply(),
            g.supply,
            "conservation"
        );
        let genesis: Amount = self
            .genesis
            .accounts
            .iter()
            .map(|a| a.balance)
            .sum::<Amount>()
            + self
                .genesis
                .validators
                .iter()
                .map(|v| v.stake)
                .sum::<Amount>();
        assert_eq!(g.supply, genesis + g.minted - g.burned, "supply accounting");
    }

    pub fn deal(&self, id: u64) -> Deal {
        self.chain.state.deals.get(&id).cloned().unwrap()
    }

    pub fn balance(&self, n: &str) -> Amount {
        self.chain
            .state
            .accounts
            .get(&self.addr(n))
            .map_or(0, |a| a.balance)
    }

    pub fn rewards(&self, n: &str) -> Amount {
        self.chain
            .state
            .accounts
            .get(&self.addr(n))
            .map_or(0, |a| a.rewards)
    }

    /// Registers every provider (each its own operator) and deputy.
    pub fn register_all(&mut self) {
        let stake = self.chain.state.g.params.min_provider_stake;
        for i in 0..PROVIDERS {
            let n = format!("p{i}");
            let op = self.addr(&n);
            self.ok(
                &n,
                Msg::RegisterProvider {
                    stake,
                    capacity_mdus: 1_000,
                    operator: op,
                    peer_id: format!("12D3KooWprovider{i}"),
                    endpoints: vec![format!("/ip4/127.0.0.1/tcp/{}", 9000 + i)],
                },
            );
        }
        let dstake = self.chain.state.g.params.min_deputy_stake;
        for i in 0..DEPUTIES {
            let n = format!("d{i}");
            self.ok(
                &n,
                Msg::RegisterDeputy {
                    stake: dstake,
                    peer_id: format!("12D3KooWdeputy{i}"),
                    endpoints: vec![format!("/ip4/127.0.0.1/tcp/{}/ws", 9100 + i)],
                },
            );
        }
    }

    pub fn name_of(&self, a: &Address) -> String {
        self.keys
            .iter()
            .find(|(_, k)| k.address() == *a)
            .map(|(n, _)| n.clone())
            .unwrap()
    }

    /// Creates a RS(2,1) deal for alice and commits `c`; returns the deal id.
    pub fn deal_with_content(&mut self, c: &Content, term: u64, escrow: Amount) -> u64 {
        let r = self.ok(
            "alice",
            Msg::CreateDeal {
                k: 2,
                m: 1,
                capacity_mdus: c.capacity,
                term_epochs: term,
                escrow,
                spend_cap: Amount::MAX,
            },
        );
        let id = match &r.events[0] {
            chain_light::Event::DealCreated { deal, .. } => *deal,
            e => panic!("{e:?}"),
        };
        self.ok(
            "alice",
            Msg::CommitContent {
                deal: id,
                generation: 0,
                manifest_root: c.root(),
                total_mdus: c.out.total_mdus(),
                size_bytes: 8_000_000,
            },
        );
        id
    }

    /// Proof items answering every challenge of `slot` this epoch.
    pub fn proofs_for(&self, c: &Content, deal: u64, slot: u32) -> Vec<ProofItem> {
        let st = &self.chain.state;
        let d = st.deals.get(&deal).unwrap();
        (0..st.quota(deal, slot))
            .map(|i| {
                let ch = st.challenge(d, deal, slot, i, &st.g.beacon).unwrap();
                ProofItem {
                    deal,
                    slot,
                    ordinal: i,
                    proof: Blob(c.prove(slot, &ch).to_bytes()),
                }
            })
            .collect()
    }

    /// Makes sure the next block stays in the current epoch (so transactions built now for
    /// this epoch land in it).
    pub fn stay_in_epoch(&mut self) {
        if self.chain.tip.height + 1 >= self.chain.state.g.next_epoch_height {
            self.block(&[]);
        }
    }

    /// Every active slot's provider proves this epoch, all in one block.
    pub fn prove_all(&mut self, c: &Content, deal: u64) {
        self.stay_in_epoch();
        let d = self.deal(deal);
        let epoch = self.chain.state.g.epoch;
        let txs: Vec<SignedTx> = d
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == chain_light::state::SlotStatus::Active)
            .map(|(i, s)| {
                let items = self.proofs_for(c, deal, i as u32);
                self.tx(
                    &self.name_of(&s.provider),
                    Msg::SubmitProofs { epoch, items },
                )
            })
            .collect();
        let ex = self.block(&txs);
        assert_eq!(ex.results.len(), txs.len());
        for r in ex.results {
            assert_eq!(r.outcome, Outcome::Ok);
        }
    }
}
