//! Upload verification on real encoded MDUs: every slot's shard of an RS(4, 2) MDU and a
//! metadata MDU verify; tampered bytes, commitments, parity, counts and non-canonical
//! elements are refused with typed errors; the random-linear-combination commitment check
//! agrees with its naive twin (recompute every commitment) on random corruptions.
#![allow(clippy::unwrap_used)]

mod common;

use chain_light::bytes::{G1Bytes, H256};
use nilstore_net::proto::NetError;
use nilstore_provider::verify::{check_commitments_naive, verify_upload};
use rand::{Rng, SeedableRng};
use wasm_core::kzg::KzgSettings;
use wasm_core::slab::encode_metadata_mdu;

use common::{encoded, leaves, mdu_bytes, upload, DEAL, SALT};

fn invalid(r: Result<impl std::fmt::Debug, NetError>) -> NetError {
    r.unwrap_err()
}

#[test]
fn every_slot_of_a_user_mdu_verifies() {
    let e = encoded(1);
    let kzg = KzgSettings::ethereum();
    for slot in 0..6u32 {
        let up = upload(2, slot, leaves(&e.leaves), &e.shards[slot as usize]);
        let v = verify_upload(kzg, &up, &DEAL, &SALT).unwrap();
        assert_eq!(v.mdu_root, H256(e.root_fr));
        assert_eq!(v.data, e.shards[slot as usize]);
        check_commitments_naive(kzg, &up, &DEAL).unwrap();
    }
}

#[test]
fn a_metadata_mdu_verifies_whole() {
    let kzg = KzgSettings::ethereum();
    let data = mdu_bytes(9);
    let (l, root) = encode_metadata_mdu(kzg, &data).unwrap();
    for mdu in 0..=1 {
        let up = upload(mdu, 3, leaves(&l), &data);
        assert_eq!(
            verify_upload(kzg, &up, &DEAL, &SALT).unwrap().mdu_root,
            H256(root)
        );
    }
    // Past the witness MDUs the same bytes are a user MDU: wrong leaf and blob counts.
    let up = upload(2, 3, leaves(&l), &data);
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::BadRequest(_)
    ));
}

#[test]
fn tampering_is_refused_with_typed_errors() {
    let e = encoded(2);
    let kzg = KzgSettings::ethereum();
    let good = || upload(2, 1, leaves(&e.leaves), &e.shards[1]);
    let rows = 64 / DEAL.k as usize;

    // A flipped byte: its BLAKE3 no longer matches.
    let mut up = good();
    up.blobs[3].0[100] ^= 1;
    let err = invalid(verify_upload(kzg, &up, &DEAL, &SALT));
    assert!(
        matches!(&err, NetError::Invalid(m) if m.contains("BLAKE3")),
        "{err}"
    );

    // Other bytes with a leaf claiming their hash, but the old commitment: KZG refuses.
    let mut up = good();
    up.blobs[0].0[200] ^= 1;
    up.leaves[rows].blake3 = H256(*blake3::hash(&up.blobs[0].0).as_bytes());
    let err = invalid(verify_upload(kzg, &up, &DEAL, &SALT));
    assert!(
        matches!(&err, NetError::Invalid(m) if m.contains("commitments do not match")),
        "{err}"
    );
    assert!(check_commitments_naive(kzg, &up, &DEAL).is_err());

    // A parity leaf with another valid commitment: the parity check refuses.
    let mut up = good();
    let other = encoded(3);
    up.leaves[5 * rows] = leaves(&other.leaves)[5 * rows];
    let err = invalid(verify_upload(kzg, &up, &DEAL, &SALT));
    assert!(
        matches!(&err, NetError::Invalid(m) if m.contains("parity")),
        "{err}"
    );

    // A commitment that is not a curve point.
    let mut up = good();
    up.leaves[rows].commitment = G1Bytes([0x11; 48]);
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::Invalid(_)
    ));

    // A non-canonical element (≥ r) with a matching hash.
    let mut up = good();
    up.blobs[2].0[..32].copy_from_slice(&[0xff; 32]);
    up.leaves[rows + 2].blake3 = H256(*blake3::hash(&up.blobs[2].0).as_bytes());
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::Invalid(_)
    ));

    // Counts and sizes.
    let mut up = good();
    up.blobs.pop();
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::BadRequest(_)
    ));
    let mut up = good();
    up.leaves.pop();
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::BadRequest(_)
    ));
    let mut up = good();
    up.blobs[0].0.push(0);
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::BadRequest(_)
    ));
    let mut up = good();
    up.slot = 6;
    assert!(matches!(
        invalid(verify_upload(kzg, &up, &DEAL, &SALT)),
        NetError::BadRequest(_)
    ));
}

