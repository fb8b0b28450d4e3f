//! Reed–Solomon over the scalar field Fr (docs/spec.md §3.3).
//!
//! ```text
//!  slot s has evaluation point x_s = s.     one row, element i:
//!    d_0 .. d_{K-1}   = f(x_0) .. f(x_{K-1})      (data slots, systematic)
//!    p_K .. p_{K+M-1} = f(x_K) .. f(x_{K+M-1})    (parity slots), deg f < K
//!    p_s = Σ_k λ_{s,k} d_k,   λ_{s,k} = Π_{j≠k} (x_s - x_j) / (x_k - x_j)
//! ```
//! The code is linear over Fr, so KZG commitments follow it: `C_s = Σ_k λ_{s,k} C_k`.
//! Parity commitments are derived with a K-point MSM and anyone can check them.
//! Any K of the K+M slots of a row give back every slot, bit for bit.
//!
//! The hot loop works on **raw bytes as Montgomery representations**: for a linear map
//! `y = Σ c_k x_k` with coefficients in Montgomery form, reading each 32-byte element as
//! the Montgomery form of `x·R⁻¹` gives `y·R⁻¹`, whose Montgomery form is `y`'s bytes. No
//! conversion in or out, one multiplication per coefficient. [`naive`] is the oracle.

use crate::constants::{
    BLOBS_PER_MDU, BYTES_PER_BLOB, BYTES_PER_COMMITMENT, BYTES_PER_FIELD_ELEMENT, MAX_SLOTS,
};
use crate::curve::{msm_pippenger, Fr, G1Affine, PointError, G1};
use sha2::{Digest, Sha256};

/// Errors of the erasure code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsError {
    /// The profile breaks a rule (1 ≤ K, K | 64, K+M ≤ 32).
    #[error("invalid profile RS({k}, {m}): need 1 <= K, K divides {BLOBS_PER_MDU}, K + M <= {MAX_SLOTS}")]
    BadProfile {
        /// Data slots.
        k: usize,
        /// Parity slots.
        m: usize,
    },
    /// Wrong number of blobs or slots given.
    #[error("expected {expected} {what}, got {got}")]
    Count {
        /// What was counted.
        what: &'static str,
        /// Given.
        got: usize,
        /// Required.
        expected: usize,
    },
    /// A blob had the wrong size.
    #[error("blob of {got} bytes, expected {expected}")]
    BlobLength {
        /// Given.
        got: usize,
        /// Required.
        expected: usize,
    },
    /// Fewer than K slots are available.
    #[error("need {needed} of {total} slots, got {got}")]
    NotEnoughSlots {
        /// Available.
        got: usize,
        /// Required (K).
        needed: usize,
        /// K + M.
        total: usize,
    },
    /// A blob element is not canonical.
    #[error("element {index} of input {input} is not canonical")]
    NonCanonical {
        /// Which input blob.
        input: usize,
        /// Which element.
        index: usize,
    },
    /// A commitment failed to decode.
    #[error("commitment of slot {slot}: {source}")]
    BadCommitment {
        /// Slot.
        slot: usize,
        /// Why.
        source: PointError,
    },
    /// A parity commitment does not follow from the data commitments.
    #[error("parity commitment of slot {slot} does not match the data commitments")]
    ParityMismatch {
        /// Slot.
        slot: usize,
    },
}

/// A slot profile RS(K, M): K data slots, M parity slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    k: usize,
    m: usize,
}

impl Profile {
    /// The default profile, RS(8, 4).
    pub const DEFAULT: Profile = Profile { k: 8, m: 4 };

    /// Validates a profile (SPEC §2).
    pub fn new(k: usize, m: usize) -> Result<Profile, RsError> {
        if k == 0 || !BLOBS_PER_MDU.is_multiple_of(k) || k + m > MAX_SLOTS {
            return Err(RsError::BadProfile { k, m });
        }
        Ok(Profile { k, m })
    }
    /// Data slots K.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Parity slots M.
    pub fn m(&self) -> usize {
        self.m
    }
    /// All slots K + M.
    pub fn slots(&self) -> usize {
        self.k + self.m
    }
    /// Rows per MDU, 64 / K.
    pub fn rows(&self) -> usize {
        BLOBS_PER_MDU / self.k
    }
}

