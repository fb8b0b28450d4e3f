//! KZG commitments exactly as EIP-4844 (docs/spec.md §3.1), with the Ethereum setup.
//!
//! A blob is 4096 field elements in **evaluation form**: element `j` is the polynomial's
//! value at `ω^{bitrev(j)}`. The setup file lists the Lagrange points in natural order; they
//! are permuted on load into the same bit-reversed order, so a commitment is
//! `Σ_j blob[j] · L_brp[j]`, a fixed-base MSM
//! ([`crate::msm`]). Every function here is byte-compatible with c-kzg-4844.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::constants::{
    BYTES_PER_BLOB, BYTES_PER_COMMITMENT, BYTES_PER_FIELD_ELEMENT, BYTES_PER_G1, BYTES_PER_G2,
    BYTES_PER_PROOF, FIELD_ELEMENTS_PER_BLOB, LOG2_FIELD_ELEMENTS_PER_BLOB, NUM_G2_POINTS,
};
use crate::curve::{pairings_equal, Fr, G1Affine, G2Affine, PointError, G1};
use crate::msm::{CacheError, FixedBaseMsm, DEFAULT_WINDOW_BITS};

/// The c-kzg-4844 `trusted_setup.txt` (SHA-256 `d39b9f2d…0f26b7`), embedded.
pub const ETHEREUM_TRUSTED_SETUP: &str = include_str!("trusted_setup.txt");

/// Domain of the blob-proof Fiat–Shamir challenge (EIP-4844).
const FIAT_SHAMIR_PROTOCOL_DOMAIN: &[u8; 16] = b"FSBLOBVERIFY_V1_";
/// Domain of the batch-verification random challenge (EIP-4844).
const RANDOM_CHALLENGE_KZG_BATCH_DOMAIN: &[u8; 16] = b"RCKZGBATCH___V1_";
/// Generator of Fr's multiplicative group used for the roots of unity (EIP-4844).
const PRIMITIVE_ROOT_OF_UNITY: u64 = 7;

/// A commitment as 48 bytes; not yet known to be a point.
pub type CommitmentBytes = [u8; BYTES_PER_COMMITMENT];
/// A proof as 48 bytes; not yet known to be a point.
pub type ProofBytes = [u8; BYTES_PER_PROOF];
/// A field element as 32 big-endian bytes; not yet known to be canonical.
pub type ScalarBytes = [u8; BYTES_PER_FIELD_ELEMENT];

/// Errors of the KZG functions. Each one means "reject the input".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KzgError {
    /// A blob had the wrong length.
    #[error("blob has {got} bytes, expected {expected}")]
    BlobLength {
        /// Bytes given.
        got: usize,
        /// Bytes required.
        expected: usize,
    },
    /// A blob element was not a canonical field element.
    #[error("blob element {index} is not canonical")]
    NonCanonicalElement {
        /// Index of the element.
        index: usize,
    },
    /// A scalar argument (z or y) was not canonical.
    #[error("{what} is not a canonical field element")]
    NonCanonicalScalar {
        /// Which argument.
        what: &'static str,
    },
    /// A point argument failed to decode.
    #[error("{what}: {source}")]
    BadPoint {
        /// Which argument.
        what: &'static str,
        /// Why.
        source: PointError,
    },
    /// Batch arguments of different lengths.
    #[error("batch lengths differ: {blobs} blobs, {commitments} commitments, {proofs} proofs")]
    BatchLength {
        /// Blobs given.
        blobs: usize,
        /// Commitments given.
        commitments: usize,
        /// Proofs given.
        proofs: usize,
    },
}

