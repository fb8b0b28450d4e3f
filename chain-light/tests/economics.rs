//! Economics end to end, in process, for three parameter sets: create deal → commit →
//! proofs → receipts → sponsor → extend → rewards → cancel; every balance checked exactly
//! against the rules of docs/chain.md, computed here independently of the state machine.
//! The ledger goes to `target/evidence/economics.json`.

// Integration tests: helpers outside #[test] functions unwrap as assertions.
#![allow(clippy::unwrap_used)]
// Native only: the browser side is covered by tests/browser.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use chain_light::params::{bps_of, Params};
use chain_light::tx::{Msg, Receipt};
use chain_light::{Amount, Event};
use common::{content, World, CHAIN_ID, START_BALANCE};
use serde_json::{json, Value};

fn set_a(p: &mut Params) {
    p.epoch_blocks = 8;
}

fn set_b(p: &mut Params) {
    p.epoch_blocks = 8;
    p.fee_burn_bps = 0;
    p.receipt_burn_bps = 0;
    p.cancel_penalty_bps = 0;
    p.deputy_premium_bps = 0;
    p.block_reward = 0;
    p.rent_per_mdu_epoch = 1;
    p.price_per_blob = 1;
}

fn set_c(p: &mut Params) {
    p.epoch_blocks = 9;
    p.min_fee = 333;
    p.fee_burn_bps = 10_000;
    p.receipt_burn_bps = 5_000;
    p.deputy_premium_bps = 3_000;
    p.cancel_penalty_bps = 5_000;
    p.block_reward = 12_345;
    p.rent_per_mdu_epoch = 7_777;
    p.price_per_blob = 13;
}

/// The independent model of one deal's money.
#[derive(Default)]
struct Model {
    escrow: Amount,
    reserved: Amount,
    provider_rent: [Amount; 3],
    burned_receipts: Amount,
    burned_cancel: Amount,
}

fn snapshot(w: &World, phase: &str) -> Value {
    let g = &w.chain.state.g;
    let accounts: serde_json::Map<String, Value> = common::names()
        .iter()
        .map(|n| {
            (
                n.clone(),
                json!({"balance": w.balance(n).to_string(), "rewards": w.rewards(n).to_string()}),
            )
        })
        .collect();
    let deals: Vec<Value> = w
        .chain
        .state
        .deals
        .iter()
        .map(|(id, d)| {
            json!({"id": id, "escrow": d.escrow.to_string(), "rent_reserved": d.rent_reserved.to_string(),
                   "end_epoch": d.end_epoch})
        })
        .collect();
    json!({
        "phase": phase,
        "height": w.chain.tip.height,
        "epoch": g.epoch,
        "state_root": w.chain.tip.state_root,
        "supply": g.supply.to_string(),
        "minted": g.minted.to_string(),
        "burned": g.burned.to_string(),
        "reward_pool": g.reward_pool.to_string(),
        "accounts": accounts,
        "deals": deals,
    })
}

/// Closes epochs one by one, applying the rent rule to the model for each epoch close.
fn close_epochs_proving(w: &mut World, m: &mut Model, id: u64, epochs: u64) {
    let c = content();
    for _ in 0..epochs {
        let e = w.chain.state.g.epoch;
        let end = w.deal(id).end_epoch;
        w.prove_all(c, id);
        // Rent rule at the close of epoch e: release = reserved / (end - e), equal shares.
        let release = m.reserved / (end - e) as Amount;
        let share = release / 3;
        for r in m.provider_rent.iter_mut() {
            *r += share;
        }
        m.reserved -= 3 * share;
        w.advance_to_epoch(e + 1);
    }
}

