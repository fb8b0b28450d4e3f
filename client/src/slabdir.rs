//! A slab on disk as one directory per slot: exactly what each slot's provider stores.
//!
//! ```text
//!  DIR/slot-<s>/slab.json          deal shape, roots, generation (same in every slot)
//!  DIR/slot-<s>/manifest.blob      the manifest blob (128 KiB)
//!  DIR/slot-<s>/mdu-<j>.bin        metadata MDUs #0..=W, whole (8 MiB each)
//!  DIR/slot-<s>/shard-<j>.bin      this slot's shard of user MDU j (rows × 128 KiB)
//! ```
//! Every read verifies before use: the manifest against `manifest_root`, metadata MDUs
//! against the manifest, user-MDU leaves against their roots, and every blob against its
//! leaf's BLAKE3; missing or bad slots are rebuilt from any K good ones.

use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use wasm_core::aead::{self, DealKey, KeyPurpose, StreamNonce};
use wasm_core::constants::{BYTES_PER_BLOB, PAYLOAD_BYTES_PER_MDU};
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::packing;
use wasm_core::rs::{Code, Profile};
use wasm_core::slab::table::{FileRecord, FileTable, FLAG_ENCRYPTED};
use wasm_core::slab::{self, EncodedMdu, Layout, ShardSink, SlabBuilder, SlabOutput, SlabState};

/// Version of the directory format.
pub const DIR_FORMAT_VERSION: u32 = 1;
/// Bytes read from an input file per step.
const READ_CHUNK: usize = 1 << 20;

/// `slab.json`: the deal's shape and roots, identical in every slot but for `slot`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotMeta {
    /// Directory format version.
    pub format: u32,
    /// This directory's slot.
    pub slot: usize,
    /// Data slots.
    pub k: usize,
    /// Parity slots.
    pub m: usize,
    /// Witness MDUs.
    pub witness_mdus: u64,
    /// User MDUs.
    pub user_mdus: u64,
    /// Total MDUs.
    pub total_mdus: u64,
    /// Content generation.
    pub generation: u64,
    /// Deal id the encryption keys derive from.
    pub deal_id: u64,
    /// The manifest root, hex.
    pub manifest_root: String,
}

impl SlotMeta {
    fn same_deal(&self, other: &SlotMeta) -> bool {
        SlotMeta {
            slot: 0,
            ..self.clone()
        } == SlotMeta {
            slot: 0,
            ..other.clone()
        }
    }
    /// The profile.
    pub fn profile(&self) -> Result<Profile> {
        Ok(Profile::new(self.k, self.m)?)
    }
    /// The layout.
    pub fn layout(&self) -> Result<Layout> {
        Ok(Layout {
            profile: self.profile()?,
            witness_mdus: self.witness_mdus,
        })
    }
    /// The manifest root bytes.
    pub fn manifest_root(&self) -> Result<[u8; 48]> {
        let v = hex::decode(&self.manifest_root).context("manifest_root is not hex")?;
        v.try_into()
            .map_err(|_| anyhow::anyhow!("manifest_root is not 48 bytes"))
    }
}

/// The directory of slot `s`.
pub fn slot_dir(dir: &Path, s: usize) -> PathBuf {
    dir.join(format!("slot-{s}"))
}

/// Slot `s`'s shard of user MDU `mdu`.
pub fn shard_path(dir: &Path, s: usize, mdu: u64) -> PathBuf {
    slot_dir(dir, s).join(format!("shard-{mdu:06}.bin"))
}

/// Slot `s`'s copy of metadata MDU `mdu`.
pub fn mdu_path(dir: &Path, s: usize, mdu: u64) -> PathBuf {
    slot_dir(dir, s).join(format!("mdu-{mdu:06}.bin"))
}

/// Writes each finished user MDU's shards straight into the slot directories.
/// Told about each user MDU once its shards are on disk (see [`PackOptions::on_mdu`]).
pub type MduReady<'a> = &'a (dyn Fn(u64, &EncodedMdu) + Sync);

struct DirSink<'a> {
    dir: &'a Path,
    progress: &'a dyn Fn(u64),
    on_mdu: Option<MduReady<'a>>,
}

