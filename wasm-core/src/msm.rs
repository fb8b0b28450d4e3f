//! Fixed-base multi-scalar multiplication for the KZG setup (docs/spec.md §3.1, §12).
//!
//! The setup points never change, so we precompute, for every base `P_i` and window `w`,
//! the shifted copy `2^{c·w} · P_i`. A scalar's signed base-2^c digits then send each
//! shifted copy straight into one bucket, with **no doublings at all**:
//!
//! ```text
//!   table[w][i] = 2^{c·w} P_i                 (W windows × n bases, affine)
//!   s_i = Σ_w d_{i,w} 2^{c·w},  d ∈ [-2^{c-1}, 2^{c-1}]   (signed digits)
//!   Σ_i s_i P_i = Σ_{b=1}^{2^{c-1}} b · S_b,   S_b = Σ_{d_{i,w} = ±b} ±table[w][i]
//! ```
//!
//! Bucket sums `S_b` are computed with **batch-affine additions**: all buckets are reduced
//! pairwise in rounds, and each round shares one field inversion (Montgomery's trick)
//! among all its additions, so an addition costs about 6 multiplications instead of the
//! ~11 of a mixed Jacobian addition. The final `Σ b·S_b` is a running sum, batch-affine
//! across lanes of buckets (`weighted_sum`). The arithmetic is generic over the coordinate
//! type: blst's natively, 30-bit limbs on wasm32 (`Coord`).
//!
//! [`msm_naive`] (double-and-add per point) is the oracle in tests; blst's Pippenger
//! ([`crate::curve::msm_pippenger`]) is the speed reference in benches.

use crate::curve::{fp, Fp, Fr, G1Affine, G1};

/// Default window width for n = 4096 bases: `n·⌈256/c⌉ − 2^{c−1}` bucket additions plus
/// `2^c` for the weighted sum is ~92 K additions at c = 12, ~86 K at c = 13 and c = 14
/// (19 windows, 8192 buckets). Measured (`nilstore bench kzg`, one thread): c = 12
/// 25.1 ms, c = 13 24.5 ms, c = 14 23.8 ms, c = 15 27 ms (bucket arrays leave the cache).
pub const DEFAULT_WINDOW_BITS: u32 = 14;

/// Scalar bits covered by the windows: a canonical scalar is below 2^255, and one more bit
/// absorbs the carry of the signed-digit recoding.
const SCALAR_BITS_WITH_CARRY: u32 = 256;

/// Magic and version of the cache encoding.
const CACHE_MAGIC: &[u8; 8] = b"NILMSM01";
/// Header: magic, window bits, windows, bases (u32 LE each), setup fingerprint, body hash.
const CACHE_HEADER: usize = 8 + 3 * 4 + 32 + 32;
/// Bytes of one affine point in the cache (blst's internal Montgomery limbs).
const CACHE_POINT: usize = core::mem::size_of::<G1Affine>();

/// Why a precomputed-table cache was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Too short, bad magic, or inconsistent sizes.
    #[error("malformed MSM table cache")]
    Malformed,
    /// The cache was built for other bases or parameters.
    #[error("MSM table cache is for another setup")]
    WrongSetup,
    /// The body does not match its hash.
    #[error("MSM table cache is corrupt")]
    Corrupt,
}

/// Precomputed tables for one fixed set of bases.
pub struct FixedBaseMsm {
    bases: usize,
    window_bits: u32,
    windows: usize,
    /// `table[w * bases + i] = 2^{c·w} · P_i`.
    table: Vec<G1Affine>,
    fingerprint: [u8; 32],
}

impl core::fmt::Debug for FixedBaseMsm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FixedBaseMsm")
            .field("bases", &self.bases)
            .field("window_bits", &self.window_bits)
            .field("windows", &self.windows)
            .finish()
    }
}

/// A fingerprint of a base set: BLAKE3 over the compressed points.
pub fn fingerprint(bases: &[G1Affine]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"nilstore/msm-bases/v1");
    for b in bases {
        h.update(&b.to_compressed());
    }
    *h.finalize().as_bytes()
}

fn windows_for(window_bits: u32) -> usize {
    SCALAR_BITS_WITH_CARRY.div_ceil(window_bits) as usize
}

