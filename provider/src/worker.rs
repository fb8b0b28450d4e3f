//! The provider's chain duties, run once per followed block (SPEC §6, §9):
//!
//! - **Challenges.** For every active slot it holds of a challenged deal, it derives this
//!   epoch's challenges from the beacon (the chain's own derivation), builds the triple
//!   proofs from the stored shards and submits them batched in `SubmitProofs` (at most
//!   `max_proofs_per_tx` each), early in the epoch; a rejected batch is retried while the
//!   epoch lasts.
//! - **Receipts.** It keeps the latest verified receipt per deal (durably, in
//!   `receipts.json`) and redeems it when its nonce is above the chain's.
//! - **Garbage collection.** Data of a deal the chain proves absent (ended or cancelled), or
//!   of a deal where it no longer holds a slot (evicted and repaired elsewhere), is deleted.
//! - **Repair.** A slot assigned to it as the pending provider is rebuilt by
//!   [`crate::repair`], then proven with the repair challenges (`CompleteRepair`).
//!
//! Which deals to look at comes from its store and from the validator's event feed (hints
//! only: every decision reads the deal with a state proof).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use chain_light::bytes::{Address, Blob, Sig65, H256};
use chain_light::crypto::SecretKey;
use chain_light::exec::repair_beacon;
use chain_light::state::{Deal, Globals, SlotStatus};
use chain_light::tx::{Msg, ProofItem, Receipt};
use nilstore_net::chain::{HttpChain, Signer, TxStatus};
use nilstore_net::proto::ProofRequest;
use serde::{Deserialize, Serialize};

use crate::service::Service;
use crate::store::ShardState;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Proofs accepted on chain.
    pub proofs_submitted: AtomicU64,
    /// Proofs that failed to build or were rejected.
    pub proofs_failed: AtomicU64,
    /// Receipts redeemed.
    pub receipts_redeemed: AtomicU64,
    /// Deals whose data was deleted.
    pub deals_collected: AtomicU64,
    /// Uploaded shards deleted because the chain never committed them.
    pub uncommitted_expired: AtomicU64,
    /// Shards dropped because their bytes rotted on disk (the daily scrub).
    pub scrub_dropped: AtomicU64,
    /// Repairs completed on chain.
    pub repairs_completed: AtomicU64,
    /// MDUs rebuilt by repairs.
    pub repair_mdus_done: AtomicU64,
    /// MDUs to rebuild in the repairs under way.
    pub repair_mdus_total: AtomicU64,
}

/// A transaction this node sent and is waiting for.
#[derive(Clone, Debug)]
enum Sent {
    Proofs {
        epoch: u64,
        items: Vec<(u64, u32, u32)>,
    },
    Redeem {
        deal: u64,
    },
    Repair {
        deal: u64,
        slot: u32,
    },
}

#[derive(Default)]
struct Duties {
    /// Deals to look at besides the stored ones (event hints), bounded.
    hinted: BTreeSet<u64>,
    /// Challenges submitted and not yet known to have failed: (epoch, deal, slot, ordinal).
    submitted: BTreeSet<(u64, u64, u32, u32)>,
    /// Transactions in flight: hash → (epoch sent, what).
    sent: BTreeMap<String, (u64, Sent)>,
    /// Deals with a redeem in flight.
    redeeming: BTreeSet<u64>,
    /// Slots with a repair completion in flight.
    repairing: BTreeSet<(u64, u32)>,
}

/// The latest receipts per deal, persisted.
#[derive(Default, Serialize, Deserialize)]
struct Receipts {
    latest: BTreeMap<u64, (Receipt, Sig65)>,
}

/// A proof and its (deal, slot, ordinal).
type Challenged = (ProofItem, (u64, u32, u32));

/// Hints kept at most.
const MAX_HINTS: usize = 100_000;

/// Rebuilds a repairing slot (implemented over the network by the daemon).
pub trait SlotRepairer: Send + Sync {
    /// Fetches, verifies and stores every MDU of `slot` of `deal`; returns the MDUs done.
    fn repair(&self, deal_id: u64, deal: &Deal, slot: u32) -> Result<u64>;
}