/// Errors while loading a trusted setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The text is not in c-kzg's `trusted_setup.txt` format.
    #[error("malformed trusted setup: {0}")]
    Malformed(&'static str),
    /// The setup has another size than EIP-4844's.
    #[error("setup has {g1} G1 and {g2} G2 points, expected {FIELD_ELEMENTS_PER_BLOB} and {NUM_G2_POINTS}")]
    WrongSize {
        /// G1 points.
        g1: usize,
        /// G2 points.
        g2: usize,
    },
    /// A point failed to decode.
    #[error("setup point {index}: {source}")]
    BadPoint {
        /// Index in the file.
        index: usize,
        /// Why.
        source: PointError,
    },
    /// A precomputed-table cache was refused.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A parsed blob: 4096 canonical field elements.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Polynomial(pub Vec<Fr>);

impl Polynomial {
    /// Parses a blob, checking length and that every element is canonical.
    pub fn from_blob(blob: &[u8]) -> Result<Polynomial, KzgError> {
        if blob.len() != BYTES_PER_BLOB {
            return Err(KzgError::BlobLength {
                got: blob.len(),
                expected: BYTES_PER_BLOB,
            });
        }
        blob.chunks_exact(BYTES_PER_FIELD_ELEMENT)
            .enumerate()
            .map(|(index, c)| {
                let mut b = [0u8; BYTES_PER_FIELD_ELEMENT];
                b.copy_from_slice(c);
                Fr::from_bytes_be(&b).map_err(|_| KzgError::NonCanonicalElement { index })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Polynomial)
    }

    /// The blob encoding.
    pub fn to_blob(&self) -> Vec<u8> {
        self.0.iter().flat_map(|f| f.to_bytes_be()).collect()
    }
}

/// The setup plus everything precomputed from it.
pub struct KzgSettings {
    /// Lagrange points `[L_i(τ)]₁` in bit-reversed order (the file has natural order).
    g1_lagrange_brp: Vec<G1Affine>,
    /// `[τ]₂`.
    g2_tau: G2Affine,
    /// `ω^{bitrev(i)}`.
    roots_brp: Vec<Fr>,
    /// 1 / 4096.
    inv_width: Fr,
    /// Fingerprint of the bit-reversed G1 Lagrange points (see [`crate::msm::fingerprint`]).
    fingerprint: [u8; 32],
    /// Fixed-base tables, built on first commit or loaded from a cache.
    msm: OnceLock<FixedBaseMsm>,
}

impl core::fmt::Debug for KzgSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KzgSettings")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("tables_ready", &self.msm.get().is_some())
            .finish()
    }
}

struct ParsedSetup {
    g1: Vec<[u8; BYTES_PER_G1]>,
    g2: Vec<[u8; BYTES_PER_G2]>,
}

fn parse_setup_text(text: &str) -> Result<ParsedSetup, SetupError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut count = || -> Result<usize, SetupError> {
        lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or(SetupError::Malformed("missing point count"))
    };
    let (n1, n2) = (count()?, count()?);
    if n1 != FIELD_ELEMENTS_PER_BLOB || n2 != NUM_G2_POINTS {
        return Err(SetupError::WrongSize { g1: n1, g2: n2 });
    }
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .skip(2);
    let mut g1 = Vec::with_capacity(n1);
    for _ in 0..n1 {
        let mut b = [0u8; BYTES_PER_G1];
        let line = lines
            .next()
            .ok_or(SetupError::Malformed("too few G1 points"))?;
        hex::decode_to_slice(line, &mut b).map_err(|_| SetupError::Malformed("bad G1 hex"))?;
        g1.push(b);
    }
    let mut g2 = Vec::with_capacity(n2);
    for _ in 0..n2 {
        let mut b = [0u8; BYTES_PER_G2];
        let line = lines
            .next()
            .ok_or(SetupError::Malformed("too few G2 points"))?;
        hex::decode_to_slice(line, &mut b).map_err(|_| SetupError::Malformed("bad G2 hex"))?;
        g2.push(b);
    }
    Ok(ParsedSetup { g1, g2 })
}

/// [`crate::msm::fingerprint`] of the bases the tables are built over (the Lagrange
/// points in bit-reversed order), computed from the file's compressed bytes without
/// decompressing anything.
fn setup_fingerprint(g1_natural: &[[u8; BYTES_PER_G1]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"nilstore/msm-bases/v1");
    for i in 0..g1_natural.len() {
        h.update(&g1_natural[bitrev(i, LOG2_FIELD_ELEMENTS_PER_BLOB)]);
    }
    *h.finalize().as_bytes()
}

