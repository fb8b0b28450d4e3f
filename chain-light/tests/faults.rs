//! Consensus-fault evidence from real simplex votes: conflicting notarizes, conflicting
//! finalizes and nullify-with-finalize, signed with a validator's real BLS key, slash and
//! jail it through `ReportValidatorFault`; the same fault re-encoded is refused as used;
//! forged signatures, votes by someone else, expired epochs and non-faults are refused.
#![allow(clippy::unwrap_used)]

mod common;

use chain_light::bytes::{Address, Blob, H256};
use chain_light::exec::{FaultVerifier, TxError};
use chain_light::light::{self, Digest, Scheme, SimplexFaults};
use chain_light::state::SetMember;
use chain_light::tx::Msg;
use common::{World, CHAIN_ID};
use commonware_codec::Encode as _;
use commonware_consensus::simplex::types::{
    Activity, ConflictingFinalize, ConflictingNotarize, Finalize, Notarize, Nullify,
    NullifyFinalize, Proposal,
};
use commonware_consensus::types::{Epoch, Round, View};
use commonware_cryptography::bls12381::primitives::group::Private;
use commonware_math::algebra::Random as _;
use rand10::SeedableRng;

fn proposal(epoch: u64, view: u64, payload: u8) -> Proposal<Digest> {
    Proposal::new(
        Round::new(Epoch::new(epoch), View::new(view)),
        View::new(view - 1),
        Digest::from([payload; 32]),
    )
}

fn signer(set: &[SetMember], bls: Private) -> Scheme {
    Scheme::signer(
        &light::namespace(CHAIN_ID),
        light::participants(set).unwrap(),
        bls,
    )
    .unwrap()
}

fn conflicting_notarize(s: &Scheme, epoch: u64, view: u64) -> Activity<Scheme, Digest> {
    Activity::ConflictingNotarize(ConflictingNotarize::new(
        Notarize::sign(s, proposal(epoch, view, 1)).unwrap(),
        Notarize::sign(s, proposal(epoch, view, 2)).unwrap(),
    ))
}

fn evidence(a: &Activity<Scheme, Digest>) -> Blob {
    SimplexFaults::evidence(a).unwrap()
}

fn failed(r: &chain_light::TxResult) -> TxError {
    match &r.outcome {
        chain_light::Outcome::Failed { error } => error.clone(),
        o => panic!("expected a failure, got {o:?}"),
    }
}

#[test]
fn equivocation_evidence_slashes_once_per_fault() {
    let mut w = World::new(|_| {});
    let val: Address = w.addr("val");
    let set = w.chain.state.g.validators.clone();
    let (_, bls) = light::dev_keys(CHAIN_ID, 0);
    let s = signer(&set, bls);
    let stake0 = w.chain.state.validators.get(&val).unwrap().self_stake;
    let p = w.chain.state.g.params.clone();

    // Two notarize votes for different proposals in view 7.
    let fault = conflicting_notarize(&s, 0, 7);
    let carol0 = w.rewards("carol");
    let r = w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: evidence(&fault),
        },
    );
    let v = w.chain.state.validators.get(&val).unwrap().clone();
    let slashed = chain_light::params::bps_of(stake0, p.validator_slash_bps);
    assert_eq!(stake0 - v.self_stake, slashed);
    assert!(v.jailed_until > w.chain.state.g.epoch);
    assert!(r.events.iter().any(|e| matches!(
        e,
        chain_light::Event::ValidatorSlashed { validator, amount, .. }
            if *validator == val && *amount == slashed
    )));
    // The reporter's reward (claimable).
    assert_eq!(
        w.rewards("carol"),
        carol0 + chain_light::params::bps_of(slashed, p.reporter_reward_bps)
    );

    // The same equivocation in the other order (or re-signed) is the same fault.
    let swapped = Activity::ConflictingNotarize(ConflictingNotarize::new(
        Notarize::sign(&s, proposal(0, 7, 2)).unwrap(),
        Notarize::sign(&s, proposal(0, 7, 1)).unwrap(),
    ));
    let r = w.send(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: evidence(&swapped),
        },
    );
    assert!(matches!(failed(&r), TxError::Conflict(_)), "{r:?}");

    // Conflicting finalizes and nullify+finalize are faults too (graduated: 2×, 3×).
    let cf = Activity::ConflictingFinalize(ConflictingFinalize::new(
        Finalize::sign(&s, proposal(0, 9, 1)).unwrap(),
        Finalize::sign(&s, proposal(0, 9, 3)).unwrap(),
    ));
    let before = w.chain.state.validators.get(&val).unwrap().self_stake;
    w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: evidence(&cf),
        },
    );
    let after = w.chain.state.validators.get(&val).unwrap().self_stake;
    assert_eq!(
        before - after,
        chain_light::params::bps_of(before, 2 * p.validator_slash_bps)
    );
    let round = Round::new(Epoch::new(0), View::new(11));
    let nf = Activity::NullifyFinalize(NullifyFinalize::new(
        Nullify::sign::<Digest>(&s, round).unwrap(),
        Finalize::sign(&s, proposal(0, 11, 4)).unwrap(),
    ));
    w.ok(
        "carol",
        Msg::ReportValidatorFault {
            validator: val,
            evidence: evidence(&nf),
        },
    );
    assert_eq!(w.chain.state.validators.get(&val).unwrap().offences, 3);
}