/// The chain duties of one provider.
pub struct Worker {
    svc: Arc<Service<HttpChain>>,
    signer: Signer,
    me: Address,
    receipts_path: PathBuf,
    receipts: Mutex<Receipts>,
    duties: Mutex<Duties>,
    /// How long an upload the chain has not committed is kept.
    uncommitted_ttl: Duration,
    /// Milliseconds since the Unix epoch (injected: tests move time).
    now_ms: fn() -> u64,
    /// Counters.
    pub counters: WorkerCounters,
}

/// How long an uncommitted upload is kept by default: a day, time enough for a client to
/// finish (or resume) a large upload and commit it.
pub const UNCOMMITTED_TTL: Duration = Duration::from_secs(24 * 3600);

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Worker {
    /// Duties for the provider behind `svc`, signing with `key`; receipts persist under
    /// `home`.
    pub fn new(
        svc: Arc<Service<HttpChain>>,
        key: SecretKey,
        home: &std::path::Path,
    ) -> Result<Worker> {
        let receipts_path = home.join("receipts.json");
        let receipts = match std::fs::read(&receipts_path) {
            Ok(b) => serde_json::from_slice(&b).context("receipts.json")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Receipts::default(),
            Err(e) => return Err(e).context("read receipts.json"),
        };
        Ok(Worker {
            svc,
            me: key.address(),
            signer: Signer::new(key),
            receipts_path,
            receipts: Mutex::new(receipts),
            duties: Mutex::new(Duties::default()),
            uncommitted_ttl: UNCOMMITTED_TTL,
            now_ms: system_ms,
            counters: WorkerCounters::default(),
        })
    }

    /// Keeps uploads the chain has not committed for `ttl` (by `now_ms`), not
    /// [`UNCOMMITTED_TTL`].
    pub fn with_uncommitted_ttl(mut self, ttl: Duration, now_ms: fn() -> u64) -> Worker {
        self.uncommitted_ttl = ttl;
        self.now_ms = now_ms;
        self
    }

    fn duties(&self) -> Result<std::sync::MutexGuard<'_, Duties>> {
        self.duties
            .lock()
            .map_err(|_| anyhow!("worker state poisoned"))
    }

    /// Notes a deal named by the event feed.
    pub fn hint(&self, deal: u64) {
        if let Ok(mut d) = self.duties() {
            if d.hinted.len() < MAX_HINTS {
                d.hinted.insert(deal);
            }
        }
    }

    /// Reads every event of a feed block (`GET /events` JSON) for deal ids.
    pub fn hint_block(&self, block: &serde_json::Value) {
        let mut ids = Vec::new();
        let mut collect = |events: &serde_json::Value| {
            for e in events.as_array().into_iter().flatten() {
                if let Some(id) = e["deal"].as_u64() {
                    ids.push(id);
                }
            }
        };
        collect(&block["block_events"]);
        for t in block["txs"].as_array().into_iter().flatten() {
            collect(&t["events"]);
        }
        for id in ids {
            self.hint(id);
        }
    }

    /// Stores a verified receipt if it is newer than the one held; returns the nonce held.
    pub fn keep_receipt(&self, r: Receipt, sig: Sig65) -> Result<u64> {
        let mut rs = self
            .receipts
            .lock()
            .map_err(|_| anyhow!("receipts poisoned"))?;
        let held = rs.latest.get(&r.deal).map_or(0, |(h, _)| h.nonce);
        if r.nonce <= held {
            return Ok(held);
        }
        let nonce = r.nonce;
        rs.latest.insert(r.deal, (r, sig));
        let tmp = self.receipts_path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&*rs)?).context("write receipts")?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.receipts_path).context("rename receipts")?;
        Ok(nonce)
    }

    fn submit(&self, msg: Msg, what: Sent) -> Result<String> {
        let chain = self.svc.chain();
        let hash = self.signer.send(chain, msg)?;
        self.duties()?
            .sent
            .insert(hash.clone(), (chain.epoch(), what));
        Ok(hash)
    }

    /// The deals to look at: the stored ones and the hinted ones.
    fn deal_ids(&self) -> Result<BTreeSet<u64>> {
        let mut ids: BTreeSet<u64> = self.svc.store().deals()?.into_iter().collect();
        ids.extend(self.duties()?.hinted.iter().copied());
        Ok(ids)
    }

    /// Rebuilds the slots assigned to this node as the pending provider (long-running: the
    /// daemon calls it from its own loop, apart from [`Worker::tick`]).
    pub fn repairs(&self, repairer: &dyn SlotRepairer) -> Result<()> {
        let chain = self.svc.chain();
        let g = chain.globals()?;
        for id in self.deal_ids()? {
            let Some(deal) = chain.deal(id)? else {
                continue;
            };
            for (i, s) in deal.slots.iter().enumerate() {
                if s.status == SlotStatus::Repairing && s.pending == Some(self.me) {
                    if let Err(e) = self.repair(repairer, &g, id, &deal, i as u32) {
                        tracing::warn!(deal = id, slot = i, error = %format!("{e:#}"), "repair");
                    }
                }
            }
        }
        Ok(())
    }

    /// One round of duties at the chain's trusted height: settle what was sent, collect
    /// garbage, prove this epoch's challenges, redeem receipts.
    pub fn tick(&self) -> Result<()> {
        let chain = self.svc.chain();
        let g = chain.globals()?;
        self.settle(&g)?;
        let ids = self.deal_ids()?;
        let mut proofs: Vec<Challenged> = Vec::new();
        for id in ids {
            let deal = chain.deal(id)?;
            let mine: Vec<u32> = deal.as_ref().map_or_else(Vec::new, |deal| {
                (0..deal.slots.len() as u32)
                    .filter(|&i| {
                        let s = &deal.slots[i as usize];
                        s.provider == self.me || s.pending == Some(self.me)
                    })
                    .collect()
            });
            let view = deal.as_ref().map(|d| (d.generation, !mine.is_empty()));
            let committed_here = match view {
                Some((_, false)) => self.committed_generation(id)?,
                _ => None, // not needed
            };
            if let Some(why) = gone(id, g.next_deal, view, committed_here) {
                self.collect(id, why)?;
                continue;
            }
            let Some(deal) = deal.filter(|_| !mine.is_empty()) else {
                tracing::debug!(
                    deal = id,
                    height = chain.trusted().map_or(0, |h| h.height),
                    "the trusted view does not prove the deal over for this node (a view older \
                     than its data: a restart, or a lagging or lying API); keeping the data"
                );
                continue;
            };
            self.mark_committed(id, &deal)?;
            self.expire_uncommitted(id, &deal)?;
            for slot in mine {
                let s = &deal.slots[slot as usize];
                if s.status == SlotStatus::Active && s.provider == self.me {
                    proofs.extend(self.challenges(&g, id, &deal, slot)?);
                }
            }
            self.redeem(id)?;
        }
        for batch in proofs.chunks(g.params.max_proofs_per_tx.max(1) as usize) {
            let (items, keys): (Vec<ProofItem>, Vec<(u64, u32, u32)>) =
                batch.iter().cloned().unzip();
            let n = items.len();
            match self.submit(
                Msg::SubmitProofs {
                    epoch: g.epoch,
                    items,
                },
                Sent::Proofs {
                    epoch: g.epoch,
                    items: keys.clone(),
                },
            ) {
                Ok(hash) => {
                    tracing::info!(epoch = g.epoch, proofs = n, %hash, "submitted storage proofs");
                    let mut d = self.duties()?;
                    for (deal, slot, ord) in keys {
                        d.submitted.insert((g.epoch, deal, slot, ord));
                    }
                }
                Err(e) => {
                    self.counters
                        .proofs_failed
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(error = %format!("{e:#}"), "submit proofs");
                }
            }
        }
        Ok(())
    }

    /// Checks the transactions in flight.
    fn settle(&self, g: &Globals) -> Result<()> {
        let chain = self.svc.chain();
        let sent: Vec<(String, (u64, Sent))> = self
            .duties()?
            .sent
            .iter()
            .map(|(h, s)| (h.clone(), s.clone()))
            .collect();
        for (hash, (sent_epoch, what)) in sent {
            let result = match chain.tx_status(&hash)? {
                TxStatus::Included(_, result) => result,
                // Dropped from the mempool (or never seen): give up and let the duty retry.
                TxStatus::Pending if sent_epoch + 2 <= g.epoch => {
                    Err("not included within two epochs".to_string())
                }
                TxStatus::Pending => continue,
            };
            let mut d = self.duties()?;
            d.sent.remove(&hash);
            match (what, result) {
                (Sent::Proofs { items, .. }, Ok(())) => {
                    self.counters
                        .proofs_submitted
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                }
                (Sent::Proofs { epoch, items }, Err(e)) => {
                    tracing::warn!(epoch, error = %e, "storage proofs rejected");
                    self.counters
                        .proofs_failed
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    for (deal, slot, ord) in items {
                        d.submitted.remove(&(epoch, deal, slot, ord));
                    }
                }
                (Sent::Redeem { deal }, r) => {
                    d.redeeming.remove(&deal);
                    match r {
                        Ok(()) => {
                            self.counters
                                .receipts_redeemed
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(deal, error = %e, "receipt redemption rejected"),
                    }
                }
                (Sent::Repair { deal, slot }, r) => {
                    d.repairing.remove(&(deal, slot));
                    match r {
                        Ok(()) => {
                            self.counters
                                .repairs_completed
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::info!(deal, slot, "repair completed on chain");
                        }
                        Err(e) => {
                            tracing::warn!(deal, slot, error = %e, "repair completion rejected")
                        }
                    }
                }
            }
        }
        let mut d = self.duties()?;
        let epoch = g.epoch;
        d.submitted.retain(|k| k.0 >= epoch);
        Ok(())
    }

    /// Promotes staged shards of the committed generation and marks the shards of that
    /// generation as committed (they must be kept and proven; only a later generation may
    /// replace them, staged until the chain commits it).
    fn mark_committed(&self, id: u64, deal: &Deal) -> Result<()> {
        if deal.manifest_root.is_none() {
            return Ok(());
        }
        let promoted = self.svc.store().promote(id, deal.generation)?;
        if promoted > 0 {
            tracing::info!(
                deal = id,
                generation = deal.generation,
                shards = promoted,
                "a new generation is committed"
            );
        }
        let shards = self.svc.store().deal_shards(id)?;
        let (keys, mismatched) = newly_committed(
            self.svc.kzg(),
            &shards,
            deal.generation,
            deal.total_mdus,
            deal.manifest_root.map(|r| r.0),
        );
        for slot in mismatched {
            tracing::warn!(
                deal = id,
                slot,
                generation = deal.generation,
                "stored shards of an earlier generation do not make up the committed manifest; left to repair"
            );
        }
        if !keys.is_empty() {
            self.svc.store().set_committed(id, &keys)?;
            tracing::debug!(deal = id, shards = keys.len(), "shards committed on chain");
        }
        Ok(())
    }

    /// Deletes uploads of `deal` for a generation the chain has not committed, once older
    /// than the time to live: uncommitted data is not paid for, so it is not kept (or
    /// served) for free.
    fn expire_uncommitted(&self, id: u64, deal: &Deal) -> Result<()> {
        let ttl_ms = u64::try_from(self.uncommitted_ttl.as_millis()).unwrap_or(u64::MAX);
        let cutoff = (self.now_ms)().saturating_sub(ttl_ms);
        let committed = deal.manifest_root.map(|_| deal.generation);
        let removed = self.svc.store().expire_uncommitted(id, committed, cutoff)?;
        if removed > 0 {
            self.counters
                .uncommitted_expired
                .fetch_add(removed as u64, Ordering::Relaxed);
            tracing::info!(
                deal = id,
                shards = removed,
                "deleted uploads the chain never committed"
            );
        }
        Ok(())
    }

    /// Deletes a deal's data.
    /// The highest generation of `id` this node holds as committed (the chain showed it).
    fn committed_generation(&self, id: u64) -> Result<Option<u64>> {
        Ok(self
            .svc
            .store()
            .deal_shards(id)?
            .iter()
            .filter(|(_, m)| m.state == ShardState::Committed)
            .map(|(_, m)| m.generation)
            .max())
    }

    fn collect(&self, id: u64, why: &str) -> Result<()> {
        let removed = self.svc.store().remove_deal(id)?;
        self.duties()?.hinted.remove(&id);
        if removed > 0 {
            self.counters
                .deals_collected
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(deal = id, shards = removed, why, "deleted a deal's data");
        }
        Ok(())
    }

    /// This epoch's open challenges of an active slot, proven.
    fn challenges(&self, g: &Globals, id: u64, deal: &Deal, slot: u32) -> Result<Vec<Challenged>> {
        if deal.manifest_root.is_none() || deal.user_mdus() == 0 || deal.content_epoch >= g.epoch {
            return Ok(Vec::new());
        }
        let chain = self.svc.chain();
        let work = chain.work(id, slot)?;
        let p = &g.params;
        let credits =
            u32::try_from(work.credit_blobs / p.blobs_per_credit.max(1)).unwrap_or(u32::MAX);
        let quota = p
            .challenges_per_slot
            .saturating_sub(credits)
            .max(p.min_challenges)
            .min(64);
        let mut out = Vec::new();
        for ordinal in 0..quota {
            if work.proven & (1u64 << ordinal) != 0
                || self
                    .duties()?
                    .submitted
                    .contains(&(g.epoch, id, slot, ordinal))
            {
                continue;
            }
            match self.prove(&g.beacon, id, deal, slot, ordinal) {
                Ok(proof) => out.push((
                    ProofItem {
                        deal: id,
                        slot,
                        ordinal,
                        proof,
                    },
                    (id, slot, ordinal),
                )),
                Err(e) => {
                    self.counters.proofs_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(deal = id, slot, ordinal, error = %format!("{e:#}"), "cannot prove a challenge");
                }
            }
        }
        Ok(out)
    }

    /// The triple proof of challenge `ordinal` under `beacon`.
    fn prove(&self, beacon: &H256, id: u64, deal: &Deal, slot: u32, ordinal: u32) -> Result<Blob> {
        let c = deal
            .challenge(id, slot, ordinal, beacon)
            .map_err(|e| anyhow!("challenge: {e}"))?;
        let r = self
            .svc
            .prove_local(&ProofRequest {
                deal: id,
                slot,
                mdu: u32::try_from(c.mdu).context("MDU index")?,
                row: u32::try_from(c.row).context("row")?,
                z: H256(c.z.to_bytes_be()),
            })
            .map_err(|e| anyhow!("{e}"))?;
        Ok(r.proof)
    }

    /// Redeems the latest receipt of a deal if the chain has an older one.
    fn redeem(&self, id: u64) -> Result<()> {
        let held = {
            let rs = self
                .receipts
                .lock()
                .map_err(|_| anyhow!("receipts poisoned"))?;
            rs.latest.get(&id).cloned()
        };
        let Some((receipt, sig)) = held else {
            return Ok(());
        };
        if self.duties()?.redeeming.contains(&id) {
            return Ok(());
        }
        let on_chain = self.svc.chain().receipt_state(id, &self.me)?;
        if receipt.nonce <= on_chain.nonce {
            return Ok(());
        }
        match self.submit(
            Msg::RedeemReceipt { receipt, sig },
            Sent::Redeem { deal: id },
        ) {
            Ok(hash) => {
                tracing::info!(deal = id, %hash, "redeeming a receipt");
                self.duties()?.redeeming.insert(id);
            }
            Err(e) => tracing::warn!(deal = id, error = %format!("{e:#}"), "redeem a receipt"),
        }
        Ok(())
    }

    /// Rebuilds a slot assigned to this node and proves it with the repair challenges.
    fn repair(
        &self,
        r: &dyn SlotRepairer,
        g: &Globals,
        id: u64,
        deal: &Deal,
        slot: u32,
    ) -> Result<()> {
        if self.duties()?.repairing.contains(&(id, slot)) {
            return Ok(());
        }
        r.repair(id, deal, slot)?;
        let mut proofs = Vec::new();
        if deal.manifest_root.is_some() && deal.user_mdus() > 0 {
            let beacon = repair_beacon(&g.beacon, id, slot);
            for i in 0..g.params.repair_proofs {
                proofs.push(self.prove(&beacon, id, deal, slot, i)?);
            }
        }
        let hash = self.submit(
            Msg::CompleteRepair {
                deal: id,
                slot,
                proofs,
            },
            Sent::Repair { deal: id, slot },
        )?;
        tracing::info!(deal = id, slot, %hash, "repaired; proving readiness");
        self.duties()?.repairing.insert((id, slot));
        Ok(())
    }
}

