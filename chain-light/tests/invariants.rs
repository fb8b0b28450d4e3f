//! Property tests: random transaction sequences (valid and not) keep the invariants —
//! supply conserved except recorded mint/burn, no value created by saturation (escrow and
//! balances never "go negative"), nonces monotonic, and replaying the block log gives the
//! same state roots.

// Integration tests: helpers outside #[test] functions unwrap as assertions.
#![allow(clippy::unwrap_used)]
// Native only: the browser side is covered by tests/browser.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;

use chain_light::block::Chain;
use chain_light::bytes::{Address, Blob, Sig65, H256};
use chain_light::crypto::SecretKey;
use chain_light::tx::{Attestation, Msg, ProofItem, Receipt, Tx};
use chain_light::Amount;
use common::{content, World, CHAIN_ID};
use proptest::prelude::*;

const USERS: [&str; 4] = ["alice", "bob", "carol", "val"];

#[derive(Clone, Debug)]
enum Action {
    Transfer(usize, usize, u64),
    CreateDeal(usize, u32, u32, u64, u64, u64),
    Commit(usize, u64, u64, u64),
    AddCredit(usize, u64, u64),
    Extend(usize, u64, u64),
    Cancel(usize, u64),
    Delegate(usize, u64),
    Undelegate(usize, u64),
    Withdraw(usize),
    Receipt(usize, u64, usize, u64, u64),
    Blocks(u8),
    WrongNonce(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let u = 0..USERS.len();
    prop_oneof![
        (u.clone(), 0..USERS.len(), any::<u64>()).prop_map(|(a, b, x)| Action::Transfer(a, b, x)),
        (
            u.clone(),
            1..4u32,
            0..3u32,
            1..4u64,
            1..6u64,
            0..2_000_000_000_000u64
        )
            .prop_map(|(a, k, m, c, t, e)| Action::CreateDeal(a, k, m, c, t, e)),
        (u.clone(), 1..4u64, 0..3u64, 0..8u64).prop_map(|(a, d, g, t)| Action::Commit(a, d, g, t)),
        (u.clone(), 1..4u64, any::<u64>()).prop_map(|(a, d, x)| Action::AddCredit(a, d, x)),
        (u.clone(), 1..4u64, 0..4u64).prop_map(|(a, d, x)| Action::Extend(a, d, x)),
        (u.clone(), 1..4u64).prop_map(|(a, d)| Action::Cancel(a, d)),
        (u.clone(), 0..5_000_000_000u64).prop_map(|(a, x)| Action::Delegate(a, x)),
        (u.clone(), 0..5_000_000_000u64).prop_map(|(a, x)| Action::Undelegate(a, x)),
        u.clone().prop_map(Action::Withdraw),
        (
            u.clone(),
            1..4u64,
            0..common::PROVIDERS,
            0..100_000u64,
            0..5u64
        )
            .prop_map(|(a, d, p, b, n)| Action::Receipt(a, d, p, b, n)),
        (1..12u8).prop_map(Action::Blocks),
        u.prop_map(Action::WrongNonce),
    ]
}

fn apply(w: &mut World, a: &Action) {
    let root = content().root();
    let user = |i: usize| USERS[i];
    match a {
        Action::Transfer(f, t, x) => {
            let to = w.addr(user(*t));
            w.send(
                user(*f),
                Msg::Transfer {
                    to,
                    amount: *x as Amount * 1_000,
                },
            );
        }
        Action::CreateDeal(f, k, m, c, t, e) => {
            w.send(
                user(*f),
                Msg::CreateDeal {
                    k: *k,
                    m: *m,
                    capacity_mdus: *c,
                    term_epochs: *t,
                    escrow: *e as Amount,
                    spend_cap: 50_000,
                },
            );
        }
        Action::Commit(f, d, g, t) => {
            w.send(
                user(*f),
                Msg::CommitContent {
                    deal: *d,
                    generation: *g,
                    manifest_root: root,
                    total_mdus: *t,
                    size_bytes: 1,
                },
            );
        }
        Action::AddCredit(f, d, x) => {
            w.send(
                user(*f),
                Msg::AddCredit {
                    deal: *d,
                    amount: *x as Amount,
                },
            );
        }
        Action::Extend(f, d, x) => {
            w.send(
                user(*f),
                Msg::ExtendDeal {
                    deal: *d,
                    epochs: *x,
                },
            );
        }
        Action::Cancel(f, d) => {
            w.send(user(*f), Msg::CancelDeal { deal: *d });
        }
        Action::Delegate(f, x) => {
            let v = w.addr("val");
            w.send(
                user(*f),
                Msg::Delegate {
                    validator: v,
                    amount: *x as Amount,
                },
            );
        }
        Action::Undelegate(f, x) => {
            let v = w.addr("val");
            w.send(
                user(*f),
                Msg::Undelegate {
                    validator: v,
                    amount: *x as Amount,
                },
            );
        }
        Action::Withdraw(f) => {
            w.send(user(*f), Msg::Withdraw {});
        }
        Action::Receipt(signer, d, p, blobs, nonce) => {
            let provider = w.addr(&format!("p{p}"));
            let r = Receipt {
                deal: *d,
                provider,
                deputy: Address::ZERO,
                blobs: *blobs,
                bytes: *blobs * 131_072,
                nonce: *nonce,
            };
            let sig = w.keys[user(*signer)].sign_digest(&r.digest(CHAIN_ID));
            w.send(&format!("p{p}"), Msg::RedeemReceipt { receipt: r, sig });
        }
        Action::Blocks(n) => {
            for _ in 0..*n {
                w.block(&[]);
            }
        }
        Action::WrongNonce(f) => {
            let n = w.nonce(user(*f)) + 2;
            let to = w.addr("bob");
            let t = w.tx_nonce(user(*f), n, Msg::Transfer { to, amount: 1 });
            w.send_tx(t);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_invariants(actions in proptest::collection::vec(action(), 1..40)) {
        let mut w = World::new(|p| {
            p.epoch_blocks = 5;
            p.unbonding_epochs = 1;
        });
        w.register_all();
        let mut nonces: BTreeMap<String, u64> = BTreeMap::new();
        for a in &actions {
            apply(&mut w, a);
            // World::block checks conservation and supply accounting after every block.
            for n in common::names() {
                let now = w.nonce(&n);
                let before = nonces.insert(n.clone(), now).unwrap_or(0);
                prop_assert!(now >= before, "nonce of {} went back", n);
            }
        }
        let mut replay = Chain::from_genesis(&w.genesis).unwrap();
        let env = w.env();
        for b in &w.blocks {
            replay.import(&env, b).unwrap();
        }
        prop_assert_eq!(replay.tip.state_root, w.chain.tip.state_root);
    }
}

/// Rewards stay exact with stakes and pools far beyond 2^64 (18-decimal amounts): the
/// pro-rata share used to saturate to ~2^128 when both `pool · power` and
/// `(pool mod total) · power` overflowed, minting tokens (and panicking the block builder on
/// the next addition). `World::block` checks conservation after every block.
#[test]
fn rewards_are_exact_with_amounts_beyond_2_pow_64() {
    const STAKE: Amount = 1 << 100;
    const REWARD: Amount = 1 << 90;
    let mut w = World::new_with(
        |p| {
            p.epoch_blocks = 2;
            p.block_reward = REWARD;
        },
        |g| {
            for a in &mut g.accounts {
                a.balance = 1 << 110;
            }
            for v in &mut g.validators {
                v.stake = STAKE;
            }
        },
    );
    let val = w.addr("val");
    // Block 1 closes the genesis epoch (empty pool) before this delegation executes; every
    // later distribution splits the pool evenly between self-stake and the delegation.
    w.ok(
        "alice",
        Msg::Delegate {
            validator: val,
            amount: STAKE,
        },
    );
    for _ in 0..6 {
        w.block(&[]);
    }
    let rewards = |n: &str| {
        w.chain
            .state
            .accounts
            .get(&w.addr(n))
            .map_or(0, |a| a.rewards)
    };
    let (to_val, to_alice) = (rewards("val"), rewards("alice"));
    assert_eq!(to_val, to_alice, "equal stakes, equal rewards");
    let g = &w.chain.state.g;
    assert!(
        to_val + to_alice >= 4 * REWARD,
        "{to_val} paid, minted {}",
        g.minted
    );
    assert!(
        to_val + to_alice + g.reward_pool <= g.minted + g.params.min_fee,
        "paid more than was minted: {to_val} + {to_alice} of {}",
        g.minted
    );
}

/// A u64 a transaction may carry: small, ordinary, or at the edges of the type.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..8u64,
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::MAX / 2 + 1),
        Just(u32::MAX as u64 + 1),
        any::<u64>(),
    ]
}