fn bitrev(i: usize, bits: usize) -> usize {
    i.reverse_bits() >> (usize::BITS as usize - bits)
}

fn roots_of_unity_brp() -> Vec<Fr> {
    // (r - 1) / 4096 as little-endian limbs.
    let r_minus_1: [u64; 4] = [
        0xffff_ffff_0000_0000,
        0x53bd_a402_fffe_5bfe,
        0x3339_d808_09a1_d805,
        0x73ed_a753_299d_7d48,
    ];
    let s = LOG2_FIELD_ELEMENTS_PER_BLOB as u32;
    let mut exp = [0u64; 4];
    for k in 0..4 {
        exp[k] = r_minus_1[k] >> s;
        if k + 1 < 4 {
            exp[k] |= r_minus_1[k + 1] << (64 - s);
        }
    }
    let omega = Fr::from_u64(PRIMITIVE_ROOT_OF_UNITY).pow(&exp);
    let mut natural = Vec::with_capacity(FIELD_ELEMENTS_PER_BLOB);
    let mut cur = Fr::one();
    for _ in 0..FIELD_ELEMENTS_PER_BLOB {
        natural.push(cur);
        cur *= omega;
    }
    (0..FIELD_ELEMENTS_PER_BLOB)
        .map(|i| natural[bitrev(i, LOG2_FIELD_ELEMENTS_PER_BLOB)])
        .collect()
}

fn parse_scalar(b: &ScalarBytes, what: &'static str) -> Result<Fr, KzgError> {
    Fr::from_bytes_be(b).map_err(|_| KzgError::NonCanonicalScalar { what })
}

fn parse_g1(b: &[u8; BYTES_PER_G1], what: &'static str) -> Result<G1, KzgError> {
    G1Affine::from_compressed(b)
        .map(|p| p.to_projective())
        .map_err(|source| KzgError::BadPoint { what, source })
}

impl KzgSettings {
    /// Loads a setup in c-kzg's text format, validating every point (curve and subgroup).
    pub fn from_text(text: &str) -> Result<KzgSettings, SetupError> {
        Self::load(text, true)
    }