/// Why deal `id`'s data may be deleted, judged from the trusted chain view; `None` keeps
/// it. Nothing is deleted on a view older than what this node has seen of the deal:
/// - absent from the view (`view` is `None`): the deal ended only if it had been created
///   by then — `next_deal > id`, deal ids are never reused; otherwise the view predates the
///   deal (a light client restarted from genesis, an API that lags or lies) and proves
///   nothing;
/// - present (`view` is its generation and whether this node holds a slot): no slot held
///   here proves the slot moved only if the view is not older than the newest generation
///   this node holds as committed (`committed_here`).
pub(crate) fn gone(
    id: u64,
    next_deal: u64,
    view: Option<(u64, bool)>,
    committed_here: Option<u64>,
) -> Option<&'static str> {
    match view {
        None if next_deal > id => Some("the deal ended"),
        None => None,
        Some((_, true)) => None,
        Some((generation, false)) if committed_here.is_none_or(|c| generation >= c) => {
            Some("no slot of the deal is held here")
        }
        Some(_) => None,
    }
}

/// The pending shards of a deal that the chain's commit of `generation` (`total_mdus`
/// MDUs under `manifest_root`) makes committed: those of that generation, and those of
/// earlier generations — a node that missed a commit (offline through two, or an append
/// that kept MDUs it holds) — exactly when their slot's stored roots (every MDU, of the
/// committed generation or earlier) still make up the manifest. Also returns the slots
/// whose earlier shards do not (left to repair, never marked).
pub(crate) fn newly_committed(
    kzg: &wasm_core::kzg::KzgSettings,
    shards: &[((u32, u32), crate::store::ShardMeta)],
    generation: u64,
    total_mdus: u64,
    manifest_root: Option<[u8; 48]>,
) -> (Vec<(u32, u32)>, Vec<u32>) {
    let Some(root) = manifest_root else {
        return (Vec::new(), Vec::new());
    };
    let live = |mdu: u32| u64::from(mdu) < total_mdus;
    let pending = |m: &crate::store::ShardMeta| m.state == ShardState::Pending;
    let mut keys: Vec<(u32, u32)> = shards
        .iter()
        .filter(|((_, mdu), m)| pending(m) && m.generation == generation && live(*mdu))
        .map(|(k, _)| *k)
        .collect();
    let mut slots: Vec<u32> = shards
        .iter()
        .filter(|((_, mdu), m)| pending(m) && m.generation < generation && live(*mdu))
        .map(|((slot, _), _)| *slot)
        .collect();
    slots.sort_unstable();
    slots.dedup();
    let mut mismatched = Vec::new();
    for slot in slots {
        let mut roots: Vec<Option<[u8; 32]>> = vec![None; usize::try_from(total_mdus).unwrap_or(0)];
        for ((s, mdu), m) in shards {
            if *s == slot && m.generation <= generation {
                if let Some(r) = roots.get_mut(*mdu as usize) {
                    *r = Some(m.mdu_root.0);
                }
            }
        }
        let whole = roots.into_iter().collect::<Option<Vec<_>>>();
        if whole.is_some_and(|r| wasm_core::slab::check_manifest(kzg, &r, &root).is_ok()) {
            keys.extend(
                shards
                    .iter()
                    .filter(|((s, mdu), m)| {
                        *s == slot && pending(m) && m.generation < generation && live(*mdu)
                    })
                    .map(|(k, _)| *k),
            );
        } else {
            mismatched.push(slot);
        }
    }
    keys.sort_unstable();
    (keys, mismatched)
}

