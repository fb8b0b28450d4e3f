//! Verification of an uploaded shard before anything is stored (SPEC §3.4, §5):
//! structure against the deal's profile, every blob's BLAKE3 against its leaf, every blob's
//! KZG commitment against its leaf — all blobs at once with a random linear combination
//! (one 4096-point commitment instead of one per blob) — and, for user MDUs, that every
//! row's parity commitments follow from its data commitments.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

use chain_light::bytes::H256;
use nilstore_net::proto::{NetError, UploadShard, BLOBS_PER_MDU, BLOB_BYTES};
use sha2::{Digest as _, Sha256};
use wasm_core::curve::{Fr, G1Affine, G1};
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::merkle::{self, MerkleTree};
use wasm_core::rs::{Code, Profile};

/// What the provider knows of the deal from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DealShape {
    /// Data slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
    /// Witness MDUs (MDUs `0..=witness_mdus` are metadata, stored whole by every slot).
    pub witness_mdus: u64,
}

/// A verified shard, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// `mdu_root_fr` of the leaves.
    pub mdu_root: H256,
    /// The blobs concatenated in row order.
    pub data: Vec<u8>,
}

/// The leaf indices (in the MDU's leaf list) of this slot's blobs, and whether the MDU is
/// metadata.
fn layout(up: &UploadShard, deal: &DealShape) -> Result<(Vec<usize>, bool), NetError> {
    let profile = Profile::new(deal.k as usize, deal.m as usize)
        .map_err(|e| NetError::BadRequest(format!("deal profile: {e}")))?;
    let metadata = u64::from(up.mdu) <= deal.witness_mdus;
    let (leaves, mine): (usize, Vec<usize>) = if metadata {
        (BLOBS_PER_MDU, (0..BLOBS_PER_MDU).collect())
    } else {
        let (rows, slots) = (profile.rows(), profile.slots());
        if up.slot as usize >= slots {
            return Err(NetError::BadRequest(format!(
                "slot {} outside the deal's {slots}",
                up.slot
            )));
        }
        let s = up.slot as usize;
        (slots * rows, (0..rows).map(|r| s * rows + r).collect())
    };
    if up.leaves.len() != leaves {
        return Err(NetError::BadRequest(format!(
            "{} leaves, the MDU has {leaves}",
            up.leaves.len()
        )));
    }
    if up.blobs.len() != mine.len() {
        return Err(NetError::BadRequest(format!(
            "{} blobs, the slot's shard has {}",
            up.blobs.len(),
            mine.len()
        )));
    }
    if let Some((i, b)) = up
        .blobs
        .iter()
        .enumerate()
        .find(|(_, b)| b.0.len() != BLOB_BYTES)
    {
        return Err(NetError::BadRequest(format!(
            "blob {i} has {} bytes, not {BLOB_BYTES}",
            b.0.len()
        )));
    }
    Ok((mine, metadata))
}

/// Verifies an upload against the deal's shape. `salt` is a provider secret mixed into the
/// combination's coefficients, so an uploader cannot search for content that cancels out.
pub fn verify_upload(
    settings: &KzgSettings,
    up: &UploadShard,
    deal: &DealShape,
    salt: &[u8; 32],
) -> Result<Verified, NetError> {
    let p = prepare_upload(up, deal, salt)?;
    check_batch(settings, std::slice::from_ref(&p))?;
    Ok(p.verified)
}

/// A shard whose structure, hashes and parity leaves are checked, with its share of the
/// commitment check (`Σ rᵢ·blobᵢ` and the pairs `(Cᵢ, rᵢ)`) still to do.
#[derive(Debug)]
pub struct Prepared {
    combined: Vec<Fr>,
    points: Vec<G1Affine>,
    coeffs: Vec<Fr>,
    verified: Verified,
}

/// Everything of [`verify_upload`] but the commitment check, which [`check_batch`] does for
/// many shards at once.
pub fn prepare_upload(
    up: &UploadShard,
    deal: &DealShape,
    salt: &[u8; 32],
) -> Result<Prepared, NetError> {
    let (mine, metadata) = layout(up, deal)?;
    // Content hashes: cheap, and they pin the bytes the commitments are checked over.
    for (r, (b, &li)) in up.blobs.iter().zip(&mine).enumerate() {
        if blake3::hash(&b.0).as_bytes() != &up.leaves[li].blake3.0 {
            return Err(NetError::Invalid(format!(
                "blob {r}: BLAKE3 does not match leaf {li}"
            )));
        }
    }
    let core: Vec<merkle::Leaf> = up.leaves.iter().map(|&l| l.into()).collect();
    let root = MerkleTree::new(&core).root_fr();
    if !metadata {
        let code = Code::new(
            Profile::new(deal.k as usize, deal.m as usize)
                .map_err(|e| NetError::BadRequest(e.to_string()))?,
        );
        wasm_core::slab::check_user_mdu_leaves(&code, &core, &root)
            .map_err(|e| NetError::Invalid(format!("parity commitments: {e}")))?;
    }
    let (combined, points, coeffs) = combine_rlc(up, &mine, salt)?;
    let mut data = Vec::with_capacity(up.blobs.len() * BLOB_BYTES);
    for b in &up.blobs {
        data.extend_from_slice(&b.0);
    }
    Ok(Prepared {
        combined,
        points,
        coeffs,
        verified: Verified {
            mdu_root: H256(root),
            data,
        },
    })
}

