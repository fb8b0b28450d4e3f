//! The chain end to end in process: deals, commits, proofs, receipts, evidence, repair,
//! staking, replay, state proofs and must-reject cases for every message.

// Integration tests: helpers outside #[test] functions unwrap as assertions.
#![allow(clippy::unwrap_used)]
// Native only: the browser side is covered by tests/browser.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use chain_light::block::Chain;
use chain_light::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use chain_light::exec::{EvictReason, Outcome, TxError};
use chain_light::state::{state_key, tag, ProviderStatus, SlotStatus};
use chain_light::tx::{Attestation, FraudEvidence, Msg, ProofItem, Receipt, Served};
use chain_light::{Amount, Event};
use common::{content, World, CHAIN_ID};

fn failed(r: &chain_light::TxResult) -> &TxError {
    match &r.outcome {
        Outcome::Failed { error } | Outcome::Invalid { error } => error,
        Outcome::Ok => panic!("expected a failure, got Ok with {:?}", r.events),
    }
}

fn expect_failed(w: &mut World, who: &str, msg: Msg) -> TxError {
    let bal = w.balance(who);
    let nonce = w.nonce(who);
    let r = w.send(who, msg);
    assert!(matches!(r.outcome, Outcome::Failed { .. }), "{r:?}");
    assert!(r.events.is_empty());
    assert_eq!(w.balance(who), bal - w.chain.state.g.params.min_fee);
    assert_eq!(w.nonce(who), nonce + 1);
    failed(&r).clone()
}

fn small_epochs(p: &mut chain_light::params::Params) {
    p.epoch_blocks = 8;
}

#[test]
fn lifecycle_with_proofs_receipts_and_expiry() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 4, 10_000_000_000);
    let d = w.deal(id);
    assert_eq!(d.slots.len(), 3);
    assert_eq!(d.manifest_root, Some(c.root()));
    // Distinct operators.
    let mut ops: Vec<_> = d
        .slots
        .iter()
        .map(|s| w.chain.state.providers.get(&s.provider).unwrap().operator)
        .collect();
    ops.dedup();
    assert_eq!(ops.len(), 3);
    // Next epoch: challenged; every provider proves.
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + 1);
    w.prove_all(c, id);
    for slot in 0..3 {
        let work = w.chain.state.work.get(&(id, slot)).unwrap();
        assert_eq!(work.proven.count_ones(), w.chain.state.quota(id, slot));
    }
    // A receipt through a deputy pays the provider, the deputy and the burn.
    let provider = d.slots[0].provider;
    let r = Receipt {
        deal: id,
        provider,
        deputy: w.addr("d0"),
        blobs: 100,
        bytes: 100 * 131_072,
        nonce: 1,
    };
    let sig = w.keys["alice"].sign_digest(&r.digest(CHAIN_ID));
    let pn = w.name_of(&provider);
    let before = w.rewards(&pn);
    let res = w.ok(
        &pn,
        Msg::RedeemReceipt {
            receipt: r.clone(),
            sig,
        },
    );
    let p = &w.chain.state.g.params;
    let paid = 100 * p.price_per_blob;
    let burned = chain_light::params::bps_of(paid, p.receipt_burn_bps);
    let premium = chain_light::params::bps_of(paid, p.deputy_premium_bps);
    assert_eq!(
        res.events,
        vec![Event::ReceiptRedeemed {
            deal: id,
            provider,
            paid,
            burned
        }]
    );
    assert_eq!(w.rewards(&pn) - before, paid - burned - premium);
    assert_eq!(w.rewards("d0"), premium);
    // Replaying the same receipt is refused.
    let res = w.send(&pn, Msg::RedeemReceipt { receipt: r, sig });
    assert!(matches!(failed(&res), TxError::Conflict(_)));
    // Run to expiry: the deal ends, escrow returns, providers were paid rent.
    while w.chain.state.deals.contains(&id) {
        let e = w.chain.state.g.epoch;
        w.advance_to_epoch(e + 1);
        if w.chain.state.deals.contains(&id) {
            w.prove_all(c, id);
        }
    }
    for s in &d.slots {
        let p = w.chain.state.providers.get(&s.provider).unwrap();
        assert_eq!(p.slots, 0);
        assert_eq!(p.used_mdus, 0);
        assert!(w.rewards(&w.name_of(&s.provider)) > 0);
    }
    // Withdraw moves rewards to the balance.
    let b = w.balance(&pn);
    let rw = w.rewards(&pn);
    w.ok(&pn, Msg::Withdraw {});
    assert_eq!(w.balance(&pn), b + rw - w.chain.state.g.params.min_fee);
    assert_eq!(w.rewards(&pn), 0);
}

