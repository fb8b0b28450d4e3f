//! Our own names for BLS12-381 types: the only module that names the curve backend (blst).
//!
//! Everything above this module talks about [`Fr`], [`G1`], [`G1Affine`] and [`G2Affine`].
//! Raw bytes off the wire are never points: [`G1Affine::from_compressed`] checks length,
//! flags, curve membership and the subgroup before anything else sees the value
//! (docs/spec.md §3.1).
//!
//! blst's functions are `unsafe extern "C"`; each call here passes pointers to live,
//! properly aligned Rust values of exactly the types blst declares, which is the whole of
//! their safety contract.

use core::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use blst::{
    blst_bendian_from_scalar, blst_final_exp, blst_fp, blst_fp12, blst_fp12_is_one, blst_fp12_mul,
    blst_fp_eucl_inverse, blst_fp_mul, blst_fr, blst_fr_add, blst_fr_cneg, blst_fr_eucl_inverse,
    blst_fr_from_scalar, blst_fr_from_uint64, blst_fr_mul, blst_fr_sqr, blst_fr_sub,
    blst_miller_loop, blst_p1, blst_p1_add_or_double, blst_p1_add_or_double_affine, blst_p1_affine,
    blst_p1_affine_compress, blst_p1_affine_in_g1, blst_p1_affine_serialize, blst_p1_cneg,
    blst_p1_compress, blst_p1_deserialize, blst_p1_double, blst_p1_from_affine, blst_p1_generator,
    blst_p1_is_inf, blst_p1_mult, blst_p1_to_affine, blst_p1_uncompress, blst_p1s_mult_pippenger,
    blst_p1s_mult_pippenger_scratch_sizeof, blst_p1s_to_affine, blst_p2, blst_p2_add_or_double,
    blst_p2_affine, blst_p2_affine_in_g2, blst_p2_cneg, blst_p2_from_affine, blst_p2_generator,
    blst_p2_mult, blst_p2_to_affine, blst_p2_uncompress, blst_scalar, blst_scalar_fr_check,
    blst_scalar_from_be_bytes, blst_scalar_from_bendian, blst_scalar_from_fr, blst_uint64_from_fr,
    limb_t, BLST_ERROR,
};

use crate::constants::{BYTES_PER_FIELD_ELEMENT, BYTES_PER_G1, BYTES_PER_G2};

/// Why bytes could not become a curve point or a field element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointError {
    /// The encoding is not a valid compressed point (flags, length or coordinate range).
    #[error("bad point encoding")]
    BadEncoding,
    /// The x coordinate has no point on the curve.
    #[error("point is not on the curve")]
    NotOnCurve,
    /// The point is on the curve but outside the prime-order subgroup.
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
    /// A field element was not below the modulus r.
    #[error("field element is not canonical (>= r)")]
    NonCanonicalScalar,
}

/// The BLS12-381 scalar field modulus r, big-endian (SPEC §2).
pub const MODULUS_BE: [u8; 32] = [
    0x73, 0xed, 0xa7, 0x53, 0x29, 0x9d, 0x7d, 0x48, 0x33, 0x39, 0xd8, 0x08, 0x09, 0xa1, 0xd8, 0x05,
    0x53, 0xbd, 0xa4, 0x02, 0xff, 0xfe, 0x5b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
];

/// An element of the BLS12-381 scalar field Fr.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct Fr(blst_fr);

impl core::fmt::Debug for Fr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fr(0x{})", hex::encode(self.to_bytes_be()))
    }
}

impl Fr {
    /// Zero.
    pub const ZERO: Fr = Fr(blst_fr { l: [0; 4] });

    /// One.
    pub fn one() -> Fr {
        Fr::from_u64(1)
    }

    /// The field element `v`.
    pub fn from_u64(v: u64) -> Fr {
        let limbs = [v, 0, 0, 0];
        let mut out = blst_fr::default();
        // SAFETY: `limbs` holds the 4 limbs blst reads; `out` is a valid destination.
        unsafe { blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Fr(out)
    }

    /// Parses a canonical big-endian encoding (must be < r).
    pub fn from_bytes_be(bytes: &[u8; BYTES_PER_FIELD_ELEMENT]) -> Result<Fr, PointError> {
        let mut s = blst_scalar::default();
        // SAFETY: 32 readable bytes; valid destination.
        unsafe { blst_scalar_from_bendian(&mut s, bytes.as_ptr()) };
        // SAFETY: `s` is initialised.
        if !unsafe { blst_scalar_fr_check(&s) } {
            return Err(PointError::NonCanonicalScalar);
        }
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_from_scalar(&mut out, &s) };
        Ok(Fr(out))
    }

    /// Reduces any big-endian byte string modulo r (used for hash outputs).
    pub fn from_bytes_be_reduced(bytes: &[u8]) -> Fr {
        let mut s = blst_scalar::default();
        // SAFETY: `bytes` is a live slice of the given length.
        unsafe { blst_scalar_from_be_bytes(&mut s, bytes.as_ptr(), bytes.len()) };
        let mut out = blst_fr::default();
        // SAFETY: valid pointers; `s` < r after reduction.
        unsafe { blst_fr_from_scalar(&mut out, &s) };
        Fr(out)
    }

    /// The canonical big-endian encoding.
    pub fn to_bytes_be(&self) -> [u8; BYTES_PER_FIELD_ELEMENT] {
        let mut s = blst_scalar::default();
        let mut out = [0u8; BYTES_PER_FIELD_ELEMENT];
        // SAFETY: valid pointers; `out` has 32 bytes.
        unsafe {
            blst_scalar_from_fr(&mut s, &self.0);
            blst_bendian_from_scalar(out.as_mut_ptr(), &s);
        }
        out
    }