impl FixedBaseMsm {
    /// Precomputes the shifted tables (`n · W · c` doublings; parallel with `parallel`).
    ///
    /// # Panics
    /// If `window_bits` is not in `2..=16`.
    pub fn new(bases: &[G1Affine], window_bits: u32) -> Self {
        assert!((2..=16).contains(&window_bits), "window bits out of range");
        let windows = windows_for(window_bits);
        let n = bases.len();
        assert!(
            n.checked_mul(windows).is_some_and(|t| t < SIGN as usize),
            "too many bases for a u32 bucket entry"
        );
        let column = |p: &G1Affine| -> Vec<G1> {
            let mut out = Vec::with_capacity(windows);
            let mut cur = p.to_projective();
            for _ in 0..windows {
                out.push(cur);
                for _ in 0..window_bits {
                    cur = cur.double();
                }
            }
            out
        };
        let columns: Vec<Vec<G1>> = crate::par::map(bases, column);
        let mut proj = vec![G1::identity(); n * windows];
        for (i, col) in columns.into_iter().enumerate() {
            for (w, p) in col.into_iter().enumerate() {
                proj[w * n + i] = p;
            }
        }
        let table = crate::par::map_chunks(&proj, 4096, G1::batch_to_affine);
        FixedBaseMsm {
            bases: n,
            window_bits,
            windows,
            table,
            fingerprint: fingerprint(bases),
        }
    }

    /// Number of bases.
    pub fn len(&self) -> usize {
        self.bases
    }

    /// Whether there are no bases.
    pub fn is_empty(&self) -> bool {
        self.bases == 0
    }

    /// The bases themselves (window 0 of the table).
    pub fn bases_window0(&self) -> &[G1Affine] {
        &self.table[..self.bases]
    }

    /// The fingerprint of the bases the tables were built for.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// `Σ scalars[i] · P_i` (single thread). Extra bases beyond `scalars.len()` count as
    /// zero; extra scalars are ignored.
    pub fn msm(&self, scalars: &[Fr]) -> G1 {
        self.msm_windows(scalars, 0..self.windows)
    }

    /// Like [`Self::msm`], splitting the windows over threads (rayon natively).
    pub fn msm_parallel(&self, scalars: &[Fr]) -> G1 {
        let threads = crate::par::threads().min(self.windows).max(1);
        if threads == 1 {
            return self.msm(scalars);
        }
        let per = self.windows.div_ceil(threads);
        let ranges: Vec<core::ops::Range<usize>> = (0..threads)
            .map(|t| (t * per).min(self.windows)..((t + 1) * per).min(self.windows))
            .collect();
        crate::par::map(&ranges, |r| self.msm_windows(scalars, r.clone()))
            .into_iter()
            .fold(G1::identity(), |a, b| a + b)
    }

    fn msm_windows(&self, scalars: &[Fr], windows: core::ops::Range<usize>) -> G1 {
        self.msm_windows_in::<Coords>(scalars, windows)
    }