#[test]
fn envelope_rejections_change_nothing() {
    let mut w = World::new(small_epochs);
    let root = w.chain.tip.state_root;
    let to = w.addr("bob");
    let transfer = Msg::Transfer { to, amount: 5 };
    // Bad signature: signed by bob, claims alice.
    let mut t = w.tx("alice", transfer.clone());
    t.sig = w.keys["bob"].sign_digest(&t.tx.digest());
    assert!(matches!(failed(&w.send_tx(t)), TxError::Signature(_)));
    // Wrong chain id.
    let mut t = w.tx("alice", transfer.clone());
    t.tx.chain_id += 1;
    let t = t.tx.sign(&w.keys["alice"]);
    assert!(matches!(failed(&w.send_tx(t)), TxError::WrongChain { .. }));
    // Fee below the minimum.
    let mut t = w.tx("alice", transfer.clone());
    t.tx.fee = 1;
    let t = t.tx.sign(&w.keys["alice"]);
    assert!(matches!(failed(&w.send_tx(t)), TxError::FeeTooLow { .. }));
    // Future nonce.
    let t = w.tx_nonce("alice", 5, transfer.clone());
    assert!(matches!(
        failed(&w.send_tx(t)),
        TxError::Nonce { want: 0, got: 5 }
    ));
    // Nothing reached a block.
    assert!(w.blocks.is_empty());
    assert_eq!(w.chain.tip.state_root, root);
    // Replayed nonce: the first goes in, the identical second is refused.
    let t = w.tx("alice", transfer);
    assert_eq!(w.send_tx(t.clone()).outcome, Outcome::Ok);
    assert!(matches!(
        failed(&w.send_tx(t.clone())),
        TxError::Nonce { want: 1, got: 0 }
    ));
    // A block carrying an invalid transaction is refused on import.
    let mut other = Chain::from_genesis(&w.genesis).unwrap();
    let mut bad = w.blocks[0].clone();
    bad.txs.push(t);
    bad.header.tx_root = chain_light::block::tx_root(&bad.txs);
    let env = w.env();
    assert!(matches!(
        other.import(&env, &bad),
        Err(chain_light::block::BlockError::InvalidTx { index: 1, .. })
    ));
    assert_eq!(other.tip.height, 0);
    // Oversized.
    let mut p = w.chain.state.g.params.clone();
    p.max_tx_bytes = 1024;
    w.ok(
        "gov",
        Msg::SetParams {
            params: Box::new(p),
        },
    );
    let t = w.tx(
        "alice",
        Msg::RegisterProvider {
            stake: 1,
            capacity_mdus: 1,
            operator: Address::ZERO,
            peer_id: "x".repeat(2000),
            endpoints: vec![],
        },
    );
    assert!(matches!(failed(&w.send_tx(t)), TxError::TooLarge { .. }));
}