impl ShardSink for DirSink<'_> {
    type Error = anyhow::Error;
    fn user_mdu(&mut self, mdu: u64, encoded: &EncodedMdu) -> Result<()> {
        for (s, shard) in encoded.shards.iter().enumerate() {
            let p = shard_path(self.dir, s, mdu);
            fs::write(&p, shard).with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(f) = self.on_mdu {
            f(mdu, encoded);
        }
        (self.progress)(PAYLOAD_BYTES_PER_MDU as u64);
        Ok(())
    }
}

/// Options for [`pack`].
pub struct PackOptions<'a> {
    /// Slot profile.
    pub profile: Profile,
    /// Root secret for encryption; `None` stores plaintext.
    pub root_secret: Option<[u8; 32]>,
    /// Deal id for key derivation.
    pub deal_id: u64,
    /// Planned capacity in user MDUs; `None` = twice what the files need (at least 4).
    pub capacity_user_mdus: Option<u64>,
    /// Randomness for AEAD nonces (injected: the CLI passes the OS generator).
    pub nonce: &'a mut dyn FnMut() -> StreamNonce,
    /// Called with bytes done, for a progress bar.
    pub progress: &'a dyn Fn(u64),
    /// Append to this slab (its next generation) instead of starting a new one: existing
    /// user MDUs stay; only new user MDUs are written, with fresh metadata.
    pub base: Option<SlabState>,
    /// Paths to delete (tombstone) in the base slab.
    pub delete: Vec<String>,
    /// Names the files take in the slab, one per file (`None`: their base names).
    pub names: Option<Vec<String>>,
    /// Called with each user MDU once its shards are on disk (the client starts
    /// uploading it while later MDUs are packed).
    pub on_mdu: Option<MduReady<'a>>,
}

/// What [`pack`] made.
pub struct PackReport {
    /// The slab output (roots, table, metadata).
    pub output: SlabOutput,
    /// Stored bytes (ciphertext when encrypted).
    pub stored_bytes: u64,
}

/// Name a file takes in the slab: its file name (directories are not walked).
fn slab_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", path.display()))?;
    Ok(name.to_string())
}

fn mtime(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// Packs `files` into a new slab under `out`, one directory per slot.
pub fn pack(
    settings: &KzgSettings,
    files: &[PathBuf],
    out: &Path,
    opts: PackOptions<'_>,
) -> Result<PackReport> {
    ensure!(
        !files.is_empty() || !opts.delete.is_empty(),
        "no input files"
    );
    ensure!(
        opts.base.is_some() || opts.delete.is_empty(),
        "deleting needs a base slab"
    );
    let mut sizes = Vec::with_capacity(files.len());
    for f in files {
        let len = fs::metadata(f)
            .with_context(|| format!("{}", f.display()))?
            .len();
        sizes.push(if opts.root_secret.is_some() {
            aead::ciphertext_len(len)
        } else {
            len
        });
    }
    let stored: u64 = sizes.iter().sum();
    let mut builder = match opts.base {
        Some(base) => {
            let free = base.layout.user_capacity() - base.user_leaves.len() as u64;
            let needed = stored.div_ceil(PAYLOAD_BYTES_PER_MDU as u64);
            ensure!(
                needed <= free,
                "the deal has room for {free} more MDUs; these files need {needed}"
            );
            let mut b = SlabBuilder::append(settings, base);
            for path in &opts.delete {
                b.delete(path)?;
            }
            b
        }
        None => {
            let needed = stored.div_ceil(PAYLOAD_BYTES_PER_MDU as u64).max(1);
            let capacity = opts.capacity_user_mdus.unwrap_or((2 * needed).max(4));
            ensure!(
                capacity >= needed,
                "capacity {capacity} MDUs < {needed} needed"
            );
            SlabBuilder::new(settings, Layout::new(opts.profile, capacity)?)
        }
    };
    for s in 0..opts.profile.slots() {
        fs::create_dir_all(slot_dir(out, s))?;
    }
    let mut sink = DirSink {
        dir: out,
        progress: opts.progress,
        on_mdu: opts.on_mdu,
    };
    let key = opts
        .root_secret
        .map(|r| DealKey::derive(&r, opts.deal_id, KeyPurpose::FileData));
    let mut buf = vec![0u8; READ_CHUNK];
    let mut ct = Vec::with_capacity(READ_CHUNK + 2 * aead::CIPHERTEXT_CHUNK);
    if let Some(n) = &opts.names {
        ensure!(n.len() == files.len(), "one name per file");
    }
    for (i, f) in files.iter().enumerate() {
        let name = match &opts.names {
            Some(n) => n[i].clone(),
            None => slab_name(f)?,
        };
        let flags = if key.is_some() { FLAG_ENCRYPTED } else { 0 };
        builder.begin_file(&name, mtime(f), flags)?;
        let mut enc = key
            .as_ref()
            .map(|k| aead::Encryptor::new(k, &(opts.nonce)(), name.as_bytes()));
        let mut input = fs::File::open(f).with_context(|| format!("{}", f.display()))?;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            match enc.as_mut() {
                Some(e) => {
                    ct.clear();
                    e.push(&buf[..n], &mut ct);
                    builder.write(&ct, &mut sink)?;
                }
                None => builder.write(&buf[..n], &mut sink)?,
            }
        }
        if let Some(e) = enc {
            ct.clear();
            e.finish(&mut ct);
            builder.write(&ct, &mut sink)?;
        }
        builder.end_file()?;
    }
    let output = builder.finish(&mut sink)?;
    write_metadata(out, &output, opts.deal_id)?;
    Ok(PackReport {
        output,
        stored_bytes: stored,
    })
}