/// `commit(Σ rᵢ·blobᵢ) = Σ rᵢ·Cᵢ` over every blob of every shard in `batch`: one
/// 4096-point commitment however many shards. The coefficients of each shard come from its
/// content and the provider's salt, so they are independent across shards and a wrong
/// commitment anywhere passes with probability ≈ 1/r. A failed batch says only that some
/// shard is wrong: [`GroupVerifier`] then checks the shards one by one.
pub fn check_batch(settings: &KzgSettings, batch: &[Prepared]) -> Result<(), NetError> {
    let mut combined = vec![Fr::ZERO; BLOB_BYTES / 32];
    let mut points = Vec::new();
    let mut coeffs = Vec::new();
    for p in batch {
        for (acc, x) in combined.iter_mut().zip(&p.combined) {
            *acc += *x;
        }
        points.extend_from_slice(&p.points);
        coeffs.extend_from_slice(&p.coeffs);
    }
    let lhs = settings.commit_poly(&Polynomial(combined));
    let rhs: G1 = wasm_core::curve::msm_pippenger(&points, &coeffs);
    if lhs != rhs {
        return Err(NetError::Invalid(
            "blob commitments do not match their leaves".into(),
        ));
    }
    Ok(())
}

/// This shard's share of the random linear combination: `Σ rᵢ·blobᵢ` and the pairs
/// `(Cᵢ, rᵢ)`, with `rᵢ` from the salt, the shard's content hash and `i`.
#[allow(clippy::type_complexity)]
fn combine_rlc(
    up: &UploadShard,
    mine: &[usize],
    salt: &[u8; 32],
) -> Result<(Vec<Fr>, Vec<G1Affine>, Vec<Fr>), NetError> {
    let seed = {
        let mut h = Sha256::new();
        h.update(b"nilstore/upload-rlc/v1");
        h.update(salt);
        h.update(up.content_hash().0);
        h.finalize()
    };
    let mut combined = vec![Fr::ZERO; BLOB_BYTES / 32];
    let mut points = Vec::with_capacity(mine.len());
    let mut coeffs = Vec::with_capacity(mine.len());
    for (i, (b, &li)) in up.blobs.iter().zip(mine).enumerate() {
        let p =
            Polynomial::from_blob(&b.0).map_err(|e| NetError::Invalid(format!("blob {i}: {e}")))?;
        let c = G1Affine::from_compressed(&up.leaves[li].commitment.0)
            .map_err(|e| NetError::Invalid(format!("leaf {li} commitment: {e}")))?;
        let r = Fr::from_bytes_be_reduced(
            &Sha256::new()
                .chain_update(seed)
                .chain_update((i as u64).to_be_bytes())
                .finalize(),
        );
        for (acc, x) in combined.iter_mut().zip(&p.0) {
            *acc += r * *x;
        }
        points.push(c);
        coeffs.push(r);
    }
    Ok((combined, points, coeffs))
}

/// Group verification: shards that arrive while a batch is being checked wait and are
/// checked together in the next one, with one commitment for the lot (a group commit).
/// An idle verifier checks at once unless other uploads are still being prepared (see
/// [`GroupVerifier::arriving`]); then it waits for them (at most [`LINGER`] by default), so a client's
/// concurrent uploads share one check instead of queueing one by one.
pub struct GroupVerifier {
    state: Mutex<GroupState>,
    done: Condvar,
    linger: std::time::Duration,
}

impl Default for GroupVerifier {
    fn default() -> GroupVerifier {
        GroupVerifier::with_linger(LINGER)
    }
}

/// Longest an idle verifier waits for uploads that are still being prepared.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// Most shards checked in one batch.
pub const MAX_BATCH: usize = 16;

#[derive(Default)]
struct GroupState {
    next: u64,
    busy: bool,
    arriving: usize,
    queue: Vec<(u64, Prepared)>,
    results: BTreeMap<u64, Result<Verified, NetError>>,
    batches: u64,
}

/// An upload on its way to [`GroupVerifier::verify`] (being decoded and prepared); dropping
/// it without verifying (a refused upload) stops the verifier waiting for it.
pub struct Arriving<'a> {
    group: &'a GroupVerifier,
    counted: bool,
}

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        if self.counted {
            if let Ok(mut st) = self.group.state.lock() {
                st.arriving = st.arriving.saturating_sub(1);
            }
            self.group.done.notify_all();
        }
    }
}