#[test]
fn message_rejections_keep_state_but_fee_and_nonce() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 10, 10_000_000_000);
    let deal_before = w.deal(id);
    // Stale generation (a concurrent commit lost the race).
    let e = expect_failed(
        &mut w,
        "alice",
        Msg::CommitContent {
            deal: id,
            generation: 0,
            manifest_root: c.root(),
            total_mdus: c.out.total_mdus(),
            size_bytes: 1,
        },
    );
    assert!(matches!(e, TxError::Conflict(_)), "{e}");
    // Shrinking total_mdus.
    let e = expect_failed(
        &mut w,
        "alice",
        Msg::CommitContent {
            deal: id,
            generation: 1,
            manifest_root: c.root(),
            total_mdus: c.out.total_mdus() - 1,
            size_bytes: 1,
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    // Malformed point (not on the curve).
    let e = expect_failed(
        &mut w,
        "alice",
        Msg::CommitContent {
            deal: id,
            generation: 1,
            manifest_root: G1Bytes([0x8a; 48]),
            total_mdus: c.out.total_mdus(),
            size_bytes: 1,
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    // Someone else's deal.
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::CommitContent {
            deal: id,
            generation: 1,
            manifest_root: c.root(),
            total_mdus: c.out.total_mdus(),
            size_bytes: 1,
        },
    );
    assert!(matches!(e, TxError::Unauthorized(_)), "{e}");
    let now = w.deal(id);
    assert_eq!(
        (now.generation, now.total_mdus, now.manifest_root),
        (
            deal_before.generation,
            deal_before.total_mdus,
            deal_before.manifest_root
        )
    );
    // Proofs from a provider not assigned to the slot.
    let ep = w.chain.state.g.epoch;
    w.advance_to_epoch(ep + 1);
    let items = w.proofs_for(c, id, 0);
    let outsider = (0..common::PROVIDERS)
        .map(|i| format!("p{i}"))
        .find(|n| !deal_before.slots.iter().any(|s| s.provider == w.addr(n)))
        .unwrap();
    let now = w.chain.state.g.epoch;
    let e = expect_failed(
        &mut w,
        &outsider,
        Msg::SubmitProofs {
            epoch: now,
            items: items.clone(),
        },
    );
    assert!(matches!(e, TxError::Unauthorized(_)), "{e}");
    // The right provider, a proof for another ordinal's challenge.
    let owner = w.name_of(&deal_before.slots[0].provider);
    let mut swapped = items.clone();
    if swapped.len() > 1 {
        swapped[0].ordinal = 1;
        swapped[1].ordinal = 0;
        let e = expect_failed(
            &mut w,
            &owner,
            Msg::SubmitProofs {
                epoch: now,
                items: swapped,
            },
        );
        assert!(matches!(e, TxError::Invalid(_)), "{e}");
    }
    // Garbage bytes as a proof.
    let mut garbage = items.clone();
    garbage[0].proof = Blob(vec![1, 2, 3]);
    let e = expect_failed(
        &mut w,
        &owner,
        Msg::SubmitProofs {
            epoch: now,
            items: garbage,
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    // Wrong epoch.
    let e = expect_failed(
        &mut w,
        &owner,
        Msg::SubmitProofs {
            epoch: now + 1,
            items: items.clone(),
        },
    );
    assert!(matches!(e, TxError::Conflict(_)), "{e}");
    // Receipt with a forged owner signature (bob signs alice's deal).
    let r = Receipt {
        deal: id,
        provider: deal_before.slots[0].provider,
        deputy: Address::ZERO,
        blobs: 10,
        bytes: 10,
        nonce: 1,
    };
    let sig = w.keys["bob"].sign_digest(&r.digest(CHAIN_ID));
    let e = expect_failed(
        &mut w,
        &owner,
        Msg::RedeemReceipt {
            receipt: r.clone(),
            sig,
        },
    );
    assert!(matches!(e, TxError::Unauthorized(_)), "{e}");
    // A receipt signed for another chain.
    let sig = w.keys["alice"].sign_digest(&r.digest(CHAIN_ID + 1));
    let e = expect_failed(
        &mut w,
        &owner,
        Msg::RedeemReceipt {
            receipt: r.clone(),
            sig,
        },
    );
    assert!(matches!(e, TxError::Unauthorized(_)), "{e}");
    // Malformed signature bytes.
    let e = expect_failed(
        &mut w,
        &owner,
        Msg::RedeemReceipt {
            receipt: r,
            sig: Sig65([0; 65]),
        },
    );
    assert!(matches!(e, TxError::Signature(_)), "{e}");
    // Governance by a non-governor.
    let same = Box::new(w.chain.state.g.params.clone());
    let e = expect_failed(&mut w, "bob", Msg::SetParams { params: same });
    assert!(matches!(e, TxError::Unauthorized(_)), "{e}");
    // Invalid parameters even from the governor.
    let mut p = w.chain.state.g.params.clone();
    p.deputy_threshold = 1;
    let e = expect_failed(
        &mut w,
        "gov",
        Msg::SetParams {
            params: Box::new(p),
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    // Unknown deal, overdrawn transfer, bad endpoints, bad profile.
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::AddCredit {
            deal: 999,
            amount: 1,
        },
    );
    assert!(matches!(e, TxError::NotFound(_)), "{e}");
    let to = w.addr("carol");
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::Transfer {
            to,
            amount: Amount::MAX,
        },
    );
    assert!(matches!(e, TxError::Insufficient { .. }), "{e}");
    let stake = w.chain.state.g.params.min_provider_stake;
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::RegisterProvider {
            stake,
            capacity_mdus: 10,
            operator: to,
            peer_id: "peer".into(),
            endpoints: vec!["not a multiaddr".into()],
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::CreateDeal {
            k: 3,
            m: 1,
            capacity_mdus: 1,
            term_epochs: 1,
            escrow: 0,
            spend_cap: 0,
        },
    );
    assert!(matches!(e, TxError::Invalid(_)), "{e}");
    // More slots than operators.
    let e = expect_failed(
        &mut w,
        "bob",
        Msg::CreateDeal {
            k: 4,
            m: 4,
            capacity_mdus: 1,
            term_epochs: 1,
            escrow: 0,
            spend_cap: 0,
        },
    );
    assert!(matches!(e, TxError::NoPlacement { need: 8, .. }), "{e}");
}

/// Issue 17 item 5: reserving capacity is paid for. A zero-escrow deal that would hold
/// 900 MDUs on each of three providers for the maximum term is refused and reserves
/// nothing; a deal whose escrow covers the reservation's rent moves it to `rent_reserved`
/// at once, and the providers holding the capacity are paid each epoch though no content
/// was ever committed.
#[test]
fn capacity_reservations_are_paid_for() {
    let mut w = World::new(small_epochs);
    w.register_all();
    let p = w.chain.state.g.params.clone();
    let used = |w: &World| -> Vec<u64> {
        w.chain
            .state
            .providers
            .iter()
            .map(|(_, pr)| pr.used_mdus)
            .collect()
    };
    let (used0, next0) = (used(&w), w.chain.state.g.next_deal);
    let create = |term_epochs, escrow| Msg::CreateDeal {
        k: 2,
        m: 1,
        capacity_mdus: 900,
        term_epochs,
        escrow,
        spend_cap: 0,
    };
    let e = expect_failed(&mut w, "bob", create(p.max_term_epochs, 0));
    assert!(matches!(e, TxError::Insufficient { .. }), "{e}");
    assert_eq!(used(&w), used0, "a refused deal reserves nothing");
    assert_eq!(w.chain.state.g.next_deal, next0);

    // Paid: exactly the rent of the reservation for the term.
    let term = 6u64;
    let layout =
        wasm_core::slab::Layout::new(wasm_core::rs::Profile::new(2, 1).unwrap(), 900).unwrap();
    let reserved = 1 + layout.witness_mdus + 900;
    let rent = reserved as Amount * p.rent_per_mdu_epoch * term as Amount;
    let e = expect_failed(&mut w, "bob", create(term, rent - 1));
    assert!(matches!(e, TxError::Insufficient { .. }), "{e}");
    let r = w.ok("bob", create(term, rent));
    let id = match &r.events[0] {
        Event::DealCreated { deal, .. } => *deal,
        e => panic!("{e:?}"),
    };
    let d = w.deal(id);
    assert_eq!((d.escrow, d.rent_reserved), (0, rent));
    let holders: Vec<String> = d.slots.iter().map(|s| w.name_of(&s.provider)).collect();
    let before: Vec<Amount> = holders.iter().map(|n| w.rewards(n)).collect();
    let e0 = w.chain.state.g.epoch;
    w.advance_to_epoch(e0 + 1);
    let share = rent / (d.end_epoch - e0) as Amount / 3;
    assert!(share > 0);
    for (n, b) in holders.iter().zip(before) {
        assert_eq!(
            w.rewards(n) - b,
            share,
            "{n} is paid for holding the capacity"
        );
    }
    assert_eq!(w.deal(id).rent_reserved, rent - 3 * share);
    w.check_invariants();
}

#[test]
fn wrong_proof_is_slashed_and_repair_completes_with_proofs() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 20, 10_000_000_000);
    let ep = w.chain.state.g.epoch;
    w.advance_to_epoch(ep + 1);
    let d = w.deal(id);
    let bad_provider = d.slots[1].provider;
    let name = w.name_of(&bad_provider);
    let stake = w.chain.state.providers.get(&bad_provider).unwrap().stake;
    // Slot 1 answers its genuine challenge 0 with a wrong value.
    let items = wrong_proofs(&w, c, id, 1);
    let r = w.ok(
        &name,
        Msg::SubmitProofs {
            epoch: w.chain.state.g.epoch,
            items,
        },
    );
    let slashed = chain_light::params::bps_of(stake, w.chain.state.g.params.fraud_slash_bps);
    assert!(r.events.contains(&Event::ProviderSlashed {
        provider: bad_provider,
        amount: slashed,
        reason: EvictReason::Fraud
    }));
    let d = w.deal(id);
    assert_eq!(d.slots[1].status, SlotStatus::Repairing);
    let pending = d.slots[1].pending.expect("a replacement is placed");
    assert!(!d.slots.iter().any(|s| s.provider == pending));
    // The replacement proves the repair challenges (it rebuilt slot 1 from the others).
    let proofs = repair_proofs(&w, c, id, 1);
    let st = &w.chain.state;
    let beacon = st.repair_beacon(id, 1);
    // Wrong values in otherwise well-formed proofs.
    let pn = w.name_of(&pending);
    let wrong: Vec<Blob> = (0..st.g.params.repair_proofs)
        .map(|i| {
            let ch = st.challenge(&d, id, 1, i, &beacon).unwrap();
            let mut p = c.prove(1, &ch);
            p.y = [0u8; 32];
            Blob(p.to_bytes())
        })
        .collect();
    // Not by anyone else.
    let r = w.send(
        "bob",
        Msg::CompleteRepair {
            deal: id,
            slot: 1,
            proofs: proofs.clone(),
        },
    );
    assert!(matches!(failed(&r), TxError::Unauthorized(_)));
    let r = w.send(
        &pn,
        Msg::CompleteRepair {
            deal: id,
            slot: 1,
            proofs: wrong,
        },
    );
    assert!(matches!(failed(&r), TxError::BadProof(_)));
    let r = w.ok(
        &pn,
        Msg::CompleteRepair {
            deal: id,
            slot: 1,
            proofs,
        },
    );
    assert_eq!(
        r.events,
        vec![Event::RepairCompleted {
            deal: id,
            slot: 1,
            provider: pending
        }]
    );
    let d = w.deal(id);
    assert_eq!(d.slots[1].status, SlotStatus::Active);
    assert_eq!(d.slots[1].provider, pending);
    assert_eq!(w.chain.state.providers.get(&bad_provider).unwrap().slots, 0);
}

/// This epoch's proofs of `slot`, the first answering its challenge with a wrong value.
fn wrong_proofs(w: &World, c: &common::Content, id: u64, slot: u32) -> Vec<ProofItem> {
    let st = &w.chain.state;
    let dd = st.deals.get(&id).unwrap();
    let mut items = w.proofs_for(c, id, slot);
    let ch = st.challenge(dd, id, slot, 0, &st.g.beacon).unwrap();
    let mut p = c.prove(slot, &ch);
    p.y[31] ^= 1;
    items[0].proof = Blob(p.to_bytes());
    items
}

/// The proofs that complete the repair of `slot` (its content rebuilt by the replacement).
fn repair_proofs(w: &World, c: &common::Content, id: u64, slot: u32) -> Vec<Blob> {
    let st = &w.chain.state;
    let d = w.deal(id);
    let beacon = st.repair_beacon(id, slot);
    (0..st.g.params.repair_proofs)
        .map(|i| {
            let ch = st.challenge(&d, id, slot, i, &beacon).unwrap();
            Blob(c.prove(slot, &ch).to_bytes())
        })
        .collect()
}

fn fraud_evidence(w: &World, id: u64, slot: u32, sign_as: &str, tamper: bool) -> FraudEvidence {
    fraud_evidence_of(w, content(), id, slot, sign_as, tamper)
}

/// Evidence about the first user MDU of `c` (the deal's current content), its `Served`
/// statement signed by `sign_as` for the deal's current generation.
fn fraud_evidence_of(
    w: &World,
    c: &common::Content,
    id: u64,
    slot: u32,
    sign_as: &str,
    tamper: bool,
) -> FraudEvidence {
    let d = w.deal(id);
    let mdu = d.witness_mdus + 1;
    let enc = &c.mdus[0];
    let rows = d.rows();
    let leaf_index = slot as u64 * rows;
    let blob_len = wasm_core::constants::BYTES_PER_BLOB;
    let mut bytes = enc.shards[slot as usize][..blob_len].to_vec();
    if tamper {
        bytes[100] ^= 0x01;
    }
    let tree = wasm_core::merkle::MerkleTree::new(&enc.leaves);
    let path = tree.path(leaf_index as usize).unwrap();
    let (proof, y) = KzgHelper::open_manifest(c, mdu);
    assert_eq!(y, enc.root_fr);
    let served = Served {
        deal: id,
        generation: d.generation,
        slot,
        mdu: mdu as u32,
        mdu_root: H256(enc.root_fr),
        leaf: leaf_index as u32,
        blake3: H256(*blake3::hash(&bytes).as_bytes()),
    };
    let served_sig = w.keys[sign_as].sign_digest(&served.digest(CHAIN_ID));
    let leaf = enc.leaves[leaf_index as usize];
    FraudEvidence {
        deal: id,
        slot,
        mdu: mdu as u32,
        leaf_index: leaf_index as u32,
        leaf_commitment: G1Bytes(leaf.commitment),
        leaf_blake3: H256(leaf.blake3),
        path: path.into_iter().map(H256).collect(),
        mdu_root: H256(enc.root_fr),
        manifest_proof: G1Bytes(proof),
        bytes: Blob(bytes),
        served_sig,
    }
}

struct KzgHelper;

impl KzgHelper {
    fn open_manifest(c: &common::Content, mdu: u64) -> ([u8; 48], [u8; 32]) {
        let kzg = wasm_core::kzg::KzgSettings::ethereum();
        let z = kzg.roots_brp()[mdu as usize];
        let (pi, y) = kzg.proof_at(&c.manifest, &z);
        (pi.to_compressed(), y.to_bytes_be())
    }
}

/// Issue 17 item 8: an honest `Served` statement about earlier content is no evidence
/// against later content. The owner commits a new generation whose leaf differs and replays
/// the provider's honest statement of generation 0 as fraud: refused (the statement signs
/// its generation and MDU root), nothing slashed. A wrong blob signed for the current
/// content is still fraud.
#[test]
fn an_honest_statement_about_earlier_content_is_not_fraud() {
    let old = content();
    let new = common::Content::build(8, 1);
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(old, 20, 10_000_000_000);
    let accused = w.deal(id).slots[0].provider;
    let an = w.name_of(&accused);
    let stake = w.chain.state.providers.get(&accused).unwrap().stake;
    // What the provider honestly served and signed while generation 0 was current.
    let statement = fraud_evidence_of(&w, old, id, 0, &an, false);
    w.ok(
        "alice",
        Msg::CommitContent {
            deal: id,
            generation: 1,
            manifest_root: new.root(),
            total_mdus: new.out.total_mdus(),
            size_bytes: 8_000_000,
        },
    );
    let mut replay = fraud_evidence_of(&w, &new, id, 0, &an, false);
    assert_ne!(
        replay.leaf_blake3.0,
        *blake3::hash(&statement.bytes.0).as_bytes()
    );
    replay.bytes = statement.bytes;
    replay.served_sig = statement.served_sig;
    let r = w.send(
        "alice",
        Msg::SubmitFraud {
            evidence: Box::new(replay),
        },
    );
    assert!(matches!(failed(&r), TxError::Signature(_)), "{r:?}");
    assert_eq!(w.deal(id).slots[0].status, SlotStatus::Active);
    assert_eq!(w.chain.state.providers.get(&accused).unwrap().stake, stake);
    // Wrong bytes signed for the current generation: fraud.
    let ev = fraud_evidence_of(&w, &new, id, 0, &an, true);
    w.ok(
        "alice",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(w.chain.state.providers.get(&accused).unwrap().stake < stake);
    assert_ne!(w.deal(id).slots[0].status, SlotStatus::Active);
}

#[test]
fn fraud_evidence_slashes_once_and_honest_bytes_do_not() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 20, 10_000_000_000);
    let d = w.deal(id);
    let accused = d.slots[0].provider;
    let an = w.name_of(&accused);
    // Honest bytes: no fraud.
    let ev = fraud_evidence(&w, id, 0, &an, false);
    let r = w.send(
        "bob",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(matches!(failed(&r), TxError::BadProof(_)));
    // Bad bytes signed by someone else than the provider: no fraud provable.
    let ev = fraud_evidence(&w, id, 0, "carol", true);
    let r = w.send(
        "bob",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(matches!(failed(&r), TxError::Signature(_)));
    // A leaf of another slot than the accused one.
    let mut ev = fraud_evidence(&w, id, 0, &an, true);
    ev.slot = 1;
    let r = w.send(
        "bob",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(matches!(failed(&r), TxError::Invalid(_)));
    // A forged Merkle path.
    let mut ev = fraud_evidence(&w, id, 0, &an, true);
    ev.path[0] = H256([9; 32]);
    let r = w.send(
        "bob",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(matches!(failed(&r), TxError::BadProof(_)));
    // Real fraud: slashed, reporter rewarded, slot evicted.
    let stake = w.chain.state.providers.get(&accused).unwrap().stake;
    let ev = fraud_evidence(&w, id, 0, &an, true);
    let reporter_before = w.rewards("bob");
    let r = w.ok(
        "bob",
        Msg::SubmitFraud {
            evidence: Box::new(ev.clone()),
        },
    );
    let p = &w.chain.state.g.params;
    let amount = chain_light::params::bps_of(stake, p.fraud_slash_bps);
    assert_eq!(
        w.rewards("bob") - reporter_before,
        chain_light::params::bps_of(amount, p.reporter_reward_bps)
    );
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::SlotEvicted {
            reason: EvictReason::Fraud,
            slot: 0,
            ..
        }
    )));
    // The same evidence again: refused.
    let r = w.send(
        "carol",
        Msg::SubmitFraud {
            evidence: Box::new(ev),
        },
    );
    assert!(matches!(failed(&r), TxError::Conflict(_)));
}

#[test]
fn deputies_one_cannot_slash_threshold_of_distinct_committee_members_does() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 20, 10_000_000_000);
    let d = w.deal(id);
    let provider = d.slots[2].provider;
    let st = &w.chain.state;
    let committee = st.committee(&st.g.beacon, id, 2);
    assert_eq!(committee.len(), st.g.params.deputy_committee as usize);
    let att = Attestation {
        deal: id,
        slot: 2,
        mdu: (d.witness_mdus + 1) as u32,
        leaf: 0,
        provider,
        epoch: st.g.epoch,
        transcript: H256([3; 32]),
    };
    let threshold = st.g.params.deputy_threshold;
    let sign = |w: &World, n: &str| w.keys[n].sign_digest(&att.digest(CHAIN_ID));
    // A non-deputy's signature is refused.
    let r = w.send(
        "bob",
        Msg::SubmitAttestation {
            att: att.clone(),
            sig: sign(&w, "carol"),
        },
    );
    assert!(matches!(failed(&r), TxError::Unauthorized(_)));
    let first = w.name_of(&committee[0]);
    w.ok(
        &first,
        Msg::SubmitAttestation {
            att: att.clone(),
            sig: sign(&w, &first),
        },
    );
    // The same deputy again (even through another submitter) does not count twice.
    let r = w.send(
        "bob",
        Msg::SubmitAttestation {
            att: att.clone(),
            sig: sign(&w, &first),
        },
    );
    assert!(matches!(failed(&r), TxError::Conflict(_)));
    assert_eq!(w.deal(id).slots[2].status, SlotStatus::Active);
    // Distinct committee members up to the threshold: slash and evict.
    for m in committee.iter().take(threshold as usize).skip(1) {
        let n = w.name_of(m);
        let r = w.ok(
            &n,
            Msg::SubmitAttestation {
                att: att.clone(),
                sig: sign(&w, &n),
            },
        );
        let last = w.deal(id).slots[2].status == SlotStatus::Repairing;
        assert_eq!(
            last,
            r.events.iter().any(|e| matches!(
                e,
                Event::ProviderSlashed {
                    reason: EvictReason::NonResponse,
                    ..
                }
            ))
        );
    }
    assert_eq!(w.deal(id).slots[2].status, SlotStatus::Repairing);
    // Attestations for an old window are refused.
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + 2);
    let n = w.name_of(&committee[0]);
    let mut old = att.clone();
    old.slot = 0;
    old.provider = d.slots[0].provider;
    let sig = w.keys[&n].sign_digest(&old.digest(CHAIN_ID));
    let r = w.send(&n, Msg::SubmitAttestation { att: old, sig });
    assert!(matches!(failed(&r), TxError::Conflict(_)));
}