fn slot_meta(o: &SlabOutput, slot: usize, deal_id: u64) -> SlotMeta {
    let p = o.layout.profile;
    SlotMeta {
        format: DIR_FORMAT_VERSION,
        slot,
        k: p.k(),
        m: p.m(),
        witness_mdus: o.layout.witness_mdus,
        user_mdus: o.user_mdus(),
        total_mdus: o.total_mdus(),
        generation: o.generation,
        deal_id,
        manifest_root: hex::encode(o.manifest_root),
    }
}

fn write_metadata(out: &Path, o: &SlabOutput, deal_id: u64) -> Result<()> {
    for s in 0..o.layout.profile.slots() {
        let meta = slot_meta(o, s, deal_id);
        for (j, m) in o.metadata.iter().enumerate() {
            fs::write(mdu_path(out, s, j as u64), m)?;
        }
        fs::write(slot_dir(out, s).join("manifest.blob"), &o.manifest)?;
        let mut f = fs::File::create(slot_dir(out, s).join("slab.json"))?;
        serde_json::to_writer_pretty(&mut f, &meta)?;
        f.write_all(b"\n")?;
    }
    Ok(())
}

/// A slab directory opened for reading, with verified metadata.
pub struct OpenSlab {
    /// Root directory.
    pub dir: PathBuf,
    /// Deal shape and roots (from the slots, all in agreement).
    pub meta: SlotMeta,
    /// Which slot directories exist.
    pub present: Vec<bool>,
    /// MDU roots from the verified manifest.
    pub mdu_roots: Vec<[u8; 32]>,
    /// The verified file table.
    pub table: FileTable,
    /// Verified leaves of every user MDU.
    pub user_leaves: Vec<Vec<wasm_core::merkle::Leaf>>,
    /// Problems found while opening (bad metadata in some slot, disagreeing slots).
    pub problems: Vec<String>,
}

impl OpenSlab {
    /// The slab [`pack`] just wrote to `dir`, described from its output instead of being
    /// read back and verified again (every slot present, nothing to report).
    pub fn from_packed(dir: &Path, o: &SlabOutput, deal_id: u64) -> OpenSlab {
        OpenSlab {
            dir: dir.to_path_buf(),
            meta: slot_meta(o, 0, deal_id),
            present: vec![true; o.layout.profile.slots()],
            mdu_roots: o.mdu_roots.clone(),
            table: o.table.clone(),
            user_leaves: o.user_leaves.clone(),
            problems: Vec::new(),
        }
    }

    /// The erasure code.
    pub fn code(&self) -> Result<Code> {
        Ok(Code::new(self.meta.profile()?))
    }

    /// Reads slot `s`'s shard of user MDU `mdu`, if the file exists.
    pub fn read_shard(&self, s: usize, mdu: u64) -> Option<Vec<u8>> {
        if !self.present[s] {
            return None;
        }
        fs::read(shard_path(&self.dir, s, mdu)).ok()
    }