#[test]
fn bad_evidence_is_refused_and_changes_nothing() {
    let mut w = World::new(|_| {});
    let val = w.addr("val");
    let set = w.chain.state.g.validators.clone();
    let (_, bls) = light::dev_keys(CHAIN_ID, 0);
    let honest = signer(&set, bls);
    // Someone else's BLS key signing under the validator's identity (so under its signer
    // index): the signatures do not verify against the validator's real key.
    let mut rng = rand10::rngs::StdRng::seed_from_u64(9);
    let forged_bls = Private::random(&mut rng);
    let (id, _) = light::dev_keys(CHAIN_ID, 0);
    let mut forged_set = set.clone();
    forged_set[0].consensus_key = light::make_consensus_key(&id, &forged_bls);
    let forger = signer(&forged_set, forged_bls);
    let cases: Vec<(&str, Blob)> = vec![
        ("forged", evidence(&conflicting_notarize(&forger, 0, 7))),
        (
            "future epoch",
            evidence(&conflicting_notarize(&honest, 1, 7)),
        ),
        (
            "not a fault",
            Blob(
                Activity::<Scheme, Digest>::Notarize(
                    Notarize::sign(&honest, proposal(0, 3, 1)).unwrap(),
                )
                .encode()
                .to_vec(),
            ),
        ),
        ("garbage", Blob(vec![7, 1, 2, 3])),
        ("empty", Blob(Vec::new())),
    ];
    for (what, ev) in cases {
        let stake = w.chain.state.validators.get(&val).unwrap().self_stake;
        let r = w.send(
            "carol",
            Msg::ReportValidatorFault {
                validator: val,
                evidence: ev,
            },
        );
        assert!(matches!(failed(&r), TxError::BadProof(_)), "{what}: {r:?}");
        let v = w.chain.state.validators.get(&val).unwrap();
        assert_eq!(
            (v.self_stake, v.offences, v.jailed_until),
            (stake, 0, 0),
            "{what}"
        );
    }
}

#[test]
fn votes_must_be_the_accused_validators_and_from_an_open_epoch() {
    // A two-member set; member 0 equivocates.
    let keys: Vec<(Blob, Private)> = (0..2)
        .map(|i| {
            let (id, bls) = light::dev_keys(CHAIN_ID, i);
            (light::make_consensus_key(&id, &bls), bls)
        })
        .collect();
    let mut set: Vec<SetMember> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, _))| SetMember {
            account: Address([i as u8 + 1; 20]),
            consensus_key: k.clone(),
            power: 1,
        })
        .collect();
    set.sort_by_key(|m| m.account);
    let participants = light::participants(&set).unwrap();
    // Whose signer index is whose: find member 0's key in the participant order.
    let (id0, _) = light::dev_keys(CHAIN_ID, 0);
    use commonware_cryptography::Signer as _;
    let s0 = signer(&set, keys[0].1.clone());
    assert!(participants.position(&id0.public_key()).is_some());
    let ev = evidence(&conflicting_notarize(&s0, 4, 7));
    let sets = [(4u64, set.as_slice())];
    let id = SimplexFaults
        .verify(CHAIN_ID, &sets, &keys[0].0 .0, &ev.0)
        .unwrap();
    assert_ne!(id, H256::ZERO);
    // Accusing the other member with member 0's votes fails.
    let e = SimplexFaults
        .verify(CHAIN_ID, &sets, &keys[1].0 .0, &ev.0)
        .unwrap_err();
    assert!(e.contains("accused"), "{e}");
    // Another chain's namespace: signatures do not verify.
    assert!(SimplexFaults
        .verify(CHAIN_ID + 1, &sets, &keys[0].0 .0, &ev.0)
        .is_err());
    // Evidence from epoch 4 when only epochs 5 and 6 are open: expired.
    let open = [(6u64, set.as_slice()), (5u64, set.as_slice())];
    let e = SimplexFaults
        .verify(CHAIN_ID, &open, &keys[0].0 .0, &ev.0)
        .unwrap_err();
    assert!(e.contains("expired"), "{e}");
    assert_eq!(SimplexFaults::accused(&ev.0, &sets), Some(id0.public_key()));
}
