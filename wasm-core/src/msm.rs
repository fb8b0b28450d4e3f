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
//! ~11 of a mixed Jacobian addition. The final `Σ b·S_b` is the usual running sum.
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
                entries[fill[b - 1] as usize] = (row + i) as u32 | (u32::from(d < 0) << 31);
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
            let p = &table[(e & !SIGN) as usize];
            pts.push(if e & SIGN != 0 { neg(p) } else { *p });
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

fn neg(p: &G1Affine) -> G1Affine {
    let (x, y) = p.xy();
    G1Affine::from_xy(*x, fp::neg(y))
}

use fp::is_zero;

/// The sign bit of a bucket entry (the rest is the table index).
const SIGN: u32 = 1 << 31;

/// Reduces each bucket segment to a single point with rounds of batch-affine additions.
/// The first round reads its `len` points through `first` (entries into the table); `seg`
/// has `buckets + 1` offsets into them. Returns one optional sum per bucket.
fn reduce_buckets(mut pts: Vec<G1Affine>, mut seg: Vec<u32>) -> Vec<Option<G1Affine>> {
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
                let p = pts[seg[b] as usize];
                (!p.is_identity()).then_some(p)
            } else {
                None
            }
        })
        .collect()
}

/// How many points ahead a round prefetches table entries.
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
struct Scratch {
    /// The round's output points.
    next: Vec<G1Affine>,
    /// Bucket offsets into `next`.
    seg: Vec<u32>,
    /// Prefix products of the denominators.
    prefix: Vec<Fp>,
    /// The denominators `x_b - x_a`.
    dens: Vec<Fp>,
    /// (input a, input b, output slot) of each batched addition.
    pairs: Vec<(u32, u32, u32)>,
}

