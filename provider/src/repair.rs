//! Rebuilding a slot (SPEC §9.3): the pending provider of a REPAIRING slot fetches other
//! slots' shards, checks everything against the deal's committed manifest, reconstructs
//! its slot bit-exactly and stores it.
//!
//! Trust comes only from the chain: the leaves of every MDU (fetched from any provider)
//! must rebuild the manifest whose commitment the chain holds; then every fetched blob must
//! match its leaf's BLAKE3, and every rebuilt blob must match the leaf of the repaired slot.

use std::sync::atomic::Ordering;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::state::{Deal, Provider, SlotStatus};
use nilstore_net::chain::HttpChain;
use nilstore_net::proto::{FetchRequest, FetchResponse, FetchWhat, Leaf, BLOB_BYTES};
use wasm_core::kzg::KzgSettings;
use wasm_core::merkle::MerkleTree;
use wasm_core::rs::{Code, Profile};

use crate::store::{Put, Store};
use crate::worker::{SlotRepairer, WorkerCounters};

/// Fetches from another provider (over libp2p in the daemon).
pub trait ShardSource: Send + Sync {
    /// Sends `req` to `provider` (dialling its registered endpoints).
    fn fetch(&self, provider: &Provider, req: FetchRequest) -> Result<FetchResponse>;
}

/// Repairs over a [`ShardSource`], reading provider records from the chain.
pub struct Repairer<'a> {
    /// The chain (provider records).
    pub chain: &'a HttpChain,
    /// The store to fill.
    pub store: &'a Store,
    /// Where shards come from.
    pub source: &'a dyn ShardSource,
    /// Progress counters.
    pub counters: Option<&'a WorkerCounters>,
    /// Clock for the store's timestamps.
    pub now_ms: fn() -> u64,
}

