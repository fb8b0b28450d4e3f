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
use chain_light::bytes::Address;
use chain_light::tx::{Msg, Receipt};
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