/// One round: adds each bucket's points pairwise (an odd one out is carried over), all
/// additions sharing one inversion.
fn reduce_round(pts: &[G1Affine], seg: &[u32], s: &mut Scratch) {
    let buckets = seg.len() - 1;
    s.next.clear();
    s.prefix.clear();
    s.dens.clear();
    s.pairs.clear();
    // Pass 1: pair up, record denominators and prefix products: prefix[j] is the
    // product of dens[..j] (products land in place: see `fp::mul_to`).
    s.prefix.push(fp::one());
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
                let d = fp::sub(pb.xy().0, pa.xy().0);
                if is_zero(&d) {
                    // Doubling or cancellation: rare, one by one.
                    s.next.push(pa.to_projective().add_affine(pb).to_affine());
                } else {
                    s.next.push(G1Affine::identity());
                    let j = s.prefix.len();
                    s.prefix.push(Fp::default());
                    let (done, new) = s.prefix.split_at_mut(j);
                    fp::mul_to(&mut new[0], &done[j - 1], &d);
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
    let mut inv = fp::inv(&s.prefix[s.pairs.len()]);
    let (mut inv_d, mut lambda, mut t) = (Fp::default(), Fp::default(), Fp::default());
    for (j, &(a, b, slot)) in s.pairs.iter().enumerate().rev() {
        fp::mul_to(&mut inv_d, &inv, &s.prefix[j]);
        fp::mul_assign(&mut inv, &s.dens[j]);
        let (pa, pb) = (&pts[a as usize], &pts[b as usize]);
        let ((xa, ya), (xb, yb)) = (pa.xy(), pb.xy());
        fp::mul_to(&mut lambda, &fp::sub(yb, ya), &inv_d);
        fp::sqr_to(&mut t, &lambda);
        let x3 = fp::sub(&fp::sub(&t, xa), xb);
        fp::mul_to(&mut t, &lambda, &fp::sub(xa, &x3));
        let y3 = fp::sub(&t, ya);
        s.next[slot as usize] = G1Affine::from_xy(x3, y3);
    }
}

/// `a[i] += b[i]` for every i, affine, sharing one inversion. Identities, doublings and
/// cancellations take the projective path one by one.
fn batch_add_assign(a: &mut [G1Affine], b: &[G1Affine], prefix: &mut Vec<Fp>) {
    prefix.clear();
    let mut acc = fp::one();
    let mut special = Vec::new();
    for (i, (p, q)) in a.iter_mut().zip(b).enumerate() {
        // Identities are copies, not additions (empty buckets are common: zero blobs).
        if q.is_identity() {
            prefix.push(Fp::default());
            special.push((i, false));
            continue;
        }
        if p.is_identity() {
            *p = *q;
            prefix.push(Fp::default());
            special.push((i, false));
            continue;
        }
        let d = fp::sub(q.xy().0, p.xy().0);
        if is_zero(&d) {
            special.push((i, true));
            prefix.push(Fp::default());
        } else {
            prefix.push(acc);
            acc = fp::mul(&acc, &d);
        }
    }
    let mut inv = fp::inv(&acc);
    for i in (0..a.len()).rev() {
        if let Some(&(j, add)) = special.last() {
            if j == i {
                special.pop();
                if add {
                    // Doubling or cancellation: rare, one by one.
                    a[i] = a[i].to_projective().add_affine(&b[i]).to_affine();
                }
                continue;
            }
        }
        let (xa, ya) = a[i].xy();
        let (xb, yb) = b[i].xy();
        let d = fp::sub(xb, xa);
        let inv_d = fp::mul(&inv, &prefix[i]);
        inv = fp::mul(&inv, &d);
        let lambda = fp::mul(&fp::sub(yb, ya), &inv_d);
        let x3 = fp::sub(&fp::sub(&fp::sqr(&lambda), xa), xb);
        let y3 = fp::sub(&fp::mul(&lambda, &fp::sub(xa, &x3)), ya);
        a[i] = G1Affine::from_xy(x3, y3);
    }
}

/// Buckets per lane of [`weighted_sum`].
const LANE: usize = 32;

/// `Σ_{t} (t + 1) · S_t` over bucket sums. The buckets are cut into lanes of [`LANE`];
/// all lanes run their running sums in lockstep, so each step is one batch-affine
/// addition over every lane (one inversion per step instead of projective additions):
///
/// ```text
///   lane j holds buckets jL .. jL+L-1;  R_j = Σ S,  T_j = Σ (t - jL + 1) S_t
///   Σ (t+1) S_t = Σ_j T_j + L · Σ_j j R_j
/// ```
fn weighted_sum(sums: &[Option<G1Affine>]) -> G1 {
    let lanes = sums.len().div_ceil(LANE);
    let mut running = vec![G1Affine::identity(); lanes];
    let mut total = vec![G1Affine::identity(); lanes];
    let mut step = vec![G1Affine::identity(); lanes];
    let mut prefix = Vec::with_capacity(lanes);
    for k in (0..LANE).rev() {
        for (j, s) in step.iter_mut().enumerate() {
            *s = sums
                .get(j * LANE + k)
                .copied()
                .flatten()
                .unwrap_or_else(G1Affine::identity);
        }
        batch_add_assign(&mut running, &step, &mut prefix);
        batch_add_assign(&mut total, &running, &mut prefix);
    }
    let mut lane_weighted = G1::identity(); // Σ_j j R_j, by a running sum over lanes
    let mut lane_running = G1::identity();
    let mut acc = G1::identity();
    for j in (0..lanes).rev() {
        acc = acc.add_affine(&total[j]);
        lane_weighted += lane_running;
        lane_running = lane_running.add_affine(&running[j]);
    }
    // lane_weighted = Σ_j j R_j; times L (a power of two) by doublings.
    let mut scaled = lane_weighted;
    for _ in 0..LANE.trailing_zeros() {
        scaled = scaled.double();
    }
    acc + scaled
}

const _: () = assert!(LANE.is_power_of_two());

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
                assert_eq!(m.msm(&sc), msm_naive(&pts, &sc), "c = {c}");
            }
        }
    }

    #[test]
    fn weighted_sum_matches_running_sum() {
        let pts = points(70, 11);
        let g = G1::generator().to_affine();
        for n in [1usize, 31, 32, 33, 64, 70] {
            let mut sums: Vec<Option<G1Affine>> = pts[..n].iter().copied().map(Some).collect();
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
            assert_eq!(weighted_sum(&sums), want, "n = {n}");
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