    /// The MSM with the batch-affine arithmetic in coordinates `F`.
    fn msm_windows_in<F: Coord>(&self, scalars: &[Fr], windows: core::ops::Range<usize>) -> G1 {
        let n = self.bases.min(scalars.len());
        let c = self.window_bits;
        let buckets = 1usize << (c - 1);
        // 1. Signed digits, counted per bucket.
        let nw = windows.len();
        let mut digits = vec![0i32; n * nw];
        let mut counts = vec![0u32; buckets + 1];
        for (i, s) in scalars[..n].iter().enumerate() {
            let limbs = s.to_limbs();
            let mut carry = 0u64;
            for w in 0..self.windows {
                let raw = bits(&limbs, w as u32 * c, c) + carry;
                let (d, cy) = if raw > (1 << (c - 1)) {
                    (raw as i64 - (1i64 << c), 1)
                } else {
                    (raw as i64, 0)
                };
                carry = cy;
                if windows.contains(&w) {
                    let d = d as i32;
                    digits[i * nw + (w - windows.start)] = d;
                    if d != 0 {
                        counts[d.unsigned_abs() as usize] += 1;
                    }
                }
            }
        }
        // 2. Lay the signed table entries out bucket by bucket (counting sort of u32
        //    entries: table index, sign in the top bit).
        let mut seg = vec![0u32; buckets + 1];
        for b in 1..=buckets {
            seg[b] = seg[b - 1] + counts[b];
        }
        let total = seg[buckets] as usize;
        let mut entries = vec![0u32; total];
        let mut fill = seg.clone();
        // Window-major: the digits are read in table order.
        for k in 0..nw {
            let row = (windows.start + k) * self.bases;
            for i in 0..n {
                let d = digits[i * nw + k];
                if d == 0 {
                    continue;
                }
                let b = d.unsigned_abs() as usize;
                entries[fill[b - 1] as usize] = (row + i) as u32 | if d < 0 { SIGN } else { 0 };
                fill[b - 1] += 1;
            }
        }
        // seg[b-1]..seg[b] now holds bucket b's entries. Gather the points in bucket
        // order: sequential writes and prefetched reads (scattering 96-byte points into
        // buckets cost as much as two rounds of reduction).
        let table = &self.table;
        let mut pts = Vec::with_capacity(total);
        for (k, &e) in entries.iter().enumerate() {
            if let Some(&ahead) = entries.get(k + AHEAD) {
                prefetch(&table[(ahead & !SIGN) as usize]);
            }
            let p = Aff::<F>::from_g1(&table[(e & !SIGN) as usize]);
            pts.push(if e & SIGN != 0 { p.neg() } else { p });
        }
        // 3. Batch-affine pairwise reduction until every bucket has at most one point.
        let sums = reduce_buckets(pts, seg);
        // 4. Σ b · S_b by running sums, batch-affine across lanes.
        weighted_sum(&sums)
    }

    /// Encodes the tables for a trusted local cache (e.g. OPFS in the browser).
    pub fn to_cache_bytes(&self) -> Vec<u8> {
        let body = points_as_bytes(&self.table);
        let mut out = Vec::with_capacity(CACHE_HEADER + body.len());
        out.extend_from_slice(CACHE_MAGIC);
        out.extend_from_slice(&self.window_bits.to_le_bytes());
        out.extend_from_slice(&(self.windows as u32).to_le_bytes());
        out.extend_from_slice(&(self.bases as u32).to_le_bytes());
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(blake3::hash(body).as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Decodes a cache made by [`Self::to_cache_bytes`] for bases with `fingerprint`.
    pub fn from_cache_bytes(bytes: &[u8], fingerprint: &[u8; 32]) -> Result<Self, CacheError> {
        let header = bytes.get(..CACHE_HEADER).ok_or(CacheError::Malformed)?;
        if &header[..8] != CACHE_MAGIC {
            return Err(CacheError::Malformed);
        }
        let word = |k: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[8 + 4 * k..12 + 4 * k]);
            u32::from_le_bytes(b)
        };
        let (window_bits, windows, bases) = (word(0), word(1) as usize, word(2) as usize);
        if !(2..=16).contains(&window_bits) || windows != windows_for(window_bits) {
            return Err(CacheError::Malformed);
        }
        if &header[20..52] != fingerprint {
            return Err(CacheError::WrongSetup);
        }
        let body = &bytes[CACHE_HEADER..];
        if windows
            .checked_mul(bases)
            .is_none_or(|t| t >= SIGN as usize)
        {
            return Err(CacheError::Malformed);
        }
        if Some(body.len())
            != windows
                .checked_mul(bases)
                .and_then(|x| x.checked_mul(CACHE_POINT))
        {
            return Err(CacheError::Malformed);
        }
        if blake3::hash(body).as_bytes() != &header[52..84] {
            return Err(CacheError::Corrupt);
        }
        let mut table = vec![G1Affine::identity(); windows * bases];
        points_as_bytes_mut(&mut table).copy_from_slice(body);
        Ok(FixedBaseMsm {
            bases,
            window_bits,
            windows,
            table,
            fingerprint: *fingerprint,
        })
    }
}