    /// The canonical value as four little-endian 64-bit limbs (not Montgomery form).
    pub fn to_limbs(&self) -> [u64; 4] {
        let mut out = [0u64; 4];
        // SAFETY: `out` has the 4 limbs blst writes.
        unsafe { blst_uint64_from_fr(out.as_mut_ptr(), &self.0) };
        out
    }

    /// Reads 32 big-endian bytes as the *Montgomery representation* of an element, with
    /// no conversion: for linear maps with Montgomery-form coefficients this computes on
    /// raw bytes directly (see [`crate::rs`]). `None` if the integer is not below r.
    #[inline]
    pub(crate) fn from_repr_be(bytes: &[u8]) -> Option<Fr> {
        let mut l = [0u64; 4];
        for (k, limb) in l.iter_mut().enumerate() {
            let at = BYTES_PER_FIELD_ELEMENT - 8 * (k + 1);
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            *limb = u64::from_be_bytes(b);
        }
        // Canonical iff l < r, compared from the top limb.
        const R: [u64; 4] = [
            0xffff_ffff_0000_0001,
            0x53bd_a402_fffe_5bfe,
            0x3339_d808_09a1_d805,
            0x73ed_a753_299d_7d48,
        ];
        for k in (0..4).rev() {
            if l[k] != R[k] {
                return (l[k] < R[k]).then_some(Fr(blst_fr { l }));
            }
        }
        None
    }

    /// The Montgomery representation as little-endian limbs (see [`Self::from_repr_be`]).
    #[inline]
    pub(crate) fn repr_limbs(&self) -> [u64; 4] {
        self.0.l
    }

    /// An element from Montgomery-representation limbs the caller reduced below r.
    #[inline]
    pub(crate) fn from_repr_limbs(l: [u64; 4]) -> Fr {
        Fr(blst_fr { l })
    }

    /// Writes the Montgomery representation as 32 big-endian bytes (inverse of
    /// [`Self::from_repr_be`]).
    #[inline]
    pub(crate) fn write_repr_be(&self, out: &mut [u8]) {
        for k in 0..4 {
            let at = BYTES_PER_FIELD_ELEMENT - 8 * (k + 1);
            out[at..at + 8].copy_from_slice(&self.0.l[k].to_be_bytes());
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.l == [0; 4]
    }

    /// The square.
    pub fn square(&self) -> Fr {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_sqr(&mut out, &self.0) };
        Fr(out)
    }

    /// The multiplicative inverse; zero maps to zero.
    pub fn inverse(&self) -> Fr {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_eucl_inverse(&mut out, &self.0) };
        Fr(out)
    }

    /// `self^exp` for a little-endian limb exponent.
    pub fn pow(&self, exp: &[u64]) -> Fr {
        let mut acc = Fr::one();
        for limb in exp.iter().rev() {
            for bit in (0..64).rev() {
                acc = acc.square();
                if (limb >> bit) & 1 == 1 {
                    acc *= *self;
                }
            }
        }
        acc
    }

    /// Inverts every element in place with one inversion (Montgomery's trick). Zeros stay
    /// zero.
    pub fn batch_inverse(values: &mut [Fr]) {
        let mut prefix = Vec::with_capacity(values.len());
        let mut acc = Fr::one();
        for v in values.iter() {
            prefix.push(acc);
            if !v.is_zero() {
                acc *= *v;
            }
        }
        let mut inv = acc.inverse();
        for (v, p) in values.iter_mut().zip(prefix).rev() {
            if v.is_zero() {
                continue;
            }
            let next = inv * *v;
            *v = inv * p;
            inv = next;
        }
    }
}

macro_rules! fr_binop {
    ($tr:ident, $m:ident, $tra:ident, $ma:ident, $f:ident) => {
        impl $tr for Fr {
            type Output = Fr;
            fn $m(self, rhs: Fr) -> Fr {
                let mut out = blst_fr::default();
                // SAFETY: valid pointers to initialised field elements.
                unsafe { $f(&mut out, &self.0, &rhs.0) };
                Fr(out)
            }
        }
        impl $tra for Fr {
            fn $ma(&mut self, rhs: Fr) {
                *self = $tr::$m(*self, rhs);
            }
        }
    };
}
fr_binop!(Add, add, AddAssign, add_assign, blst_fr_add);
fr_binop!(Sub, sub, SubAssign, sub_assign, blst_fr_sub);
fr_binop!(Mul, mul, MulAssign, mul_assign, blst_fr_mul);

impl Neg for Fr {
    type Output = Fr;
    fn neg(self) -> Fr {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_cneg(&mut out, &self.0, true) };
        Fr(out)
    }
}

/// A G1 point in projective (Jacobian) coordinates.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(transparent)]
pub struct G1(pub(crate) blst_p1);

/// A G1 point in affine coordinates; the identity is `(0, 0)` as in blst.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(transparent)]
pub struct G1Affine(pub(crate) blst_p1_affine);

/// A G2 point in affine coordinates.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct G2Affine(blst_p2_affine);

fn map_err(e: BLST_ERROR) -> PointError {
    match e {
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => PointError::NotOnCurve,
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => PointError::NotInSubgroup,
        _ => PointError::BadEncoding,
    }
}

impl G1 {
    /// The identity.
    pub fn identity() -> G1 {
        G1(blst_p1::default())
    }

