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
//!
//! The bytes move through seams, so the same code packs and restores natively and in a
//! browser worker:
//! ```text
//!  Input       a file to pack: name, length, mtime and a reader (a file natively, a Blob
//!              read with FileReaderSync in a worker)
//!  SlabFiles   where the packed slab's files live: DirFiles (the directory above),
//!              MemFiles (the same names in memory: a page's slab while it uploads)
//!  FileSink    where restored files go: DirSink (`<name>.partial`, renamed once verified),
//!              MemorySink (bytes in memory), SingleFile (one named output file)
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

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
        ensure!(
            self.witness_mdus < wasm_core::constants::MAX_MDUS_PER_DEAL as u64,
            "witness_mdus {} is beyond any deal",
            self.witness_mdus
        );
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
    dir.join(slot_name(s))
}

/// The name of slot `s`'s directory.
fn slot_name(s: usize) -> String {
    format!("slot-{s}")
}

/// The name (under a slab's root) of slot `s`'s shard of user MDU `mdu`.
pub fn shard_name(s: usize, mdu: u64) -> String {
    format!("slot-{s}/shard-{mdu:06}.bin")
}

/// The name (under a slab's root) of slot `s`'s copy of metadata MDU `mdu`.
pub fn mdu_name(s: usize, mdu: u64) -> String {
    format!("slot-{s}/mdu-{mdu:06}.bin")
}

/// Where a packed slab's files live, by name under the slab's root (`slot-0/slab.json`).
pub trait SlabFiles: Send + Sync {
    /// Writes (replaces) the file `name`.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// The file `name`; `None` when there is none.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// The names directly under the root (the slot directories), sorted.
    fn slots(&self) -> Result<Vec<String>>;
}

/// A slab directory (the layout above): files are written without a sync, since every
/// read verifies them and a torn one is rebuilt from the other slots or packed again.
#[derive(Clone, Debug)]
pub struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    /// The slab directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> DirFiles {
        DirFiles { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        safe_join(&self.root, name)
    }
}

impl SlabFiles for DirFiles {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(name)?;
        match fs::write(&p, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                fs::write(&p, bytes)
            }
            r => r,
        }
        .with_context(|| format!("writing {}", p.display()))
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(name)?;
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", p.display()))),
        }
    }

    fn slots(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).with_context(|| format!("{}", self.root.display()))? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
}

/// A slab's files as records of a [`MemStore`](crate::store::MemStore) under `prefix`: a
/// page's packed slab while it uploads (the durable [`Store`](crate::store::Store) seam is
/// asynchronous, packing is not).
#[derive(Clone)]
pub struct MemFiles {
    store: Arc<crate::store::MemStore>,
    prefix: String,
}

impl MemFiles {
    /// The slab under `prefix` of `store`.
    pub fn new(store: Arc<crate::store::MemStore>, prefix: impl Into<String>) -> MemFiles {
        MemFiles {
            store,
            prefix: prefix.into(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }
}

impl SlabFiles for MemFiles {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        Ok(self
            .store
            .put_now(&self.key(name), bytes, crate::store::Kind::Plain)?)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .store
            .read_now(&self.key(name), crate::store::Kind::Plain)?)
    }

    fn slots(&self) -> Result<Vec<String>> {
        Ok(self.store.list_now(&self.prefix)?)
    }
}

/// A file to pack: its name in the slab, length, modification time and bytes.
pub struct Input {
    /// Name in the slab (checked by the file table).
    pub name: String,
    /// Bytes the reader delivers; packing fails if it delivers another number.
    pub len: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Where the bytes come from.
    pub reader: Box<dyn Read + Send>,
    /// The native file it was opened from, so an interrupted job can open it again
    /// (`None`: a browser `Blob` or a stream, which only a new put can supply again).
    pub origin: Option<PathBuf>,
}

impl Input {
    /// An input over bytes in memory.
    pub fn bytes(name: impl Into<String>, bytes: Vec<u8>, mtime: i64) -> Input {
        Input {
            name: name.into(),
            len: bytes.len() as u64,
            mtime,
            reader: Box::new(std::io::Cursor::new(bytes)),
            origin: None,
        }
    }

    /// The native file `path`, named `name` (default: its file name).
    pub fn file(path: &Path, name: Option<String>) -> Result<Input> {
        let name = match name {
            Some(n) => n,
            None => slab_name(path)?,
        };
        let file = fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let md = file
            .metadata()
            .with_context(|| format!("{}", path.display()))?;
        ensure!(md.is_file(), "{} is not a file", path.display());
        Ok(Input {
            name,
            len: md.len(),
            mtime: mtime(path),
            reader: Box::new(file),
            origin: Some(path.to_path_buf()),
        })
    }
}

/// [`Input::file`] for each of `paths`, named `names` (default: their file names).
pub fn inputs(paths: &[PathBuf], names: Option<&[String]>) -> Result<Vec<Input>> {
    if let Some(n) = names {
        ensure!(n.len() == paths.len(), "one name per file");
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| Input::file(p, names.map(|n| n[i].clone())))
        .collect()
}

/// Writes each finished user MDU's shards straight into the slot directories.
/// Told about each user MDU once its shards are on disk (see [`PackOptions::on_mdu`]).
pub type MduReady<'a> = &'a (dyn Fn(u64, &EncodedMdu) + Sync);