fn run(label: &str, set: fn(&mut Params)) -> Value {
    let c = content();
    let mut w = World::new(set);
    let p = w.chain.state.g.params.clone();
    let mut ledger = vec![snapshot(&w, "genesis")];
    w.register_all();
    ledger.push(snapshot(&w, "registered"));

    // Create and commit in one epoch.
    w.stay_in_epoch();
    w.stay_in_epoch();
    let escrow: Amount = 50_000_000_000;
    let alice0 = w.balance("alice");
    let id = w.deal_with_content(c, 12, escrow);
    let d = w.deal(id);
    let mut m = Model::default();
    // The reservation's rent for the term left the escrow at creation; the commit cost
    // nothing more.
    let rent =
        d.reserved_mdus as Amount * p.rent_per_mdu_epoch * (d.end_epoch - d.start_epoch) as Amount;
    m.escrow = escrow - rent;
    m.reserved = rent;
    assert_eq!(
        (d.escrow, d.rent_reserved),
        (m.escrow, m.reserved),
        "{label}: rent of the reservation"
    );
    assert_eq!(
        w.balance("alice"),
        alice0 - escrow - 2 * p.min_fee,
        "{label}: alice after deal"
    );
    ledger.push(snapshot(&w, "deal committed"));

    // The first challenged epoch is the one after the commit: close the commit epoch
    // (nobody is challenged; every active slot is paid), then prove three epochs.
    let e = w.chain.state.g.epoch;
    let end = d.end_epoch;
    let release = m.reserved / (end - e) as Amount;
    let share = release / 3;
    for r in m.provider_rent.iter_mut() {
        *r += share;
    }
    m.reserved -= 3 * share;
    w.advance_to_epoch(e + 1);
    close_epochs_proving(&mut w, &mut m, id, 3);
    let d = w.deal(id);
    assert_eq!(
        (d.escrow, d.rent_reserved),
        (m.escrow, m.reserved),
        "{label}: after proofs"
    );
    let names: Vec<String> = d.slots.iter().map(|s| w.name_of(&s.provider)).collect();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            w.rewards(n),
            m.provider_rent[i],
            "{label}: rent of slot {i}"
        );
    }
    ledger.push(snapshot(&w, "three epochs proven"));

    // A receipt through deputy d0 for slot 0's provider.
    w.stay_in_epoch();
    let blobs = 1_000u64;
    let r = Receipt {
        deal: id,
        provider: d.slots[0].provider,
        deputy: w.addr("d0"),
        blobs,
        bytes: blobs * 131_072,
        nonce: 1,
    };
    let sig = w.keys["alice"].sign_digest(&r.digest(CHAIN_ID));
    let before0 = w.rewards(&names[0]);
    w.ok(&names[0], Msg::RedeemReceipt { receipt: r, sig });
    let paid = blobs as Amount * p.price_per_blob;
    let burned = bps_of(paid, p.receipt_burn_bps);
    let premium = bps_of(paid, p.deputy_premium_bps);
    m.escrow -= paid;
    m.burned_receipts += burned;
    assert_eq!(
        w.rewards(&names[0]) - before0,
        paid - burned - premium,
        "{label}: receipt"
    );
    assert_eq!(w.rewards("d0"), premium, "{label}: deputy premium");
    assert_eq!(w.deal(id).escrow, m.escrow);
    ledger.push(snapshot(&w, "receipt redeemed"));

    // Sponsoring and extending.
    let bob0 = w.balance("bob");
    w.ok(
        "bob",
        Msg::AddCredit {
            deal: id,
            amount: 7_000_000,
        },
    );
    m.escrow += 7_000_000;
    assert_eq!(w.balance("bob"), bob0 - 7_000_000 - p.min_fee);
    w.ok(
        "alice",
        Msg::ExtendDeal {
            deal: id,
            epochs: 2,
        },
    );
    let ext = w.deal(id).reserved_mdus as Amount * p.rent_per_mdu_epoch * 2;
    m.escrow -= ext;
    m.reserved += ext;
    let d = w.deal(id);
    assert_eq!(
        (d.escrow, d.rent_reserved),
        (m.escrow, m.reserved),
        "{label}: extend"
    );
    ledger.push(snapshot(&w, "sponsored and extended"));

    // Providers withdraw; then alice cancels.
    for n in &names {
        let (b, r) = (w.balance(n), w.rewards(n));
        w.ok(n, Msg::Withdraw {});
        assert_eq!(w.balance(n), b + r - p.min_fee);
    }
    w.stay_in_epoch();
    let alice1 = w.balance("alice");
    let res = w.ok("alice", Msg::CancelDeal { deal: id });
    let penalty = bps_of(m.reserved, p.cancel_penalty_bps);
    let refund = m.escrow + m.reserved - penalty;
    m.burned_cancel = penalty;
    assert_eq!(
        res.events,
        vec![Event::DealEnded {
            deal: id,
            cancelled: true,
            refund
        }]
    );
    assert_eq!(
        w.balance("alice"),
        alice1 + refund - p.min_fee,
        "{label}: refund"
    );
    for s in &d.slots {
        assert_eq!(w.chain.state.providers.get(&s.provider).unwrap().slots, 0);
    }
    // Close one more epoch so the reward pool is distributed.
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + 1);
    ledger.push(snapshot(&w, "cancelled"));

    // Chain-wide: fees, mint, burns, validator rewards — exact.
    let g = &w.chain.state.g;
    let blocks = w.blocks.len() as Amount;
    let txs: Amount = w.blocks.iter().map(|b| b.txs.len() as Amount).sum();
    let fee_burn = txs * bps_of(p.min_fee, p.fee_burn_bps);
    assert_eq!(g.minted, blocks * p.block_reward, "{label}: minted");
    assert_eq!(
        g.burned,
        fee_burn + m.burned_receipts + m.burned_cancel,
        "{label}: burned"
    );
    assert_eq!(
        w.rewards("val") + g.reward_pool,
        g.minted + txs * p.min_fee - fee_burn,
        "{label}: validator rewards + pool"
    );
    let genesis: Amount = common::names().len() as Amount * START_BALANCE + 10_000_000_000;
    assert_eq!(g.supply, genesis + g.minted - g.burned);
    assert_eq!(w.chain.state.accounted_supply(), g.supply);
    json!({
        "label": label,
        "params": p,
        "blocks": w.blocks.len(),
        "transactions": txs.to_string(),
        "ledger": ledger,
    })
}

#[test]
fn economics_three_parameter_sets_exact() {
    let runs = vec![
        run("devnet", set_a),
        run("no-burn", set_b),
        run("heavy-burn", set_c),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/evidence");
    std::fs::create_dir_all(&dir).unwrap();
    let out = json!({ "chain_id": CHAIN_ID, "runs": runs });
    std::fs::write(
        dir.join("economics.json"),
        serde_json::to_vec_pretty(&out).unwrap(),
    )
    .unwrap();
}