fn points_as_bytes(points: &[G1Affine]) -> &[u8] {
    // SAFETY: G1Affine is repr(transparent) over blst_p1_affine, a repr(C) struct of
    // 12 u64 limbs with no padding; any initialised value is a valid byte sequence.
    unsafe { core::slice::from_raw_parts(points.as_ptr().cast(), core::mem::size_of_val(points)) }
}

fn points_as_bytes_mut(points: &mut [G1Affine]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid limb array, and the caller
    // authenticates the bytes (BLAKE3) before the points are used.
    unsafe {
        core::slice::from_raw_parts_mut(points.as_mut_ptr().cast(), core::mem::size_of_val(points))
    }
}

/// `c` bits of the little-endian limbs starting at bit `start` (0 past the end).
fn bits(limbs: &[u64; 4], start: u32, c: u32) -> u64 {
    let limb = (start / 64) as usize;
    let shift = start % 64;
    if limb >= 4 {
        return 0;
    }
    let mut v = limbs[limb] >> shift;
    if shift + c > 64 && limb + 1 < 4 {
        v |= limbs[limb + 1] << (64 - shift);
    }
    v & ((1u64 << c) - 1)
}

#[cfg(test)]
fn neg(p: &G1Affine) -> G1Affine {
    let (x, y) = p.xy();
    G1Affine::from_xy(*x, fp::neg(y))
}

/// The coordinates the batch-affine arithmetic runs in: blst's natively (its assembly
/// multiplies in place), 30-bit limbs on wasm32 (converted once per point instead of
/// around every product; [`fp::wide30::F30`]).
#[cfg(not(target_arch = "wasm32"))]
type Coords = Fp;
#[cfg(target_arch = "wasm32")]
type Coords = fp::wide30::F30;

/// Base-field arithmetic for batch-affine additions.
pub(crate) trait Coord: Copy + Default {
    /// From blst's (fully reduced) representation.
    fn from_fp(a: &Fp) -> Self;
    /// To blst's representation, fully reduced.
    fn to_fp(&self) -> Fp;
    /// One.
    fn one() -> Self;
    /// `*out = a·b`.
    fn mul_to(out: &mut Self, a: &Self, b: &Self);
    /// `*a = a·b`.
    fn mul_assign(a: &mut Self, b: &Self);
    /// `*out = a²`.
    fn sqr_to(out: &mut Self, a: &Self);
    /// `a - b`.
    fn sub(a: &Self, b: &Self) -> Self;
    /// Whether the value is 0 mod p.
    fn is_zero(&self) -> bool;
    /// Whether the encoding is all zeros (the identity is `(0, 0)`, never on the curve).
    fn is_raw_zero(&self) -> bool;
    /// The inverse (of a non-zero value).
    fn inv(&self) -> Self;
}

impl Coord for Fp {
    #[inline(always)]
    fn from_fp(a: &Fp) -> Fp {
        *a
    }
    #[inline(always)]
    fn to_fp(&self) -> Fp {
        *self
    }
    #[inline(always)]
    fn one() -> Fp {
        fp::one()
    }
    #[inline(always)]
    fn mul_to(out: &mut Fp, a: &Fp, b: &Fp) {
        fp::mul_to(out, a, b)
    }
    #[inline(always)]
    fn mul_assign(a: &mut Fp, b: &Fp) {
        fp::mul_assign(a, b)
    }
    #[inline(always)]
    fn sqr_to(out: &mut Fp, a: &Fp) {
        fp::sqr_to(out, a)
    }
    #[inline(always)]
    fn sub(a: &Fp, b: &Fp) -> Fp {
        fp::sub(a, b)
    }
    #[inline(always)]
    fn is_zero(&self) -> bool {
        fp::is_zero(self)
    }
    #[inline(always)]
    fn is_raw_zero(&self) -> bool {
        fp::is_zero(self)
    }
    #[inline(always)]
    fn inv(&self) -> Fp {
        fp::inv(self)
    }
}