struct FilesSink<'a> {
    files: &'a dyn SlabFiles,
    progress: &'a dyn Fn(u64),
    on_mdu: Option<MduReady<'a>>,
}

impl ShardSink for FilesSink<'_> {
    type Error = anyhow::Error;
    fn user_mdu(&mut self, mdu: u64, encoded: &EncodedMdu) -> Result<()> {
        for (s, shard) in encoded.shards.iter().enumerate() {
            self.files.write(&shard_name(s, mdu), shard)?;
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

/// Packs `inputs` into a new slab (or the next generation of `opts.base`) in `out`, one
/// directory per slot.
pub fn pack(
    settings: &KzgSettings,
    inputs: Vec<Input>,
    out: &dyn SlabFiles,
    opts: PackOptions<'_>,
) -> Result<PackReport> {
    ensure!(
        !inputs.is_empty() || !opts.delete.is_empty(),
        "no input files"
    );
    ensure!(
        opts.base.is_some() || opts.delete.is_empty(),
        "deleting needs a base slab"
    );
    let stored = inputs.iter().try_fold(0u64, |sum, i| {
        let len = if opts.root_secret.is_some() {
            aead::ciphertext_len(i.len)
        } else {
            i.len
        };
        sum.checked_add(len)
            .ok_or_else(|| anyhow::anyhow!("the inputs' total size overflows"))
    })?;
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
    let mut sink = FilesSink {
        files: out,
        progress: opts.progress,
        on_mdu: opts.on_mdu,
    };
    let key = opts
        .root_secret
        .map(|r| DealKey::derive(&r, opts.deal_id, KeyPurpose::FileData));
    let mut buf = vec![0u8; READ_CHUNK];
    let mut ct = Vec::with_capacity(READ_CHUNK + 2 * aead::CIPHERTEXT_CHUNK);
    for mut input in inputs {
        let name = input.name;
        let flags = if key.is_some() { FLAG_ENCRYPTED } else { 0 };
        builder.begin_file(&name, input.mtime, flags)?;
        let mut enc = key
            .as_ref()
            .map(|k| aead::Encryptor::new(k, &(opts.nonce)(), name.as_bytes()));
        let mut read = 0u64;
        loop {
            let n = input
                .reader
                .read(&mut buf)
                .with_context(|| format!("reading {name}"))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            // The capacity was planned from the announced lengths.
            ensure!(
                read <= input.len,
                "{name} grew while it was packed (more than {} bytes)",
                input.len
            );
            match enc.as_mut() {
                Some(e) => {
                    ct.clear();
                    e.push(&buf[..n], &mut ct);
                    builder.write(&ct, &mut sink)?;
                }
                None => builder.write(&buf[..n], &mut sink)?,
            }
        }
        ensure!(
            read == input.len,
            "{name} shrank while it was packed ({read} of {} bytes)",
            input.len
        );
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

fn write_metadata(out: &dyn SlabFiles, o: &SlabOutput, deal_id: u64) -> Result<()> {
    for s in 0..o.layout.profile.slots() {
        let meta = slot_meta(o, s, deal_id);
        for (j, m) in o.metadata.iter().enumerate() {
            out.write(&mdu_name(s, j as u64), m)?;
        }
        out.write(&format!("{}/manifest.blob", slot_name(s)), &o.manifest)?;
        let mut json = serde_json::to_vec_pretty(&meta)?;
        json.push(b'\n');
        // Last: a slot whose slab.json exists is complete.
        out.write(&format!("{}/slab.json", slot_name(s)), &json)?;
    }
    Ok(())
}

/// A slab opened for reading, with verified metadata.
pub struct OpenSlab {
    /// Where its shards are (`None`: a slab known only from verified metadata, whose
    /// shards are fetched from providers).
    pub files: Option<Arc<dyn SlabFiles>>,
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
    pub fn from_packed(files: Arc<dyn SlabFiles>, o: &SlabOutput, deal_id: u64) -> OpenSlab {
        OpenSlab {
            files: Some(files),
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

    /// Reads slot `s`'s shard of user MDU `mdu`, if it exists.
    pub fn read_shard(&self, s: usize, mdu: u64) -> Option<Vec<u8>> {
        if !self.present.get(s).copied().unwrap_or(false) {
            return None;
        }
        self.files
            .as_ref()?
            .read(&shard_name(s, mdu))
            .ok()
            .flatten()
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
    open_files(settings, Arc::new(DirFiles::new(dir)))
        .with_context(|| format!("slab directory {}", dir.display()))
}

/// [`open`] for a slab anywhere.
pub fn open_files(settings: &KzgSettings, files: Arc<dyn SlabFiles>) -> Result<OpenSlab> {
    let mut metas: Vec<(usize, SlotMeta)> = Vec::new();
    let mut problems = Vec::new();
    for name in files.slots()? {
        let Some(s) = name
            .strip_prefix("slot-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        match files
            .read(&format!("{name}/slab.json"))
            .and_then(|b| b.ok_or_else(|| anyhow::anyhow!("missing")))
            .and_then(|b| Ok(serde_json::from_slice::<SlotMeta>(&b)?))
        {
            Ok(m) if m.slot == s && m.format == DIR_FORMAT_VERSION => metas.push((s, m)),
            Ok(_) => problems.push(format!("slot {s}: slab.json names another slot or format")),
            Err(e) => problems.push(format!("slot {s}: unreadable slab.json: {e}")),
        }
    }
    metas.sort_by_key(|(s, _)| *s);
    let Some((_, first)) = metas.first() else {
        bail!("no slot directories with a readable slab.json");
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
        meta.user_mdus <= layout.user_capacity()
            && Some(meta.total_mdus) == (w + 1).checked_add(meta.user_mdus),
        "slab.json sizes are inconsistent"
    );
    for s in (0..slots).filter(|&s| present[s]) {
        match load_metadata(settings, &*files, s, &meta, &root) {
            Ok((mdu_roots, table, user_leaves)) => {
                return Ok(OpenSlab {
                    files: Some(files),
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

/// A file of the slab that must exist.
fn must_read(files: &dyn SlabFiles, name: &str) -> Result<Vec<u8>> {
    files
        .read(name)?
        .ok_or_else(|| anyhow::anyhow!("{name} is missing"))
}

fn load_metadata(
    settings: &KzgSettings,
    files: &dyn SlabFiles,
    s: usize,
    meta: &SlotMeta,
    root: &[u8; 48],
) -> Result<Metadata> {
    let manifest = must_read(files, &format!("{}/manifest.blob", slot_name(s)))?;
    let poly = Polynomial::from_blob(&manifest)?;
    let total = usize::try_from(meta.total_mdus).context("total_mdus")?;
    let mdu_roots = slab::manifest_roots(&poly, total)?;
    slab::check_manifest(settings, &mdu_roots, root).context("manifest.blob")?;
    let mut metadata = Vec::new();
    for j in 0..=meta.witness_mdus {
        let m = must_read(files, &mdu_name(s, j))?;
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
    let files = DirFiles::new(dir);
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
        if let Err(e) = load_metadata(settings, &files, s, &slab.meta, &slab.meta.manifest_root()?)
        {
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

/// Where restored files go. A file's bytes arrive in order between `start` and
/// `finish`; several files may be open at once (small files share an MDU). `finish` comes
/// only after every check of the file passed (leaves, BLAKE3, authentication): a sink
/// shows a file under its name only then. A file that is started and never finished
/// failed its checks or was cut short.
pub trait FileSink {
    /// Starts the file at `path` (a checked slab path).
    fn start(&mut self, path: &str) -> Result<()>;
    /// The next bytes of `path`.
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// `path` is complete and verified.
    fn finish(&mut self, path: &str) -> Result<()>;
}

/// Restores files under a directory: `<path>.partial` while being written, renamed to
/// `<path>` once verified.
pub struct DirSink {
    root: PathBuf,
    open: BTreeMap<String, (fs::File, PathBuf, PathBuf)>,
}

impl DirSink {
    /// Files go under `root` (created).
    pub fn new(root: impl Into<PathBuf>) -> Result<DirSink> {
        let root = root.into();
        fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        Ok(DirSink {
            root,
            open: BTreeMap::new(),
        })
    }
}

impl FileSink for DirSink {
    fn start(&mut self, path: &str) -> Result<()> {
        let target = safe_join(&self.root, path)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut partial = target.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = fs::File::create(&partial).with_context(|| format!("{}", partial.display()))?;
        self.open.insert(path.to_string(), (file, partial, target));
        Ok(())
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let (file, partial, _) = self
            .open
            .get_mut(path)
            .ok_or_else(|| anyhow::anyhow!("{path} was not started"))?;
        file.write_all(bytes)
            .with_context(|| format!("{}", partial.display()))
    }

    fn finish(&mut self, path: &str) -> Result<()> {
        let (file, partial, target) = self
            .open
            .remove(path)
            .ok_or_else(|| anyhow::anyhow!("{path} was not started"))?;
        close(file)?;
        fs::rename(&partial, &target).with_context(|| format!("{}", target.display()))
    }
}

/// Flushes and closes `f` (before it is renamed into place).
fn close(mut f: fs::File) -> Result<()> {
    f.flush()?;
    Ok(())
}

/// Restores one file of the slab into the file `out`: written beside it under a temporary
/// name and renamed over it once verified.
pub struct SingleFile {
    out: PathBuf,
    tmp: PathBuf,
    open: Option<(String, fs::File)>,
}

impl SingleFile {
    /// The verified file goes to `out`.
    pub fn new(out: impl Into<PathBuf>) -> SingleFile {
        let out = out.into();
        let mut tmp = out.clone().into_os_string();
        tmp.push(format!(".nilstore-partial-{:08x}", rand::random::<u32>()));
        SingleFile {
            out,
            tmp: PathBuf::from(tmp),
            open: None,
        }
    }
}

impl FileSink for SingleFile {
    fn start(&mut self, path: &str) -> Result<()> {
        ensure!(self.open.is_none(), "one file only, not also {path}");
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let file =
            fs::File::create(&self.tmp).with_context(|| format!("{}", self.tmp.display()))?;
        self.open = Some((path.to_string(), file));
        Ok(())
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        match &mut self.open {
            Some((p, f)) if p == path => f
                .write_all(bytes)
                .with_context(|| format!("{}", self.tmp.display())),
            _ => bail!("{path} was not started"),
        }
    }

    fn finish(&mut self, path: &str) -> Result<()> {
        match self.open.take() {
            Some((p, f)) if p == path => {
                close(f)?;
                fs::rename(&self.tmp, &self.out)
                    .with_context(|| format!("move into {}", self.out.display()))
            }
            _ => bail!("{path} was not started"),
        }
    }
}

impl Drop for SingleFile {
    fn drop(&mut self) {
        // A file that never finished leaves nothing behind.
        if self.open.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Restores files into memory (tests, and browsers handing bytes to a page).
#[derive(Debug, Default)]
pub struct MemorySink {
    partial: BTreeMap<String, Vec<u8>>,
    /// Verified files by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl FileSink for MemorySink {
    fn start(&mut self, path: &str) -> Result<()> {
        self.partial.insert(path.to_string(), Vec::new());
        Ok(())
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.partial
            .get_mut(path)
            .ok_or_else(|| anyhow::anyhow!("{path} was not started"))?
            .extend_from_slice(bytes);
        Ok(())
    }

    fn finish(&mut self, path: &str) -> Result<()> {
        let bytes = self
            .partial
            .remove(path)
            .ok_or_else(|| anyhow::anyhow!("{path} was not started"))?;
        self.files.insert(path.to_string(), bytes);
        Ok(())
    }
}

struct FileOut {
    rec: FileRecord,
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
    let mut sink = DirSink::new(out)?;
    unpack_from(
        slab,
        &mut sink,
        root_secret,
        &|_| true,
        &mut |mdu| Ok((0..slots).map(|s| slab.read_shard(s, mdu)).collect()),
        progress,
    )
}

/// [`unpack`] of the `select`ed live files into `sink`, with shards from `shards`: called
/// once per user MDU that a selected file touches, in order, it returns every slot's shard
/// of that MDU or `None` (any K good ones suffice; each blob is verified against its leaf
/// here).
pub fn unpack_from(
    slab: &OpenSlab,
    sink: &mut dyn FileSink,
    root_secret: Option<[u8; 32]>,
    select: &dyn Fn(&FileRecord) -> bool,
    shards: &mut dyn FnMut(u64) -> Result<Vec<Option<Vec<u8>>>>,
    progress: &dyn Fn(u64),
) -> Result<UnpackReport> {
    let mut u = Unpacker::new(slab, sink, root_secret, select, progress)?;
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
    sink: &'a mut dyn FileSink,
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
    /// Starts restoring the `select`ed live files of `slab` into `sink`.
    pub fn new(
        slab: &'a OpenSlab,
        sink: &'a mut dyn FileSink,
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
        Ok(Unpacker {
            slab,
            sink,
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

    /// Opens the next selected file.
    fn open_next(&mut self) -> Result<()> {
        let rec = self.files[self.next].clone();
        self.sink.start(&rec.path)?;
        let dec = rec
            .is_encrypted()
            .then(|| {
                self.key
                    .as_ref()
                    .map(|k| aead::Decryptor::new(k, rec.path.as_bytes()))
            })
            .flatten();
        self.open_files.push(FileOut {
            rec,
            hasher: blake3::Hasher::new(),
            dec,
            written: 0,
            plain: Vec::new(),
        });
        self.next += 1;
        Ok(())
    }

    /// The next user MDU whose shards are needed, or `None` when no selected file has
    /// bytes left (then [`Unpacker::finish`]). MDUs without live selected bytes are skipped.
    pub fn next_mdu(&mut self) -> Result<Option<u64>> {
        while self.at < self.slab.user_leaves.len() {
            let hi = (self.at as u64 + 1) * PAYLOAD_BYTES_PER_MDU as u64;
            // Open files that start in this MDU (and empty files before it).
            while self.next < self.files.len() && self.files[self.next].start < hi {
                self.open_next()?;
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
        let lo = i as u64 * PAYLOAD_BYTES_PER_MDU as u64;
        let hi = lo + PAYLOAD_BYTES_PER_MDU as u64;
        decode_payload(
            self.slab,
            &self.code,
            &self.layout,
            i,
            &shards,
            &mut self.report,
            &mut self.payload,
        )?;
        for f in self.open_files.iter_mut() {
            let start = f.rec.start.max(lo);
            let end = (f.rec.start + f.rec.len).min(hi);
            if start < end {
                let piece = &self.payload[(start - lo) as usize..(end - lo) as usize];
                f.hasher.update(piece);
                write_piece(&mut *self.sink, f, piece)?;
            }
        }
        let (done, keep): (Vec<FileOut>, Vec<FileOut>) = std::mem::take(&mut self.open_files)
            .into_iter()
            .partition(|f| f.rec.start + f.rec.len <= hi);
        self.open_files = keep;
        for f in done {
            self.report.bytes += finish_file(&mut *self.sink, f)?;
            self.report.files += 1;
        }
        self.at += 1;
        (self.progress)(PAYLOAD_BYTES_PER_MDU as u64);
        Ok(())
    }

    /// Finishes the files that are left (empty ones at the end) and reports.
    pub fn finish(mut self) -> Result<UnpackReport> {
        self.finish_left()
    }

    fn finish_left(&mut self) -> Result<UnpackReport> {
        // Files with no bytes in any user MDU (empty files at the end).
        while self.next < self.files.len() {
            self.open_next()?;
        }
        for f in std::mem::take(&mut self.open_files) {
            self.report.bytes += finish_file(&mut *self.sink, f)?;
            self.report.files += 1;
        }
        Ok(std::mem::take(&mut self.report))
    }
}

/// What a reader fetching shards asynchronously drives: [`Unpacker`] (whole files) or
/// [`RangeUnpacker`] (a byte range of one file).
pub trait Restore {
    /// The next user MDU whose shards are needed, or `None` when done.
    fn next_mdu(&mut self) -> Result<Option<u64>>;
    /// Every slot's shard (or `None`) of the MDU `next_mdu` named.
    fn feed(&mut self, shards: Vec<Option<Vec<u8>>>) -> Result<()>;
    /// Finishes what is left (after `next_mdu` returned `None`) and reports.
    fn finish_restore(&mut self) -> Result<UnpackReport>;
}

impl Restore for Unpacker<'_> {
    fn next_mdu(&mut self) -> Result<Option<u64>> {
        Unpacker::next_mdu(self)
    }
    fn feed(&mut self, shards: Vec<Option<Vec<u8>>>) -> Result<()> {
        Unpacker::feed(self, shards)
    }
    fn finish_restore(&mut self) -> Result<UnpackReport> {
        self.finish_left()
    }
}

/// Decodes one user MDU (index `i` among the user MDUs) from any K good shards, each blob
/// checked against its leaf, into its payload bytes; counts reconstructions and bad slots.
fn decode_payload(
    slab: &OpenSlab,
    code: &Code,
    layout: &Layout,
    i: usize,
    shards: &[Option<Vec<u8>>],
    report: &mut UnpackReport,
    payload: &mut Vec<u8>,
) -> Result<()> {
    let leaves = slab
        .user_leaves
        .get(i)
        .ok_or_else(|| anyhow::anyhow!("no user MDU is needed"))?;
    let mdu = layout.first_user_mdu() + i as u64;
    ensure!(
        shards.len() == layout.profile.slots(),
        "shard source returned {} slots, not {}",
        shards.len(),
        layout.profile.slots()
    );
    let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
    let (data, bad) = slab::decode_user_mdu(code, mdu, leaves, &refs)?;
    let k = layout.profile.k();
    if refs[..k].iter().any(Option::is_none) || bad.iter().any(|&s| s < k) {
        report.reconstructed_mdus += 1;
    }
    if !bad.is_empty() {
        report.bad_slots.push((mdu, bad));
    }
    payload.clear();
    packing::unpack_append(&data, PAYLOAD_BYTES_PER_MDU, payload)?;
    Ok(())
}

/// Reads bytes `offset..offset + len` of one live file (plaintext bytes when it is
/// encrypted) into a sink, fetching only the user MDUs that hold them: for an encrypted
/// file, the stream header and the AEAD chunks around the range, each chunk
/// authenticated on its own (see [`aead::RangeDecryptor`]). Every blob is checked against
/// its leaf as in a whole read; the file-wide BLAKE3 is not (it needs every byte).
pub struct RangeUnpacker<'a> {
    slab: &'a OpenSlab,
    sink: &'a mut dyn FileSink,
    code: Code,
    layout: Layout,
    rec: FileRecord,
    /// Stored byte ranges of the file (relative to its start) still to read, in order:
    /// the stream header, then the span (encrypted); the range itself (plaintext).
    want: Vec<(u64, u64)>,
    /// User MDUs (indices among the user MDUs) that hold `want`, ascending; `mdus[pos]`
    /// is the next one.
    mdus: Vec<u64>,
    pos: usize,
    key: Option<(DealKey, aead::ChunkSpan)>,
    header: Vec<u8>,
    dec: Option<aead::RangeDecryptor>,
    /// The range asked for, and the file offset of the next byte the reading gives.
    offset: u64,
    len: u64,
    at: u64,
    plain: Vec<u8>,
    payload: Vec<u8>,
    progress: &'a dyn Fn(u64),
    report: UnpackReport,
}

impl<'a> RangeUnpacker<'a> {
    /// Starts reading bytes `offset..offset + len` of the live file `path` (`len: None`:
    /// to its end) into `sink`. Errors name a range outside the file.
    pub fn new(
        slab: &'a OpenSlab,
        sink: &'a mut dyn FileSink,
        root_secret: Option<[u8; 32]>,
        path: &str,
        offset: u64,
        len: Option<u64>,
        progress: &'a dyn Fn(u64),
    ) -> Result<RangeUnpacker<'a>> {
        let code = slab.code()?;
        let layout = slab.meta.layout()?;
        let rec = slab
            .table
            .get(path)
            .filter(|r| !r.is_tombstone())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the slab has no file {path}"))?;
        let (size, key) = if rec.is_encrypted() {
            let secret = root_secret
                .ok_or_else(|| anyhow::anyhow!("{path} is encrypted: the deal key is needed"))?;
            let key = DealKey::derive(&secret, slab.meta.deal_id, KeyPurpose::FileData);
            (
                aead::plaintext_len(rec.len).with_context(|| format!("{path}: stored length"))?,
                Some(key),
            )
        } else {
            (rec.len, None)
        };
        let len = len.unwrap_or(size.saturating_sub(offset));
        ensure!(
            offset.checked_add(len).is_some_and(|end| end <= size),
            "bytes {offset}..+{len} are outside {path} ({size} bytes)"
        );
        let (want, key) = match key {
            Some(key) => {
                let span = aead::ChunkSpan::of(rec.len, offset, len)?;
                let want = vec![
                    (0, aead::HEADER_LEN as u64),
                    (span.stored_start, span.stored_start + span.stored_len),
                ];
                (want, Some((key, span)))
            }
            None if len == 0 => (Vec::new(), None),
            None => (vec![(offset, offset + len)], None),
        };
        let per = PAYLOAD_BYTES_PER_MDU as u64;
        let mut mdus: Vec<u64> = want
            .iter()
            .flat_map(|&(lo, hi)| ((rec.start + lo) / per)..=((rec.start + hi - 1) / per))
            .collect();
        mdus.dedup();
        sink.start(&rec.path)?;
        Ok(RangeUnpacker {
            slab,
            sink,
            code,
            layout,
            at: if key.is_some() { 0 } else { offset },
            rec,
            want,
            mdus,
            pos: 0,
            key,
            header: Vec::with_capacity(aead::HEADER_LEN),
            dec: None,
            offset,
            len,
            plain: Vec::new(),
            payload: Vec::with_capacity(PAYLOAD_BYTES_PER_MDU),
            progress,
            report: UnpackReport::default(),
        })
    }

    /// User MDUs this read fetches.
    pub fn mdus(&self) -> usize {
        self.mdus.len()
    }

    /// Writes the plaintext in `plain` (file offsets from `self.at`) that falls into the
    /// range asked for.
    fn emit(&mut self, plain_start: u64, plain: &[u8]) -> Result<()> {
        let end = self.offset + self.len;
        let lo = plain_start.max(self.offset);
        let hi = (plain_start + plain.len() as u64).min(end);
        if lo < hi {
            let piece = &plain[(lo - plain_start) as usize..(hi - plain_start) as usize];
            self.sink.write(&self.rec.path, piece)?;
            self.report.bytes += piece.len() as u64;
        }
        Ok(())
    }
}

impl Restore for RangeUnpacker<'_> {
    fn next_mdu(&mut self) -> Result<Option<u64>> {
        Ok(self
            .mdus
            .get(self.pos)
            .map(|i| self.layout.first_user_mdu() + i))
    }

    fn feed(&mut self, shards: Vec<Option<Vec<u8>>>) -> Result<()> {
        let i = *self
            .mdus
            .get(self.pos)
            .ok_or_else(|| anyhow::anyhow!("no user MDU is needed"))?;
        decode_payload(
            self.slab,
            &self.code,
            &self.layout,
            i as usize,
            &shards,
            &mut self.report,
            &mut self.payload,
        )?;
        // This MDU's part of the file, in the file's stored coordinates.
        let per = PAYLOAD_BYTES_PER_MDU as u64;
        let (lo, hi) = (i * per, (i + 1) * per);
        let payload = std::mem::take(&mut self.payload);
        for (n, &(a, b)) in self.want.clone().iter().enumerate() {
            let start = (self.rec.start + a).max(lo);
            let end = (self.rec.start + b).min(hi);
            if start >= end {
                continue;
            }
            let piece = &payload[(start - lo) as usize..(end - lo) as usize];
            match (&self.key, n) {
                (None, _) => {
                    self.emit(self.at, piece)?;
                    self.at += piece.len() as u64;
                }
                (Some(_), 0) => self.header.extend_from_slice(piece),
                (Some((key, span)), _) => {
                    if self.dec.is_none() {
                        self.dec = Some(
                            aead::RangeDecryptor::new(
                                key,
                                self.rec.path.as_bytes(),
                                &self.header,
                                *span,
                            )
                            .with_context(|| format!("{}: decryption failed", self.rec.path))?,
                        );
                        self.at = span.plain_start;
                    }
                    let mut plain = std::mem::take(&mut self.plain);
                    plain.clear();
                    if let Some(dec) = self.dec.as_mut() {
                        dec.push(piece, &mut plain)
                            .with_context(|| format!("{}: decryption failed", self.rec.path))?;
                    }
                    self.emit(self.at, &plain)?;
                    self.at += plain.len() as u64;
                    self.plain = plain;
                }
            }
        }
        self.payload = payload;
        self.pos += 1;
        (self.progress)(PAYLOAD_BYTES_PER_MDU as u64);
        Ok(())
    }

    fn finish_restore(&mut self) -> Result<UnpackReport> {
        ensure!(self.pos == self.mdus.len(), "the range read stopped early");
        if let Some(dec) = self.dec.take() {
            dec.finish()
                .with_context(|| format!("{}: decryption failed", self.rec.path))?;
        }
        ensure!(
            self.report.bytes == self.len,
            "{}: {} of {} bytes read",
            self.rec.path,
            self.report.bytes,
            self.len
        );
        self.sink.finish(&self.rec.path)?;
        self.report.files = 1;
        Ok(std::mem::take(&mut self.report))
    }
}

fn write_piece(sink: &mut dyn FileSink, f: &mut FileOut, piece: &[u8]) -> Result<()> {
    match f.dec.as_mut() {
        Some(d) => {
            f.plain.clear();
            d.push(piece, &mut f.plain)
                .with_context(|| format!("{}: decryption failed", f.rec.path))?;
            sink.write(&f.rec.path, &f.plain)?;
            f.written += f.plain.len() as u64;
        }
        None => {
            sink.write(&f.rec.path, piece)?;
            f.written += piece.len() as u64;
        }
    }
    Ok(())
}

fn finish_file(sink: &mut dyn FileSink, mut f: FileOut) -> Result<u64> {
    ensure!(
        f.hasher.finalize().as_bytes() == &f.rec.blake3,
        "{}: stored bytes do not match the file table hash",
        f.rec.path
    );
    if let Some(d) = f.dec.take() {
        f.plain.clear();
        d.finish(&mut f.plain)
            .with_context(|| format!("{}: decryption failed", f.rec.path))?;
        sink.write(&f.rec.path, &f.plain)?;
        f.written += f.plain.len() as u64;
    }
    sink.finish(&f.rec.path)?;
    Ok(f.written)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Deterministic bytes of `len`.
    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn pack_into(
        files: &dyn SlabFiles,
        inputs: Vec<Input>,
        secret: Option<[u8; 32]>,
    ) -> Result<PackReport> {
        let mut n = 0u8;
        let mut nonce = || {
            n += 1;
            [n; aead::STREAM_NONCE_LEN]
        };
        pack(
            KzgSettings::ethereum(),
            inputs,
            files,
            PackOptions {
                profile: Profile::new(2, 1)?,
                root_secret: secret,
                deal_id: 7,
                capacity_user_mdus: Some(2),
                nonce: &mut nonce,
                progress: &|_| {},
                base: None,
                delete: Vec::new(),
                on_mdu: None,
            },
        )
    }

    /// The same slab packs into a directory and into a client store (the browser's place
    /// for it): byte-identical files under the same names, and both open, verify and
    /// restore (into memory) the inputs exactly; a file split across MDUs and an empty
    /// file included.
    #[test]
    fn slabs_pack_into_any_files_and_restore_into_any_sink() {
        let tmp = tempfile::tempdir().unwrap();
        let big = bytes(PAYLOAD_BYTES_PER_MDU + 12_345, 3);
        let small = bytes(1000, 9);
        let inputs = || {
            vec![
                Input::bytes("big.bin", big.clone(), 1),
                Input::bytes("dir/small.txt", small.clone(), 2),
                Input::bytes("empty", Vec::new(), 3),
            ]
        };
        let secret = Some([5u8; 32]);
        let dir = Arc::new(DirFiles::new(tmp.path().join("dir")));
        let a = pack_into(&*dir, inputs(), secret).unwrap();
        let store = Arc::new(crate::store::MemStore::default());
        let in_store = Arc::new(MemFiles::new(store, "uploads/job/slab"));
        let b = pack_into(&*in_store, inputs(), secret).unwrap();
        assert_eq!(a.output.manifest_root, b.output.manifest_root);
        let names = dir.slots().unwrap();
        assert_eq!(names, vec!["slot-0", "slot-1", "slot-2"]);
        assert_eq!(in_store.slots().unwrap(), names);
        let first = a.output.layout.first_user_mdu();
        for s in 0..3 {
            for name in [
                shard_name(s, first),
                shard_name(s, first + 1),
                mdu_name(s, 0),
                format!("slot-{s}/slab.json"),
            ] {
                let x = dir.read(&name).unwrap().expect("in the directory");
                assert_eq!(in_store.read(&name).unwrap(), Some(x), "{name}");
            }
        }
        for files in [dir.clone() as Arc<dyn SlabFiles>, in_store] {
            let slab = open_files(KzgSettings::ethereum(), files).unwrap();
            assert!(slab.problems.is_empty(), "{:?}", slab.problems);
            let mut sink = MemorySink::default();
            let slots = 3;
            let r = unpack_from(
                &slab,
                &mut sink,
                secret,
                &|_| true,
                &mut |mdu| Ok((0..slots).map(|s| slab.read_shard(s, mdu)).collect()),
                &|_| {},
            )
            .unwrap();
            assert_eq!(r.files, 3);
            assert_eq!(sink.files["big.bin"], big);
            assert_eq!(sink.files["dir/small.txt"], small);
            assert_eq!(sink.files["empty"], Vec::<u8>::new());
        }
    }

    /// A slab.json with sizes from outside any deal (found by the slab.json fuzzer: the
    /// size check and the witness capacity overflowed) is refused with a reason; the
    /// directory is left as it was.
    #[test]
    fn a_slab_json_with_impossible_sizes_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirFiles::new(tmp.path());
        pack_into(&dir, vec![Input::bytes("a", bytes(100, 1), 0)], None).unwrap();
        let good: SlotMeta =
            serde_json::from_slice(&dir.read("slot-0/slab.json").unwrap().unwrap()).unwrap();
        assert!(open_files(KzgSettings::ethereum(), Arc::new(dir.clone())).is_ok());
        let cases = [
            (u64::MAX, good.user_mdus, "beyond any deal"),
            (4095, good.user_mdus, "inconsistent"),
            (good.witness_mdus, u64::MAX, "inconsistent"),
            (
                good.witness_mdus,
                u64::MAX - good.witness_mdus,
                "inconsistent",
            ),
        ];
        for (witness_mdus, user_mdus, why) in cases {
            let bad = SlotMeta {
                witness_mdus,
                user_mdus,
                total_mdus: u64::MAX,
                ..good.clone()
            };
            for s in 0..3 {
                let meta = SlotMeta {
                    slot: s,
                    ..bad.clone()
                };
                dir.write(
                    &format!("slot-{s}/slab.json"),
                    &serde_json::to_vec(&meta).unwrap(),
                )
                .unwrap();
            }
            let e = open_files(KzgSettings::ethereum(), Arc::new(dir.clone()))
                .err()
                .expect("refused");
            assert!(
                format!("{e:#}").contains(why),
                "{witness_mdus} {user_mdus}: {e:#}"
            );
        }
    }

    /// Reads `offset..+len` of `path` through a [`RangeUnpacker`] with shards from the
    /// slab's own files: the bytes, and how many user MDUs were fetched.
    fn read_range(
        slab: &OpenSlab,
        secret: Option<[u8; 32]>,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(Vec<u8>, usize)> {
        let mut sink = MemorySink::default();
        let mdus = {
            let mut r = RangeUnpacker::new(slab, &mut sink, secret, path, offset, len, &|_| {})?;
            let mut fetched = 0;
            while let Some(mdu) = r.next_mdu()? {
                r.feed((0..3).map(|s| slab.read_shard(s, mdu)).collect())?;
                fetched += 1;
            }
            assert_eq!(fetched, r.mdus());
            r.finish_restore()?;
            fetched
        };
        Ok((sink.files.remove(path).unwrap_or_default(), mdus))
    }

    /// Range reads of a file spanning two MDUs, encrypted and not: exactly the bytes
    /// asked for, from only the MDUs that hold them (plus the header's, encrypted); a
    /// range outside the file, a missing or wrong key are refused.
    #[test]
    fn range_reads_fetch_only_what_they_need() {
        let tmp = tempfile::tempdir().unwrap();
        let big = bytes(PAYLOAD_BYTES_PER_MDU + 300_000, 4);
        let per = PAYLOAD_BYTES_PER_MDU as u64;
        for (name, secret) in [("plain", None), ("sealed", Some([6u8; 32]))] {
            let dir = DirFiles::new(tmp.path().join(name));
            let inputs = vec![
                Input::bytes("small.txt", bytes(5000, 1), 0),
                Input::bytes("big.bin", big.clone(), 0),
            ];
            pack_into(&dir, inputs, secret).unwrap();
            let slab = open_files(KzgSettings::ethereum(), Arc::new(dir)).unwrap();
            let n = big.len() as u64;
            for (offset, len) in [
                (0, Some(1)),
                (0, None),
                (5, Some(70_000)),
                (per - 10_000, Some(20_000)),
                (per + 1000, Some(65_536)),
                (n - 1, Some(1)),
                (n, Some(0)),
                (123_456, Some(0)),
            ] {
                let (got, mdus) = read_range(&slab, secret, "big.bin", offset, len).unwrap();
                let end = len.map_or(n, |l| offset + l);
                assert_eq!(
                    got,
                    big[offset as usize..end as usize],
                    "{name} {offset}..{end}"
                );
                assert!(mdus <= 2, "{name} {offset}..{end}: {mdus} MDUs");
            }
            // Deep in the second MDU: a plaintext read fetches that MDU only; an encrypted
            // one also the first (the stream header).
            let (_, mdus) = read_range(&slab, secret, "big.bin", per + 200_000, Some(10)).unwrap();
            assert_eq!(mdus, if secret.is_some() { 2 } else { 1 }, "{name}");
            for (offset, len) in [(n, Some(1)), (0, Some(n + 1)), (u64::MAX, Some(2))] {
                let e = read_range(&slab, secret, "big.bin", offset, len).unwrap_err();
                assert!(format!("{e:#}").contains("outside"), "{name}: {e:#}");
            }
            assert!(read_range(&slab, secret, "nope", 0, None).is_err());
        }
        let slab = open_files(
            KzgSettings::ethereum(),
            Arc::new(DirFiles::new(tmp.path().join("sealed"))),
        )
        .unwrap();
        let e = read_range(&slab, None, "big.bin", 0, Some(10)).unwrap_err();
        assert!(format!("{e:#}").contains("deal key"), "{e:#}");
        let e = read_range(&slab, Some([7u8; 32]), "big.bin", per + 1, Some(10)).unwrap_err();
        assert!(format!("{e:#}").contains("decryption failed"), "{e:#}");
    }

    /// A reader that delivers more or fewer bytes than announced fails the pack (the
    /// capacity was planned from the announced length), naming the file.
    #[test]
    fn an_input_that_changes_length_while_packed_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for (announced, why) in [(10u64, "grew"), (5000, "shrank")] {
            let mut input = Input::bytes("f", bytes(1000, 1), 0);
            input.len = announced;
            let e = pack_into(&DirFiles::new(tmp.path().join(why)), vec![input], None)
                .err()
                .expect("refused");
            assert!(format!("{e:#}").contains(&format!("f {why}")), "{e:#}");
        }
    }

    /// A single-file sink shows the file under its name only when it is finished; a file
    /// that is started and dropped unfinished leaves nothing behind, and the previous
    /// content of the output stays.
    #[test]
    fn a_single_file_appears_only_when_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("sub/out.bin");
        let mut sink = SingleFile::new(&out);
        sink.start("a").unwrap();
        sink.write("a", b"hello ").unwrap();
        assert!(sink.write("b", b"x").is_err(), "another file");
        sink.write("a", b"world").unwrap();
        assert!(!out.exists());
        sink.finish("a").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello world");
        let mut sink = SingleFile::new(&out);
        sink.start("a").unwrap();
        sink.write("a", b"partial").unwrap();
        drop(sink);
        assert_eq!(fs::read(&out).unwrap(), b"hello world");
        let left: Vec<_> = fs::read_dir(tmp.path().join("sub")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the finished file remains");
    }
}