    /// The Ethereum KZG ceremony setup, embedded in the binary. Its points are trusted
    /// data of this build (pinned by SHA-256 in the tests), so only curve membership is
    /// checked on load; built once per process.
    pub fn ethereum() -> &'static KzgSettings {
        static SETTINGS: OnceLock<KzgSettings> = OnceLock::new();
        SETTINGS.get_or_init(|| {
            Self::load(ETHEREUM_TRUSTED_SETUP, false).expect("the embedded setup is well formed")
        })
    }

    fn load(text: &str, check_subgroup: bool) -> Result<KzgSettings, SetupError> {
        let parsed = parse_setup_text(text)?;
        let decode = |(index, b): (usize, &[u8; BYTES_PER_G1])| {
            if check_subgroup {
                G1Affine::from_compressed(b)
            } else {
                G1Affine::from_compressed_trusted(b)
            }
            .map_err(|source| SetupError::BadPoint { index, source })
        };
        let indexed: Vec<(usize, &[u8; BYTES_PER_G1])> = parsed.g1.iter().enumerate().collect();
        let natural = crate::par::map(&indexed, |&x| decode(x))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        // The file lists the Lagrange points in natural order; blobs are bit-reversed.
        let g1_lagrange_brp = (0..FIELD_ELEMENTS_PER_BLOB)
            .map(|i| natural[bitrev(i, LOG2_FIELD_ELEMENTS_PER_BLOB)])
            .collect();
        Self::assemble(&parsed, g1_lagrange_brp)
    }

    fn assemble(parsed: &ParsedSetup, g1: Vec<G1Affine>) -> Result<KzgSettings, SetupError> {
        let g2_tau =
            G2Affine::from_compressed(&parsed.g2[1]).map_err(|source| SetupError::BadPoint {
                index: FIELD_ELEMENTS_PER_BLOB + 1,
                source,
            })?;
        Ok(KzgSettings {
            g1_lagrange_brp: g1,
            g2_tau,
            roots_brp: roots_of_unity_brp(),
            inv_width: Fr::from_u64(FIELD_ELEMENTS_PER_BLOB as u64).inverse(),
            fingerprint: setup_fingerprint(&parsed.g1),
            msm: OnceLock::new(),
        })
    }

    /// Loads the embedded Ethereum setup together with precomputed MSM tables from a
    /// cache made by [`Self::msm_cache_bytes`]: no point decompression and no table
    /// building, which keeps browser start-up well under a second.
    pub fn ethereum_from_cache(cache: &[u8]) -> Result<KzgSettings, SetupError> {
        let parsed = parse_setup_text(ETHEREUM_TRUSTED_SETUP)?;
        let fingerprint = setup_fingerprint(&parsed.g1);
        let msm = FixedBaseMsm::from_cache_bytes(cache, &fingerprint)?;
        if msm.len() != FIELD_ELEMENTS_PER_BLOB {
            return Err(SetupError::Cache(CacheError::Malformed));
        }
        let g1 = msm.bases_window0().to_vec();
        let s = Self::assemble(&parsed, g1)?;
        let _ = s.msm.set(msm);
        Ok(s)
    }

    /// The precomputed tables as cache bytes (builds them if needed).
    pub fn msm_cache_bytes(&self) -> Vec<u8> {
        self.tables().to_cache_bytes()
    }

    /// The fixed-base tables, built on first use.
    pub fn tables(&self) -> &FixedBaseMsm {
        self.msm
            .get_or_init(|| FixedBaseMsm::new(&self.g1_lagrange_brp, DEFAULT_WINDOW_BITS))
    }

    /// The Lagrange points in bit-reversed order.
    pub fn g1_lagrange_brp(&self) -> &[G1Affine] {
        &self.g1_lagrange_brp
    }

    /// The evaluation domain in bit-reversed order: element `j` is `ω^{bitrev(j)}`.
    pub fn roots_brp(&self) -> &[Fr] {
        &self.roots_brp
    }

    /// Commits to a polynomial in evaluation form (fixed-base MSM, this thread).
    pub fn commit_poly(&self, p: &Polynomial) -> G1 {
        self.tables().msm(&p.0)
    }

    /// Commits with blst's variable-base Pippenger: the reference path.
    pub fn commit_poly_pippenger(&self, p: &Polynomial) -> G1 {
        crate::curve::msm_pippenger(&self.g1_lagrange_brp, &p.0)
    }

    /// `blob_to_kzg_commitment` (EIP-4844).
    pub fn blob_to_kzg_commitment(&self, blob: &[u8]) -> Result<CommitmentBytes, KzgError> {
        Ok(self
            .commit_poly(&Polynomial::from_blob(blob)?)
            .to_compressed())
    }

    /// Commits many blobs, spreading them over threads where available.
    pub fn blobs_to_kzg_commitments(
        &self,
        blobs: &[&[u8]],
    ) -> Result<Vec<CommitmentBytes>, KzgError> {
        let tables = self.tables();
        crate::par::map(blobs, |b| {
            Polynomial::from_blob(b).map(|p| tables.msm(&p.0).to_compressed())
        })
        .into_iter()
        .collect()
    }

    /// Evaluates a polynomial in evaluation form at `z` (barycentric formula).
    pub fn evaluate(&self, p: &Polynomial, z: &Fr) -> Fr {
        if let Some(i) = self.roots_brp.iter().position(|w| w == z) {
            return p.0[i];
        }
        let mut den: Vec<Fr> = self.roots_brp.iter().map(|w| *z - *w).collect();
        Fr::batch_inverse(&mut den);
        let mut acc = Fr::ZERO;
        for ((f, w), d) in p.0.iter().zip(&self.roots_brp).zip(&den) {
            acc += *f * *w * *d;
        }
        let width = [FIELD_ELEMENTS_PER_BLOB as u64];
        acc * (z.pow(&width) - Fr::one()) * self.inv_width
    }

    /// `compute_kzg_proof(blob, z) -> (proof, y)` (EIP-4844).
    pub fn compute_kzg_proof(
        &self,
        blob: &[u8],
        z: &ScalarBytes,
    ) -> Result<(ProofBytes, ScalarBytes), KzgError> {
        let p = Polynomial::from_blob(blob)?;
        let z = parse_scalar(z, "z")?;
        let (proof, y) = self.proof_at(&p, &z);
        Ok((proof.to_compressed(), y.to_bytes_be()))
    }

    /// The opening proof of `p` at `z` and the value `y = p(z)`.
    pub fn proof_at(&self, p: &Polynomial, z: &Fr) -> (G1, Fr) {
        let y = self.evaluate(p, z);
        let mut den: Vec<Fr> = self.roots_brp.iter().map(|w| *w - *z).collect();
        Fr::batch_inverse(&mut den);
        let mut q: Vec<Fr> = Vec::with_capacity(FIELD_ELEMENTS_PER_BLOB);
        let mut in_domain = None;
        for (i, (f, d)) in p.0.iter().zip(&den).enumerate() {
            if d.is_zero() {
                in_domain = Some(i);
                q.push(Fr::ZERO);
            } else {
                q.push((*f - y) * *d);
            }
        }
        if let Some(m) = in_domain {
            // compute_quotient_eval_within_domain: q_m = Σ_{i≠m} (f_i - y)·ω_i / (z (z - ω_i)).
            let mut den: Vec<Fr> = self
                .roots_brp
                .iter()
                .map(|w| if w == z { Fr::ZERO } else { *z * (*z - *w) })
                .collect();
            Fr::batch_inverse(&mut den);
            let mut acc = Fr::ZERO;
            for (i, ((f, w), d)) in p.0.iter().zip(&self.roots_brp).zip(&den).enumerate() {
                if i != m {
                    acc += (*f - y) * *w * *d;
                }
            }
            q[m] = acc;
        }
        (self.tables().msm(&q), y)
    }

    /// `compute_blob_kzg_proof(blob, commitment)` (EIP-4844).
    pub fn compute_blob_kzg_proof(
        &self,
        blob: &[u8],
        commitment: &CommitmentBytes,
    ) -> Result<ProofBytes, KzgError> {
        let p = Polynomial::from_blob(blob)?;
        parse_g1(commitment, "commitment")?;
        let z = compute_challenge(blob, commitment);
        Ok(self.proof_at(&p, &z).0.to_compressed())
    }

    /// `verify_kzg_proof(commitment, z, y, proof)` (EIP-4844).
    pub fn verify_kzg_proof(
        &self,
        commitment: &CommitmentBytes,
        z: &ScalarBytes,
        y: &ScalarBytes,
        proof: &ProofBytes,
    ) -> Result<bool, KzgError> {
        let c = parse_g1(commitment, "commitment")?;
        let z = parse_scalar(z, "z")?;
        let y = parse_scalar(y, "y")?;
        let pi = parse_g1(proof, "proof")?;
        Ok(self.check_opening(&c, &z, &y, &pi))
    }

    /// The pairing check `e(C - [y]₁, [1]₂) = e(π, [τ - z]₂)` on decoded values.
    pub fn check_opening(&self, c: &G1, z: &Fr, y: &Fr, pi: &G1) -> bool {
        let c_minus_y = *c - G1::generator().mul(y);
        let tau_minus_z = self.g2_tau.sub_generator_times(z);
        pairings_equal(&c_minus_y, &G2Affine::generator(), pi, &tau_minus_z)
    }

    /// `verify_blob_kzg_proof(blob, commitment, proof)` (EIP-4844).
    pub fn verify_blob_kzg_proof(
        &self,
        blob: &[u8],
        commitment: &CommitmentBytes,
        proof: &ProofBytes,
    ) -> Result<bool, KzgError> {
        let p = Polynomial::from_blob(blob)?;
        let c = parse_g1(commitment, "commitment")?;
        let pi = parse_g1(proof, "proof")?;
        let z = compute_challenge(blob, commitment);
        let y = self.evaluate(&p, &z);
        Ok(self.check_opening(&c, &z, &y, &pi))
    }

    /// `verify_blob_kzg_proof_batch(blobs, commitments, proofs)` (EIP-4844): one random
    /// linear combination, two pairings.
    pub fn verify_blob_kzg_proof_batch(
        &self,
        blobs: &[&[u8]],
        commitments: &[CommitmentBytes],
        proofs: &[ProofBytes],
    ) -> Result<bool, KzgError> {
        if blobs.len() != commitments.len() || blobs.len() != proofs.len() {
            return Err(KzgError::BatchLength {
                blobs: blobs.len(),
                commitments: commitments.len(),
                proofs: proofs.len(),
            });
        }
        let mut openings = Vec::with_capacity(blobs.len());
        for ((blob, cb), pb) in blobs.iter().zip(commitments).zip(proofs) {
            let p = Polynomial::from_blob(blob)?;
            let c = parse_g1(cb, "commitment")?;
            let pi = parse_g1(pb, "proof")?;
            let z = compute_challenge(blob, cb);
            let y = self.evaluate(&p, &z);
            openings.push(Opening { c, z, y, pi });
        }
        Ok(self.check_openings_batch(&openings))
    }

    /// Verifies many openings with one random linear combination (EIP-4844's
    /// `verify_kzg_proof_batch`; the randomness is a hash of every input).
    pub fn check_openings_batch(&self, openings: &[Opening]) -> bool {
        match openings {
            [] => return true,
            [o] => return self.check_opening(&o.c, &o.z, &o.y, &o.pi),
            _ => {}
        }
        let mut h = Sha256::new();
        h.update(RANDOM_CHALLENGE_KZG_BATCH_DOMAIN);
        h.update((FIELD_ELEMENTS_PER_BLOB as u64).to_be_bytes());
        h.update((openings.len() as u64).to_be_bytes());
        for o in openings {
            h.update(o.c.to_compressed());
            h.update(o.z.to_bytes_be());
            h.update(o.y.to_bytes_be());
            h.update(o.pi.to_compressed());
        }
        let r = Fr::from_bytes_be_reduced(&h.finalize());
        let mut powers = Vec::with_capacity(openings.len());
        let mut cur = Fr::one();
        for _ in openings {
            powers.push(cur);
            cur *= r;
        }
        let proofs: Vec<G1> = openings.iter().map(|o| o.pi).collect();
        let proofs = G1::batch_to_affine(&proofs);
        let c_minus_y: Vec<G1> = openings
            .iter()
            .map(|o| o.c - G1::generator().mul(&o.y))
            .collect();
        let c_minus_y = G1::batch_to_affine(&c_minus_y);
        let rz: Vec<Fr> = openings
            .iter()
            .zip(&powers)
            .map(|(o, p)| o.z * *p)
            .collect();
        let proof_lincomb = crate::curve::msm_pippenger(&proofs, &powers);
        let proof_z_lincomb = crate::curve::msm_pippenger(&proofs, &rz);
        let c_lincomb = crate::curve::msm_pippenger(&c_minus_y, &powers);
        // e(Σ r^i π_i, [τ]₂) = e(Σ r^i (C_i - y_i) + Σ r^i z_i π_i, [1]₂)
        pairings_equal(
            &proof_lincomb,
            &self.g2_tau,
            &(c_lincomb + proof_z_lincomb),
            &G2Affine::generator(),
        )
    }
}

/// A decoded opening claim: `p(z) = y` for the polynomial committed in `c`, proof `pi`.
#[derive(Clone, Copy, Debug)]
pub struct Opening {
    /// The commitment.
    pub c: G1,
    /// The point.
    pub z: Fr,
    /// The claimed value.
    pub y: Fr,
    /// The proof.
    pub pi: G1,
}

/// EIP-4844's `compute_challenge(blob, commitment)`.
pub fn compute_challenge(blob: &[u8], commitment: &CommitmentBytes) -> Fr {
    let mut h = Sha256::new();
    h.update(FIAT_SHAMIR_PROTOCOL_DOMAIN);
    h.update((FIELD_ELEMENTS_PER_BLOB as u128).to_be_bytes());
    h.update(blob);
    h.update(commitment);
    Fr::from_bytes_be_reduced(&h.finalize())
}
