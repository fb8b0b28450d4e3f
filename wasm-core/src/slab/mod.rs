//! The slab: one deal's content, MDU by MDU (docs/spec.md §4–§5).
//!
//! ```text
//!  MDU #0        file table             (metadata: every slot stores it whole)
//!  MDU #1..W     witness: per user MDU, its L leaves (commitment 48 ‖ blake3 32)
//!  MDU #W+1..    user MDUs: packed (encrypted) file bytes, striped over K+M slots
//!
//!  user MDU, K = 8, M = 4 (rows = 8):
//!    slot:   0    1  ...  7  |  8    9   10   11
//!    row 0: b0   b1  ... b7  | p0   p1   p2   p3     leaf = slot · rows + row
//!    row 1: b8   b9  ... b15 | ...
//!  a slot's shard = its blobs of rows 0..rows-1 concatenated (1 MiB at K = 8)
//!
//!  manifest blob: element j = mdu_root_fr(j); manifest_root = KZG commitment of it
//! ```
//!
//! [`SlabBuilder`] streams: it holds one user MDU at a time (tens of MiB whatever the
//! input size) and hands each finished MDU's shards to a sink.

pub mod table;

use crate::constants::{
    BLOBS_PER_MDU, BYTES_PER_BLOB, BYTES_PER_COMMITMENT, BYTES_PER_MDU, BYTES_PER_WITNESS_ENTRY,
    FIELD_ELEMENTS_PER_BLOB, MAX_MDUS_PER_DEAL, PAYLOAD_BYTES_PER_MDU,
};
use crate::curve::{Fr, G1Affine, G1};
use crate::kzg::{KzgError, KzgSettings, Polynomial};
use crate::merkle::{Leaf, MerkleTree};
use crate::packing::{self, PackError};
use crate::rs::{Code, Profile, RsError};
use table::{FileRecord, FileTable, TableError};