#[test]
fn rlc_check_agrees_with_the_naive_twin() {
    let e = encoded(4);
    let kzg = KzgSettings::ethereum();
    let rows = 64 / DEAL.k as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for case in 0..12 {
        let slot = rng.gen_range(0..6u32);
        let mut up = upload(2, slot, leaves(&e.leaves), &e.shards[slot as usize]);
        // Corrupt a random blob element (keeping it canonical) and re-pin its hash, or
        // leave it intact.
        if case % 3 != 0 {
            let b = rng.gen_range(0..rows);
            let el = rng.gen_range(0..4096);
            up.blobs[b].0[el * 32 + 1 + rng.gen_range(0..31)] ^= 1 << rng.gen_range(0..8);
            let li = slot as usize * rows + b;
            up.leaves[li].blake3 = H256(*blake3::hash(&up.blobs[b].0).as_bytes());
        }
        let fast = verify_upload(kzg, &up, &DEAL, &SALT).is_ok();
        let naive = check_commitments_naive(kzg, &up, &DEAL).is_ok();
        assert_eq!(fast, naive, "case {case}");
        assert_eq!(fast, case % 3 == 0, "case {case}");
    }
}

/// Group verification: shards checked together give each shard the verdict it gets alone
/// (naive twin: `check_commitments_naive`), a wrong shard in a batch fails only itself,
/// and concurrent arrivals share batches.
#[test]
fn group_verification_matches_one_by_one() {
    use nilstore_provider::verify::{check_batch, prepare_upload, GroupVerifier};
    let e = encoded(4);
    let kzg = KzgSettings::ethereum();
    let rows = 64 / DEAL.k as usize;
    let mut ups: Vec<_> = (0..6u32)
        .map(|slot| upload(2, slot, leaves(&e.leaves), &e.shards[slot as usize]))
        .collect();
    // Slot 2 carries other bytes with a leaf claiming their hash: only KZG can tell.
    ups[2].blobs[1].0[300] ^= 1;
    ups[2].leaves[2 * rows + 1].blake3 = H256(*blake3::hash(&ups[2].blobs[1].0).as_bytes());
    let want: Vec<bool> = ups
        .iter()
        .map(|u| check_commitments_naive(kzg, u, &DEAL).is_ok())
        .collect();
    assert_eq!(want, [true, true, false, true, true, true]);

    // One batch of all six fails; the good five together pass.
    let prep = |u| prepare_upload(u, &DEAL, &SALT).unwrap();
    let all: Vec<_> = ups.iter().map(prep).collect();
    assert!(check_batch(kzg, &all).is_err());
    let good: Vec<_> = ups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, u)| prep(u))
        .collect();
    check_batch(kzg, &good).unwrap();

    // Six threads at once through one verifier: each gets its own verdict. Announced
    // before any reaches the verifier, they share one batch (the lingering verifier waits
    // for every announced upload; the failed batch is then rechecked shard by shard).
    let g = GroupVerifier::with_linger(std::time::Duration::from_secs(20));
    let arriving: Vec<_> = ups.iter().map(|_| g.arriving()).collect();
    let got: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = ups
            .iter()
            .zip(arriving)
            .map(|(u, a)| {
                let g = &g;
                s.spawn(move || {
                    g.verify(kzg, a, prep(u))
                        .map(|v| v.data == concat(u))
                        .unwrap_or(false)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, want);
    assert_eq!(g.batches(), 1);

    // An announced upload that is refused before verification (its guard dropped) stops
    // the verifier waiting for it: with a 20 s linger this would take 20 s otherwise.
    let refused = g.arriving();
    let a = g.arriving();
    drop(refused);
    let t0 = std::time::Instant::now();
    assert!(g.verify(kzg, a, prep(&ups[0])).is_ok());
    assert!(t0.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(g.batches(), 2);

    // More announced uploads than a batch holds: MAX_BATCH, then the rest.
    use nilstore_provider::verify::MAX_BATCH;
    let g = GroupVerifier::with_linger(std::time::Duration::from_secs(20));
    let many: Vec<_> = (0..MAX_BATCH + 4)
        .map(|i| &ups[[0, 1, 3, 4, 5][i % 5]])
        .collect();
    let arriving: Vec<_> = many.iter().map(|_| g.arriving()).collect();
    let ok = std::thread::scope(|s| {
        let hs: Vec<_> = many
            .iter()
            .zip(arriving)
            .map(|(u, a)| {
                let g = &g;
                s.spawn(move || g.verify(kzg, a, prep(u)).is_ok())
            })
            .collect();
        hs.into_iter().all(|h| h.join().unwrap())
    });
    assert!(ok);
    assert_eq!(g.batches(), 2);

    // A guard that is never dropped holds a lone upload back for the linger, no longer.
    let g = GroupVerifier::with_linger(std::time::Duration::from_millis(300));
    let _held = g.arriving();
    let t0 = std::time::Instant::now();
    assert!(g.verify(kzg, g.arriving(), prep(&ups[0])).is_ok());
    let waited = t0.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(300),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
}

fn concat(u: &nilstore_net::proto::UploadShard) -> Vec<u8> {
    u.blobs.iter().flat_map(|b| b.0.iter().copied()).collect()
}