    /// The standard generator.
    pub fn generator() -> G1 {
        // SAFETY: blst returns a pointer to a static constant.
        G1(unsafe { *blst_p1_generator() })
    }

    /// Whether this is the identity.
    pub fn is_identity(&self) -> bool {
        // SAFETY: valid pointer.
        unsafe { blst_p1_is_inf(&self.0) }
    }

    /// `2 · self`.
    pub fn double(&self) -> G1 {
        let mut out = blst_p1::default();
        // SAFETY: valid pointers.
        unsafe { blst_p1_double(&mut out, &self.0) };
        G1(out)
    }

    /// `self + other` (affine), handling doubling and the identity.
    pub fn add_affine(&self, other: &G1Affine) -> G1 {
        let mut out = blst_p1::default();
        // SAFETY: valid pointers.
        unsafe { blst_p1_add_or_double_affine(&mut out, &self.0, &other.0) };
        G1(out)
    }

    /// `s · self`.
    pub fn mul(&self, s: &Fr) -> G1 {
        let mut sc = blst_scalar::default();
        let mut out = blst_p1::default();
        // SAFETY: valid pointers; blst reads 255 bits of the 32-byte little-endian scalar.
        unsafe {
            blst_scalar_from_fr(&mut sc, &s.0);
            blst_p1_mult(&mut out, &self.0, sc.b.as_ptr(), 255);
        }
        G1(out)
    }

    /// The affine form.
    pub fn to_affine(&self) -> G1Affine {
        let mut out = blst_p1_affine::default();
        // SAFETY: valid pointers.
        unsafe { blst_p1_to_affine(&mut out, &self.0) };
        G1Affine(out)
    }

    /// Converts many points to affine with one inversion.
    pub fn batch_to_affine(points: &[G1]) -> Vec<G1Affine> {
        let mut out = vec![G1Affine::default(); points.len()];
        if points.is_empty() {
            return out;
        }
        let ptrs: [*const blst_p1; 2] = [points.as_ptr().cast(), core::ptr::null()];
        // SAFETY: `G1` is `repr(transparent)`-like over blst_p1 (a one-field tuple struct of
        // the same layout is guaranteed by `#[repr(transparent)]` below); blst reads
        // `points.len()` consecutive points through the first pointer when the second is
        // null, and writes as many affine points to `out`.
        unsafe { blst_p1s_to_affine(out.as_mut_ptr().cast(), ptrs.as_ptr(), points.len()) };
        out
    }

    /// The 48-byte compressed encoding.
    pub fn to_compressed(&self) -> [u8; BYTES_PER_G1] {
        let mut out = [0u8; BYTES_PER_G1];
        // SAFETY: `out` has 48 bytes.
        unsafe { blst_p1_compress(out.as_mut_ptr(), &self.0) };
        out
    }
}

impl Add for G1 {
    type Output = G1;
    fn add(self, rhs: G1) -> G1 {
        let mut out = blst_p1::default();
        // SAFETY: valid pointers.
        unsafe { blst_p1_add_or_double(&mut out, &self.0, &rhs.0) };
        G1(out)
    }
}

impl AddAssign for G1 {
    fn add_assign(&mut self, rhs: G1) {
        *self = *self + rhs;
    }
}

impl Sub for G1 {
    type Output = G1;
    fn sub(self, rhs: G1) -> G1 {
        self + (-rhs)
    }
}

impl Neg for G1 {
    type Output = G1;
    fn neg(self) -> G1 {
        let mut out = self.0;
        // SAFETY: valid pointer.
        unsafe { blst_p1_cneg(&mut out, true) };
        G1(out)
    }
}

impl G1Affine {
    /// The identity.
    pub fn identity() -> G1Affine {
        G1Affine(blst_p1_affine::default())
    }

    /// Whether this is the identity (blst's affine identity is `(0, 0)`, which is not on
    /// the curve, so the test is exact).
    #[inline]
    pub fn is_identity(&self) -> bool {
        fp::is_zero(&self.0.x) && fp::is_zero(&self.0.y)
    }

    /// Decodes and fully validates a compressed point: encoding, curve, subgroup. The
    /// identity (`0xc0` then zeros) is accepted, as in EIP-4844's `validate_kzg_g1`.
    pub fn from_compressed(bytes: &[u8; BYTES_PER_G1]) -> Result<G1Affine, PointError> {
        let mut out = blst_p1_affine::default();
        // SAFETY: 48 readable bytes; valid destination.
        let err = unsafe { blst_p1_uncompress(&mut out, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_err(err));
        }
        let p = G1Affine(out);
        // SAFETY: valid pointer.
        if !p.is_identity() && !unsafe { blst_p1_affine_in_g1(&p.0) } {
            return Err(PointError::NotInSubgroup);
        }
        Ok(p)
    }

    /// Decodes a compressed point checking encoding and curve membership but not the
    /// subgroup: only for points this build trusts already (the embedded setup).
    pub fn from_compressed_trusted(bytes: &[u8; BYTES_PER_G1]) -> Result<G1Affine, PointError> {
        let mut out = blst_p1_affine::default();
        // SAFETY: 48 readable bytes; valid destination.
        let err = unsafe { blst_p1_uncompress(&mut out, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_err(err));
        }
        Ok(G1Affine(out))
    }

    /// The 96-byte uncompressed encoding (used for trusted caches only).
    pub fn to_uncompressed(&self) -> [u8; 2 * BYTES_PER_G1] {
        let mut out = [0u8; 2 * BYTES_PER_G1];
        // SAFETY: `out` has 96 bytes.
        unsafe { blst_p1_affine_serialize(out.as_mut_ptr(), &self.0) };
        out
    }