impl Coord for fp::wide30::F30 {
    #[inline(always)]
    fn from_fp(a: &Fp) -> Self {
        Self::from_fp(a)
    }
    #[inline(always)]
    fn to_fp(&self) -> Fp {
        Self::to_fp(*self)
    }
    #[inline(always)]
    fn one() -> Self {
        Self::from_fp(&fp::one())
    }
    #[inline(always)]
    fn mul_to(out: &mut Self, a: &Self, b: &Self) {
        *out = Self::mul(a, b);
    }
    #[inline(always)]
    fn mul_assign(a: &mut Self, b: &Self) {
        *a = Self::mul(a, b);
    }
    #[inline(always)]
    fn sqr_to(out: &mut Self, a: &Self) {
        // A dedicated square (cross products once, doubled) measured slower in
        // Chromium: 95.8 ms against 92.1 ms per commitment.
        *out = Self::mul(a, a);
    }
    #[inline(always)]
    fn sub(a: &Self, b: &Self) -> Self {
        Self::sub(a, b)
    }
    #[inline(always)]
    fn is_zero(&self) -> bool {
        Self::is_zero(self)
    }
    #[inline(always)]
    fn is_raw_zero(&self) -> bool {
        Self::is_raw_zero(self)
    }
    #[inline(always)]
    fn inv(&self) -> Self {
        Self::from_fp(&fp::inv(&self.to_fp()))
    }
}

/// An affine point in coordinates `F`; the identity is `(0, 0)`.
#[derive(Clone, Copy, Default)]
struct Aff<F> {
    x: F,
    y: F,
}

impl<F: Coord> Aff<F> {
    #[inline(always)]
    fn from_g1(p: &G1Affine) -> Self {
        let (x, y) = p.xy();
        Aff {
            x: F::from_fp(x),
            y: F::from_fp(y),
        }
    }
    #[inline(always)]
    fn to_g1(self) -> G1Affine {
        G1Affine::from_xy(self.x.to_fp(), self.y.to_fp())
    }
    #[inline(always)]
    fn is_identity(&self) -> bool {
        self.x.is_raw_zero() && self.y.is_raw_zero()
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Aff {
            x: self.x,
            y: F::sub(&F::default(), &self.y),
        }
    }
    /// `a + b` through projective coordinates: doublings and cancellations, rare.
    fn add_slow(self, b: Self) -> Self {
        Aff::from_g1(
            &self
                .to_g1()
                .to_projective()
                .add_affine(&b.to_g1())
                .to_affine(),
        )
    }
}

/// Reduces each bucket segment to a single point with rounds of batch-affine additions.
/// `seg` has `buckets + 1` offsets into `pts`. Returns one sum per bucket (the identity
/// for an empty bucket).
fn reduce_buckets<F: Coord>(mut pts: Vec<Aff<F>>, mut seg: Vec<u32>) -> Vec<Aff<F>> {
    let buckets = seg.len() - 1;
    let mut scratch = Scratch {
        next: Vec::with_capacity(pts.len() / 2 + buckets),
        seg: vec![0u32; buckets + 1],
        prefix: Vec::with_capacity(pts.len() / 2),
        dens: Vec::with_capacity(pts.len() / 2),
        pairs: Vec::with_capacity(pts.len() / 2),
    };
    loop {
        let longest = (0..buckets).map(|b| seg[b + 1] - seg[b]).max().unwrap_or(0);
        if longest <= 1 {
            break;
        }
        reduce_round(&pts, &seg, &mut scratch);
        core::mem::swap(&mut pts, &mut scratch.next);
        core::mem::swap(&mut seg, &mut scratch.seg);
    }
    (0..buckets)
        .map(|b| {
            if seg[b + 1] > seg[b] {
                pts[seg[b] as usize]
            } else {
                Aff::default()
            }
        })
        .collect()
}

/// The sign bit of a bucket entry (the rest is the table index).
const SIGN: u32 = 1 << 31;

/// How many points ahead the gather prefetches table entries.
const AHEAD: usize = 16;

/// Asks the cache for the lines holding `p` (a hint; nothing on other targets).
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let base = (p as *const T).cast::<i8>();
        let size = core::mem::size_of::<T>();
        let mut off = 0;
        while off < size {
            // SAFETY: a prefetch is a hint; it never faults, and the addresses lie within `p`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(off)) };
            off += 64;
        }
        // SAFETY: as above; the last byte of `p`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(size - 1)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Buffers one reduction round writes, kept across rounds.