#[test]
fn missing_proofs_decay_health_then_evict() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 40, 100_000_000_000);
    let p = w.chain.state.g.params.clone();
    let lazy = w.deal(id).slots[0].provider;
    let mut epochs = 0;
    loop {
        let e = w.chain.state.g.epoch;
        w.advance_to_epoch(e + 1);
        epochs += 1;
        // Everyone but slot 0 proves.
        let d = w.deal(id);
        if d.slots[0].status == SlotStatus::Repairing {
            break;
        }
        for slot in 1..3u32 {
            let items = w.proofs_for(c, id, slot);
            let n = w.name_of(&d.slots[slot as usize].provider);
            w.ok(
                &n,
                Msg::SubmitProofs {
                    epoch: w.chain.state.g.epoch,
                    items,
                },
            );
        }
        assert!(epochs < 20, "never evicted");
    }
    // Health 100 drops by miss_penalty per missed epoch (the first challenged epoch is the
    // one after the commit) until ≤ evict_health.
    let misses = (100 - p.evict_health).div_ceil(p.miss_penalty) as u64;
    assert_eq!(epochs, misses + 1);
    assert_eq!(w.chain.state.providers.get(&lazy).unwrap().slots, 0);
    // Missing proofs are a soft failure: no slash.
    assert_eq!(
        w.chain.state.providers.get(&lazy).unwrap().stake,
        p.min_provider_stake
    );
}