    /// Decodes a 96-byte uncompressed encoding, checking that it is on the curve. The
    /// subgroup is *not* checked: callers use this only for data they produced themselves
    /// and authenticated by hash.
    pub fn from_uncompressed_unchecked_subgroup(
        bytes: &[u8; 2 * BYTES_PER_G1],
    ) -> Result<G1Affine, PointError> {
        let mut p = blst_p1_affine::default();
        // SAFETY: 96 readable bytes; valid destination.
        let err = unsafe { blst_p1_deserialize(&mut p, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_err(err));
        }
        Ok(G1Affine(p))
    }

    /// The 48-byte compressed encoding.
    pub fn to_compressed(&self) -> [u8; BYTES_PER_G1] {
        let mut out = [0u8; BYTES_PER_G1];
        // SAFETY: `out` has 48 bytes.
        unsafe { blst_p1_affine_compress(out.as_mut_ptr(), &self.0) };
        out
    }

    /// The projective form.
    pub fn to_projective(&self) -> G1 {
        let mut out = blst_p1::default();
        // SAFETY: valid pointers.
        unsafe { blst_p1_from_affine(&mut out, &self.0) };
        G1(out)
    }
}

impl G2Affine {
    /// The standard generator.
    pub fn generator() -> G2Affine {
        let mut out = blst_p2_affine::default();
        // SAFETY: blst returns a pointer to a static constant; valid destination.
        unsafe { blst_p2_to_affine(&mut out, blst_p2_generator()) };
        G2Affine(out)
    }

    /// Decodes and validates a compressed G2 point (encoding, curve, subgroup).
    pub fn from_compressed(bytes: &[u8; BYTES_PER_G2]) -> Result<G2Affine, PointError> {
        let mut out = blst_p2_affine::default();
        // SAFETY: 96 readable bytes; valid destination.
        let err = unsafe { blst_p2_uncompress(&mut out, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_err(err));
        }
        // SAFETY: valid pointer.
        if !unsafe { blst_p2_affine_in_g2(&out) } {
            return Err(PointError::NotInSubgroup);
        }
        Ok(G2Affine(out))
    }

    /// `self - s · G2`, used for `[τ - z]₂` in opening checks.
    pub fn sub_generator_times(&self, s: &Fr) -> G2Affine {
        let mut sc = blst_scalar::default();
        let mut sg = blst_p2::default();
        let mut me = blst_p2::default();
        let mut sum = blst_p2::default();
        let mut out = blst_p2_affine::default();
        // SAFETY: valid pointers throughout; blst reads 255 bits of the scalar.
        unsafe {
            blst_scalar_from_fr(&mut sc, &s.0);
            blst_p2_mult(&mut sg, blst_p2_generator(), sc.b.as_ptr(), 255);
            blst_p2_cneg(&mut sg, true);
            blst_p2_from_affine(&mut me, &self.0);
            blst_p2_add_or_double(&mut sum, &me, &sg);
            blst_p2_to_affine(&mut out, &sum);
        }
        G2Affine(out)
    }
}

/// Checks `e(a1, b1) == e(a2, b2)`.
pub fn pairings_equal(a1: &G1, b1: &G2Affine, a2: &G1, b2: &G2Affine) -> bool {
    let a1 = (-*a1).to_affine();
    let a2 = a2.to_affine();
    let mut l0 = blst_fp12::default();
    let mut l1 = blst_fp12::default();
    let mut prod = blst_fp12::default();
    let mut fin = blst_fp12::default();
    // SAFETY: valid pointers to initialised values.
    unsafe {
        blst_miller_loop(&mut l0, &b1.0, &a1.0);
        blst_miller_loop(&mut l1, &b2.0, &a2.0);
        blst_fp12_mul(&mut prod, &l0, &l1);
        blst_final_exp(&mut fin, &prod);
        blst_fp12_is_one(&fin)
    }
}

/// Variable-base multi-scalar multiplication with blst's Pippenger: the reference the
/// fixed-base engine in [`crate::msm`] is measured against, and the path for small or
/// one-off MSMs (parity commitments, batch verification).
pub fn msm_pippenger(points: &[G1Affine], scalars: &[Fr]) -> G1 {
    let n = points.len().min(scalars.len());
    if n == 0 {
        return G1::identity();
    }
    let sc: Vec<blst_scalar> = scalars[..n]
        .iter()
        .map(|s| {
            let mut out = blst_scalar::default();
            // SAFETY: valid pointers.
            unsafe { blst_scalar_from_fr(&mut out, &s.0) };
            out
        })
        .collect();
    if n == 1 {
        return points[0].to_projective().mul(&scalars[0]);
    }
    let pts: [*const blst_p1_affine; 2] = [points.as_ptr().cast(), core::ptr::null()];
    let scp: [*const u8; 2] = [sc.as_ptr().cast(), core::ptr::null()];
    // SAFETY: blst asks for this many bytes of scratch.
    let scratch_bytes = unsafe { blst_p1s_mult_pippenger_scratch_sizeof(n) };
    let mut scratch = vec![0 as limb_t; scratch_bytes.div_ceil(core::mem::size_of::<limb_t>())];
    let mut out = blst_p1::default();
    // SAFETY: `n` consecutive affine points and `n` consecutive 32-byte scalars are read
    // through the first pointers (second null); scratch is as large as blst asked.
    unsafe {
        blst_p1s_mult_pippenger(
            &mut out,
            pts.as_ptr(),
            n,
            scp.as_ptr(),
            255,
            scratch.as_mut_ptr(),
        )
    };
    G1(out)
}