struct Scratch<F> {
    /// The round's output points.
    next: Vec<Aff<F>>,
    /// Bucket offsets into `next`.
    seg: Vec<u32>,
    /// Prefix products of the denominators.
    prefix: Vec<F>,
    /// The denominators `x_b - x_a`.
    dens: Vec<F>,
    /// (input a, input b, output slot) of each batched addition.
    pairs: Vec<(u32, u32, u32)>,
}

/// `(x3, y3) = (xa, ya) + (xb, yb)` given `inv_d = 1 / (xb - xa)`: 2 products, 1 square.
#[inline(always)]
fn add_with_inverse<F: Coord>(
    pa: &Aff<F>,
    pb: &Aff<F>,
    inv_d: &F,
    lambda: &mut F,
    t: &mut F,
) -> Aff<F> {
    F::mul_to(lambda, &F::sub(&pb.y, &pa.y), inv_d);
    F::sqr_to(t, lambda);
    let x = F::sub(&F::sub(t, &pa.x), &pb.x);
    F::mul_to(t, lambda, &F::sub(&pa.x, &x));
    let y = F::sub(t, &pa.y);
    Aff { x, y }
}

/// One round: adds each bucket's points pairwise (an odd one out is carried over), all
/// additions sharing one inversion.
fn reduce_round<F: Coord>(pts: &[Aff<F>], seg: &[u32], s: &mut Scratch<F>) {
    let buckets = seg.len() - 1;
    s.next.clear();
    s.prefix.clear();
    s.dens.clear();
    s.pairs.clear();
    // Pass 1: pair up, record denominators and prefix products: prefix[j] is the
    // product of dens[..j] (products land in place: see `fp::mul_to`).
    s.prefix.push(F::one());
    for b in 0..buckets {
        s.seg[b] = s.next.len() as u32;
        let (lo, hi) = (seg[b] as usize, seg[b + 1] as usize);
        let mut k = lo;
        while k + 1 < hi {
            let (pa, pb) = (&pts[k], &pts[k + 1]);
            let slot = s.next.len() as u32;
            if pa.is_identity() {
                s.next.push(*pb);
            } else if pb.is_identity() {
                s.next.push(*pa);
            } else {
                let d = F::sub(&pb.x, &pa.x);
                if d.is_zero() {
                    // Doubling or cancellation: rare, one by one.
                    s.next.push(pa.add_slow(*pb));
                } else {
                    s.next.push(Aff::default());
                    let j = s.prefix.len();
                    s.prefix.push(F::default());
                    let (done, new) = s.prefix.split_at_mut(j);
                    F::mul_to(&mut new[0], &done[j - 1], &d);
                    s.dens.push(d);
                    s.pairs.push((k as u32, k as u32 + 1, slot));
                }
            }
            k += 2;
        }
        if k < hi {
            s.next.push(pts[k]);
        }
    }
    s.seg[buckets] = s.next.len() as u32;
    // Pass 2: one inversion, then walk back.
    let mut inv = s.prefix[s.pairs.len()].inv();
    let (mut inv_d, mut lambda, mut t) = (F::default(), F::default(), F::default());
    for (j, &(a, b, slot)) in s.pairs.iter().enumerate().rev() {
        F::mul_to(&mut inv_d, &inv, &s.prefix[j]);
        F::mul_assign(&mut inv, &s.dens[j]);
        let (pa, pb) = (&pts[a as usize], &pts[b as usize]);
        s.next[slot as usize] = add_with_inverse(pa, pb, &inv_d, &mut lambda, &mut t);
    }
}