impl Repairer<'_> {
    /// The other active slots and their provider records.
    fn sources(&self, deal: &Deal, slot: u32) -> Result<Vec<(u32, Provider)>> {
        let mut out = Vec::new();
        for (i, s) in deal.slots.iter().enumerate() {
            if i as u32 == slot || s.status != SlotStatus::Active {
                continue;
            }
            if let Some(p) = self.chain.provider(&s.provider)? {
                out.push((i as u32, p));
            }
        }
        Ok(out)
    }

    fn ask(
        &self,
        from: &[(u32, Provider)],
        id: u64,
        mdu: u32,
        what: FetchWhat,
    ) -> Result<(u32, FetchResponse)> {
        let mut last = anyhow!("no other active slot");
        for (slot, p) in from {
            let req = FetchRequest {
                deal: id,
                slot: *slot,
                mdu,
                what: what.clone(),
            };
            match self.source.fetch(p, req) {
                Ok(r) => return Ok((*slot, r)),
                Err(e) => last = e.context(format!("slot {slot}")),
            }
        }
        Err(last)
    }

    /// Every MDU's leaves, checked against the chain's manifest commitment. Each source is
    /// tried for the whole set in turn (a lying provider cannot make the repair fail while an
    /// honest one answers).
    fn trusted_leaves(
        &self,
        id: u64,
        deal: &Deal,
        from: &[(u32, Provider)],
    ) -> Result<Vec<Vec<Leaf>>> {
        let want = deal
            .manifest_root
            .ok_or_else(|| anyhow!("the deal has no committed content"))?;
        let total = u32::try_from(deal.total_mdus).context("MDU count")?;
        let mut last = anyhow!("no other active slot");
        for src in from {
            let one = std::slice::from_ref(src);
            let attempt = (|| -> Result<Vec<Vec<Leaf>>> {
                let mut all = Vec::new();
                let mut roots = Vec::new();
                for mdu in 0..total {
                    let (_, r) = self.ask(one, id, mdu, FetchWhat::Leaves)?;
                    let leaves: Vec<wasm_core::merkle::Leaf> =
                        r.leaves.iter().map(|&l| l.into()).collect();
                    roots.push(MerkleTree::new(&leaves).root_fr());
                    all.push(r.leaves);
                }
                wasm_core::slab::check_manifest(KzgSettings::ethereum(), &roots, &want.0)
                    .context("the leaves served against the deal's manifest")?;
                Ok(all)
            })();
            match attempt {
                Ok(all) => return Ok(all),
                Err(e) => {
                    tracing::warn!(deal = id, slot = src.0, error = %format!("{e:#}"), "leaves from a provider refused");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn blob_ok(leaf: Option<&Leaf>, blob: &[u8]) -> bool {
        leaf.is_some_and(|l| l.blake3.0 == *blake3::hash(blob).as_bytes())
    }
}

impl SlotRepairer for Repairer<'_> {
    fn repair(&self, id: u64, deal: &Deal, slot: u32) -> Result<u64> {
        let from = self.sources(deal, slot)?;
        let leaves = self.trusted_leaves(id, deal, &from)?;
        let k = deal.k as usize;
        let code = Code::new(Profile::new(k, deal.m as usize).map_err(|e| anyhow!("{e}"))?);
        let rows = deal.rows() as usize;
        let n = deal.slots.len();
        if let Some(c) = self.counters {
            c.repair_mdus_total
                .fetch_add(deal.total_mdus, Ordering::Relaxed);
        }
        let mut done = 0u64;
        let mut committed = Vec::new();
        for (mdu, l) in leaves.iter().enumerate() {
            let mdu = mdu as u32;
            let data: Vec<u8> = if u64::from(mdu) <= deal.witness_mdus {
                // Metadata: every slot stores the whole MDU; one verified copy suffices.
                let mut got = None;
                for src in from.iter() {
                    let Ok((_, r)) = self.ask(std::slice::from_ref(src), id, mdu, FetchWhat::Shard)
                    else {
                        continue;
                    };
                    let ok = r.bytes.0.len() == l.len() * BLOB_BYTES
                        && r.bytes
                            .0
                            .chunks_exact(BLOB_BYTES)
                            .enumerate()
                            .all(|(i, b)| Self::blob_ok(l.get(i), b));
                    if ok {
                        got = Some(r.bytes.0);
                        break;
                    }
                    tracing::warn!(
                        deal = id,
                        mdu,
                        slot = src.0,
                        "a provider served a metadata MDU that does not match its leaves"
                    );
                }
                got.ok_or_else(|| anyhow!("no provider served MDU {mdu} intact"))?
            } else {
                if l.len() != n * rows {
                    bail!("MDU {mdu} has {} leaves, expected {}", l.len(), n * rows);
                }
                // K verified shards of other slots.
                let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
                let mut have = 0;
                for src in &from {
                    if have == k {
                        break;
                    }
                    let Ok((s, r)) = self.ask(std::slice::from_ref(src), id, mdu, FetchWhat::Shard)
                    else {
                        continue;
                    };
                    let s = s as usize;
                    let ok = r.bytes.0.len() == rows * BLOB_BYTES
                        && r.bytes
                            .0
                            .chunks_exact(BLOB_BYTES)
                            .enumerate()
                            .all(|(row, b)| Self::blob_ok(l.get(s * rows + row), b));
                    if ok {
                        shards[s] = Some(r.bytes.0);
                        have += 1;
                    } else {
                        tracing::warn!(
                            deal = id,
                            mdu,
                            slot = s,
                            "a provider served a shard that does not match its leaves"
                        );
                    }
                }
                if have < k {
                    bail!("only {have} of {k} intact shards of MDU {mdu}");
                }
                let mut mine = Vec::with_capacity(rows * BLOB_BYTES);
                for row in 0..rows {
                    let present: Vec<Option<&[u8]>> = shards
                        .iter()
                        .map(|s| {
                            s.as_ref()
                                .map(|b| &b[row * BLOB_BYTES..(row + 1) * BLOB_BYTES])
                        })
                        .collect();
                    let full = code.reconstruct_row(&present).map_err(|e| anyhow!("{e}"))?;
                    let blob = full
                        .get(slot as usize)
                        .ok_or_else(|| anyhow!("slot {slot} outside the code"))?;
                    if !Self::blob_ok(l.get(slot as usize * rows + row), blob) {
                        bail!("rebuilt row {row} of MDU {mdu} does not match its leaf");
                    }
                    mine.extend_from_slice(blob);
                }
                mine
            };
            let root = MerkleTree::new(&l.iter().map(|&l| l.into()).collect::<Vec<_>>()).root_fr();
            match self.store.put(
                (id, slot, mdu),
                deal.generation,
                l,
                chain_light::bytes::H256(root),
                &data,
                (self.now_ms)(),
            ) {
                Ok(Put::Stored | Put::Unchanged | Put::Staged) => {}
                Err(e) => return Err(anyhow!("store MDU {mdu}: {e}")),
            }
            committed.push((slot, mdu));
            done += 1;
            if let Some(c) = self.counters {
                c.repair_mdus_done.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.store.set_committed(id, &committed)?;
        tracing::info!(deal = id, slot, mdus = done, "rebuilt a slot");
        Ok(done)
    }
}