/// Field-multiplication chains for side-by-side timing of the two multipliers in one run
/// (the browser test prints them). Not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use super::fp;

    /// `n` dependent blst multiplications; returns a limb so the work is not elided.
    pub fn mul_chain_blst(n: usize) -> u64 {
        let mut a = fp::one();
        let b = fp::sub(&fp::one(), &fp::sub(&fp::one(), &fp::one()));
        let b = fp::mul_blst(&b, &fp::sub(&Default::default(), &b));
        for _ in 0..n {
            a = fp::mul_blst(&a, &b);
        }
        a.l[0]
    }

    /// `n` dependent multiplications of 30-bit-limb elements kept in that form (the
    /// MSM's arithmetic on wasm32).
    pub fn mul_chain_f30(n: usize) -> u64 {
        use fp::wide30::F30;
        let b = fp::sub(&fp::one(), &fp::sub(&fp::one(), &fp::one()));
        let b = F30::from_fp(&fp::mul_blst(&b, &fp::sub(&Default::default(), &b)));
        let mut a = F30::from_fp(&fp::one());
        for _ in 0..n {
            a = F30::mul(&a, &b);
        }
        a.to_fp().l[0]
    }

    /// `n` dependent subtractions of 30-bit-limb elements.
    pub fn sub_chain_f30(n: usize) -> u64 {
        use fp::wide30::F30;
        let b = F30::from_fp(&fp::sub(&Default::default(), &fp::one()));
        let mut a = F30::from_fp(&fp::one());
        for _ in 0..n {
            a = F30::sub(&a, &b);
        }
        a.to_fp().l[0]
    }

    /// `n` dependent 30-bit-limb multiplications.
    pub fn mul_chain_wide30(n: usize) -> u64 {
        let mut a = fp::one();
        let b = fp::sub(&fp::one(), &fp::sub(&fp::one(), &fp::one()));
        let b = fp::mul_blst(&b, &fp::sub(&Default::default(), &b));
        for _ in 0..n {
            a = fp::wide30::mul(&a, &b);
        }
        a.l[0]
    }
}

/// A base-field element, exposed to [`crate::msm`] for batch-affine additions.
pub(crate) type Fp = blst_fp;

/// Base-field helpers for the MSM's affine arithmetic (thin wrappers over blst).
pub(crate) mod fp {
    use super::*;

    /// `*out = a·b` (Montgomery). Natively blst's assembly writes straight into `out`:
    /// returning the product by value made the caller reload it with wide loads that
    /// cannot be forwarded from the assembly's 8-byte stores (a stall per product).
    #[inline(always)]
    pub(crate) fn mul_to(out: &mut Fp, a: &Fp, b: &Fp) {
        #[cfg(target_arch = "wasm32")]
        {
            *out = wide30::mul(a, b);
        }
        #[cfg(not(target_arch = "wasm32"))]
        // SAFETY: valid pointers.
        unsafe {
            blst_fp_mul(out, a, b)
        };
    }
    /// `*a = a·b` (Montgomery), in place.
    #[inline(always)]
    pub(crate) fn mul_assign(a: &mut Fp, b: &Fp) {
        #[cfg(target_arch = "wasm32")]
        {
            *a = wide30::mul(a, b);
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let a: *mut Fp = a;
            // SAFETY: valid pointers; blst allows the output to alias an input.
            unsafe { blst_fp_mul(a, a, b) };
        }
    }
    /// `*out = a²` (Montgomery).
    #[inline(always)]
    pub(crate) fn sqr_to(out: &mut Fp, a: &Fp) {
        #[cfg(target_arch = "wasm32")]
        {
            *out = wide30::mul(a, a);
        }
        #[cfg(not(target_arch = "wasm32"))]
        // SAFETY: valid pointers.
        unsafe {
            blst::blst_fp_sqr(out, a)
        };
    }
    /// Whether `a` is zero (a fold, not a `memcmp` call).
    #[inline(always)]
    pub(crate) fn is_zero(a: &Fp) -> bool {
        a.l.iter().fold(0, |acc, &l| acc | l) == 0
    }
    /// blst's Montgomery multiplication (the oracle for [`wide30::mul`]).
    #[inline(always)]
    pub(crate) fn mul_blst(a: &Fp, b: &Fp) -> Fp {
        let mut o = Fp::default();
        // SAFETY: valid pointers.
        unsafe { blst_fp_mul(&mut o, a, b) };
        o
    }
    /// Montgomery multiplication with 13 limbs of 30 bits, for targets without a
    /// 64×64→128-bit multiply (wasm32): every partial product is below 2^60, and a row
    /// adds two to a column (x_i·y_j and m·p_j, in one pass), so a column absorbs seven
    /// rows before its carries must move on (one normalization, after row 7). 13 limbs of
    /// 30 bits take 338 multiplications per product against 392 for 14 limbs of 29 bits
    /// (which needed no normalization): 93 ms against 105 ms per commitment in Chromium.
    ///
    /// blst's representation is `a·2^384 mod p`; this REDC divides by `R = 2^390`. So
    /// the first operand enters shifted left by 6 bits (no reduction needed: below
    /// 2^389), and `REDC(2^6·a·b) = a·b·2^-384`. The bound `2^6·a·b < R·p` keeps the
    /// result below 2p, fixed by one conditional subtraction.
    pub(crate) mod wide30 {
        use super::{sub, Fp, P};

