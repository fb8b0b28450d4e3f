//! The provider's crash-safe shard store: a redb index plus one file per stored shard.
//!
//! A shard (one slot's blobs of one MDU) is written to `tmp/<name>.part`, fsynced, renamed
//! to `shards/<deal>/<name>` (the name carries the content hash, so a replacement never
//! overwrites the old file) and the directory fsynced; only then does one redb transaction
//! point the index at it. `kill -9` at any point leaves the index at either the old or the
//! new shard, both complete; [`Store::open`] removes leftovers (temporary files, files no
//! index entry names) and drops index entries whose file is missing or wrong.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use chain_light::bytes::H256;
use nilstore_net::proto::{Leaf, BLOB_BYTES};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// `(deal, slot, mdu)` → encoded [`ShardMeta`]: the shard reads and proofs use.
const SHARDS: TableDefinition<(u64, u32, u32), &[u8]> = TableDefinition::new("shards");

/// `(deal, slot, mdu)` → encoded [`ShardMeta`] of a later generation that replaces a
/// committed shard once the chain commits that generation ([`Store::promote`]). Until then
/// the committed shard keeps being served and proven.
const STAGED: TableDefinition<(u64, u32, u32), &[u8]> = TableDefinition::new("staged");

/// Largest encoded index entry read back.
const MAX_META: usize = 1 << 20;

/// Where a shard stands with the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardState {
    /// Verified and stored; the deal's manifest does not include it yet.
    Pending,
    /// The committed manifest includes this MDU root: it must be kept and proven.
    Committed,
}

/// The index entry of one stored shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Deal generation the upload targeted.
    pub generation: u64,
    /// Every leaf of the MDU.
    pub leaves: Vec<Leaf>,
    /// `mdu_root_fr` of the leaves.
    pub mdu_root: H256,
    /// Blobs in the file.
    pub blobs: u32,
    /// File name under `shards/<deal>/`.
    pub file: String,
    /// BLAKE3 of the whole file (checked on recovery).
    pub file_blake3: H256,
    /// Chain status.
    pub state: ShardState,
    /// When stored (ms since the Unix epoch, from the caller's clock).
    pub stored_ms: u64,
}

/// Outcome of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// Stored (new or replaced a pending shard).
    Stored,
    /// The identical shard was already stored.
    Unchanged,
    /// A later generation of a committed shard: kept aside until the chain commits it.
    Staged,
}

/// What recovery found and repaired at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Temporary files removed.
    pub temp_removed: usize,
    /// Files no index entry names, removed.
    pub orphans_removed: usize,
    /// Index entries whose file was missing or corrupt, dropped.
    pub entries_dropped: usize,
}

/// The store.
pub struct Store {
    root: PathBuf,
    db: Database,
}

/// Why a put was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Other content is already committed for this MDU.
    #[error("another shard is committed for deal {deal} slot {slot} MDU {mdu}")]
    Committed {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// MDU.
        mdu: u32,
    },
    /// Disk or database failure.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

impl Store {
    /// Opens (or creates) the store under `root` and recovers from any interrupted write.
    pub fn open(root: &Path) -> Result<(Store, Recovery)> {
        for d in ["tmp", "shards"] {
            fs::create_dir_all(root.join(d))
                .with_context(|| format!("create {}", root.join(d).display()))?;
        }
        let path = root.join("index.redb");
        if !path.exists() {
            // A new index is made whole under another name first: redb's first write is not
            // atomic, and a crash there must not leave an unopenable index.
            let fresh = root.join("index.redb.new");
            let _ = fs::remove_file(&fresh);
            {
                let db = Database::create(&fresh).context("create index.redb")?;
                let w = db.begin_write()?;
                w.open_table(SHARDS)?;
                w.open_table(STAGED)?;
                w.commit()?;
            }
            fs::File::open(&fresh)?.sync_all()?;
            fs::rename(&fresh, &path).context("install index.redb")?;
            sync_dir(root)?;
        }
        let db = Database::create(&path).context("open index.redb")?;
        {
            // Indexes made before a table existed gain it (one atomic transaction).
            let w = db.begin_write()?;
            w.open_table(SHARDS)?;
            w.open_table(STAGED)?;
            w.commit()?;
        }
        let store = Store {
            root: root.to_path_buf(),
            db,
        };
        let rec = store.recover()?;
        Ok((store, rec))
    }