/// Lagrange coefficients: the values at `x_target` of the basis polynomials over `xs`.
fn lagrange_at(xs: &[u64], target: u64) -> Vec<Fr> {
    let t = Fr::from_u64(target);
    xs.iter()
        .enumerate()
        .map(|(k, &xk)| {
            let xk = Fr::from_u64(xk);
            let (mut num, mut den) = (Fr::one(), Fr::one());
            for (j, &xj) in xs.iter().enumerate() {
                if j != k {
                    let xj = Fr::from_u64(xj);
                    num *= t - xj;
                    den *= xk - xj;
                }
            }
            num * den.inverse()
        })
        .collect()
}

/// The erasure code for one profile, with its parity coefficients precomputed.
#[derive(Debug, Clone)]
pub struct Code {
    profile: Profile,
    /// `parity[s - K][k] = λ_{s,k}`.
    parity: Vec<Vec<Fr>>,
}

impl Code {
    /// The code of `profile`.
    pub fn new(profile: Profile) -> Code {
        let xs: Vec<u64> = (0..profile.k as u64).collect();
        let parity = (profile.k..profile.slots())
            .map(|s| lagrange_at(&xs, s as u64))
            .collect();
        Code { profile, parity }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Encodes one row: K data blobs in, M parity blobs out.
    pub fn encode_row(&self, data: &[&[u8]]) -> Result<Vec<Vec<u8>>, RsError> {
        check_blobs(data, self.profile.k, "data blobs")?;
        let mut out = vec![vec![0u8; BYTES_PER_BLOB]; self.profile.m];
        combine(&self.parity, data, &mut out)?;
        Ok(out)
    }

    /// Rebuilds every slot of a row from any K present ones (`None` = missing). Present
    /// blobs are returned unchanged; missing ones are interpolated.
    pub fn reconstruct_row(&self, shards: &[Option<&[u8]>]) -> Result<Vec<Vec<u8>>, RsError> {
        let (k, n) = (self.profile.k, self.profile.slots());
        if shards.len() != n {
            return Err(RsError::Count {
                what: "slots",
                got: shards.len(),
                expected: n,
            });
        }
        let present: Vec<usize> = (0..n).filter(|&s| shards[s].is_some()).collect();
        if present.len() < k {
            return Err(RsError::NotEnoughSlots {
                got: present.len(),
                needed: k,
                total: n,
            });
        }
        let basis: Vec<usize> = present[..k].to_vec();
        let inputs: Vec<&[u8]> = basis.iter().filter_map(|&s| shards[s]).collect();
        check_blobs(&inputs, k, "present blobs")?;
        let xs: Vec<u64> = basis.iter().map(|&s| s as u64).collect();
        let missing: Vec<usize> = (0..n).filter(|&s| shards[s].is_none()).collect();
        let coeffs: Vec<Vec<Fr>> = missing
            .iter()
            .map(|&t| lagrange_at(&xs, t as u64))
            .collect();
        let mut rebuilt = vec![vec![0u8; BYTES_PER_BLOB]; missing.len()];
        combine(&coeffs, &inputs, &mut rebuilt)?;
        let mut rebuilt = rebuilt.into_iter();
        Ok(shards
            .iter()
            .map(|s| match s {
                Some(b) => b.to_vec(),
                None => rebuilt.next().unwrap_or_default(),
            })
            .collect())
    }

    /// Derives the M parity commitments from the K data commitments (K-point MSMs).
    pub fn parity_commitments(&self, data: &[G1]) -> Result<Vec<G1>, RsError> {
        if data.len() != self.profile.k {
            return Err(RsError::Count {
                what: "data commitments",
                got: data.len(),
                expected: self.profile.k,
            });
        }
        let affine = G1::batch_to_affine(data);
        Ok(self
            .parity
            .iter()
            .map(|l| msm_pippenger(&affine, l))
            .collect())
    }

    /// Checks a row's K+M commitments: every parity commitment must follow from the data
    /// commitments.
    pub fn check_commitments(&self, all: &[[u8; BYTES_PER_COMMITMENT]]) -> Result<(), RsError> {
        let n = self.profile.slots();
        if all.len() != n {
            return Err(RsError::Count {
                what: "commitments",
                got: all.len(),
                expected: n,
            });
        }
        let data: Vec<G1> = all[..self.profile.k]
            .iter()
            .enumerate()
            .map(|(slot, b)| {
                G1Affine::from_compressed(b)
                    .map(|p| p.to_projective())
                    .map_err(|source| RsError::BadCommitment { slot, source })
            })
            .collect::<Result<_, _>>()?;
        for (j, derived) in self.parity_commitments(&data)?.iter().enumerate() {
            let slot = self.profile.k + j;
            if derived.to_compressed() != all[slot] {
                return Err(RsError::ParityMismatch { slot });
            }
        }
        Ok(())
    }

    /// Checks many rows' K+M commitments with one multi-scalar multiplication instead of M
    /// per row. With weights `rᵢⱼ` (128 bits) drawn from a hash of every commitment given
    /// (Fiat–Shamir), `Σᵢⱼ rᵢⱼ·(Pᵢⱼ − Σₜ cⱼₜ·Dᵢₜ)` is the identity when every row is
    /// consistent and, when some row is not, with probability at most 2⁻¹²⁸ per set of
    /// commitments an adversary tries (the points are in the prime-order subgroup, so a
    /// non-zero error term survives a random weighting). When the sum is not the identity
    /// (or a commitment does not decode) the rows are checked one by one with
    /// [`Code::check_commitments`] (the naive twin), so the error is the one it gives.
    pub fn check_commitments_rows(
        &self,
        rows: &[&[[u8; BYTES_PER_COMMITMENT]]],
    ) -> Result<(), RsError> {
        let (k, n) = (self.profile.k, self.profile.slots());
        let mut seed = Sha256::new();
        seed.update(b"nilstore/rs-rows/v1");
        seed.update((k as u64).to_be_bytes());
        seed.update((n as u64).to_be_bytes());
        let naive = || rows.iter().try_for_each(|row| self.check_commitments(row));
        let mut points = Vec::with_capacity(rows.len() * n);
        for row in rows {
            if row.len() != n {
                return Err(RsError::Count {
                    what: "commitments",
                    got: row.len(),
                    expected: n,
                });
            }
            for b in row.iter() {
                seed.update(b);
                match G1Affine::from_compressed(b) {
                    Ok(p) => points.push(p),
                    // The naive twin reports the first bad row exactly as it always has.
                    Err(_) => return naive(),
                }
            }
        }
        let seed = seed.finalize();
        let mut scalars = Vec::with_capacity(points.len());
        for i in 0..rows.len() {
            let r: Vec<Fr> = (0..self.parity.len())
                .map(|j| {
                    let h = Sha256::new()
                        .chain_update(seed)
                        .chain_update((i as u64).to_be_bytes())
                        .chain_update((j as u64).to_be_bytes())
                        .finalize();
                    Fr::from_bytes_be_reduced(&h[..16])
                })
                .collect();
            for t in 0..k {
                let mut w = Fr::ZERO;
                for (rj, c) in r.iter().zip(&self.parity) {
                    w += *rj * c[t];
                }
                scalars.push(-w);
            }
            scalars.extend(r);
        }
        if msm_pippenger(&points, &scalars).is_identity() {
            return Ok(());
        }
        naive()
    }
}

fn check_blobs(blobs: &[&[u8]], expected: usize, what: &'static str) -> Result<(), RsError> {
    if blobs.len() != expected {
        return Err(RsError::Count {
            what,
            got: blobs.len(),
            expected,
        });
    }
    if let Some(b) = blobs.iter().find(|b| b.len() != BYTES_PER_BLOB) {
        return Err(RsError::BlobLength {
            got: b.len(),
            expected: BYTES_PER_BLOB,
        });
    }
    Ok(())
}

/// `out[o] = Σ_i coeffs[o][i] · inputs[i]`, element-wise, on raw Montgomery bytes.
fn combine(coeffs: &[Vec<Fr>], inputs: &[&[u8]], out: &mut [Vec<u8>]) -> Result<(), RsError> {
    let coeffs: Vec<Vec<[u64; 4]>> = coeffs
        .iter()
        .map(|c| c.iter().map(Fr::repr_limbs).collect())
        .collect();
    let mut xs = vec![[0u64; 4]; inputs.len()];
    for e in 0..BYTES_PER_BLOB / BYTES_PER_FIELD_ELEMENT {
        let at = e * BYTES_PER_FIELD_ELEMENT;
        for (i, (x, blob)) in xs.iter_mut().zip(inputs).enumerate() {
            *x = Fr::from_repr_be(&blob[at..at + BYTES_PER_FIELD_ELEMENT])
                .ok_or(RsError::NonCanonical { input: i, index: e })?
                .repr_limbs();
        }
        for (c, o) in coeffs.iter().zip(out.iter_mut()) {
            Fr::from_repr_limbs(lazy::dot(c, &xs))
                .write_repr_be(&mut o[at..at + BYTES_PER_FIELD_ELEMENT]);
        }
    }
    Ok(())
}

/// Dot products over Fr with one Montgomery reduction per result (not per product): the
/// K products are summed as 512-bit integers, then reduced once. For Montgomery-form
/// inputs `REDC(Σ ã_i b̃_i) = (Σ a_i b_i)·R mod r`, exactly what `Σ mont_mul` gives.
mod lazy {
    /// r, little-endian limbs.
    const R: [u64; 4] = [
        0xffff_ffff_0000_0001,
        0x53bd_a402_fffe_5bfe,
        0x3339_d808_09a1_d805,
        0x73ed_a753_299d_7d48,
    ];
    /// `-r⁻¹ mod 2^64`.
    const INV: u64 = 0xffff_fffe_ffff_ffff;
    /// Accumulator limbs: 32 products of values below r stay below 2^515.
    const ACC: usize = 9;