/// An amount a transaction may carry: small, ordinary, or at the edges of u128.
fn edge_amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        0..1_000_000u128,
        Just(u128::MAX),
        Just(u128::MAX - 1),
        Just(1u128 << 64),
        Just(1u128 << 127),
        any::<u128>(),
    ]
}

fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0..8u32, Just(u32::MAX), Just(u32::MAX - 1), any::<u32>()]
}

/// Any message with fields anywhere in their types' ranges (deal ids mostly of existing
/// deals, senders and addresses among the world's keys; signatures are random bytes).
fn wild_msg() -> impl Strategy<Value = Msg> {
    let who = 0..USERS.len();
    let deal = prop_oneof![1..4u64, edge_u64()];
    let bytes = proptest::collection::vec(any::<u8>(), 0..96);
    let sig = proptest::collection::vec(any::<u8>(), 65).prop_map(|v| {
        let mut s = [0u8; 65];
        s.copy_from_slice(&v);
        Sig65(s)
    });
    let addr = who
        .clone()
        .prop_map(|i| SecretKey::from_seed(USERS[i].as_bytes()).address());
    prop_oneof![
        (addr.clone(), edge_amount()).prop_map(|(to, amount)| Msg::Transfer { to, amount }),
        (edge_amount(), edge_u64(), addr.clone()).prop_map(|(stake, capacity_mdus, operator)| {
            Msg::RegisterProvider {
                stake,
                capacity_mdus,
                operator,
                peer_id: "12D3KooWwild".into(),
                endpoints: vec!["/ip4/127.0.0.1/tcp/1".into()],
            }
        }),
        (edge_u64(), edge_amount()).prop_map(|(capacity_mdus, add_stake)| {
            Msg::UpdateProvider {
                capacity_mdus,
                endpoints: vec![],
                add_stake,
            }
        }),
        Just(Msg::ExitProvider {}),
        edge_amount().prop_map(|stake| Msg::RegisterDeputy {
            stake,
            peer_id: "12D3KooWwild".into(),
            endpoints: vec![],
        }),
        Just(Msg::ExitDeputy {}),
        (
            edge_u32(),
            edge_u32(),
            edge_u64(),
            edge_u64(),
            edge_amount(),
            edge_amount()
        )
            .prop_map(|(k, m, capacity_mdus, term_epochs, escrow, spend_cap)| {
                Msg::CreateDeal {
                    k,
                    m,
                    capacity_mdus,
                    term_epochs,
                    escrow,
                    spend_cap,
                }
            }),
        (deal.clone(), edge_u64(), edge_u64(), edge_u64()).prop_map(
            |(deal, generation, total_mdus, size_bytes)| Msg::CommitContent {
                deal,
                generation,
                manifest_root: content().root(),
                total_mdus,
                size_bytes,
            }
        ),
        (deal.clone(), edge_amount()).prop_map(|(deal, amount)| Msg::AddCredit { deal, amount }),
        (deal.clone(), edge_u64()).prop_map(|(deal, epochs)| Msg::ExtendDeal { deal, epochs }),
        deal.clone().prop_map(|deal| Msg::CancelDeal { deal }),
        (deal.clone(), addr.clone(), edge_u64()).prop_map(|(deal, delegate, until_epoch)| {
            Msg::Authorize {
                deal,
                delegate,
                until_epoch,
            }
        }),
        (deal.clone(), addr.clone()).prop_map(|(deal, delegate)| Msg::Revoke { deal, delegate }),
        (
            edge_u64(),
            deal.clone(),
            edge_u32(),
            edge_u32(),
            bytes.clone()
        )
            .prop_map(|(epoch, deal, slot, ordinal, proof)| Msg::SubmitProofs {
                epoch,
                items: vec![ProofItem {
                    deal,
                    slot,
                    ordinal,
                    proof: Blob(proof),
                }],
            }),
        (
            deal.clone(),
            addr.clone(),
            addr.clone(),
            edge_u64(),
            edge_u64(),
            edge_u64(),
            sig.clone()
        )
            .prop_map(|(deal, provider, deputy, blobs, bytes, nonce, sig)| {
                Msg::RedeemReceipt {
                    receipt: Receipt {
                        deal,
                        provider,
                        deputy,
                        blobs,
                        bytes,
                        nonce,
                    },
                    sig,
                }
            }),
        (
            deal.clone(),
            edge_u32(),
            edge_u32(),
            edge_u32(),
            addr.clone(),
            edge_u64(),
            sig.clone()
        )
            .prop_map(|(deal, slot, mdu, leaf, provider, epoch, sig)| {
                Msg::SubmitAttestation {
                    att: Attestation {
                        deal,
                        slot,
                        mdu,
                        leaf,
                        provider,
                        epoch,
                        transcript: H256([7; 32]),
                    },
                    sig,
                }
            }),
        (deal.clone(), edge_u32(), bytes.clone()).prop_map(|(deal, slot, proof)| {
            Msg::CompleteRepair {
                deal,
                slot,
                proofs: vec![Blob(proof)],
            }
        }),
        Just(Msg::Withdraw {}),
        (bytes.clone(), edge_amount(), edge_u32()).prop_map(|(key, stake, commission_bps)| {
            Msg::CreateValidator {
                consensus_key: Blob(key),
                stake,
                commission_bps,
            }
        }),
        (addr.clone(), edge_amount())
            .prop_map(|(validator, amount)| Msg::Delegate { validator, amount }),
        (addr.clone(), edge_amount())
            .prop_map(|(validator, amount)| Msg::Undelegate { validator, amount }),
        Just(Msg::Unjail {}),
        (addr, bytes).prop_map(|(validator, evidence)| Msg::ReportValidatorFault {
            validator,
            evidence: Blob(evidence),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Transactions with fields anywhere in their types' ranges (and any fee) never panic
    /// the block builder: each is refused at admission or executes (or fails) alone, and
    /// every block keeps supply conserved (`World::block`). Ordinary deals and stake come
    /// first so that most messages reach deep into execution.
    #[test]
    fn wild_transactions_never_stop_the_chain(
        msgs in proptest::collection::vec((0..USERS.len(), wild_msg(), edge_amount()), 1..24)
    ) {
        let mut w = World::new(|p| {
            p.epoch_blocks = 3;
            p.unbonding_epochs = 1;
        });
        w.register_all();
        for a in [
            Action::CreateDeal(0, 2, 1, 2, 3, 1_000_000_000_000),
            Action::Delegate(1, 1_000_000),
        ] {
            apply(&mut w, &a);
        }
        for (i, (from, msg, fee)) in msgs.iter().enumerate() {
            let n = USERS[*from];
            let min_fee = w.chain.state.g.params.min_fee;
            let t = Tx {
                chain_id: CHAIN_ID,
                from: w.addr(n),
                nonce: w.nonce(n),
                // Every other transaction with a wild fee (most are then unaffordable).
                fee: if i % 2 == 0 { min_fee } else { *fee },
                msg: msg.clone(),
            }
            .sign(&w.keys[n]);
            w.send_tx(t);
        }
        let mut replay = Chain::from_genesis(&w.genesis).unwrap();
        let env = w.env();
        for b in &w.blocks {
            replay.import(&env, b).unwrap();
        }
        prop_assert_eq!(replay.tip.state_root, w.chain.tip.state_root);
    }
}