    /// State to append to this slab.
    pub fn state(&self) -> Result<SlabState> {
        Ok(SlabState {
            layout: self.meta.layout()?,
            generation: self.meta.generation,
            table: self.table.clone(),
            user_leaves: self.user_leaves.clone(),
        })
    }
}

/// Opens a slab directory: finds slot directories, checks they agree, and verifies the
/// manifest and metadata MDUs of the first slot whose copy is intact.
pub fn open(settings: &KzgSettings, dir: &Path) -> Result<OpenSlab> {
    let mut metas: Vec<(usize, SlotMeta)> = Vec::new();
    let mut problems = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(s) = name
            .strip_prefix("slot-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        match fs::read(entry.path().join("slab.json"))
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<SlotMeta>(&b)?))
        {
            Ok(m) if m.slot == s && m.format == DIR_FORMAT_VERSION => metas.push((s, m)),
            Ok(_) => problems.push(format!("slot {s}: slab.json names another slot or format")),
            Err(e) => problems.push(format!("slot {s}: unreadable slab.json: {e}")),
        }
    }
    metas.sort_by_key(|(s, _)| *s);
    let Some((_, first)) = metas.first() else {
        bail!(
            "no slot directories with a readable slab.json under {}",
            dir.display()
        );
    };
    let meta = first.clone();
    let layout = meta.layout()?;
    let slots = layout.profile.slots();
    let mut present = vec![false; slots];
    for (s, m) in &metas {
        if *s >= slots {
            problems.push(format!("slot {s}: beyond the profile's {slots} slots"));
        } else if !m.same_deal(&meta) {
            problems.push(format!(
                "slot {s}: slab.json disagrees with slot {}",
                meta.slot
            ));
        } else {
            present[*s] = true;
        }
    }
    let root = meta.manifest_root()?;
    let w = layout.witness_mdus;
    ensure!(
        meta.total_mdus == 1 + w + meta.user_mdus && meta.user_mdus <= layout.user_capacity(),
        "slab.json sizes are inconsistent"
    );
    for s in (0..slots).filter(|&s| present[s]) {
        match load_metadata(settings, dir, s, &meta, &root) {
            Ok((mdu_roots, table, user_leaves)) => {
                return Ok(OpenSlab {
                    dir: dir.to_path_buf(),
                    meta,
                    present,
                    mdu_roots,
                    table,
                    user_leaves,
                    problems,
                })
            }
            Err(e) => problems.push(format!("slot {s}: metadata rejected: {e:#}")),
        }
    }
    bail!("no slot has intact metadata: {}", problems.join("; "))
}

type Metadata = (Vec<[u8; 32]>, FileTable, Vec<Vec<wasm_core::merkle::Leaf>>);

fn load_metadata(
    settings: &KzgSettings,
    dir: &Path,
    s: usize,
    meta: &SlotMeta,
    root: &[u8; 48],
) -> Result<Metadata> {
    let manifest = fs::read(slot_dir(dir, s).join("manifest.blob"))?;
    let poly = Polynomial::from_blob(&manifest)?;
    let total = usize::try_from(meta.total_mdus).context("total_mdus")?;
    let mdu_roots = slab::manifest_roots(&poly, total)?;
    slab::check_manifest(settings, &mdu_roots, root).context("manifest.blob")?;
    let mut metadata = Vec::new();
    for j in 0..=meta.witness_mdus {
        let m = fs::read(mdu_path(dir, s, j))?;
        let (_, r) = slab::encode_metadata_mdu(settings, &m)?;
        ensure!(
            r == mdu_roots[j as usize],
            "metadata MDU {j} does not match the manifest"
        );
        metadata.push(m);
    }
    let table = slab::decode_file_table(&metadata[0])?;
    let w: Vec<&[u8]> = metadata[1..].iter().map(Vec::as_slice).collect();
    let layout = meta.layout()?;
    let user_leaves = slab::decode_witness(&layout, &w, meta.user_mdus)?;
    let code = Code::new(layout.profile);
    for (i, leaves) in user_leaves.iter().enumerate() {
        let j = layout.first_user_mdu() as usize + i;
        slab::check_user_mdu_leaves(&code, leaves, &mdu_roots[j])
            .with_context(|| format!("user MDU {j}"))?;
    }
    Ok((mdu_roots, table, user_leaves))
}