#[test]
fn staking_delegation_unbonding_jail_and_graduated_slashing() {
    let mut w = World::new(small_epochs);
    let val = w.addr("val");
    w.ok(
        "bob",
        Msg::Delegate {
            validator: val,
            amount: 4_000_000_000,
        },
    );
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + 1);
    // Rewards flow to the validator and the delegator by power.
    assert!(w.rewards("val") > 0);
    assert!(w.rewards("bob") > 0);
    // Undelegate: funds come back after the unbonding period, not before.
    let b = w.balance("bob");
    w.ok(
        "bob",
        Msg::Undelegate {
            validator: val,
            amount: 1_000_000_000,
        },
    );
    let fee = w.chain.state.g.params.min_fee;
    // Released at the start of epoch `e + unbonding_epochs`.
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + w.chain.state.g.params.unbonding_epochs - 1);
    assert_eq!(w.balance("bob"), b - fee);
    w.advance_to_epoch(e + w.chain.state.g.params.unbonding_epochs);
    assert_eq!(w.balance("bob"), b - fee + 1_000_000_000);
    // Faults: graduated slashing and jail; evidence reused is refused; bad evidence too.
    let r = w.send(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: Blob(b"nonsense".to_vec()),
        },
    );
    assert!(matches!(failed(&r), TxError::BadProof(_)));
    let stake0 = w.chain.state.validators.get(&val).unwrap().self_stake;
    w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: Blob(b"fault:1".to_vec()),
        },
    );
    let stake1 = w.chain.state.validators.get(&val).unwrap().self_stake;
    let p = w.chain.state.g.params.clone();
    assert_eq!(
        stake0 - stake1,
        chain_light::params::bps_of(stake0, p.validator_slash_bps)
    );
    let r = w.send(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: Blob(b"fault:1".to_vec()),
        },
    );
    assert!(matches!(failed(&r), TxError::Conflict(_)));
    w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: Blob(b"fault:2".to_vec()),
        },
    );
    let stake2 = w.chain.state.validators.get(&val).unwrap().self_stake;
    assert_eq!(
        stake1 - stake2,
        chain_light::params::bps_of(stake1, 2 * p.validator_slash_bps)
    );
    // Jailed: unjail refused until the term ends; the jailed validator leaves the next set.
    let r = w.send("val", Msg::Unjail {});
    assert!(matches!(failed(&r), TxError::Conflict(_)));
    assert!(w.chain.state.next_validator_set().is_empty());
    let until = w.chain.state.validators.get(&val).unwrap().jailed_until;
    w.advance_to_epoch(until);
    w.ok("val", Msg::Unjail {});
    assert_eq!(w.chain.state.next_validator_set().len(), 1);
}