/// `a[i] += b[i]` for every i, affine, sharing one inversion. Identities, doublings and
/// cancellations are handled one by one.
fn batch_add_assign<F: Coord>(a: &mut [Aff<F>], b: &[Aff<F>], prefix: &mut Vec<F>) {
    prefix.clear();
    let mut acc = F::one();
    let mut special = Vec::new();
    for (i, (p, q)) in a.iter_mut().zip(b).enumerate() {
        // Identities are copies, not additions (empty buckets are common: zero blobs).
        if q.is_identity() {
            prefix.push(F::default());
            special.push((i, false));
            continue;
        }
        if p.is_identity() {
            *p = *q;
            prefix.push(F::default());
            special.push((i, false));
            continue;
        }
        let d = F::sub(&q.x, &p.x);
        if d.is_zero() {
            special.push((i, true));
            prefix.push(F::default());
        } else {
            prefix.push(acc);
            F::mul_assign(&mut acc, &d);
        }
    }
    let mut inv = acc.inv();
    let (mut inv_d, mut lambda, mut t) = (F::default(), F::default(), F::default());
    for i in (0..a.len()).rev() {
        if let Some(&(j, add)) = special.last() {
            if j == i {
                special.pop();
                if add {
                    a[i] = a[i].add_slow(b[i]);
                }
                continue;
            }
        }
        let d = F::sub(&b[i].x, &a[i].x);
        F::mul_to(&mut inv_d, &inv, &prefix[i]);
        F::mul_assign(&mut inv, &d);
        a[i] = add_with_inverse(&a[i], &b[i], &inv_d, &mut lambda, &mut t);
    }
}

/// Buckets per lane of [`weighted_sum`]: each lane costs two inversions per step, each
/// lane one addition in the tail.
fn lane_width(n: usize) -> usize {
    match n {
        0..=64 => 4,
        65..=1024 => 16,
        _ => 32,
    }
}

/// `Σ_{t} (t + 1) · S_t` over bucket sums. The buckets are cut into lanes of width L;
/// all lanes run their running sums in lockstep, so each step is one batch-affine
/// addition over every lane (one inversion per step instead of projective additions):
///
/// ```text
///   lane j holds buckets jL .. jL+L-1;  R_j = Σ S,  T_j = Σ (t - jL + 1) S_t
///   Σ (t+1) S_t = Σ_j T_j + L · Σ_j j R_j
/// ```
///
/// `Σ_j T_j` is a batch-affine tree sum and `Σ_j j R_j` the same weighted sum one level
/// down (projective additions per lane cost ~4 µs each in Wasm).
fn weighted_sum<F: Coord>(sums: &[Aff<F>]) -> G1 {
    if sums.is_empty() {
        return G1::identity();
    }
    let lane = lane_width(sums.len());
    let lanes = sums.len().div_ceil(lane);
    let mut running = vec![Aff::default(); lanes];
    let mut total = vec![Aff::default(); lanes];
    let mut step = vec![Aff::default(); lanes];
    let mut prefix = Vec::with_capacity(lanes);
    for k in (0..lane).rev() {
        for (j, s) in step.iter_mut().enumerate() {
            *s = sums.get(j * lane + k).copied().unwrap_or_default();
        }
        batch_add_assign(&mut running, &step, &mut prefix);
        batch_add_assign(&mut total, &running, &mut prefix);
    }
    let totals = reduce_buckets(total, vec![0, lanes as u32])[0].to_g1();
    // Σ_j j R_j = Σ_t (t + 1) R_{t+1}; times L (a power of two) by doublings.
    let mut scaled = weighted_sum(&running[1..]);
    for _ in 0..lane.trailing_zeros() {
        scaled = scaled.double();
    }
    scaled.add_affine(&totals)
}