/// Findings of [`verify`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Every mismatch found; empty means the slab is intact.
    pub problems: Vec<String>,
    /// Slots with no directory.
    pub missing_slots: Vec<usize>,
    /// Blobs checked (BLAKE3 and KZG commitment).
    pub blobs_checked: u64,
}

/// Verifies every byte of every present slot: metadata copies, shard sizes, each blob's
/// BLAKE3 against its leaf and its recomputed KZG commitment against the leaf's.
pub fn verify(settings: &KzgSettings, dir: &Path) -> Result<VerifyReport> {
    let slab = open(settings, dir)?;
    let mut report = VerifyReport {
        problems: slab.problems.clone(),
        ..Default::default()
    };
    let p = slab.meta.profile()?;
    let rows = p.rows();
    for s in 0..p.slots() {
        if !slab.present[s] {
            report.missing_slots.push(s);
            continue;
        }
        if let Err(e) = load_metadata(settings, dir, s, &slab.meta, &slab.meta.manifest_root()?) {
            report.problems.push(format!("slot {s}: metadata: {e:#}"));
        }
        for (i, leaves) in slab.user_leaves.iter().enumerate() {
            let mdu = slab.meta.layout()?.first_user_mdu() + i as u64;
            let Some(shard) = slab.read_shard(s, mdu) else {
                report
                    .problems
                    .push(format!("slot {s}: shard of MDU {mdu} missing"));
                continue;
            };
            if shard.len() != rows * BYTES_PER_BLOB {
                report.problems.push(format!(
                    "slot {s}: shard of MDU {mdu} has {} bytes",
                    shard.len()
                ));
                continue;
            }
            let blobs: Vec<&[u8]> = shard.chunks_exact(BYTES_PER_BLOB).collect();
            let expected: Vec<[u8; 48]> =
                (0..rows).map(|r| leaves[s * rows + r].commitment).collect();
            for (r, b) in blobs.iter().enumerate() {
                if blake3::hash(b).as_bytes() != &leaves[s * rows + r].blake3 {
                    report.problems.push(format!(
                        "slot {s}: MDU {mdu} row {r}: bytes do not match the leaf hash"
                    ));
                }
            }
            match slab::check_blob_commitments(settings, &blobs, &expected) {
                Ok(bad) => {
                    for r in bad {
                        report.problems.push(format!(
                            "slot {s}: MDU {mdu} row {r}: KZG commitment mismatch"
                        ));
                    }
                }
                Err(e) => report.problems.push(format!("slot {s}: MDU {mdu}: {e}")),
            }
            report.blobs_checked += rows as u64;
        }
    }
    let k = p.k();
    if p.slots() - report.missing_slots.len() < k {
        report.problems.push(format!(
            "only {} of {} slots present, need {k}",
            p.slots() - report.missing_slots.len(),
            p.slots()
        ));
    }
    Ok(report)
}

/// Joins a validated slab path under `out`, refusing anything but normal components.
fn safe_join(out: &Path, rel: &str) -> Result<PathBuf> {
    let rel = Path::new(rel);
    ensure!(
        rel.components().all(|c| matches!(c, Component::Normal(_))),
        "unsafe path {}",
        rel.display()
    );
    Ok(out.join(rel))
}

/// Findings of [`unpack`].
#[derive(Debug, Default)]
pub struct UnpackReport {
    /// Files written.
    pub files: usize,
    /// Bytes written (plaintext).
    pub bytes: u64,
    /// Slots whose bytes failed verification (fraud evidence), per MDU.
    pub bad_slots: Vec<(u64, Vec<usize>)>,
    /// Rows rebuilt from parity.
    pub reconstructed_mdus: u64,
}

struct FileOut {
    rec: FileRecord,
    /// Final path; bytes go to `<path>.partial` until every check has passed.
    path: PathBuf,
    partial: PathBuf,
    file: fs::File,
    hasher: blake3::Hasher,
    dec: Option<aead::Decryptor>,
    written: u64,
    plain: Vec<u8>,
}

/// Restores every live file of an [`open`]ed slab under `out`: any K good slots per row
/// suffice; every blob is
/// verified against its leaf, every file against its BLAKE3, and ciphertext is
/// authenticated chunk by chunk. A file appears under its name only once all of its
/// checks passed; until then it is `<name>.partial`.
pub fn unpack(
    slab: &OpenSlab,
    out: &Path,
    root_secret: Option<[u8; 32]>,
    progress: &dyn Fn(u64),
) -> Result<UnpackReport> {
    let slots = slab.meta.profile()?.slots();
    unpack_from(
        slab,
        out,
        root_secret,
        &|_| true,
        &mut |mdu| Ok((0..slots).map(|s| slab.read_shard(s, mdu)).collect()),
        progress,
    )
}