#[test]
fn replay_from_the_block_log_gives_the_same_roots_and_proofs_verify() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 6, 10_000_000_000);
    for _ in 0..3 {
        let e = w.chain.state.g.epoch;
        w.advance_to_epoch(e + 1);
        w.prove_all(c, id);
    }
    let mut replay = Chain::from_genesis(&w.genesis).unwrap();
    let env = w.env();
    for b in &w.blocks {
        replay.import(&env, b).unwrap();
        assert_eq!(replay.tip, b.header);
    }
    assert_eq!(replay.tip.state_root, w.chain.tip.state_root);
    // A tampered header is refused and changes nothing.
    let mut replay2 = Chain::from_genesis(&w.genesis).unwrap();
    let mut bad = w.blocks[0].clone();
    bad.header.state_root = H256([1; 32]);
    assert!(replay2.import(&env, &bad).is_err());
    assert_eq!(replay2.tip.height, 0);
    // State proofs: a deal, a provider, a balance, and an absent deal, at the tip and at
    // an old height.
    let h = w.chain.tip.height;
    let root = w.chain.tip.state_root;
    let provider = w.deal(id).slots[0].provider;
    for key in [
        state_key(tag::DEAL, &id),
        state_key(tag::PROVIDER, &provider),
        state_key(tag::ACCOUNT, &w.addr("alice")),
    ] {
        let p = w.chain.prove(&key, h).unwrap();
        assert!(p.value.is_some());
        p.verify(&root).unwrap();
        let mut forged = p.clone();
        forged.value.as_mut().unwrap()[0] ^= 1;
        assert!(forged.verify(&root).is_err());
    }
    let absent = w.chain.prove(&state_key(tag::DEAL, &999u64), h).unwrap();
    assert!(absent.value.is_none());
    absent.verify(&root).unwrap();
    let old = &w.blocks[2].header;
    let p = w
        .chain
        .prove(&state_key(tag::ACCOUNT, &w.addr("alice")), old.height)
        .unwrap();
    p.verify(&old.state_root).unwrap();
    let d: chain_light::state::Deal = chain_light::codec::decode(
        &w.chain
            .prove(&state_key(tag::DEAL, &id), h)
            .unwrap()
            .value
            .unwrap(),
        1 << 20,
    )
    .unwrap();
    assert_eq!(d, w.deal(id));
    let _ = ProviderStatus::Active;
}

