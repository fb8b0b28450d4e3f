//! The validator's durable block log (redb): finalized blocks with their finalization
//! certificates, transaction locations, and candidate bodies that consensus may finalize
//! after a crash.
//!
//! A finalized block and its certificate are written in one transaction, so `kill -9` leaves
//! either both or neither.

use std::path::Path;

use crate::block::Block;
use crate::codec;
use anyhow::{Context as _, Result};
use redb::{Database, ReadableTable, TableDefinition};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("certs");
const TXS: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("txs");
const CANDIDATES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("candidates");

/// Largest block the log accepts back (a corrupted length is an error, not an allocation):
/// the chain's one block budget, so every finalized block reads back.
pub use crate::block::MAX_BLOCK_BYTES;

/// The block log.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `DIR/chain.redb`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let db = Database::create(dir.join("chain.redb")).context("open chain.redb")?;
        let w = db.begin_write()?;
        {
            w.open_table(BLOCKS)?;
            w.open_table(CERTS)?;
            w.open_table(TXS)?;
            w.open_table(CANDIDATES)?;
        }
        w.commit()?;
        Ok(Store { db })
    }

    /// Appends a finalized block with its certificate (atomically) and drops candidates at
    /// or below its height. A block finalized implicitly (an ancestor of a finalized block
    /// with no certificate of its own) has none; the next certified descendant proves it.
    pub fn append(&self, block: &Block, cert: Option<&[u8]>) -> Result<()> {
        let h = block.header.height;
        let w = self.db.begin_write()?;
        {
            let mut b = w.open_table(BLOCKS)?;
            b.insert(h, codec::encode(block).as_slice())?;
            if let Some(cert) = cert {
                let mut c = w.open_table(CERTS)?;
                c.insert(h, cert)?;
            }
            let mut t = w.open_table(TXS)?;
            for (i, tx) in block.txs.iter().enumerate() {
                t.insert(tx.hash().0.as_slice(), (h, i as u32))?;
            }
            let mut cand = w.open_table(CANDIDATES)?;
            let stale: Vec<Vec<u8>> = cand
                .iter()?
                .filter_map(|e| e.ok())
                .filter(|(_, v)| {
                    codec::decode::<Block>(v.value(), MAX_BLOCK_BYTES)
                        .map_or(true, |b| b.header.height <= h)
                })
                .map(|(k, _)| k.value().to_vec())
                .collect();
            for k in stale {
                cand.remove(k.as_slice())?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Remembers a candidate body (before voting for it).
    pub fn put_candidate(&self, digest: &[u8; 32], block: &Block) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut cand = w.open_table(CANDIDATES)?;
            cand.insert(digest.as_slice(), codec::encode(block).as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// A remembered candidate.
    pub fn candidate(&self, digest: &[u8; 32]) -> Result<Option<Block>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CANDIDATES)?;
        match t.get(digest.as_slice())? {
            Some(v) => Ok(Some(codec::decode(v.value(), MAX_BLOCK_BYTES)?)),
            None => Ok(None),
        }
    }

    /// The finalized block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOCKS)?;
        match t.get(height)? {
            Some(v) => Ok(Some(codec::decode(v.value(), MAX_BLOCK_BYTES)?)),
            None => Ok(None),
        }
    }

    /// The finalization certificate of `height`.
    pub fn cert(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CERTS)?;
        Ok(t.get(height)?.map(|v| v.value().to_vec()))
    }

    /// Where a transaction landed.
    pub fn tx_location(&self, hash: &[u8; 32]) -> Result<Option<(u64, u32)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TXS)?;
        Ok(t.get(hash.as_slice())?.map(|v| v.value()))
    }

    /// The highest stored height (0: none).
    pub fn last_height(&self) -> Result<u64> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOCKS)?;
        let last = t.last()?.map_or(0, |(k, _)| k.value());
        Ok(last)
    }
}