#[cfg(test)]
mod committed_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::ShardMeta;
    use chain_light::bytes::H256;

    fn meta(generation: u64, root: u8, state: ShardState) -> ShardMeta {
        ShardMeta {
            generation,
            leaves: Vec::new(),
            mdu_root: H256(root_bytes(root)),
            blobs: 1,
            file: String::new(),
            file_blake3: H256([0; 32]),
            state,
            stored_ms: 0,
        }
    }

    fn root_bytes(b: u8) -> [u8; 32] {
        let mut r = [0u8; 32];
        r[31] = b;
        r
    }

    /// Issue 17 item 11: a view that predates the deal (absent, but the deal id not
    /// issued yet) or is older than content this node holds committed deletes nothing; a
    /// deal that ended, or a slot that moved away in a view at least as new, does.
    #[test]
    fn data_is_deleted_only_on_a_view_that_proves_the_deal_over_here() {
        // Absent: deal 7 ended (ids up to 9 issued) or was not created yet (next is 7).
        assert_eq!(gone(7, 10, None, Some(2)), Some("the deal ended"));
        assert_eq!(gone(7, 7, None, Some(2)), None);
        assert_eq!(gone(7, 0, None, None), None, "a view at genesis");
        // Present, slot held: kept.
        assert_eq!(gone(7, 10, Some((2, true)), Some(2)), None);
        // Present, no slot here: moved away (view at or past what this node committed)...
        assert_eq!(
            gone(7, 10, Some((3, false)), Some(2)),
            Some("no slot of the deal is held here")
        );
        assert_eq!(
            gone(7, 10, Some((0, false)), None),
            Some("no slot of the deal is held here")
        );
        // ...or a view older than content this node saw committed: kept.
        assert_eq!(gone(7, 10, Some((1, false)), Some(2)), None);
    }

    /// Issue 17 (noticed): a provider that missed a commit keeps shards of an earlier
    /// generation pending. They are marked committed once the slot's roots make up the
    /// committed manifest, never when they do not (stale content: left to repair).
    #[test]
    fn earlier_generation_shards_are_marked_only_under_the_committed_manifest() {
        let kzg = wasm_core::kzg::KzgSettings::ethereum();
        // Generation 5 of a 3-MDU deal: MDU roots 1, 2, 3.
        let manifest = |roots: &[u8]| {
            let r: Vec<[u8; 32]> = roots.iter().map(|&b| root_bytes(b)).collect();
            let p = wasm_core::slab::manifest_polynomial(&r).unwrap();
            kzg.commit_poly(&p).to_compressed()
        };
        let root = manifest(&[1, 2, 3]);
        let shards = vec![
            // Slot 0: MDU 0 rewritten in generation 5, MDUs 1-2 kept from generation 3.
            ((0, 0), meta(5, 1, ShardState::Pending)),
            ((0, 1), meta(3, 2, ShardState::Pending)),
            ((0, 2), meta(3, 3, ShardState::Committed)),
            // Slot 1: a stale MDU 1 of generation 4 (the chain's content differs).
            ((1, 0), meta(5, 1, ShardState::Pending)),
            ((1, 1), meta(4, 9, ShardState::Pending)),
            ((1, 2), meta(3, 3, ShardState::Pending)),
            // Past the deal's MDUs: never marked.
            ((0, 7), meta(5, 4, ShardState::Pending)),
        ];
        let (keys, mismatched) = newly_committed(kzg, &shards, 5, 3, Some(root));
        assert_eq!(keys, vec![(0, 0), (0, 1), (1, 0)]);
        assert_eq!(mismatched, vec![1]);
        // Nothing committed yet: nothing marked.
        assert_eq!(
            newly_committed(kzg, &shards, 5, 3, None),
            (Vec::new(), Vec::new())
        );
        // With slot 1 fixed (MDU 1 re-uploaded as generation 5), both slots match.
        let mut fixed = shards.clone();
        fixed[4] = ((1, 1), meta(5, 2, ShardState::Pending));
        let (keys, mismatched) = newly_committed(kzg, &fixed, 5, 3, Some(root));
        assert_eq!(keys, vec![(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]);
        assert!(mismatched.is_empty());
    }
}