    fn deal_dir(&self, deal: u64) -> PathBuf {
        self.root.join("shards").join(deal.to_string())
    }

    /// Stores a verified shard (`blobs` concatenated, each [`BLOB_BYTES`]). Idempotent for
    /// identical content; replaces a different pending shard of the same generation; stages
    /// a later generation ([`Store::promote`]) beside whatever is stored, committed or not
    /// (a later generation is authorized only once the chain committed the earlier one, so
    /// an earlier pending shard may be committed content not marked yet); refuses other
    /// content for a committed one.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        (deal, slot, mdu): (u64, u32, u32),
        generation: u64,
        leaves: &[Leaf],
        mdu_root: H256,
        data: &[u8],
        now_ms: u64,
    ) -> Result<Put, PutError> {
        if data.is_empty() || !data.len().is_multiple_of(BLOB_BYTES) {
            return Err(PutError::Io(anyhow::anyhow!(
                "shard of {} bytes is not whole blobs",
                data.len()
            )));
        }
        let file_blake3 = H256(*blake3::hash(data).as_bytes());
        let mut old = self.meta(deal, slot, mdu)?;
        let mut staging = false;
        if let Some(o) = &old {
            if o.file_blake3 == file_blake3 && o.leaves == leaves {
                return Ok(Put::Unchanged);
            }
            if o.state == ShardState::Committed && generation <= o.generation {
                return Err(PutError::Committed { deal, slot, mdu });
            }
            if generation > o.generation {
                // A later generation: staged beside the stored shard.
                staging = true;
                old = self.staged(deal, slot, mdu)?;
                if let Some(st) = &old {
                    if st.file_blake3 == file_blake3 && st.leaves == leaves {
                        return Ok(Put::Unchanged);
                    }
                }
            }
        }
        let name = format!("{slot}-{mdu}-{}.shard", hex::encode(&file_blake3.0[..8]));
        let dir = self.deal_dir(deal);
        fs::create_dir_all(&dir).context("create the deal directory")?;
        // 1. The bytes, durable under a temporary name.
        let tmp = self.root.join("tmp").join(format!("{deal}-{name}.part"));
        {
            let mut f = fs::File::create(&tmp).context("create a temporary shard file")?;
            f.write_all(data).context("write the shard")?;
            f.sync_all().context("fsync the shard")?;
        }
        // 2. Atomically in place, and the rename durable.
        let dst = dir.join(&name);
        fs::rename(&tmp, &dst).context("rename the shard into place")?;
        sync_dir(&dir)?;
        // 3. The index names it.
        let meta = ShardMeta {
            generation,
            leaves: leaves.to_vec(),
            mdu_root,
            blobs: (data.len() / BLOB_BYTES) as u32,
            file: name.clone(),
            file_blake3,
            state: ShardState::Pending,
            stored_ms: now_ms,
        };
        let w = self.db.begin_write().map_err(anyhow::Error::from)?;
        {
            let mut t = w
                .open_table(if staging { STAGED } else { SHARDS })
                .map_err(anyhow::Error::from)?;
            t.insert(
                (deal, slot, mdu),
                chain_light::codec::encode(&meta).as_slice(),
            )
            .map_err(anyhow::Error::from)?;
        }
        w.commit().map_err(anyhow::Error::from)?;
        // 4. The replaced file is garbage now (recovery would remove it too).
        if let Some(old) = old {
            if old.file != name {
                let _ = fs::remove_file(dir.join(old.file));
            }
        }
        Ok(if staging { Put::Staged } else { Put::Stored })
    }

    /// The staged (next-generation) entry of a shard.
    pub fn staged(&self, deal: u64, slot: u32, mdu: u32) -> Result<Option<ShardMeta>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(STAGED)?;
        match t.get((deal, slot, mdu))? {
            Some(v) => Ok(Some(chain_light::codec::decode(v.value(), MAX_META)?)),
            None => Ok(None),
        }
    }

    /// The chain committed `generation` of `deal`: staged shards of that generation replace
    /// the committed ones (and become committed); staged shards of older generations were
    /// abandoned and are removed. One index transaction; replaced files are deleted after
    /// it. Returns the shards promoted.
    pub fn promote(&self, deal: u64, generation: u64) -> Result<usize> {
        let mut garbage = Vec::new();
        let mut promoted = 0;
        let w = self.db.begin_write()?;
        {
            let mut staged = w.open_table(STAGED)?;
            let mut main = w.open_table(SHARDS)?;
            let mut entries = Vec::new();
            for e in staged.range((deal, 0, 0)..=(deal, u32::MAX, u32::MAX))? {
                let (k, v) = e?;
                entries.push((
                    k.value(),
                    chain_light::codec::decode::<ShardMeta>(v.value(), MAX_META)?,
                ));
            }
            for (k, m) in entries {
                if m.generation > generation {
                    continue; // still ahead of the chain
                }
                staged.remove(k)?;
                if m.generation < generation {
                    garbage.push(m.file);
                    continue;
                }
                if let Some(old) = main.get(k)? {
                    let old: ShardMeta = chain_light::codec::decode(old.value(), MAX_META)?;
                    if old.file != m.file {
                        garbage.push(old.file);
                    }
                }
                let m = ShardMeta {
                    state: ShardState::Committed,
                    ..m
                };
                main.insert(k, chain_light::codec::encode(&m).as_slice())?;
                promoted += 1;
            }
        }
        w.commit()?;
        let dir = self.deal_dir(deal);
        for f in garbage {
            let _ = fs::remove_file(dir.join(f));
        }
        Ok(promoted)
    }

    /// The index entry of a shard.
    pub fn meta(&self, deal: u64, slot: u32, mdu: u32) -> Result<Option<ShardMeta>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SHARDS)?;
        match t.get((deal, slot, mdu))? {
            Some(v) => Ok(Some(chain_light::codec::decode(v.value(), MAX_META)?)),
            None => Ok(None),
        }
    }

    /// Every stored shard of a deal, in (slot, mdu) order.
    pub fn deal_shards(&self, deal: u64) -> Result<Vec<((u32, u32), ShardMeta)>> {
        self.deal_entries(SHARDS, deal)
    }

    /// Every staged (next-generation) shard of a deal, in (slot, mdu) order.
    pub fn deal_staged(&self, deal: u64) -> Result<Vec<((u32, u32), ShardMeta)>> {
        self.deal_entries(STAGED, deal)
    }

    fn deal_entries(
        &self,
        table: TableDefinition<(u64, u32, u32), &[u8]>,
        deal: u64,
    ) -> Result<Vec<((u32, u32), ShardMeta)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(table)?;
        let mut out = Vec::new();
        for e in t.range((deal, 0, 0)..=(deal, u32::MAX, u32::MAX))? {
            let (k, v) = e?;
            let (_, slot, mdu) = k.value();
            out.push((
                (slot, mdu),
                chain_light::codec::decode(v.value(), MAX_META)?,
            ));
        }
        Ok(out)
    }

    /// The deals with stored shards.
    pub fn deals(&self) -> Result<Vec<u64>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SHARDS)?;
        let mut out: Vec<u64> = Vec::new();
        for e in t.iter()? {
            let (k, _) = e?;
            let d = k.value().0;
            if out.last() != Some(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Marks shards as committed (the chain's manifest includes them).
    pub fn set_committed(&self, deal: u64, keys: &[(u32, u32)]) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(SHARDS)?;
            for &(slot, mdu) in keys {
                let meta = match t.get((deal, slot, mdu))? {
                    Some(v) => chain_light::codec::decode::<ShardMeta>(v.value(), MAX_META)?,
                    None => continue,
                };
                if meta.state != ShardState::Committed {
                    let meta = ShardMeta {
                        state: ShardState::Committed,
                        ..meta
                    };
                    t.insert(
                        (deal, slot, mdu),
                        chain_light::codec::encode(&meta).as_slice(),
                    )?;
                }
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Reads `len` bytes at `offset` of a stored shard.
    pub fn read(
        &self,
        deal: u64,
        slot: u32,
        mdu: u32,
        offset: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>> {
        let Some(meta) = self.meta(deal, slot, mdu)? else {
            return Ok(None);
        };
        let size = u64::from(meta.blobs) * BLOB_BYTES as u64;
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            bail!("read of {len} bytes at {offset} beyond the shard's {size}");
        }
        let mut f = fs::File::open(self.deal_dir(deal).join(&meta.file))
            .with_context(|| format!("open shard {deal}/{}", meta.file))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(Some(buf))
    }

    /// Removes uploads of `deal` the chain never committed: pending or staged shards
    /// stored before `cutoff_ms` of a generation beyond the chain's (`committed`, `None`
    /// before the first commit). A pending shard of the committed generation or an earlier
    /// one is kept: an append keeps the shards of unchanged MDUs, so it may be committed
    /// content not marked yet. Committed shards are never touched. Index first, then files
    /// (a crash in between leaves orphans that recovery removes). Returns the entries
    /// removed.
    pub fn expire_uncommitted(
        &self,
        deal: u64,
        committed: Option<u64>,
        cutoff_ms: u64,
    ) -> Result<usize> {
        let stale = |m: &ShardMeta| {
            m.state == ShardState::Pending
                && m.stored_ms < cutoff_ms
                && committed.is_none_or(|g| m.generation > g)
        };
        // Look first under a read transaction: most rounds find nothing, and a write
        // transaction would commit (and sync) the index for nothing.
        let mut gone = Vec::new();
        {
            let r = self.db.begin_read()?;
            // Staged shards (a later generation beside a committed one) are pending too.
            for table in [SHARDS, STAGED] {
                let t = r.open_table(table)?;
                for e in t.range((deal, 0, 0)..=(deal, u32::MAX, u32::MAX))? {
                    let (k, v) = e?;
                    let m: ShardMeta = chain_light::codec::decode(v.value(), MAX_META)?;
                    if stale(&m) {
                        gone.push((table, k.value(), m.file));
                    }
                }
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let w = self.db.begin_write()?;
        for (table, k, _) in &gone {
            w.open_table(*table)?.remove(*k)?;
        }
        w.commit()?;
        let dir = self.deal_dir(deal);
        for (_, _, f) in &gone {
            let _ = fs::remove_file(dir.join(f));
        }
        Ok(gone.len())
    }

    /// Removes a deal's shards (index first, then files: a crash in between leaves orphans
    /// that recovery removes).
    pub fn remove_deal(&self, deal: u64) -> Result<usize> {
        let keys: Vec<(u32, u32)> = self
            .deal_shards(deal)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(SHARDS)?;
            for (slot, mdu) in &keys {
                t.remove((deal, *slot, *mdu))?;
            }
            let mut st = w.open_table(STAGED)?;
            let staged: Vec<(u64, u32, u32)> = st
                .range((deal, 0, 0)..=(deal, u32::MAX, u32::MAX))?
                .map(|e| e.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for k in staged {
                st.remove(k)?;
            }
        }
        w.commit()?;
        let dir = self.deal_dir(deal);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        Ok(keys.len())
    }

    /// Bytes stored (from the index).
    pub fn bytes_stored(&self) -> Result<u64> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SHARDS)?;
        let mut total = 0u64;
        for e in t.iter()? {
            let (_, v) = e?;
            let m: ShardMeta = chain_light::codec::decode(v.value(), MAX_META)?;
            total += u64::from(m.blobs) * BLOB_BYTES as u64;
        }
        Ok(total)
    }

    /// Re-hashes every stored file (committed and staged); returns the shards whose bytes no
    /// longer match.
    pub fn scrub(&self) -> Result<Vec<(u64, u32, u32)>> {
        let r = self.db.begin_read()?;
        let mut bad = Vec::new();
        for table in [SHARDS, STAGED] {
            let t = r.open_table(table)?;
            for e in t.iter()? {
                let (k, v) = e?;
                let (deal, slot, mdu) = k.value();
                let m: ShardMeta = chain_light::codec::decode(v.value(), MAX_META)?;
                let ok = fs::read(self.deal_dir(deal).join(&m.file))
                    .is_ok_and(|b| blake3::hash(&b).as_bytes() == &m.file_blake3.0);
                if !ok {
                    bad.push((deal, slot, mdu));
                }
            }
        }
        Ok(bad)
    }

    /// Drops the entries of shard `key` (committed and staged) whose file no longer
    /// matches its hash — checked again here, so a shard replaced since a [`Store::scrub`]
    /// stays — and deletes their files; returns how many went. A corrupt shard is then
    /// missing: not served (a reader's verification would refuse it anyway) and not proven
    /// (a missed challenge instead of a wrong proof).
    pub fn drop_if_corrupt(&self, (deal, slot, mdu): (u64, u32, u32)) -> Result<usize> {
        let mut garbage = Vec::new();
        let w = self.db.begin_write()?;
        for table in [SHARDS, STAGED] {
            let mut t = w.open_table(table)?;
            let meta = match t.get((deal, slot, mdu))? {
                Some(v) => Some(chain_light::codec::decode::<ShardMeta>(
                    v.value(),
                    MAX_META,
                )?),
                None => None,
            };
            if let Some(m) = meta {
                let intact = fs::read(self.deal_dir(deal).join(&m.file))
                    .is_ok_and(|b| blake3::hash(&b).as_bytes() == &m.file_blake3.0);
                if !intact {
                    t.remove((deal, slot, mdu))?;
                    garbage.push(m.file);
                }
            }
        }
        w.commit()?;
        for f in &garbage {
            let _ = fs::remove_file(self.deal_dir(deal).join(f));
        }
        Ok(garbage.len())
    }

    /// Checks one table's entries against their files: collects the files named, drops the
    /// entries whose file is missing or has the wrong size; returns how many were dropped.
    fn check_entries(
        &self,
        table: TableDefinition<(u64, u32, u32), &[u8]>,
        named: &mut std::collections::BTreeSet<PathBuf>,
    ) -> Result<usize> {
        let mut bad = Vec::new();
        {
            let r = self.db.begin_read()?;
            let t = r.open_table(table)?;
            for e in t.iter()? {
                let (k, v) = e?;
                let (deal, slot, mdu) = k.value();
                // Files reach their final name only complete and fsynced, so presence and
                // size are enough here; `scrub` re-hashes contents.
                let ok = chain_light::codec::decode::<ShardMeta>(v.value(), MAX_META)
                    .ok()
                    .and_then(|m| {
                        let p = self.deal_dir(deal).join(&m.file);
                        let len = fs::metadata(&p).ok()?.len();
                        (len == u64::from(m.blobs) * BLOB_BYTES as u64).then_some(p)
                    });
                match ok {
                    Some(p) => {
                        named.insert(p);
                    }
                    None => bad.push((deal, slot, mdu)),
                }
            }
        }
        if !bad.is_empty() {
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(table)?;
                for k in &bad {
                    t.remove(*k)?;
                }
            }
            w.commit()?;
        }
        Ok(bad.len())
    }

    /// Removes temporary files and files the index does not name; drops index entries whose
    /// file is missing or has the wrong size.
    fn recover(&self) -> Result<Recovery> {
        let mut rec = Recovery::default();
        for e in fs::read_dir(self.root.join("tmp"))? {
            fs::remove_file(e?.path())?;
            rec.temp_removed += 1;
        }
        // Index entries: check their files.
        let mut named: std::collections::BTreeSet<PathBuf> = Default::default();
        for table in [SHARDS, STAGED] {
            rec.entries_dropped += self.check_entries(table, &mut named)?;
        }
        // Files: remove what no entry names.
        for d in fs::read_dir(self.root.join("shards"))? {
            let d = d?.path();
            if !d.is_dir() {
                fs::remove_file(&d)?;
                rec.orphans_removed += 1;
                continue;
            }
            for f in fs::read_dir(&d)? {
                let f = f?.path();
                if !named.contains(&f) {
                    fs::remove_file(&f)?;
                    rec.orphans_removed += 1;
                }
            }
        }
        Ok(rec)
    }
}

/// fsyncs a directory so a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chain_light::bytes::G1Bytes;

    fn leaf(b: u8) -> Vec<Leaf> {
        vec![Leaf {
            commitment: G1Bytes([b; 48]),
            blake3: H256([b; 32]),
        }]
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nilstore-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// Issue 17 item 16: uploads the chain never committed do not stay stored (and served)
    /// for free. Pending and staged shards of a generation beyond the chain's go once
    /// older than the cutoff; committed ones, recent ones and pending ones of the committed
    /// generation (content an append kept, perhaps not marked yet) stay.
    #[test]
    fn uncommitted_uploads_expire_and_committed_ones_stay() {
        let d = dir("expire");
        let (s, _) = Store::open(&d).unwrap();
        let one = vec![1u8; BLOB_BYTES];
        let two = vec![2u8; BLOB_BYTES];
        // Committed (generation 0), stored at t=10.
        s.put((9, 0, 1), 0, &leaf(1), H256([1; 32]), &one, 10)
            .unwrap();
        s.set_committed(9, &[(0, 1)]).unwrap();
        // A later generation staged beside it at t=20 (never committed).
        assert_eq!(
            s.put((9, 0, 1), 1, &leaf(2), H256([2; 32]), &two, 20)
                .unwrap(),
            Put::Staged
        );
        // Pending: generation 0 at t=30 (the chain's generation), generation 1 at t=500.
        s.put((9, 0, 2), 0, &leaf(1), H256([1; 32]), &one, 30)
            .unwrap();
        s.put((9, 0, 3), 1, &leaf(2), H256([2; 32]), &two, 500)
            .unwrap();
        // A deal the chain never committed anything for, uploaded at t=0.
        s.put((8, 0, 1), 0, &leaf(1), H256([1; 32]), &one, 0)
            .unwrap();
        let files = || fs::read_dir(d.join("shards/9")).unwrap().count();
        assert_eq!(files(), 4);

        // Cutoff t=25: the staged shard of t=20 goes; everything else stays.
        assert_eq!(s.expire_uncommitted(9, Some(0), 25).unwrap(), 1);
        assert!(s.staged(9, 0, 1).unwrap().is_none());
        assert_eq!(
            s.meta(9, 0, 1).unwrap().unwrap().state,
            ShardState::Committed
        );
        assert_eq!(files(), 3);
        // Past every cutoff: the generation-1 upload goes; the committed shard and the
        // pending one of generation 0 stay.
        assert_eq!(s.expire_uncommitted(9, Some(0), u64::MAX).unwrap(), 1);
        assert!(s.meta(9, 0, 3).unwrap().is_none());
        assert!(s.meta(9, 0, 2).unwrap().is_some());
        assert_eq!(s.expire_uncommitted(9, Some(1), u64::MAX).unwrap(), 0);
        assert_eq!(files(), 2);
        assert_eq!(s.read(9, 0, 1, 0, 1).unwrap().unwrap(), vec![1u8]);
        // Never committed: kept until the cutoff passes it, then removed.
        assert_eq!(s.expire_uncommitted(8, None, 0).unwrap(), 0);
        assert_eq!(s.expire_uncommitted(8, None, 1).unwrap(), 1);
        assert!(s.meta(8, 0, 1).unwrap().is_none());
        // Reopening finds nothing to repair.
        drop(s);
        let (_, rec) = Store::open(&d).unwrap();
        assert_eq!(rec, Recovery::default());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn put_read_replace_commit_remove() {
        let d = dir("basic");
        let (s, rec) = Store::open(&d).unwrap();
        assert_eq!(rec, Recovery::default());
        let a = vec![1u8; BLOB_BYTES * 2];
        let b = vec![2u8; BLOB_BYTES];
        let k = (5, 1, 3);
        assert_eq!(
            s.put(k, 1, &leaf(1), H256([9; 32]), &a, 10).unwrap(),
            Put::Stored
        );
        assert_eq!(
            s.put(k, 1, &leaf(1), H256([9; 32]), &a, 11).unwrap(),
            Put::Unchanged
        );
        assert_eq!(
            s.read(5, 1, 3, BLOB_BYTES as u64, 4).unwrap().unwrap(),
            vec![1u8; 4]
        );
        assert!(
            s.read(5, 1, 3, 2 * BLOB_BYTES as u64 - 1, 2).is_err(),
            "past the end"
        );
        assert!(s.read(5, 1, 4, 0, 1).unwrap().is_none());
        assert_eq!(s.bytes_stored().unwrap(), 2 * BLOB_BYTES as u64);
        // A pending shard may be replaced within its generation; the old file goes.
        assert_eq!(
            s.put(k, 1, &leaf(2), H256([9; 32]), &b, 12).unwrap(),
            Put::Stored
        );
        assert_eq!(fs::read_dir(d.join("shards/5")).unwrap().count(), 1);
        assert_eq!(s.meta(5, 1, 3).unwrap().unwrap().leaves, leaf(2));
        // A committed one may not, in its generation.
        s.set_committed(5, &[(1, 3)]).unwrap();
        assert!(matches!(
            s.put(k, 1, &leaf(3), H256([9; 32]), &a, 13),
            Err(PutError::Committed { .. })
        ));
        assert_eq!(
            s.meta(5, 1, 3).unwrap().unwrap().state,
            ShardState::Committed
        );
        // A later generation is staged: the committed shard is still what reads see...
        assert_eq!(
            s.put(k, 3, &leaf(3), H256([9; 32]), &a, 13).unwrap(),
            Put::Staged
        );
        assert_eq!(
            s.put(k, 3, &leaf(3), H256([9; 32]), &a, 14).unwrap(),
            Put::Unchanged
        );
        assert_eq!(s.meta(5, 1, 3).unwrap().unwrap().generation, 1);
        assert_eq!(s.read(5, 1, 3, 0, 1).unwrap().unwrap(), vec![2u8]);
        assert_eq!(fs::read_dir(d.join("shards/5")).unwrap().count(), 2);
        // ...it survives a reopen, and a chain still at generation 2 promotes nothing...
        drop(s);
        let (s, rec) = Store::open(&d).unwrap();
        assert_eq!(rec, Recovery::default());
        assert_eq!(s.promote(5, 2).unwrap(), 0);
        assert_eq!(s.staged(5, 1, 3).unwrap().unwrap().generation, 3);
        // ...until the chain commits generation 3: then it replaces the old one.
        assert_eq!(s.promote(5, 3).unwrap(), 1);
        let m = s.meta(5, 1, 3).unwrap().unwrap();
        assert_eq!((m.generation, m.state), (3, ShardState::Committed));
        assert!(s.staged(5, 1, 3).unwrap().is_none());
        assert_eq!(s.read(5, 1, 3, 0, 1).unwrap().unwrap(), vec![1u8]);
        assert_eq!(fs::read_dir(d.join("shards/5")).unwrap().count(), 1);
        // A staged generation the chain skipped is dropped.
        assert_eq!(
            s.put(k, 4, &leaf(4), H256([9; 32]), &b, 15).unwrap(),
            Put::Staged
        );
        assert_eq!(s.promote(5, 5).unwrap(), 0);
        assert!(s.staged(5, 1, 3).unwrap().is_none());
        assert_eq!(fs::read_dir(d.join("shards/5")).unwrap().count(), 1);
        // Not whole blobs: refused.
        assert!(s
            .put((5, 0, 0), 1, &leaf(1), H256([9; 32]), &[0u8; 100], 1)
            .is_err());
        assert_eq!(s.deals().unwrap(), vec![5]);
        assert_eq!(s.remove_deal(5).unwrap(), 1);
        assert!(s.deals().unwrap().is_empty());
        assert!(!d.join("shards/5").exists());
        let _ = fs::remove_dir_all(&d);
    }

    /// Issue 17 item 12: an upload of the next generation does not replace a shard the
    /// chain committed before the provider marked it (a pending shard of an earlier
    /// generation): it is staged, the earlier bytes stay readable, and the chain's commit
    /// of the new generation installs it.
    #[test]
    fn a_next_generation_never_replaces_an_unmarked_committed_shard() {
        let d = dir("unmarked");
        let (s, _) = Store::open(&d).unwrap();
        let (old, new) = (vec![1u8; BLOB_BYTES], vec![2u8; BLOB_BYTES]);
        let k = (4, 0, 2);
        assert_eq!(
            s.put(k, 3, &leaf(1), H256([1; 32]), &old, 1).unwrap(),
            Put::Stored
        );
        // Generation 3 is committed on chain; the provider has not marked it yet.
        assert_eq!(
            s.put(k, 4, &leaf(2), H256([2; 32]), &new, 2).unwrap(),
            Put::Staged
        );
        let m = s.meta(4, 0, 2).unwrap().unwrap();
        assert_eq!((m.generation, m.state), (3, ShardState::Pending));
        assert_eq!(s.read(4, 0, 2, 0, 1).unwrap().unwrap(), vec![1u8]);
        assert_eq!(s.promote(4, 4).unwrap(), 1);
        assert_eq!(s.read(4, 0, 2, 0, 1).unwrap().unwrap(), vec![2u8]);
        let _ = fs::remove_dir_all(&d);
    }

    /// Issue 17 item 12: a scrub finds a shard whose bytes rotted on disk, and dropping it
    /// removes exactly that one (an intact shard, or one replaced since, stays).
    #[test]
    fn scrub_finds_rotten_shards_and_drops_only_those() {
        let d = dir("scrub");
        let (s, _) = Store::open(&d).unwrap();
        let data = vec![7u8; BLOB_BYTES];
        s.put((3, 0, 1), 0, &leaf(1), H256([1; 32]), &data, 1)
            .unwrap();
        s.put((3, 0, 2), 0, &leaf(1), H256([1; 32]), &data, 1)
            .unwrap();
        assert!(s.scrub().unwrap().is_empty());
        let file = d
            .join("shards/3")
            .join(s.meta(3, 0, 2).unwrap().unwrap().file);
        let mut b = fs::read(&file).unwrap();
        b[100] ^= 0x40;
        fs::write(&file, &b).unwrap();
        assert_eq!(s.scrub().unwrap(), vec![(3, 0, 2)]);
        assert_eq!(s.drop_if_corrupt((3, 0, 1)).unwrap(), 0, "intact");
        assert_eq!(s.drop_if_corrupt((3, 0, 2)).unwrap(), 1);
        assert!(s.meta(3, 0, 2).unwrap().is_none());
        assert!(!file.exists());
        assert!(s.scrub().unwrap().is_empty());
        assert_eq!(s.read(3, 0, 1, 0, 1).unwrap().unwrap(), vec![7u8]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn recovery_removes_leftovers_and_drops_broken_entries() {
        let d = dir("recover");
        {
            let (s, _) = Store::open(&d).unwrap();
            s.put(
                (1, 0, 0),
                1,
                &leaf(1),
                H256([0; 32]),
                &vec![3u8; BLOB_BYTES],
                1,
            )
            .unwrap();
            s.put(
                (1, 0, 1),
                1,
                &leaf(1),
                H256([0; 32]),
                &vec![4u8; BLOB_BYTES],
                1,
            )
            .unwrap();
        }
        // A temporary, an orphan, and one indexed file cut short.
        fs::write(d.join("tmp/x.part"), b"partial").unwrap();
        fs::write(d.join("shards/1/orphan.shard"), b"orphan").unwrap();
        let (s, _) = Store::open(&d).unwrap();
        let m = s.meta(1, 0, 1).unwrap().unwrap();
        drop(s);
        fs::write(d.join("shards/1").join(&m.file), b"short").unwrap();
        let (s, rec) = Store::open(&d).unwrap();
        assert_eq!(rec.entries_dropped, 1);
        assert_eq!(rec.orphans_removed, 1, "the cut file, now unindexed");
        assert!(s.meta(1, 0, 1).unwrap().is_none());
        assert!(s.meta(1, 0, 0).unwrap().is_some());
        assert!(s.scrub().unwrap().is_empty());
        let _ = fs::remove_dir_all(&d);
    }
}