        const BITS: u32 = 30;
        const MASK: u64 = (1 << BITS) - 1;
        const N: usize = 13;
        /// `2^(30·13 - 384)`.
        const SHIFT: u32 = BITS * N as u32 - 384;
        /// p in 30-bit limbs.
        const P30: [u64; N] = [
            0x3fff_aaab,
            0x27fb_ffff,
            0x153f_fffb,
            0x2aff_ffac,
            0x30f6_241e,
            0x034a_83da,
            0x112b_f673,
            0x12e1_3ce1,
            0x2cd7_6477,
            0x1ed9_0d2e,
            0x29a4_b1ba,
            0x3a8e_5ff9,
            0x001a_0111,
        ];
        /// `-p⁻¹ mod 2^30`.
        const PINV: u64 = 0x3ffc_fffd;
        /// Rows a column may absorb before its carries must move on: each row adds two
        /// products below 2^60, and 7·2^61 (plus a carry) stays below 2^64.
        const ROWS_PER_NORMALIZE: usize = 7;

        /// Splits `a · 2^shift` (below 2^390) into 30-bit limbs.
        #[inline(always)]
        fn split(a: &[u64; 6], shift: u32) -> [u64; N] {
            let mut wide = [0u64; 7];
            for k in 0..6 {
                wide[k] |= a[k] << shift;
                wide[k + 1] = a[k].checked_shr(64 - shift).unwrap_or(0);
            }
            let mut out = [0u64; N];
            for (j, o) in out.iter_mut().enumerate() {
                let bit = j * BITS as usize;
                let (w, off) = (bit / 64, bit % 64);
                let lo = wide[w] >> off;
                let hi = if off + BITS as usize > 64 && w + 1 < 7 {
                    wide[w + 1] << (64 - off)
                } else {
                    0
                };
                *o = (lo | hi) & MASK;
            }
            out
        }

        #[inline(always)]
        fn join(r: &[u64; N]) -> [u64; 6] {
            let mut out = [0u64; 6];
            for (j, &limb) in r.iter().enumerate() {
                let bit = j * BITS as usize;
                let (w, off) = (bit / 64, bit % 64);
                if w < 6 {
                    out[w] |= limb << off;
                }
                if off + BITS as usize > 64 && w + 1 < 6 {
                    out[w + 1] |= limb >> (64 - off);
                }
            }
            out
        }

        /// `a·b·2⁻³⁸⁴ mod p`, fully reduced, for fully reduced inputs.
        #[inline]
        pub(crate) fn mul(a: &Fp, b: &Fp) -> Fp {
            let r = redc(&split(&a.l, SHIFT), &split(&b.l, 0));
            reduce_once(Fp { l: join(&r) })
        }

        /// `v mod p` for `v < 2p`.
        #[inline(always)]
        fn reduce_once(v: Fp) -> Fp {
            let reduced = sub(&v, &Fp { l: P });
            let mut ge = true;
            for k in (0..6).rev() {
                if v.l[k] != P[k] {
                    ge = v.l[k] > P[k];
                    break;
                }
            }
            if ge {
                reduced
            } else {
                v
            }
        }

        /// `REDC(x·y) = x·y·2⁻⁴⁰⁶ mod p`, below `x·y/2⁴⁰⁶ + p`, in normalized limbs.
        #[inline(always)]
        fn redc(x: &[u64; N], y: &[u64; N]) -> [u64; N] {
            // Operand scanning into a 28-limb array; wrapping operations because the
            // bound above rules out overflow, and this keeps overflow-check branches out
            // of test builds. Each row adds x_i·y and m·p in one pass over the columns
            // (m comes from column i alone), so a column is loaded and stored once per
            // row, not twice. (Product scanning with one register accumulator measured
            // slower in Chromium: 356 ns against 305 ns per multiplication; so did
            // SIMD128 `extmul` rows.)
            let mut t = [0u64; 2 * N + 1];
            for i in 0..N {
                if i > 0 && i % ROWS_PER_NORMALIZE == 0 {
                    for j in i..2 * N - 1 {
                        t[j + 1] = t[j + 1].wrapping_add(t[j] >> BITS);
                        t[j] &= MASK;
                    }
                }
                let xi = x[i];
                let c0 = t[i].wrapping_add(xi.wrapping_mul(y[0]));
                let m = c0.wrapping_mul(PINV) & MASK;
                // Column i is now a multiple of 2^30: only its carry moves on.
                let carry = c0.wrapping_add(m.wrapping_mul(P30[0])) >> BITS;
                t[i + 1] = t[i + 1].wrapping_add(carry);
                let row = &mut t[i + 1..i + N];
                for ((tj, yj), pj) in row.iter_mut().zip(&y[1..]).zip(&P30[1..]) {
                    *tj = tj
                        .wrapping_add(xi.wrapping_mul(*yj))
                        .wrapping_add(m.wrapping_mul(*pj));
                }
            }
            let mut r = [0u64; N];
            r.copy_from_slice(&t[N..2 * N]);
            for j in 0..N - 1 {
                r[j + 1] = r[j + 1].wrapping_add(r[j] >> BITS);
                r[j] &= MASK;
            }
            r
        }

        /// `2p` in 30-bit limbs.
        const P30X2: [u64; N] = {
            let mut out = [0u64; N];
            let mut carry = 0;
            let mut j = 0;
            while j < N {
                let v = 2 * P30[j] + carry;
                out[j] = v & MASK;
                carry = v >> BITS;
                j += 1;
            }
            out
        };