    #[inline(always)]
    fn add_carry(acc: &mut [u64; ACC], from: usize, mut carry: u128) {
        for limb in acc.iter_mut().skip(from) {
            if carry == 0 {
                break;
            }
            let t = *limb as u128 + carry;
            *limb = t as u64;
            carry = t >> 64;
        }
    }

    /// `acc += a · b` (256 × 256 → 512 bits).
    #[inline(always)]
    fn mac(acc: &mut [u64; ACC], a: &[u64; 4], b: &[u64; 4]) {
        for (i, &ai) in a.iter().enumerate() {
            let mut carry = 0u128;
            for (j, &bj) in b.iter().enumerate() {
                let t = acc[i + j] as u128 + ai as u128 * bj as u128 + carry;
                acc[i + j] = t as u64;
                carry = t >> 64;
            }
            add_carry(acc, i + 4, carry);
        }
    }

    fn geq_r(t: &[u64; 5]) -> bool {
        if t[4] != 0 {
            return true;
        }
        for k in (0..4).rev() {
            if t[k] != R[k] {
                return t[k] > R[k];
            }
        }
        true
    }

    /// `Σ a_i b_i` in Montgomery form, fully reduced. At most 32 terms.
    #[inline]
    pub(super) fn dot(a: &[[u64; 4]], b: &[[u64; 4]]) -> [u64; 4] {
        debug_assert!(a.len() <= 32);
        let mut acc = [0u64; ACC];
        for (x, y) in a.iter().zip(b) {
            mac(&mut acc, x, y);
        }
        // Word-by-word Montgomery reduction.
        for i in 0..4 {
            let m = acc[i].wrapping_mul(INV);
            let mut carry = 0u128;
            for (j, &rj) in R.iter().enumerate() {
                let t = acc[i + j] as u128 + m as u128 * rj as u128 + carry;
                acc[i + j] = t as u64;
                carry = t >> 64;
            }
            add_carry(&mut acc, i + 4, carry);
        }
        let mut t = [acc[4], acc[5], acc[6], acc[7], acc[8]];
        // t < (32 r² + 2^256 r) / 2^256 < 16 r: a few subtractions finish the job.
        while geq_r(&t) {
            let mut borrow = false;
            for (k, tk) in t.iter_mut().enumerate() {
                let rk = if k < 4 { R[k] } else { 0 };
                let (d1, b1) = tk.overflowing_sub(rk);
                let (d2, b2) = d1.overflowing_sub(borrow as u64);
                *tk = d2;
                borrow = b1 | b2;
            }
        }
        [t[0], t[1], t[2], t[3]]
    }
}

/// The oracle: element-wise interpolation with canonical conversions, no tricks.
pub mod naive {
    use super::*;