/// The batch being checked: when it ends, normally or by a panic in the check, the verifier
/// is free again and every ticket of the batch has a verdict (an internal error for those
/// the check did not reach), so no waiter sleeps for ever.
struct Running<'a> {
    group: &'a GroupVerifier,
    tickets: Vec<u64>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut st = self
            .group
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.busy = false;
        for t in &self.tickets {
            st.results
                .entry(*t)
                .or_insert_with(|| Err(NetError::Internal("the commitment check failed".into())));
        }
        drop(st);
        self.group.done.notify_all();
    }
}

impl GroupVerifier {
    /// A verifier that waits at most `linger` for uploads still being prepared.
    pub fn with_linger(linger: std::time::Duration) -> GroupVerifier {
        GroupVerifier {
            state: Mutex::default(),
            done: Condvar::new(),
            linger,
        }
    }

    /// Announces an upload that will reach [`GroupVerifier::verify`] once prepared.
    pub fn arriving(&self) -> Arriving<'_> {
        let counted = match self.state.lock() {
            Ok(mut st) => {
                st.arriving += 1;
                true
            }
            Err(_) => false,
        };
        Arriving {
            group: self,
            counted,
        }
    }

    /// Checks `p`'s commitments, together with whatever else is waiting.
    pub fn verify(
        &self,
        settings: &KzgSettings,
        mut arriving: Arriving<'_>,
        p: Prepared,
    ) -> Result<Verified, NetError> {
        let poisoned = |_| NetError::Internal("group verifier lock poisoned".into());
        let mut st = self.state.lock().map_err(poisoned)?;
        let ticket = st.next;
        st.next += 1;
        st.queue.push((ticket, p));
        // A guard of another verifier keeps counting there until it is dropped.
        debug_assert!(
            std::ptr::eq(arriving.group, self),
            "guard of another verifier"
        );
        if arriving.counted && std::ptr::eq(arriving.group, self) {
            arriving.counted = false;
            st.arriving = st.arriving.saturating_sub(1);
        }
        self.done.notify_all();
        let deadline = std::time::Instant::now() + self.linger;
        loop {
            if let Some(r) = st.results.remove(&ticket) {
                return r;
            }
            if st.busy {
                st = self.done.wait(st).map_err(poisoned)?;
                continue;
            }
            let now = std::time::Instant::now();
            if st.arriving > 0 && st.queue.len() < MAX_BATCH && now < deadline {
                st = self
                    .done
                    .wait_timeout(st, deadline - now)
                    .map_err(|_| NetError::Internal("group verifier lock poisoned".into()))?
                    .0;
                continue;
            }
            st.busy = true;
            st.batches += 1;
            let take = st.queue.len().min(MAX_BATCH);
            let batch: Vec<(u64, Prepared)> = st.queue.drain(..take).collect();
            let running = Running {
                group: self,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
            };
            drop(st);
            let results = Self::check_all(settings, batch);
            self.state.lock().map_err(poisoned)?.results.extend(results);
            drop(running);
            st = self.state.lock().map_err(poisoned)?;
        }
    }

    /// Batches checked so far (a batch is one commitment).
    pub fn batches(&self) -> u64 {
        self.state.lock().map(|s| s.batches).unwrap_or(0)
    }

    fn check_all(
        settings: &KzgSettings,
        batch: Vec<(u64, Prepared)>,
    ) -> Vec<(u64, Result<Verified, NetError>)> {
        let (tickets, shards): (Vec<u64>, Vec<Prepared>) = batch.into_iter().unzip();
        if shards.len() > 1 && check_batch(settings, &shards).is_ok() {
            return tickets
                .into_iter()
                .zip(shards)
                .map(|(t, p)| (t, Ok(p.verified)))
                .collect();
        }
        tickets
            .into_iter()
            .zip(shards)
            .map(|(t, p)| {
                let r = check_batch(settings, std::slice::from_ref(&p)).map(|()| p.verified);
                (t, r)
            })
            .collect()
    }
}

/// The naive twin of [`check_batch`] (test oracle): recomputes every blob's
/// commitment and compares it with its leaf.
pub fn check_commitments_naive(
    settings: &KzgSettings,
    up: &UploadShard,
    deal: &DealShape,
) -> Result<(), NetError> {
    let (mine, _) = layout(up, deal)?;
    for (i, (b, &li)) in up.blobs.iter().zip(&mine).enumerate() {
        let c = settings
            .blob_to_kzg_commitment(&b.0)
            .map_err(|e| NetError::Invalid(format!("blob {i}: {e}")))?;
        if c != up.leaves[li].commitment.0 {
            return Err(NetError::Invalid(format!("blob {i}: commitment mismatch")));
        }
    }
    Ok(())
}