/// Errors of slab building and reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlabError {
    /// The planned capacity does not fit a v1 deal.
    #[error("capacity of {user_mdus} user MDUs needs {total} MDUs, more than {MAX_MDUS_PER_DEAL}")]
    Capacity {
        /// User MDUs asked for.
        user_mdus: u64,
        /// Total MDUs that would need.
        total: u64,
    },
    /// Appending would exceed the capacity fixed at creation.
    #[error("slab is full: capacity {capacity} user MDUs")]
    Full {
        /// Capacity in user MDUs.
        capacity: u64,
    },
    /// A file operation was out of order (e.g. write with no open file).
    #[error("builder misuse: {0}")]
    Misuse(&'static str),
    /// A file-table error.
    #[error(transparent)]
    Table(#[from] TableError),
    /// An erasure-coding error.
    #[error(transparent)]
    Rs(#[from] RsError),
    /// A KZG error.
    #[error(transparent)]
    Kzg(#[from] KzgError),
    /// Unpacking failed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// Metadata is inconsistent.
    #[error("malformed slab metadata: {0}")]
    Malformed(&'static str),
    /// Too few verified slots for a row.
    #[error("MDU {mdu} row {row}: only {got} verified slots, need {needed}")]
    Unrecoverable {
        /// MDU index.
        mdu: u64,
        /// Row.
        row: usize,
        /// Verified slots.
        got: usize,
        /// K.
        needed: usize,
    },
    /// The MDU roots do not rebuild the committed manifest root.
    #[error("the MDU roots do not rebuild the committed manifest root")]
    ManifestMismatch,
}

/// The fixed shape of a slab: profile and witness size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    /// Slot profile.
    pub profile: Profile,
    /// Witness MDUs W, fixed at deal creation.
    pub witness_mdus: u64,
}

impl Layout {
    /// Sizes W for a planned capacity of `user_mdus` user MDUs.
    pub fn new(profile: Profile, user_mdus: u64) -> Result<Layout, SlabError> {
        let per = Self::witness_bytes_per_user_mdu(profile) as u64;
        // `user_mdus` comes from outside (a deal's capacity): no arithmetic may overflow.
        let too_big = SlabError::Capacity {
            user_mdus,
            total: u64::MAX,
        };
        let w = user_mdus
            .max(1)
            .checked_mul(per)
            .ok_or_else(|| too_big.clone())?
            .div_ceil(PAYLOAD_BYTES_PER_MDU as u64);
        let total = w
            .checked_add(1)
            .and_then(|t| t.checked_add(user_mdus))
            .ok_or(too_big)?;
        if total > MAX_MDUS_PER_DEAL as u64 {
            return Err(SlabError::Capacity { user_mdus, total });
        }
        Ok(Layout {
            profile,
            witness_mdus: w,
        })
    }

    /// Leaves of one user MDU: `(K + M) · rows`.
    pub fn leaves_per_user_mdu(&self) -> usize {
        self.profile.slots() * self.profile.rows()
    }

    fn witness_bytes_per_user_mdu(profile: Profile) -> usize {
        profile.slots() * profile.rows() * BYTES_PER_WITNESS_ENTRY
    }

    /// User MDUs the witness region can describe (and the deal can hold).
    pub fn user_capacity(&self) -> u64 {
        let per = Self::witness_bytes_per_user_mdu(self.profile) as u64;
        // Saturating: a layout read from outside bytes (a slab directory) may name any W;
        // one past the deal's bound describes no user MDU at all.
        let by_witness = self
            .witness_mdus
            .saturating_mul(PAYLOAD_BYTES_PER_MDU as u64)
            / per;
        by_witness.min((MAX_MDUS_PER_DEAL as u64 - 1).saturating_sub(self.witness_mdus))
    }

    /// Index of the first user MDU, `W + 1`.
    pub fn first_user_mdu(&self) -> u64 {
        self.witness_mdus.saturating_add(1)
    }
}

/// One user MDU after encoding: each slot's shard, the leaves, and the root.
#[derive(Clone, Debug)]
pub struct EncodedMdu {
    /// `shards[s]` = slot s's blobs of rows 0..rows-1.
    pub shards: Vec<Vec<u8>>,
    /// `(K + M) · rows` leaves, `leaf = slot · rows + row`.
    pub leaves: Vec<Leaf>,
    /// `mdu_root_fr`.
    pub root_fr: [u8; 32],
}

/// Encodes a user MDU (64 encoded data blobs): commitments (fixed-base MSM, in parallel),
/// RS parity per row, parity commitments derived with K-point MSMs, leaves and root.
pub fn encode_user_mdu(
    settings: &KzgSettings,
    code: &Code,
    data: &[u8],
) -> Result<EncodedMdu, SlabError> {
    if data.len() != BYTES_PER_MDU {
        return Err(SlabError::Malformed("user MDU must be 64 blobs"));
    }
    let p = code.profile();
    let (k, rows, slots) = (p.k(), p.rows(), p.slots());
    let blobs: Vec<&[u8]> = data.chunks_exact(BYTES_PER_BLOB).collect();
    let commitments = commit_points(settings, &blobs)?;
    let mut shards = vec![Vec::with_capacity(rows * BYTES_PER_BLOB); slots];
    let mut leaf_commitments = vec![[0u8; BYTES_PER_COMMITMENT]; slots * rows];
    let mut leaf_hashes = vec![[0u8; 32]; slots * rows];
    let rows_idx: Vec<usize> = (0..rows).collect();
    let encoded_rows = crate::par::map(&rows_idx, |&r| {
        let row_data = &blobs[r * k..(r + 1) * k];
        code.encode_row(row_data).and_then(|parity| {
            let derived = code.parity_commitments(&commitments[r * k..(r + 1) * k])?;
            Ok((parity, derived))
        })
    });
    for (r, res) in encoded_rows.into_iter().enumerate() {
        let (parity, derived) = res?;
        for s in 0..slots {
            let (blob, c): (&[u8], G1) = if s < k {
                (blobs[r * k + s], commitments[r * k + s])
            } else {
                (&parity[s - k], derived[s - k])
            };
            shards[s].extend_from_slice(blob);
            leaf_commitments[s * rows + r] = c.to_compressed();
            leaf_hashes[s * rows + r] = *blake3::hash(blob).as_bytes();
        }
    }
    let leaves: Vec<Leaf> = leaf_commitments
        .into_iter()
        .zip(leaf_hashes)
        .map(|(commitment, blake3)| Leaf { commitment, blake3 })
        .collect();
    let root_fr = MerkleTree::new(&leaves).root_fr();
    Ok(EncodedMdu {
        shards,
        leaves,
        root_fr,
    })
}

fn commit_points(settings: &KzgSettings, blobs: &[&[u8]]) -> Result<Vec<G1>, SlabError> {
    let tables = settings.tables();
    crate::par::map(blobs, |b| {
        Polynomial::from_blob(b).map(|p| tables.msm(&p.0))
    })
    .into_iter()
    .collect::<Result<_, _>>()
    .map_err(SlabError::from)
}

/// Leaves and root of a metadata MDU (K = 1, M = 0 layout: 64 leaves, `leaf = blob`).
pub fn encode_metadata_mdu(
    settings: &KzgSettings,
    data: &[u8],
) -> Result<(Vec<Leaf>, [u8; 32]), SlabError> {
    if data.len() != BYTES_PER_MDU {
        return Err(SlabError::Malformed("metadata MDU must be 64 blobs"));
    }
    let blobs: Vec<&[u8]> = data.chunks_exact(BYTES_PER_BLOB).collect();
    let commitments = commit_points(settings, &blobs)?;
    let leaves: Vec<Leaf> = commitments
        .iter()
        .zip(&blobs)
        .map(|(c, b)| Leaf::new(c.to_compressed(), b))
        .collect();
    let root = MerkleTree::new(&leaves).root_fr();
    Ok((leaves, root))
}

/// The manifest polynomial: element j = `mdu_root_fr(j)`, zero elsewhere.
pub fn manifest_polynomial(mdu_roots: &[[u8; 32]]) -> Result<Polynomial, SlabError> {
    if mdu_roots.len() > FIELD_ELEMENTS_PER_BLOB {
        return Err(SlabError::Malformed("more MDUs than manifest elements"));
    }
    let mut v = vec![Fr::ZERO; FIELD_ELEMENTS_PER_BLOB];
    for (e, r) in v.iter_mut().zip(mdu_roots) {
        *e = Fr::from_bytes_be(r).map_err(|_| SlabError::Malformed("MDU root not canonical"))?;
    }
    Ok(Polynomial(v))
}

/// The one manifest check every reader makes (SPEC §3.4): `mdu_roots` — every MDU's
/// `mdu_root_fr`, in order — must rebuild the manifest whose commitment is
/// `manifest_root` (a deal's committed root). Returns the manifest polynomial, for
/// openings.
pub fn check_manifest(
    settings: &KzgSettings,
    mdu_roots: &[[u8; 32]],
    manifest_root: &[u8; BYTES_PER_COMMITMENT],
) -> Result<Polynomial, SlabError> {
    let manifest = manifest_polynomial(mdu_roots)?;
    if settings.commit_poly(&manifest).to_compressed() != *manifest_root {
        return Err(SlabError::ManifestMismatch);
    }
    Ok(manifest)
}

/// The MDU roots a manifest blob holds for `total_mdus` MDUs: every element past them must
/// be zero (a manifest with extra roots is not the slab's).
pub fn manifest_roots(
    manifest: &Polynomial,
    total_mdus: usize,
) -> Result<Vec<[u8; 32]>, SlabError> {
    if total_mdus > manifest.0.len() {
        return Err(SlabError::Malformed("more MDUs than manifest elements"));
    }
    if !manifest.0[total_mdus..].iter().all(|e| e.is_zero()) {
        return Err(SlabError::Malformed("manifest has roots beyond total_mdus"));
    }
    Ok(manifest.0[..total_mdus]
        .iter()
        .map(|e| e.to_bytes_be())
        .collect())
}

/// Encodes one metadata region (file table or witness stream) as whole encoded MDUs.
fn metadata_mdus(payload: &[u8], count: usize) -> Result<Vec<Vec<u8>>, SlabError> {
    if payload.len() > count * PAYLOAD_BYTES_PER_MDU {
        return Err(SlabError::Malformed("metadata does not fit its MDUs"));
    }
    Ok((0..count)
        .map(|i| {
            let lo = (i * PAYLOAD_BYTES_PER_MDU).min(payload.len());
            let hi = ((i + 1) * PAYLOAD_BYTES_PER_MDU).min(payload.len());
            let mut mdu = vec![0u8; BYTES_PER_MDU];
            packing::pack_into(&payload[lo..hi], &mut mdu);
            mdu
        })
        .collect())
}

/// Parses the witness region back into per-user-MDU leaves.
pub fn decode_witness(
    layout: &Layout,
    witness_mdus: &[&[u8]],
    user_mdus: u64,
) -> Result<Vec<Vec<Leaf>>, SlabError> {
    if witness_mdus.len() as u64 != layout.witness_mdus || user_mdus > layout.user_capacity() {
        return Err(SlabError::Malformed("witness region size"));
    }
    let per = layout.leaves_per_user_mdu();
    let need = user_mdus as usize * per * BYTES_PER_WITNESS_ENTRY;
    let mut payload = Vec::with_capacity(need);
    for m in witness_mdus {
        let left = need - payload.len();
        packing::unpack_append(m, left.min(PAYLOAD_BYTES_PER_MDU), &mut payload)?;
    }
    Ok(payload
        .chunks_exact(per * BYTES_PER_WITNESS_ENTRY)
        .map(|mdu| {
            mdu.chunks_exact(BYTES_PER_WITNESS_ENTRY)
                .map(|e| {
                    let mut commitment = [0u8; BYTES_PER_COMMITMENT];
                    let mut blake3 = [0u8; 32];
                    commitment.copy_from_slice(&e[..BYTES_PER_COMMITMENT]);
                    blake3.copy_from_slice(&e[BYTES_PER_COMMITMENT..]);
                    Leaf { commitment, blake3 }
                })
                .collect()
        })
        .collect())
}

/// Parses MDU #0 (encoded) into the file table.
pub fn decode_file_table(mdu0: &[u8]) -> Result<FileTable, SlabError> {
    let payload = packing::unpack(mdu0, PAYLOAD_BYTES_PER_MDU)?;
    Ok(FileTable::decode(&payload)?)
}

/// Everything a slab's metadata says, enough to append to it.
#[derive(Clone, Debug)]
pub struct SlabState {
    /// Layout fixed at creation.
    pub layout: Layout,
    /// Content generation (0 for the first commit).
    pub generation: u64,
    /// The file table.
    pub table: FileTable,
    /// Leaves of every user MDU.
    pub user_leaves: Vec<Vec<Leaf>>,
}

/// The result of building: metadata MDUs, roots and the manifest.
#[derive(Clone, Debug)]
pub struct SlabOutput {
    /// Layout.
    pub layout: Layout,
    /// Generation of this content.
    pub generation: u64,
    /// Encoded metadata MDUs #0..=W (every slot stores them).
    pub metadata: Vec<Vec<u8>>,
    /// `mdu_root_fr` of every MDU, metadata first.
    pub mdu_roots: Vec<[u8; 32]>,
    /// Leaves of every metadata MDU (what an upload of MDU #j sends along), so a sender
    /// need not commit the metadata again.
    pub metadata_leaves: Vec<Vec<Leaf>>,
    /// The manifest blob.
    pub manifest: Vec<u8>,
    /// Its KZG commitment: the deal's content root.
    pub manifest_root: [u8; BYTES_PER_COMMITMENT],
    /// The file table.
    pub table: FileTable,
    /// Leaves of every user MDU.
    pub user_leaves: Vec<Vec<Leaf>>,
}

impl SlabOutput {
    /// Total MDUs, `1 + W + user MDUs`.
    pub fn total_mdus(&self) -> u64 {
        self.mdu_roots.len() as u64
    }
    /// User MDUs.
    pub fn user_mdus(&self) -> u64 {
        self.user_leaves.len() as u64
    }
}

struct OpenFile {
    path: String,
    start: u64,
    flags: u16,
    mtime: i64,
    hasher: blake3::Hasher,
}

/// Streams files into a slab, one user MDU in memory at a time.
///
/// ```text
///  begin_file ─► write* ─► end_file ─► ... ─► finish
///                  │ every full MDU: encode_user_mdu ─► sink(mdu index, shards)
/// ```
pub struct SlabBuilder<'a> {
    settings: &'a KzgSettings,
    code: Code,
    layout: Layout,
    generation: u64,
    table: FileTable,
    user_leaves: Vec<Vec<Leaf>>,
    user_roots: Vec<[u8; 32]>,
    /// Payload bytes of the user MDU being filled.
    pending: Vec<u8>,
    /// Offset in the user payload space of `pending[0]`.
    pending_start: u64,
    file: Option<OpenFile>,
}

/// Receives each finished user MDU.
pub trait ShardSink {
    /// Sink error.
    type Error: From<SlabError>;
    /// Called once per user MDU, in order, with its index in the slab.
    fn user_mdu(&mut self, mdu: u64, encoded: &EncodedMdu) -> Result<(), Self::Error>;
}

impl<'a> SlabBuilder<'a> {
    /// A builder for a new slab (generation 0).
    pub fn new(settings: &'a KzgSettings, layout: Layout) -> Self {
        Self::from_state(
            settings,
            SlabState {
                layout,
                generation: 0,
                table: FileTable::new(),
                user_leaves: Vec::new(),
            },
        )
    }

    /// A builder that appends to an existing slab (next generation). Existing user MDUs
    /// are never touched, so their roots stay (the append-only rule); new files start at
    /// the next MDU boundary.
    pub fn append(settings: &'a KzgSettings, state: SlabState) -> Self {
        let mut s = Self::from_state(settings, state);
        s.generation += 1;
        s
    }

    fn from_state(settings: &'a KzgSettings, state: SlabState) -> Self {
        let user_roots = state
            .user_leaves
            .iter()
            .map(|l| MerkleTree::new(l).root_fr())
            .collect();
        let pending_start = state.user_leaves.len() as u64 * PAYLOAD_BYTES_PER_MDU as u64;
        SlabBuilder {
            settings,
            code: Code::new(state.layout.profile),
            layout: state.layout,
            generation: state.generation,
            table: state.table,
            user_roots,
            user_leaves: state.user_leaves,
            pending: Vec::with_capacity(PAYLOAD_BYTES_PER_MDU),
            pending_start,
            file: None,
        }
    }

    /// The file table so far.
    pub fn table(&self) -> &FileTable {
        &self.table
    }

    /// Marks a live file deleted (tombstone).
    pub fn delete(&mut self, path: &str) -> Result<(), SlabError> {
        Ok(self.table.delete(path)?)
    }

    /// Starts a file: its bytes follow with [`Self::write`].
    pub fn begin_file(&mut self, path: &str, mtime: i64, flags: u16) -> Result<(), SlabError> {
        if self.file.is_some() {
            return Err(SlabError::Misuse("a file is already open"));
        }
        table::validate_path(path)?;
        if self.table.get(path).is_some() {
            return Err(TableError::Exists(path.to_string()).into());
        }
        self.file = Some(OpenFile {
            path: path.to_string(),
            start: self.pending_start + self.pending.len() as u64,
            flags,
            mtime,
            hasher: blake3::Hasher::new(),
        });
        Ok(())
    }

    /// Appends stored bytes of the open file; full MDUs go to `sink`.
    pub fn write<S: ShardSink>(&mut self, mut data: &[u8], sink: &mut S) -> Result<(), S::Error> {
        let file = self
            .file
            .as_mut()
            .ok_or(SlabError::Misuse("no open file"))?;
        file.hasher.update(data);
        while !data.is_empty() {
            if self.pending.is_empty()
                && self.user_leaves.len() as u64 >= self.layout.user_capacity()
            {
                return Err(SlabError::Full {
                    capacity: self.layout.user_capacity(),
                }
                .into());
            }
            let take = (PAYLOAD_BYTES_PER_MDU - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == PAYLOAD_BYTES_PER_MDU {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Closes the open file and records it in the table.
    pub fn end_file(&mut self) -> Result<&FileRecord, SlabError> {
        let f = self.file.take().ok_or(SlabError::Misuse("no open file"))?;
        let end = self.pending_start + self.pending.len() as u64;
        let slot = self.table.add(FileRecord {
            start: f.start,
            len: end - f.start,
            flags: f.flags,
            mtime: f.mtime,
            blake3: *f.hasher.finalize().as_bytes(),
            path: f.path,
        })?;
        Ok(&self.table.records()[slot])
    }

    fn flush<S: ShardSink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut encoded = vec![0u8; BYTES_PER_MDU];
        packing::pack_into(&self.pending, &mut encoded);
        let mdu = encode_user_mdu(self.settings, &self.code, &encoded)?;
        let index = self.layout.first_user_mdu() + self.user_leaves.len() as u64;
        sink.user_mdu(index, &mdu)?;
        self.user_roots.push(mdu.root_fr);
        self.user_leaves.push(mdu.leaves);
        self.pending_start += PAYLOAD_BYTES_PER_MDU as u64;
        self.pending.clear();
        Ok(())
    }

    /// Flushes the last user MDU and builds metadata MDUs and the manifest.
    pub fn finish<S: ShardSink>(mut self, sink: &mut S) -> Result<SlabOutput, S::Error> {
        if self.file.is_some() {
            return Err(SlabError::Misuse("a file is still open").into());
        }
        self.flush(sink)?;
        let w = self.layout.witness_mdus as usize;
        let mut metadata = metadata_mdus(&self.table.encode(), 1)?;
        let mut witness = Vec::with_capacity(
            self.user_leaves.len() * self.layout.leaves_per_user_mdu() * BYTES_PER_WITNESS_ENTRY,
        );
        for leaves in &self.user_leaves {
            for l in leaves {
                witness.extend_from_slice(&l.commitment);
                witness.extend_from_slice(&l.blake3);
            }
        }
        metadata.extend(metadata_mdus(&witness, w)?);
        let mut mdu_roots = Vec::with_capacity(1 + w + self.user_roots.len());
        let mut metadata_leaves = Vec::with_capacity(metadata.len());
        for m in &metadata {
            let (leaves, root) = encode_metadata_mdu(self.settings, m)?;
            mdu_roots.push(root);
            metadata_leaves.push(leaves);
        }
        mdu_roots.extend_from_slice(&self.user_roots);
        let manifest = manifest_polynomial(&mdu_roots)?;
        let manifest_root = self.settings.commit_poly(&manifest).to_compressed();
        Ok(SlabOutput {
            layout: self.layout,
            generation: self.generation,
            metadata,
            mdu_roots,
            metadata_leaves,
            manifest: manifest.to_blob(),
            manifest_root,
            table: self.table,
            user_leaves: self.user_leaves,
        })
    }
}

/// Verifies the present shards of one user MDU against its leaves and rebuilds the 64
/// data blobs (encoded) from any K verified slots per row. Returns the data and the
/// slots whose bytes did not match their leaves (fraud evidence for the caller).
pub fn decode_user_mdu(
    code: &Code,
    mdu: u64,
    leaves: &[Leaf],
    shards: &[Option<&[u8]>],
) -> Result<(Vec<u8>, Vec<usize>), SlabError> {
    let p = code.profile();
    let (k, rows, slots) = (p.k(), p.rows(), p.slots());
    if shards.len() != slots || leaves.len() != slots * rows {
        return Err(SlabError::Malformed("slot or leaf count"));
    }
    let mut bad = Vec::new();
    let mut verified: Vec<Option<&[u8]>> = vec![None; slots * rows];
    for (s, shard) in shards.iter().enumerate() {
        let Some(shard) = shard else { continue };
        if shard.len() != rows * BYTES_PER_BLOB {
            bad.push(s);
            continue;
        }
        let mut ok = true;
        for (r, blob) in shard.chunks_exact(BYTES_PER_BLOB).enumerate() {
            if blake3::hash(blob).as_bytes() == &leaves[s * rows + r].blake3 {
                verified[s * rows + r] = Some(blob);
            } else {
                ok = false;
            }
        }
        if !ok {
            bad.push(s);
        }
    }
    let mut out = vec![0u8; BYTES_PER_MDU];
    for r in 0..rows {
        let row: Vec<Option<&[u8]>> = (0..slots).map(|s| verified[s * rows + r]).collect();
        let got = row.iter().filter(|b| b.is_some()).count();
        if got < k {
            return Err(SlabError::Unrecoverable {
                mdu,
                row: r,
                got,
                needed: k,
            });
        }
        let data_present = row[..k].iter().all(Option::is_some);
        let full;
        let row_blobs: Vec<&[u8]> = if data_present {
            row[..k].iter().flatten().copied().collect()
        } else {
            full = code.reconstruct_row(&row)?;
            full[..k].iter().map(Vec::as_slice).collect()
        };
        for (c, blob) in row_blobs.iter().enumerate() {
            let b = r * k + c;
            out[b * BYTES_PER_BLOB..(b + 1) * BYTES_PER_BLOB].copy_from_slice(blob);
        }
    }
    Ok((out, bad))
}

/// Checks a user MDU's commitments: every row's parity commitments follow from its data
/// commitments, and the leaves hash to `root_fr`.
pub fn check_user_mdu_leaves(
    code: &Code,
    leaves: &[Leaf],
    root_fr: &[u8; 32],
) -> Result<(), SlabError> {
    let p = code.profile();
    let rows = p.rows();
    if leaves.len() != p.slots() * rows {
        return Err(SlabError::Malformed("leaf count"));
    }
    if MerkleTree::new(leaves).root_fr() != *root_fr {
        return Err(SlabError::Malformed("leaves do not match the MDU root"));
    }
    let all: Vec<Vec<[u8; BYTES_PER_COMMITMENT]>> = (0..rows)
        .map(|r| {
            (0..p.slots())
                .map(|s| leaves[s * rows + r].commitment)
                .collect()
        })
        .collect();
    let refs: Vec<&[[u8; BYTES_PER_COMMITMENT]]> = all.iter().map(Vec::as_slice).collect();
    code.check_commitments_rows(&refs)?;
    Ok(())
}

/// Recomputes the commitments of `blobs` and compares them with `expected` (deep check).
pub fn check_blob_commitments(
    settings: &KzgSettings,
    blobs: &[&[u8]],
    expected: &[[u8; BYTES_PER_COMMITMENT]],
) -> Result<Vec<usize>, SlabError> {
    let got = commit_points(settings, blobs)?;
    Ok(got
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (g, e))| G1Affine::from_compressed(e).map(|p| p.to_projective()) != Ok(**g))
        .map(|(i, _)| i)
        .collect())
}

const _: () = assert!(BLOBS_PER_MDU * BYTES_PER_BLOB == BYTES_PER_MDU);

#[cfg(test)]
mod tests;