/// One byte budget for blocks: a proposer packs transactions up to `MAX_BLOCK_BYTES` and
/// leaves the rest for the next block; a block above it is refused by every checker, so
/// whatever is finalized reads back from the log and over sync with that same limit
/// (blocks used to be bounded by count only: 2000 transactions of 1 MiB finalized, then
/// failed to decode under the log's 64 MiB limit).
#[test]
fn blocks_stay_within_one_byte_budget() {
    use chain_light::block::{Block, BlockError, MAX_BLOCK_BYTES};
    let mut w = World::new(small_epochs);
    // ~1 MiB transactions that fail in execution (a peer id that long is refused) and are
    // therefore included, fee and nonce taken.
    let big = |w: &World, nonce: u64| {
        w.tx_nonce(
            "alice",
            nonce,
            Msg::RegisterProvider {
                stake: 1,
                capacity_mdus: 1,
                operator: Address::ZERO,
                peer_id: "x".repeat((1 << 20) - 1024),
                endpoints: vec![],
            },
        )
    };
    let txs: Vec<_> = (0..40).map(|n| big(&w, n)).collect();
    let mut fresh = Chain::from_genesis(&w.genesis).unwrap();
    let first = w.block(&txs);
    let packed = first.block.txs.len();
    let bytes = chain_light::codec::encode(&first.block);
    assert!(bytes.len() <= MAX_BLOCK_BYTES, "{} bytes", bytes.len());
    assert!((28..40).contains(&packed), "{packed} transactions packed");
    let back: Block = chain_light::codec::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
    assert_eq!(back, first.block);
    let second = w.block(&txs[packed..]);
    assert_eq!(second.block.txs.len(), 40 - packed);
    assert_eq!(w.nonce("alice"), 40);

    // All forty in one block, correctly rooted, is over the budget: refused before
    // execution, and the checker's chain does not move.
    let mut fat = first.block.clone();
    fat.txs = txs;
    fat.header.tx_root = chain_light::block::tx_root(&fat.txs);
    let env = w.env();
    match fresh.import(&env, &fat) {
        Err(BlockError::Rejected(why)) => assert!(why.contains("bytes"), "{why}"),
        other => panic!(
            "an oversized block was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(fresh.tip.height, 0);
    fresh.import(&env, &first.block).unwrap();
    assert_eq!(fresh.tip.state_root, first.block.header.state_root);
}

/// Unbonding is no escape from a fault: stake on its way out of a validator (its own
/// unbonding self-stake and its delegators' undelegations) is slashed with it, and what is
/// released later is the slashed amount; provider and deputy stake is not touched.
#[test]
fn unbonding_stake_is_slashed_with_its_validator() {
    let mut w = World::new(small_epochs);
    w.register_all();
    let val = w.addr("val");
    w.ok(
        "bob",
        Msg::Delegate {
            validator: val,
            amount: 4_000_000_000,
        },
    );
    w.ok(
        "bob",
        Msg::Undelegate {
            validator: val,
            amount: 3_000_000_000,
        },
    );
    w.ok(
        "val",
        Msg::Undelegate {
            validator: val,
            amount: 2_000_000_000,
        },
    );
    w.ok("d0", Msg::ExitDeputy {});
    let unbonding = |w: &World| -> Vec<(String, Amount)> {
        w.chain
            .state
            .unbonding
            .iter()
            .map(|(_, u)| (w.name_of(&u.owner), u.amount))
            .collect()
    };
    let before = unbonding(&w);
    assert_eq!(before.len(), 3, "{before:?}");
    w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: Blob(b"fault:1".to_vec()),
        },
    );
    let bps = w.chain.state.g.params.validator_slash_bps;
    let after = unbonding(&w);
    for ((who, was), (_, now)) in before.iter().zip(&after) {
        let want = if who == "d0" {
            *was
        } else {
            was - chain_light::params::bps_of(*was, bps)
        };
        assert_eq!(*now, want, "{who}");
    }
    // Released after the period: bob gets the slashed amount back.
    let b = w.balance("bob");
    let e = w.chain.state.g.epoch;
    w.advance_to_epoch(e + w.chain.state.g.params.unbonding_epochs + 1);
    let bob_after = after.iter().find(|(n, _)| n == "bob").map(|x| x.1).unwrap();
    assert_eq!(w.balance("bob"), b + bob_after);
    assert!(w.chain.state.unbonding.iter().next().is_none());
}