/// [`unpack`] of the `select`ed live files, with shards from `shards`: called once per user
/// MDU that a selected file touches, in order, it returns every slot's shard of that MDU
/// or `None` (any K good ones suffice; each blob is verified against its leaf here).
pub fn unpack_from(
    slab: &OpenSlab,
    out: &Path,
    root_secret: Option<[u8; 32]>,
    select: &dyn Fn(&FileRecord) -> bool,
    shards: &mut dyn FnMut(u64) -> Result<Vec<Option<Vec<u8>>>>,
    progress: &dyn Fn(u64),
) -> Result<UnpackReport> {
    let mut u = Unpacker::new(slab, out, root_secret, select, progress)?;
    while let Some(mdu) = u.next_mdu()? {
        u.feed(shards(mdu)?)?;
    }
    u.finish()
}

/// [`unpack_from`] turned inside out, for callers that fetch shards asynchronously: ask
/// [`Unpacker::next_mdu`] which user MDU it needs, [`Unpacker::feed`] it that MDU's
/// shards, and [`Unpacker::finish`] when it needs none.
pub struct Unpacker<'a> {
    slab: &'a OpenSlab,
    out: &'a Path,
    code: Code,
    layout: Layout,
    key: Option<DealKey>,
    progress: &'a dyn Fn(u64),
    /// Selected live files by start offset; `files[next..]` are not opened yet.
    files: Vec<FileRecord>,
    next: usize,
    open_files: Vec<FileOut>,
    /// Index of the user MDU `next_mdu` stopped at (fed next).
    at: usize,
    payload: Vec<u8>,
    report: UnpackReport,
}

