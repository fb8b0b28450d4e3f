//! Property test against the reference implementation, c-kzg-4844 (native only): on random
//! blobs and points, every EIP-4844 function agrees with ours byte for byte.
#![cfg(not(target_arch = "wasm32"))]

use c_kzg::{Blob, Bytes32, Bytes48};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use wasm_core::kzg::KzgSettings;

fn random_blob(seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut b = vec![0u8; 131_072];
    rng.fill(&mut b[..]);
    for e in b.chunks_mut(32) {
        // Mostly full 254-bit elements (below r), some packed payload, some zeros.
        match e[31] % 4 {
            0 => e[0] = 0,
            1 => e.fill(0),
            _ => e[0] &= 0x3f,
        }
    }
    b
}

fn random_z(seed: u64) -> [u8; 32] {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let mut z: [u8; 32] = rng.gen();
    z[0] &= 0x3f;
    z
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn agrees_with_c_kzg(seed in any::<u64>()) {
        let ours = KzgSettings::ethereum();
        let theirs = c_kzg::ethereum_kzg_settings(0);
        let blob = random_blob(seed);
        let z = random_z(seed);
        let cblob = Blob::from_bytes(&blob).unwrap();

        let c = ours.blob_to_kzg_commitment(&blob).unwrap();
        let cc = theirs.blob_to_kzg_commitment(&cblob).unwrap();
        prop_assert_eq!(&c[..], &cc.to_bytes()[..]);

        let (p, y) = ours.compute_kzg_proof(&blob, &z).unwrap();
        let (cp, cy) = theirs.compute_kzg_proof(&cblob, &Bytes32::new(z)).unwrap();
        prop_assert_eq!(&p[..], &cp.to_bytes()[..]);
        prop_assert_eq!(&y[..], &cy[..]);

        let bp = ours.compute_blob_kzg_proof(&blob, &c).unwrap();
        let cbp = theirs.compute_blob_kzg_proof(&cblob, &Bytes48::new(c)).unwrap();
        prop_assert_eq!(&bp[..], &cbp.to_bytes()[..]);

        prop_assert!(ours.verify_kzg_proof(&c, &z, &y, &p).unwrap());
        prop_assert!(theirs.verify_kzg_proof(&Bytes48::new(c), &Bytes32::new(z), &Bytes32::new(y), &Bytes48::new(p)).unwrap());
        // A wrong y is rejected by both.
        let mut y2 = y;
        y2[31] ^= 1;
        let ours_bad = ours.verify_kzg_proof(&c, &z, &y2, &p).unwrap_or(false);
        let theirs_bad = theirs.verify_kzg_proof(&Bytes48::new(c), &Bytes32::new(z), &Bytes32::new(y2), &Bytes48::new(p)).unwrap_or(false);
        prop_assert_eq!(ours_bad, theirs_bad);
        prop_assert!(!ours_bad);
        prop_assert!(ours.verify_blob_kzg_proof(&blob, &c, &bp).unwrap());
    }

    #[test]
    fn evaluation_at_domain_points_agrees(seed in any::<u64>(), j in 0usize..4096) {
        // z equal to a domain point takes the special quotient path.
        let ours = KzgSettings::ethereum();
        let theirs = c_kzg::ethereum_kzg_settings(0);
        let blob = random_blob(seed);
        let z = ours.roots_brp()[j].to_bytes_be();
        let (p, y) = ours.compute_kzg_proof(&blob, &z).unwrap();
        let (cp, cy) = theirs.compute_kzg_proof(&Blob::from_bytes(&blob).unwrap(), &Bytes32::new(z)).unwrap();
        prop_assert_eq!(&p[..], &cp.to_bytes()[..]);
        prop_assert_eq!(&y[..], &cy[..]);
        prop_assert_eq!(&y[..], &blob[32 * j..32 * j + 32]);
    }
}