/// The oracle: `Σ s_i · P_i` by one double-and-add scalar multiplication per point.
pub fn msm_naive(points: &[G1Affine], scalars: &[Fr]) -> G1 {
    points
        .iter()
        .zip(scalars)
        .fold(G1::identity(), |acc, (p, s)| acc + p.to_projective().mul(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::fp::wide30::F30;
    use proptest::prelude::*;

    fn points(n: usize, seed: u64) -> Vec<G1Affine> {
        (0..n)
            .map(|i| {
                G1::generator()
                    .mul(&Fr::from_u64(seed.wrapping_mul(1_000_003) + i as u64 + 1))
                    .to_affine()
            })
            .collect()
    }

    fn scalar(bytes: [u8; 32]) -> Fr {
        Fr::from_bytes_be_reduced(&bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn fixed_base_matches_naive(seed in any::<u64>(), n in 1usize..40, c in 2u32..14,
                                    raw in proptest::collection::vec(any::<[u8; 32]>(), 40)) {
            let pts = points(n, seed);
            let sc: Vec<Fr> = raw.into_iter().take(n).map(scalar).collect();
            let m = FixedBaseMsm::new(&pts, c);
            let expect = msm_naive(&pts, &sc);
            prop_assert_eq!(m.msm(&sc), expect);
            // Both coordinate types, whichever the target uses.
            prop_assert_eq!(m.msm_windows_in::<Fp>(&sc, 0..m.windows), expect);
            prop_assert_eq!(m.msm_windows_in::<F30>(&sc, 0..m.windows), expect);
            prop_assert_eq!(m.msm_parallel(&sc), expect);
            prop_assert_eq!(crate::curve::msm_pippenger(&pts, &sc), expect);
        }
    }

    #[test]
    fn edge_scalars_and_colliding_points() {
        // Equal and opposite bases exercise the doubling and cancellation paths.
        let g = G1::generator().to_affine();
        let pts = vec![g, g, neg(&g), g, g];
        let minus_one = -Fr::one();
        for sc in [
            vec![Fr::one(); 5],
            vec![minus_one; 5],
            vec![Fr::ZERO; 5],
            vec![Fr::one(), Fr::one(), Fr::one(), minus_one, Fr::from_u64(7)],
        ] {
            for c in [2, 3, 12] {
                let m = FixedBaseMsm::new(&pts, c);
                let want = msm_naive(&pts, &sc);
                assert_eq!(m.msm(&sc), want, "c = {c}");
                assert_eq!(m.msm_windows_in::<F30>(&sc, 0..m.windows), want, "c = {c}");
            }
        }
    }

    #[test]
    fn weighted_sum_matches_running_sum() {
        let pts = points(70, 11);
        let g = G1::generator().to_affine();
        // Every lane width, and the recursion into the lanes' weighted sum.
        for n in [1usize, 4, 5, 31, 32, 33, 64, 65, 70, 1024, 1025, 1100] {
            let mut sums: Vec<Option<G1Affine>> = (0..n).map(|i| Some(pts[i % 70])).collect();
            let weighted = |sums: &[Option<G1Affine>]| {
                let blst: Vec<Aff<Fp>> = sums
                    .iter()
                    .map(|s| s.as_ref().map(Aff::from_g1).unwrap_or_default())
                    .collect();
                let limbs: Vec<Aff<F30>> = sums
                    .iter()
                    .map(|s| s.as_ref().map(Aff::from_g1).unwrap_or_default())
                    .collect();
                let (a, b) = (weighted_sum(&blst), weighted_sum(&limbs));
                assert_eq!(a, b, "the two coordinate types agree");
                a
            };
            sums[0] = None;
            if n > 5 {
                sums[3] = Some(g);
                sums[4] = Some(g); // equal points across lanes' steps
                sums[5] = Some(neg(&g));
            }
            let mut want = G1::identity();
            for (t, s) in sums.iter().enumerate() {
                if let Some(s) = s {
                    want += s.to_projective().mul(&Fr::from_u64(t as u64 + 1));
                }
            }
            assert_eq!(weighted(&sums), want, "n = {n}");
        }
    }

    #[test]
    fn cache_roundtrip_and_rejections() {
        let pts = points(9, 3);
        let m = FixedBaseMsm::new(&pts, 5);
        let bytes = m.to_cache_bytes();
        let back = FixedBaseMsm::from_cache_bytes(&bytes, &fingerprint(&pts)).unwrap();
        let sc: Vec<Fr> = (0..9).map(|i| Fr::from_u64(i * 77 + 5)).collect();
        assert_eq!(back.msm(&sc), m.msm(&sc));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            FixedBaseMsm::from_cache_bytes(&bad, &fingerprint(&pts)).unwrap_err(),
            CacheError::Corrupt
        );
        assert_eq!(
            FixedBaseMsm::from_cache_bytes(&bytes, &[0; 32]).unwrap_err(),
            CacheError::WrongSetup
        );
        assert_eq!(
            FixedBaseMsm::from_cache_bytes(&bytes[..10], &[0; 32]).unwrap_err(),
            CacheError::Malformed
        );
    }
}