impl<'a> Unpacker<'a> {
    /// Starts restoring the `select`ed live files of `slab` under `out`.
    pub fn new(
        slab: &'a OpenSlab,
        out: &'a Path,
        root_secret: Option<[u8; 32]>,
        select: &dyn Fn(&FileRecord) -> bool,
        progress: &'a dyn Fn(u64),
    ) -> Result<Unpacker<'a>> {
        let code = slab.code()?;
        let layout = slab.meta.layout()?;
        let key = root_secret.map(|r| DealKey::derive(&r, slab.meta.deal_id, KeyPurpose::FileData));
        let mut files: Vec<FileRecord> = slab.table.live().filter(|r| select(r)).cloned().collect();
        files.sort_by_key(|r| r.start);
        if files.iter().any(FileRecord::is_encrypted) && key.is_none() {
            bail!("the slab holds encrypted files: pass --key-file");
        }
        fs::create_dir_all(out)?;
        Ok(Unpacker {
            slab,
            out,
            code,
            layout,
            key,
            progress,
            files,
            next: 0,
            open_files: Vec::new(),
            at: 0,
            payload: Vec::with_capacity(PAYLOAD_BYTES_PER_MDU),
            report: UnpackReport::default(),
        })
    }

    fn open_file(&self, rec: &FileRecord) -> Result<FileOut> {
        let path = safe_join(self.out, &rec.path)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        Ok(FileOut {
            rec: rec.clone(),
            file: fs::File::create(&partial).with_context(|| format!("{}", partial.display()))?,
            partial,
            path,
            hasher: blake3::Hasher::new(),
            dec: rec
                .is_encrypted()
                .then(|| {
                    self.key
                        .as_ref()
                        .map(|k| aead::Decryptor::new(k, rec.path.as_bytes()))
                })
                .flatten(),
            written: 0,
            plain: Vec::new(),
        })
    }

    /// The next user MDU whose shards are needed, or `None` when no selected file has
    /// bytes left (then [`Unpacker::finish`]). MDUs without live selected bytes are skipped.
    pub fn next_mdu(&mut self) -> Result<Option<u64>> {
        while self.at < self.slab.user_leaves.len() {
            let hi = (self.at as u64 + 1) * PAYLOAD_BYTES_PER_MDU as u64;
            // Open files that start in this MDU (and empty files before it).
            while self.next < self.files.len() && self.files[self.next].start < hi {
                let f = self.open_file(&self.files[self.next])?;
                self.open_files.push(f);
                self.next += 1;
            }
            if !self.open_files.is_empty() {
                return Ok(Some(self.layout.first_user_mdu() + self.at as u64));
            }
            if self.next == self.files.len() {
                return Ok(None); // every selected file is done
            }
            self.at += 1; // nothing live in this MDU (deleted or unselected files)
        }
        Ok(None)
    }

    /// Every slot's shard (or `None`) of the MDU [`Unpacker::next_mdu`] named: decoded from
    /// any K good ones, each blob checked against its leaf, and written to the files.
    pub fn feed(&mut self, shards: Vec<Option<Vec<u8>>>) -> Result<()> {
        let i = self.at;
        let leaves = self
            .slab
            .user_leaves
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("no user MDU is needed"))?;
        let mdu = self.layout.first_user_mdu() + i as u64;
        let lo = i as u64 * PAYLOAD_BYTES_PER_MDU as u64;
        let hi = lo + PAYLOAD_BYTES_PER_MDU as u64;
        ensure!(
            shards.len() == self.layout.profile.slots(),
            "shard source returned {} slots, not {}",
            shards.len(),
            self.layout.profile.slots()
        );
        let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
        let (data, bad) = slab::decode_user_mdu(&self.code, mdu, leaves, &refs)?;
        let k = self.layout.profile.k();
        if refs[..k].iter().any(Option::is_none) || bad.iter().any(|&s| s < k) {
            self.report.reconstructed_mdus += 1;
        }
        if !bad.is_empty() {
            self.report.bad_slots.push((mdu, bad));
        }
        self.payload.clear();
        packing::unpack_append(&data, PAYLOAD_BYTES_PER_MDU, &mut self.payload)?;
        for f in self.open_files.iter_mut() {
            let start = f.rec.start.max(lo);
            let end = (f.rec.start + f.rec.len).min(hi);
            if start < end {
                let piece = &self.payload[(start - lo) as usize..(end - lo) as usize];
                f.hasher.update(piece);
                write_piece(f, piece)?;
            }
        }
        let (done, keep): (Vec<FileOut>, Vec<FileOut>) = std::mem::take(&mut self.open_files)
            .into_iter()
            .partition(|f| f.rec.start + f.rec.len <= hi);
        self.open_files = keep;
        for f in done {
            self.report.bytes += finish_file(f)?;
            self.report.files += 1;
        }
        self.at += 1;
        (self.progress)(PAYLOAD_BYTES_PER_MDU as u64);
        Ok(())
    }

    /// Finishes the files that are left (empty ones at the end) and reports.
    pub fn finish(mut self) -> Result<UnpackReport> {
        // Files with no bytes in any user MDU (empty files at the end).
        while self.next < self.files.len() {
            let f = self.open_file(&self.files[self.next])?;
            self.open_files.push(f);
            self.next += 1;
        }
        for f in std::mem::take(&mut self.open_files) {
            self.report.bytes += finish_file(f)?;
            self.report.files += 1;
        }
        Ok(self.report)
    }
}

fn write_piece(f: &mut FileOut, piece: &[u8]) -> Result<()> {
    match f.dec.as_mut() {
        Some(d) => {
            f.plain.clear();
            d.push(piece, &mut f.plain)
                .with_context(|| format!("{}: decryption failed", f.rec.path))?;
            f.file.write_all(&f.plain)?;
            f.written += f.plain.len() as u64;
        }
        None => {
            f.file.write_all(piece)?;
            f.written += piece.len() as u64;
        }
    }
    Ok(())
}

fn finish_file(mut f: FileOut) -> Result<u64> {
    ensure!(
        f.hasher.finalize().as_bytes() == &f.rec.blake3,
        "{}: stored bytes do not match the file table hash",
        f.rec.path
    );
    if let Some(d) = f.dec.take() {
        f.plain.clear();
        d.finish(&mut f.plain)
            .with_context(|| format!("{}: decryption failed", f.rec.path))?;
        f.file.write_all(&f.plain)?;
        f.written += f.plain.len() as u64;
    }
    f.file.flush()?;
    drop(f.file);
    fs::rename(&f.partial, &f.path)?;
    Ok(f.written)
}