/// Attestations count against the provider they were made against: a slot evicted (here
/// for a wrong proof) and repaired within one epoch does not carry the old provider's
/// attestations over to the new one (they used to be keyed by slot alone, so fewer than a
/// threshold of deputies could slash the replacement).
#[test]
fn attestations_against_an_evicted_provider_do_not_count_against_its_replacement() {
    let c = content();
    let mut w = World::new(small_epochs);
    w.register_all();
    let id = w.deal_with_content(c, 20, 10_000_000_000);
    let ep = w.chain.state.g.epoch;
    w.advance_to_epoch(ep + 1);
    let d = w.deal(id);
    let old = d.slots[1].provider;
    let st = &w.chain.state;
    let committee = st.committee(&st.g.beacon, id, 1);
    let epoch = st.g.epoch;
    let att = |provider| Attestation {
        deal: id,
        slot: 1,
        mdu: (d.witness_mdus + 1) as u32,
        leaf: 0,
        provider,
        epoch,
        transcript: H256([5; 32]),
    };
    let attest = |w: &mut World, who: &Address, provider| {
        let n = w.name_of(who);
        let a = att(provider);
        let sig = w.keys[&n].sign_digest(&a.digest(CHAIN_ID));
        w.ok(&n, Msg::SubmitAttestation { att: a, sig })
    };
    attest(&mut w, &committee[0], old);
    // The old provider answers its challenge wrongly: evicted, a replacement repairs.
    let name = w.name_of(&old);
    let items = wrong_proofs(&w, c, id, 1);
    w.ok(&name, Msg::SubmitProofs { epoch, items });
    let new = w.deal(id).slots[1]
        .pending
        .expect("a replacement is placed");
    let proofs = repair_proofs(&w, c, id, 1);
    let pn = w.name_of(&new);
    w.ok(
        &pn,
        Msg::CompleteRepair {
            deal: id,
            slot: 1,
            proofs,
        },
    );
    assert_eq!(w.chain.state.g.epoch, epoch, "the scenario needs one epoch");
    // Threshold − 1 deputies against the replacement: no slash, the slot stays active.
    let threshold = w.chain.state.g.params.deputy_threshold as usize;
    let stake = w.chain.state.providers.get(&new).unwrap().stake;
    for m in &committee[1..threshold] {
        let r = attest(&mut w, m, new);
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e, Event::ProviderSlashed { .. })),
            "{:?}",
            r.events
        );
    }
    assert_eq!(w.deal(id).slots[1].status, SlotStatus::Active);
    assert_eq!(w.deal(id).slots[1].provider, new);
    assert_eq!(w.chain.state.providers.get(&new).unwrap().stake, stake);
}