        /// A base-field element kept in 13 limbs of 30 bits between multiplications, so
        /// the MSM's batch-affine rounds on wasm32 split and join only once per point
        /// instead of around every product. The value is blst's Montgomery form
        /// (`a·2^384`), possibly plus p: it lies in `[0, 2p)`.
        ///
        /// Products need no final subtraction: with both inputs below 2p, the REDC of
        /// `2^6·a·b` is below `2^8·p²/2^390 + p < 1.5p`.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub(crate) struct F30(pub(crate) [u32; N]);

        impl F30 {
            /// From blst's representation (fully reduced).
            #[inline(always)]
            pub(crate) fn from_fp(a: &Fp) -> F30 {
                F30(split(&a.l, 0).map(|v| v as u32))
            }

            /// To blst's representation, fully reduced.
            #[inline(always)]
            pub(crate) fn to_fp(self) -> Fp {
                reduce_once(Fp {
                    l: join(&self.0.map(u64::from)),
                })
            }

            /// `a·b` (Montgomery).
            #[inline(always)]
            pub(crate) fn mul(a: &F30, b: &F30) -> F30 {
                // x = 2^6·a: a < 2p < 2^382, so the shifted value fits 13 limbs.
                let mut x = [0u64; N];
                let mut below = 0u64;
                for (xj, &aj) in x.iter_mut().zip(&a.0) {
                    let aj = u64::from(aj);
                    *xj = ((aj << SHIFT) & MASK) | (below >> (BITS - SHIFT));
                    below = aj;
                }
                let y = b.0.map(u64::from);
                F30(redc(&x, &y).map(|v| v as u32))
            }

            /// `a - b` in `[0, 2p)`.
            #[inline(always)]
            pub(crate) fn sub(a: &F30, b: &F30) -> F30 {
                // a - b lies in (-2p, 2p): add 2p when it is negative. Branch-free (the
                // sign is a coin flip), two carry chains.
                let mut t = [0i64; N];
                let mut carry: i64 = 0;
                for ((tj, &aj), &bj) in t.iter_mut().zip(&a.0).zip(&b.0) {
                    let v = i64::from(aj) - i64::from(bj) + carry;
                    *tj = v & MASK as i64;
                    carry = v >> BITS;
                }
                // carry is now 0 or -1: the sign.
                let mut out = [0u32; N];
                let mut c: i64 = 0;
                for ((oj, tj), pj) in out.iter_mut().zip(t).zip(P30X2) {
                    let v = tj + (pj as i64 & carry) + c;
                    *oj = (v & MASK as i64) as u32;
                    c = v >> BITS;
                }
                F30(out)
            }

            /// Whether the value is 0 mod p (0 or p).
            #[inline(always)]
            pub(crate) fn is_zero(&self) -> bool {
                self.is_raw_zero() || self.0.iter().zip(P30).all(|(&a, p)| u64::from(a) == p)
            }

            /// Whether every limb is 0 (the identity's encoding in the MSM).
            #[inline(always)]
            pub(crate) fn is_raw_zero(&self) -> bool {
                self.0.iter().fold(0, |acc, &l| acc | l) == 0
            }
        }
    }
    /// The base-field modulus p, little-endian limbs.
    pub(crate) const P: [u64; 6] = [
        0xb9fe_ffff_ffff_aaab,
        0x1eab_fffe_b153_ffff,
        0x6730_d2a0_f6b0_f624,
        0x6477_4b84_f385_12bf,
        0x4b1b_a7b6_434b_acd7,
        0x1a01_11ea_397f_e69a,
    ];

    /// `a - b mod p` for fully reduced inputs (blst keeps every value below p). Inline
    /// Rust: a subtraction is too cheap to pay for a foreign call.
    #[inline(always)]
    pub(crate) fn sub(a: &Fp, b: &Fp) -> Fp {
        let mut r = [0u64; 6];
        let mut borrow = false;
        for ((ri, ai), bi) in r.iter_mut().zip(a.l).zip(b.l) {
            let (d1, b1) = ai.overflowing_sub(bi);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *ri = d2;
            borrow = b1 | b2;
        }
        let mask = 0u64.wrapping_sub(borrow as u64);
        let mut carry = false;
        for (ri, pi) in r.iter_mut().zip(P) {
            let (s1, c1) = ri.overflowing_add(pi & mask);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *ri = s2;
            carry = c1 | c2;
        }
        Fp { l: r }
    }

    /// The blst subtraction, the oracle for [`sub`] in tests.
    #[cfg(test)]
    pub(crate) fn sub_blst(a: &Fp, b: &Fp) -> Fp {
        let mut o = Fp::default();
        // SAFETY: valid pointers.
        unsafe { blst::blst_fp_sub(&mut o, a, b) };
        o
    }
    #[inline(always)]
    pub(crate) fn inv(a: &Fp) -> Fp {
        let mut o = Fp::default();
        // SAFETY: valid pointers.
        unsafe { blst_fp_eucl_inverse(&mut o, a) };
        o
    }
    /// The additive inverse.
    #[cfg(test)]
    pub(crate) fn neg(a: &Fp) -> Fp {
        sub(&Fp::default(), a)
    }
    /// One (Montgomery form).
    pub(crate) fn one() -> Fp {
        let mut o = Fp::default();
        let limbs = [1u64, 0, 0, 0, 0, 0];
        // SAFETY: blst reads 6 limbs.
        unsafe { blst::blst_fp_from_uint64(&mut o, limbs.as_ptr()) };
        o
    }
}

impl G1Affine {
    /// The affine coordinates (Montgomery form), identity as `(0, 0)`.
    pub(crate) fn xy(&self) -> (&Fp, &Fp) {
        (&self.0.x, &self.0.y)
    }
    /// Builds a point from affine coordinates the caller computed on the curve.
    pub(crate) fn from_xy(x: Fp, y: Fp) -> G1Affine {
        G1Affine(blst_p1_affine { x, y })
    }
}