    /// Evaluates, for each element, the degree < K polynomial through the data at slot `s`.
    pub fn encode_row(profile: Profile, data: &[&[u8]]) -> Vec<Vec<u8>> {
        let xs: Vec<Fr> = (0..profile.k() as u64).map(Fr::from_u64).collect();
        (profile.k()..profile.slots())
            .map(|s| {
                let t = Fr::from_u64(s as u64);
                let mut out = vec![0u8; BYTES_PER_BLOB];
                for e in 0..BYTES_PER_BLOB / BYTES_PER_FIELD_ELEMENT {
                    let at = e * BYTES_PER_FIELD_ELEMENT;
                    let mut y = Fr::ZERO;
                    for (k, blob) in data.iter().enumerate() {
                        let mut b = [0u8; BYTES_PER_FIELD_ELEMENT];
                        b.copy_from_slice(&blob[at..at + BYTES_PER_FIELD_ELEMENT]);
                        let d = Fr::from_bytes_be(&b).expect("canonical test input");
                        let mut l = Fr::one();
                        for (j, xj) in xs.iter().enumerate() {
                            if j != k {
                                l *= (t - *xj) * (xs[k] - *xj).inverse();
                            }
                        }
                        y += l * d;
                    }
                    out[at..at + BYTES_PER_FIELD_ELEMENT].copy_from_slice(&y.to_bytes_be());
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, RngCore, SeedableRng};

    fn random_blob(rng: &mut impl Rng) -> Vec<u8> {
        let mut b = vec![0u8; BYTES_PER_BLOB];
        rng.fill(&mut b[..]);
        for e in b.chunks_mut(BYTES_PER_FIELD_ELEMENT) {
            e[0] &= 0x3f; // below r
        }
        b
    }

    #[test]
    fn profiles() {
        assert!(Profile::new(8, 4).is_ok());
        assert!(Profile::new(1, 31).is_ok());
        assert!(Profile::new(64, 0).is_err()); // K + M ≤ 32
        assert!(Profile::new(0, 4).is_err());
        assert!(Profile::new(3, 4).is_err());
        assert!(Profile::new(16, 17).is_err());
        assert_eq!(Profile::new(8, 4).unwrap().rows(), 8);
    }

    #[test]
    fn fast_matches_naive() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (k, m) in [(1, 3), (2, 2), (4, 4), (8, 4)] {
            let p = Profile::new(k, m).unwrap();
            let data: Vec<Vec<u8>> = (0..k).map(|_| random_blob(&mut rng)).collect();
            let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            assert_eq!(
                Code::new(p).encode_row(&refs).unwrap(),
                naive::encode_row(p, &refs)
            );
        }
    }

    proptest! {
        #[test]
        fn lazy_dot_matches_field_arithmetic(raw in proptest::collection::vec(any::<[u8; 32]>(), 2..64)) {
            let vals: Vec<Fr> = raw.iter().map(|b| Fr::from_bytes_be_reduced(b)).collect();
            let (a, b) = vals.split_at(vals.len() / 2);
            let n = a.len().min(b.len()).min(32);
            let want = a[..n].iter().zip(&b[..n]).fold(Fr::ZERO, |acc, (x, y)| acc + *x * *y);
            let al: Vec<[u64; 4]> = a[..n].iter().map(Fr::repr_limbs).collect();
            let bl: Vec<[u64; 4]> = b[..n].iter().map(Fr::repr_limbs).collect();
            prop_assert_eq!(Fr::from_repr_limbs(lazy::dot(&al, &bl)), want);
            // Worst case: 32 terms whose raw representations are both r - 1.
            let m1 = [
                0xffff_ffff_0000_0000,
                0x53bd_a402_fffe_5bfe,
                0x3339_d808_09a1_d805,
                0x73ed_a753_299d_7d48,
            ];
            let x = Fr::from_repr_limbs(m1);
            let big = vec![m1; 32];
            let want = (0..32).fold(Fr::ZERO, |acc, _| acc + x * x);
            prop_assert_eq!(Fr::from_repr_limbs(lazy::dot(&big, &big)), want);
        }
    }

    #[test]
    fn replication_is_copies() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d = random_blob(&mut rng);
        let parity = Code::new(Profile::new(1, 3).unwrap())
            .encode_row(&[&d])
            .unwrap();
        assert!(parity.iter().all(|p| *p == d));
    }

    #[test]
    fn rejects_bad_input() {
        let code = Code::new(Profile::DEFAULT);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut data: Vec<Vec<u8>> = (0..8).map(|_| random_blob(&mut rng)).collect();
        data[3][32] = 0xff;
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        assert_eq!(
            code.encode_row(&refs),
            Err(RsError::NonCanonical { input: 3, index: 1 })
        );
        assert!(matches!(
            code.encode_row(&refs[..7]),
            Err(RsError::Count { .. })
        ));
        let short: Vec<&[u8]> = (0..8).map(|_| &[0u8; 10][..]).collect();
        assert!(matches!(
            code.encode_row(&short),
            Err(RsError::BlobLength { .. })
        ));
        let none: Vec<Option<&[u8]>> = vec![None; 12];
        assert_eq!(
            code.reconstruct_row(&none),
            Err(RsError::NotEnoughSlots {
                got: 0,
                needed: 8,
                total: 12
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn any_k_slots_reconstruct(seed in any::<u64>(), which in 0usize..4, erase in any::<u32>()) {
            let (k, m) = [(1, 2), (2, 3), (4, 4), (8, 4)][which];
            let p = Profile::new(k, m).unwrap();
            let code = Code::new(p);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let data: Vec<Vec<u8>> = (0..k).map(|_| random_blob(&mut rng)).collect();
            let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let mut all = data.clone();
            all.extend(code.encode_row(&refs).unwrap());
            // Erase up to M slots chosen by the bits of `erase`.
            let mut gone: Vec<usize> = (0..k + m).filter(|s| erase >> s & 1 == 1).collect();
            gone.truncate(m);
            let shards: Vec<Option<&[u8]>> = (0..k + m)
                .map(|s| (!gone.contains(&s)).then_some(all[s].as_slice()))
                .collect();
            prop_assert_eq!(code.reconstruct_row(&shards).unwrap(), all);
        }
    }

    #[test]
    fn parity_commitments_follow_the_code() {
        use crate::kzg::{KzgSettings, Polynomial};
        let s = KzgSettings::ethereum();
        let p = Profile::new(4, 2).unwrap();
        let code = Code::new(p);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let data: Vec<Vec<u8>> = (0..4).map(|_| random_blob(&mut rng)).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let parity = code.encode_row(&refs).unwrap();
        let commit = |b: &[u8]| s.commit_poly(&Polynomial::from_blob(b).unwrap());
        let dc: Vec<G1> = data.iter().map(|b| commit(b)).collect();
        let derived = code.parity_commitments(&dc).unwrap();
        let mut all: Vec<[u8; 48]> = dc.iter().map(G1::to_compressed).collect();
        for (d, pb) in derived.iter().zip(&parity) {
            assert_eq!(*d, commit(pb));
            all.push(d.to_compressed());
        }
        assert_eq!(code.check_commitments(&all), Ok(()));
        all.swap(4, 5);
        assert_eq!(
            code.check_commitments(&all),
            Err(RsError::ParityMismatch { slot: 4 })
        );
    }

    /// The batched row check agrees with its naive twin (`check_commitments` row by row)
    /// on consistent rows and on rows with one wrong commitment anywhere.
    #[test]
    fn batched_row_check_matches_the_naive_twin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut point = || {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            G1::generator().mul(&Fr::from_bytes_be_reduced(&b))
        };
        for (k, m) in [(1, 2), (4, 2), (8, 4)] {
            let code = Code::new(Profile::new(k, m).unwrap());
            let mut rows: Vec<Vec<[u8; 48]>> = (0..5)
                .map(|_| {
                    let data: Vec<G1> = (0..k).map(|_| point()).collect();
                    let mut row: Vec<[u8; 48]> = data.iter().map(G1::to_compressed).collect();
                    row.extend(
                        code.parity_commitments(&data)
                            .unwrap()
                            .iter()
                            .map(G1::to_compressed),
                    );
                    row
                })
                .collect();
            let naive =
                |rows: &[Vec<[u8; 48]>]| rows.iter().try_for_each(|r| code.check_commitments(r));
            let batched = |rows: &[Vec<[u8; 48]>]| {
                let refs: Vec<&[[u8; 48]]> = rows.iter().map(Vec::as_slice).collect();
                code.check_commitments_rows(&refs)
            };
            assert_eq!(batched(&rows), Ok(()));
            assert_eq!(naive(&rows), Ok(()));
            for (r, s) in [(0, k), (2, 0), (4, k + m - 1), (3, k - 1)] {
                let good = rows[r][s];
                rows[r][s] = point().to_compressed();
                let want = naive(&rows);
                assert!(want.is_err(), "row {r} slot {s}");
                assert_eq!(batched(&rows), want, "row {r} slot {s}");
                rows[r][s] = good;
            }
            // A commitment that does not decode: the naive twin's error, whichever slot.
            for s in [0, k + m - 1] {
                let good = rows[2][s];
                rows[2][s] = [0xff; 48];
                let want = naive(&rows);
                assert!(want.is_err(), "slot {s}");
                assert_eq!(batched(&rows), want, "garbage at slot {s}");
                rows[2][s] = good;
            }
            rows[1].pop();
            assert!(matches!(batched(&rows), Err(RsError::Count { .. })));
        }
    }
}