const _: () = assert!(core::mem::size_of::<G1>() == core::mem::size_of::<blst_p1>());
const _: () = assert!(core::mem::size_of::<G1Affine>() == core::mem::size_of::<blst_p1_affine>());

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fp_from(seed: [u64; 2]) -> Fp {
        // Reduced values: products of small values are spread over the whole field.
        let a = fp::one();
        let mut x = Fp::default();
        let limbs = [seed[0], seed[1], 0, 0, 0, 0];
        // SAFETY: 6 limbs read.
        unsafe { blst::blst_fp_from_uint64(&mut x, limbs.as_ptr()) };
        fp::mul_blst(&fp::mul_blst(&x, &x), &fp::mul_blst(&x, &a))
    }

    proptest! {
        #[test]
        fn wide30_mul_matches_blst(a in any::<[u64; 2]>(), b in any::<[u64; 2]>()) {
            let (x, y) = (fp_from(a), fp_from(b));
            prop_assert_eq!(fp::wide30::mul(&x, &y), fp::mul_blst(&x, &y));
            prop_assert_eq!(fp::wide30::mul(&x, &x), fp::mul_blst(&x, &x));
            let pm1 = fp::sub(&Fp::default(), &fp::one()); // p - 1 in Montgomery form
            let raw_max = Fp { l: { let mut l = fp::P; l[0] -= 1; l } }; // raw p - 1
            prop_assert_eq!(fp::wide30::mul(&raw_max, &raw_max), fp::mul_blst(&raw_max, &raw_max));
            prop_assert_eq!(fp::wide30::mul(&pm1, &y), fp::mul_blst(&pm1, &y));
            prop_assert_eq!(fp::wide30::mul(&Fp::default(), &y), Fp::default());
        }

        #[test]
        fn wide30_mul_matches_blst_on_raw_limbs(a in any::<[u64; 6]>(), b in any::<[u64; 6]>()) {
            // Any 6 limbs with the top one below p's are a valid (reduced) representation.
            let fix = |mut l: [u64; 6]| { l[5] %= fp::P[5]; Fp { l } };
            let (x, y) = (fix(a), fix(b));
            prop_assert_eq!(fp::wide30::mul(&x, &y), fp::mul_blst(&x, &y));
        }

        #[test]
        fn f30_matches_blst(a in any::<[u64; 6]>(), b in any::<[u64; 6]>(),
                            a_plus_p: bool, b_plus_p: bool) {
            use fp::wide30::F30;
            let fix = |mut l: [u64; 6]| { l[5] %= fp::P[5]; Fp { l } };
            let (x, y) = (fix(a), fix(b));
            // The same values, optionally as their non-canonical twin v + p (F30 keeps
            // values anywhere in [0, 2p); `to_fp` is only right below 2p, so every
            // assertion also checks that results stay in range).
            let p30 = F30::from_fp(&Fp { l: fp::P });
            let lift = |v: &Fp, plus_p: bool| {
                let f = F30::from_fp(v);
                // v - p is computed as v + 2p - p = v + p, below 2p: kept as is.
                if plus_p { F30::sub(&f, &p30) } else { f }
            };
            let (fx, fy) = (lift(&x, a_plus_p), lift(&y, b_plus_p));
            prop_assert_eq!(fx.to_fp(), x);
            prop_assert_eq!(fx == F30::from_fp(&x), !a_plus_p);
            let prod = F30::mul(&fx, &fy);
            prop_assert_eq!(prod.to_fp(), fp::mul_blst(&x, &y));
            prop_assert_eq!(F30::sub(&prod, &p30).to_fp(), prod.to_fp());
            let diff = F30::sub(&fx, &fy);
            prop_assert_eq!(diff.to_fp(), fp::sub_blst(&x, &y));
            let want = fp::mul_blst(&fp::sub_blst(&x, &y), &fp::mul_blst(&x, &y));
            prop_assert_eq!(F30::mul(&diff, &prod).to_fp(), want);
            prop_assert_eq!(F30::sub(&fx, &fx).is_zero(), true);
            prop_assert_eq!(diff.is_zero(), x == y);
        }

        #[test]
        fn inline_sub_matches_blst(a in any::<[u64; 2]>(), b in any::<[u64; 2]>()) {
            let (x, y) = (fp_from(a), fp_from(b));
            prop_assert_eq!(fp::sub(&x, &y), fp::sub_blst(&x, &y));
            prop_assert_eq!(fp::sub(&y, &x), fp::sub_blst(&y, &x));
            prop_assert_eq!(fp::sub(&x, &x), Fp::default());
            prop_assert_eq!(fp::neg(&Fp::default()), Fp::default());
        }
    }

    #[test]
    fn scalars_roundtrip_and_reject_noncanonical() {
        let x = Fr::from_u64(12345);
        assert_eq!(Fr::from_bytes_be(&x.to_bytes_be()), Ok(x));
        assert_eq!(
            Fr::from_bytes_be(&MODULUS_BE),
            Err(PointError::NonCanonicalScalar)
        );
        let mut v = [Fr::from_u64(3), Fr::ZERO, Fr::from_u64(7)];
        Fr::batch_inverse(&mut v);
        assert_eq!(v[0] * Fr::from_u64(3), Fr::one());
        assert!(v[1].is_zero());
        assert_eq!(Fr::from_repr_be(&MODULUS_BE), None);
    }
}
