//! Reads: list a deal, get a file, mirror a whole deal. Nothing is used before it is
//! verified: metadata MDUs against the chain's manifest root (leaves → MDU roots →
//! manifest commitment), every blob against its leaf.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, ensure, Context, Result};
use chain_light::bytes::{Address, Sig65};
use chain_light::state::{Deal, SlotStatus};
use chain_light::tx::{Msg, Receipt};
use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use nilstore_net::proto::{
    DeputyRequest, DeputyResponse, FetchRequest, FetchWhat, Leaf, ReceiptSubmit, BLOB_BYTES,
};
use nilstore_net::read::{blob_matches, fraud_evidence, mdu_root};
use nilstore_net::requester::RequestError;
use serde::{Deserialize, Serialize};
use wasm_core::constants::PAYLOAD_BYTES_PER_MDU;
use wasm_core::merkle::MerkleTree;
use wasm_core::rs::{Code, Profile};
use wasm_core::slab::table::FileRecord;
use wasm_core::slab::Layout;

use super::{proto_leaves, Client, Endpoint, Event, Progress};
use crate::platform::{timeout, Sleep};
use crate::slabdir::{self, FileSink, OpenSlab, SlotMeta, DIR_FORMAT_VERSION};
use crate::store::Kind;

/// The store key of the signed cumulative receipts.
const RECEIPTS: &str = "receipts.json";

/// One file of a deal.
#[derive(Clone, Debug, Serialize)]
pub struct FileEntry {
    /// Path in the deal.
    pub path: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Stored bytes (ciphertext when encrypted).
    pub stored: u64,
    /// Modification time (Unix seconds).
    pub mtime: i64,
    /// Encrypted.
    pub encrypted: bool,
}

/// What `ls` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// Deal.
    pub deal: u64,
    /// Committed generation.
    pub generation: u64,
    /// Manifest root, hex.
    pub manifest_root: String,
    /// Live files.
    pub files: Vec<FileEntry>,
}

/// What a read did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GetReport {
    /// Deal.
    pub deal: u64,
    /// Files written.
    pub files: usize,
    /// Plaintext bytes written.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
    /// Milliseconds to the first verified shard.
    pub first_byte_ms: f64,
    /// User MDUs fetched.
    pub mdus: u64,
    /// User MDUs rebuilt from parity.
    pub reconstructed_mdus: u64,
    /// Slots that failed and were replaced by others or by a deputy.
    pub fallbacks: usize,
    /// Blobs fetched through a deputy.
    pub deputy_blobs: u64,
    /// Fraud evidence submitted.
    pub fraud_reports: usize,
    /// Silent slots reported to deputies.
    pub deputy_reports: usize,
}

/// Plaintext length of `stored` AEAD bytes (0 for a length no ciphertext has).
fn plaintext_len(stored: u64) -> u64 {
    wasm_core::aead::plaintext_len(stored).unwrap_or(0)
}

/// Why one slot's shard could not be used.
enum Miss {
    /// No (timely) answer or a refusal: try another slot, then a deputy.
    Withheld(String),
    /// Bytes that do not match their leaf: evidence submitted; never ask again.
    Fraud(String),
}

/// What one read saw: served blobs per provider (for receipts) and failing slots.
#[derive(Default)]
struct Tally {
    /// Per provider: where to reach it, blobs served, the deputy that fetched them (its
    /// receipt then names the deputy, who earns the premium).
    blobs: BTreeMap<Address, (Endpoint, u64, Option<Address>)>,
    fallbacks: usize,
    deputy_blobs: u64,
    fraud: usize,
    /// Slots that did not answer (asked last for the rest of the read).
    withheld: BTreeSet<usize>,
    /// Slots reported to deputies in this read.
    reported: BTreeSet<usize>,
    /// Slots that served wrong bytes (never asked again).
    bad: BTreeSet<usize>,
}

/// `receipts.json`: the cumulative receipt last signed per (deal, provider).
#[derive(Default, Serialize, Deserialize)]
struct ReceiptBook {
    signed: BTreeMap<String, (u64, u64, u64)>,
}

impl Client {
    /// Lists a deal's live files (from verified metadata).
    pub async fn ls(&self, id: u64) -> Result<Listing> {
        let deal = self.deal(id).await?;
        if deal.manifest_root.is_none() {
            return Ok(Listing {
                deal: id,
                generation: deal.generation,
                manifest_root: String::new(),
                files: Vec::new(),
            });
        }
        let slab = self.remote_slab(id, &deal, &|_| {}).await?;
        Ok(Listing {
            deal: id,
            generation: deal.generation,
            manifest_root: slab.meta.manifest_root.clone(),
            files: slab
                .table
                .live()
                .map(|r| FileEntry {
                    path: r.path.clone(),
                    size: if r.is_encrypted() {
                        plaintext_len(r.len)
                    } else {
                        r.len
                    },
                    stored: r.len,
                    mtime: r.mtime,
                    encrypted: r.is_encrypted(),
                })
                .collect(),
        })
    }

    /// Reads `path` of deal `id` into `sink` (which shows it only once verified).
    pub async fn get(
        &self,
        id: u64,
        path: &str,
        sink: &mut dyn FileSink,
        progress: Progress<'_>,
    ) -> Result<GetReport> {
        let (deal, slab, _) = self.open_file(id, path, progress).await?;
        self.read_files(id, &deal, &slab, sink, &|rec| rec.path == path, progress)
            .await
    }

    /// Deal `id`, its verified metadata, and its live file `path`.
    async fn open_file(
        &self,
        id: u64,
        path: &str,
        progress: Progress<'_>,
    ) -> Result<(Deal, OpenSlab, FileRecord)> {
        let deal = self.deal(id).await?;
        ensure!(deal.manifest_root.is_some(), "deal {id} holds no files yet");
        let slab = self.remote_slab(id, &deal, progress).await?;
        let rec = slab
            .table
            .get(path)
            .filter(|r| !r.is_tombstone())
            .cloned()
            .ok_or_else(|| anyhow!("deal {id} has no file {path} (see `nilstore ls {id}`)"))?;
        Ok((deal, slab, rec))
    }

    /// Reads bytes `offset..offset + len` of `path` of deal `id` (`len: None`: to the
    /// end; plaintext bytes of an encrypted file) into `sink`, fetching only the user MDUs
    /// that hold them. Every blob is verified against its leaf and, for an encrypted file,
    /// every chunk of the range is authenticated.
    pub async fn get_range(
        &self,
        id: u64,
        path: &str,
        offset: u64,
        len: Option<u64>,
        sink: &mut dyn FileSink,
        progress: Progress<'_>,
    ) -> Result<GetReport> {
        let (deal, slab, rec) = self.open_file(id, path, progress).await?;
        let secret = if rec.is_encrypted() {
            Some(self.deal_secret(id, false).await?)
        } else {
            None
        };
        let t0 = self.clock.monotonic();
        let done = AtomicU64::new(0);
        let total = std::cell::Cell::new(0u64);
        let step = |n: u64| self.download_step(&done, total.get(), t0, n, progress);
        let mut range = slabdir::RangeUnpacker::new(&slab, sink, secret, path, offset, len, &step)?;
        total.set(range.mdus() as u64 * PAYLOAD_BYTES_PER_MDU as u64);
        self.restore(id, &deal, &slab, &mut range, t0, progress)
            .await
    }

    /// Reads every live file of deal `id` into `sink`.
    pub async fn mirror(
        &self,
        id: u64,
        sink: &mut dyn FileSink,
        progress: Progress<'_>,
    ) -> Result<GetReport> {
        let deal = self.deal(id).await?;
        ensure!(deal.manifest_root.is_some(), "deal {id} holds no files yet");
        let slab = self.remote_slab(id, &deal, progress).await?;
        self.read_files(id, &deal, &slab, sink, &|_| true, progress)
            .await
    }

    fn download_step(
        &self,
        done: &AtomicU64,
        total: u64,
        t0: std::time::Duration,
        n: u64,
        progress: Progress<'_>,
    ) {
        let d = (done.fetch_add(n, Ordering::Relaxed) + n).min(total);
        progress(&Event::Downloading {
            done: d,
            total,
            mb_per_s: d as f64 / 1e6 / self.clock.since(t0).as_secs_f64().max(1e-3),
        });
    }

    async fn read_files(
        &self,
        id: u64,
        deal: &Deal,
        slab: &OpenSlab,
        sink: &mut dyn FileSink,
        select: &dyn Fn(&FileRecord) -> bool,
        progress: Progress<'_>,
    ) -> Result<GetReport> {
        let t0 = self.clock.monotonic();
        let total: u64 = slab.table.live().filter(|r| select(r)).map(|r| r.len).sum();
        let done = AtomicU64::new(0);
        let step = |n: u64| self.download_step(&done, total, t0, n, progress);
        let secret = if slab.table.live().any(|r| select(r) && r.is_encrypted()) {
            Some(self.deal_secret(id, false).await?)
        } else {
            None
        };
        let mut unpacker = slabdir::Unpacker::new(slab, sink, secret, select, &step)?;
        self.restore(id, deal, slab, &mut unpacker, t0, progress)
            .await
    }

    /// Fetches the user MDUs `restore` asks for (hedged, verified, with deputy fallback),
    /// then reports silent slots and sends receipts.
    async fn restore(
        &self,
        id: u64,
        deal: &Deal,
        slab: &OpenSlab,
        restore: &mut dyn slabdir::Restore,
        t0: std::time::Duration,
        progress: Progress<'_>,
    ) -> Result<GetReport> {
        let eps = self.endpoints(deal).await?;
        let deputies = self.deputies().await?;
        let tally = Mutex::new(Tally::default());
        let mut first = None::<f64>;
        let mut mdus = 0u64;
        while let Some(mdu) = restore.next_mdu()? {
            let got = self
                .fetch_mdu(
                    id, deal, slab, &eps, &deputies, mdu as u32, &tally, progress,
                )
                .await?;
            first.get_or_insert_with(|| self.clock.since(t0).as_secs_f64() * 1e3);
            restore.feed(got)?;
            mdus += 1;
        }
        let rep = restore.finish_restore()?;
        let reported = self
            .report_silent(id, slab, &eps, &deputies, &tally, progress)
            .await?;
        let tally = tally.into_inner().map_err(|_| anyhow!("poisoned"))?;
        self.send_receipts(id, &tally).await;
        Ok(GetReport {
            deal: id,
            files: rep.files,
            bytes: rep.bytes,
            seconds: self.clock.since(t0).as_secs_f64(),
            first_byte_ms: first.unwrap_or(0.0),
            mdus,
            reconstructed_mdus: rep.reconstructed_mdus,
            fallbacks: tally.fallbacks,
            deputy_blobs: tally.deputy_blobs,
            fraud_reports: tally.fraud,
            deputy_reports: reported,
        })
    }

    /// Any K verified shards of user MDU `mdu`: data slots first (no decoding), a slot that
    /// withholds or lies is replaced by the next, and withheld rows go through a deputy
    /// when too few slots answer.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_mdu(
        &self,
        id: u64,
        deal: &Deal,
        slab: &OpenSlab,
        eps: &[Endpoint],
        deputies: &[Endpoint],
        mdu: u32,
        tally: &Mutex<Tally>,
        progress: Progress<'_>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let n = eps.len();
        let k = deal.k as usize;
        let (known_withheld, bad) = {
            let t = tally.lock().map_err(|_| anyhow!("poisoned"))?;
            (t.withheld.clone(), t.bad.clone())
        };
        // Active slots that served so far first, then repairing ones, then slots that
        // withheld earlier in this read; never a slot caught serving wrong bytes.
        let rank = |s: &usize| {
            (
                known_withheld.contains(s),
                deal.slots[*s].status != SlotStatus::Active,
                *s,
            )
        };
        let mut order: Vec<usize> = (0..n).filter(|s| !bad.contains(s)).collect();
        order.sort_by_key(rank);
        let mut got: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut have = 0usize;
        let mut withheld = Vec::new();
        let mut next = 0usize;
        let start =
            |s: usize| async move { (s, self.fetch_shard(id, slab, &eps[s], s as u32, mdu).await) };
        let mut inflight = FuturesUnordered::new();
        let mut asked = Vec::new();
        while next < order.len() && inflight.len() < k {
            let s = order[next];
            next += 1;
            asked.push(s);
            inflight.push(start(s));
        }
        // Hedged: while fewer than K slots have answered, one more slot is asked every
        // `hedge_after`, so a silent provider costs a hedge delay, not a timeout.
        let mut hedge = self.clock.sleep(self.tuning.hedge_after);
        while have < k && !inflight.is_empty() {
            let armed = (next < order.len()).then_some(&mut hedge);
            let (s, r) = match next_or_hedge(&mut inflight, armed).await {
                Hedged::Done(Some(done)) => done,
                Hedged::Done(None) => break, // nothing in flight (the loop checks first)
                Hedged::Hedge => {
                    let s = order[next];
                    next += 1;
                    asked.push(s);
                    inflight.push(start(s));
                    hedge = self.clock.sleep(self.tuning.hedge_after);
                    continue;
                }
            };
            match r {
                Ok(bytes) => {
                    self.count(tally, &eps[s], bytes.len() as u64 / BLOB_BYTES as u64, None)?;
                    got[s] = Some(bytes);
                    have += 1;
                }
                Err(miss) => {
                    let why = {
                        let mut t = tally.lock().map_err(|_| anyhow!("poisoned"))?;
                        t.fallbacks += 1;
                        match miss {
                            Miss::Withheld(w) => {
                                withheld.push(s);
                                t.withheld.insert(s);
                                w
                            }
                            Miss::Fraud(w) => {
                                t.fraud += 1;
                                t.bad.insert(s);
                                w
                            }
                        }
                    };
                    progress(&Event::Fallback {
                        slot: s as u32,
                        mdu,
                        why: why.clone(),
                    });
                    tracing::warn!(slot = s, mdu, %why, "slot failed; reading another");
                    if next < order.len() {
                        let s = order[next];
                        next += 1;
                        asked.push(s);
                        inflight.push(start(s));
                    }
                }
            }
        }
        // Slots still silent when K answered are reported like withheld ones.
        drop(inflight);
        {
            let mut t = tally.lock().map_err(|_| anyhow!("poisoned"))?;
            for &s in &asked {
                if got[s].is_none() && !t.bad.contains(&s) && !withheld.contains(&s) {
                    t.withheld.insert(s);
                    t.fallbacks += 1;
                    progress(&Event::Fallback {
                        slot: s as u32,
                        mdu,
                        why: format!("slot {s}: no answer while {k} other slots served"),
                    });
                }
            }
        }
        if have >= k {
            return Ok(got);
        }
        // Too few slots served: read the silent ones through deputies (SPEC §7), each
        // fetching under a fresh identity and returning the data or attesting the failure.
        for s in withheld {
            if have >= k {
                break;
            }
            tally
                .lock()
                .map_err(|_| anyhow!("poisoned"))?
                .reported
                .insert(s);
            let Some(d) = self
                .probe_deputies(id, &eps[s], deputies, s as u32, mdu, slab)
                .await
            else {
                continue;
            };
            if let Some(bytes) = self
                .via_deputy(id, slab, &eps[s], std::slice::from_ref(d), s as u32, mdu)
                .await
            {
                let blobs = bytes.len() as u64 / BLOB_BYTES as u64;
                tally.lock().map_err(|_| anyhow!("poisoned"))?.deputy_blobs += blobs;
                self.count(tally, &eps[s], blobs, Some(d.account))?;
                progress(&Event::Fallback {
                    slot: s as u32,
                    mdu,
                    why: format!("read through deputy {}", d.account),
                });
                got[s] = Some(bytes);
                have += 1;
            }
        }
        ensure!(
            have >= k,
            "MDU {mdu}: only {have} of the {k} slots needed served verified bytes"
        );
        Ok(got)
    }

    /// After a read: every slot that stayed silent (and was not asked through deputies
    /// already) is reported to the deputies, which fetch from it and attest on chain if it
    /// does not answer them either. The file is complete before this runs.
    async fn report_silent(
        &self,
        id: u64,
        slab: &OpenSlab,
        eps: &[Endpoint],
        deputies: &[Endpoint],
        tally: &Mutex<Tally>,
        progress: Progress<'_>,
    ) -> Result<usize> {
        let todo: Vec<usize> = {
            let t = tally.lock().map_err(|_| anyhow!("poisoned"))?;
            t.withheld.difference(&t.reported).copied().collect()
        };
        if todo.is_empty() || deputies.is_empty() {
            return Ok(0);
        }
        let layout = slab.meta.layout()?;
        let mdu = layout.first_user_mdu() as u32;
        let probes = todo.iter().map(|&s| async move {
            (
                s,
                self.probe_deputies(id, &eps[s], deputies, s as u32, mdu, slab)
                    .await,
            )
        });
        for (s, served) in futures::future::join_all(probes).await {
            progress(&Event::Fallback {
                slot: s as u32,
                mdu,
                why: match served {
                    Some(d) => format!("deputy {} got an answer from the provider", d.account),
                    None => "reported to the deputies (attested if it stays silent)".into(),
                },
            });
        }
        Ok(todo.len())
    }

    /// Asks every deputy, concurrently, for the first row of a withheld shard: returns a
    /// deputy that got verified bytes, or `None` when all of them attested (or failed).
    async fn probe_deputies<'d>(
        &self,
        id: u64,
        ep: &Endpoint,
        deputies: &'d [Endpoint],
        slot: u32,
        mdu: u32,
        slab: &OpenSlab,
    ) -> Option<&'d Endpoint> {
        let layout = slab.meta.layout().ok()?;
        let rows = layout.profile.rows() as u32;
        let leaves = proto_leaves(
            slab.user_leaves
                .get((u64::from(mdu) - layout.first_user_mdu()) as usize)?,
        );
        let asks = deputies.iter().map(|d| {
            let req = self.deputy_request(id, ep, slot, mdu, 0);
            async move { (d, self.net.deputy(d.peer, d.addrs.clone(), req).await) }
        });
        let mut serving = None;
        for (d, r) in futures::future::join_all(asks).await {
            match r {
                Ok(DeputyResponse::Data(r)) if blob_matches(&leaves, slot * rows, &r.bytes.0) => {
                    serving.get_or_insert(d);
                }
                Ok(DeputyResponse::Data(_)) => {
                    tracing::warn!(deputy = %d.account, slot, mdu, "deputy returned bytes that do not match the leaf")
                }
                Ok(DeputyResponse::Failed { .. }) => {
                    tracing::warn!(deputy = %d.account, provider = %ep.account, slot, mdu, "the provider did not answer the deputy either; attested on chain")
                }
                Err(e) => tracing::warn!(deputy = %d.account, %e, "deputy unavailable"),
            }
        }
        serving
    }

    fn deputy_request(
        &self,
        id: u64,
        ep: &Endpoint,
        slot: u32,
        mdu: u32,
        row: u32,
    ) -> DeputyRequest {
        let mut req = DeputyRequest {
            chain_id: self.chain.chain_id(),
            provider: ep.account,
            fetch: FetchRequest {
                deal: id,
                slot,
                mdu,
                what: FetchWhat::Blob { row },
            },
            reader: self.address(),
            sig: Sig65([0; 65]),
            nonce: rand::random(),
        };
        req.sig = self.signer.key().sign_digest(&req.digest());
        req
    }

    fn count(
        &self,
        tally: &Mutex<Tally>,
        ep: &Endpoint,
        blobs: u64,
        deputy: Option<Address>,
    ) -> Result<()> {
        let mut t = tally.lock().map_err(|_| anyhow!("poisoned"))?;
        let e = t
            .blobs
            .entry(ep.account)
            .or_insert_with(|| (ep.clone(), 0, None));
        e.1 += blobs;
        if deputy.is_some() {
            e.2 = deputy;
        }
        Ok(())
    }

    /// One slot's shard of a user MDU, every row checked against its leaf.
    async fn fetch_shard(
        &self,
        id: u64,
        slab: &OpenSlab,
        ep: &Endpoint,
        slot: u32,
        mdu: u32,
    ) -> Result<Vec<u8>, Miss> {
        let layout = slab
            .meta
            .layout()
            .map_err(|e| Miss::Withheld(e.to_string()))?;
        let rows = layout.profile.rows();
        let leaves = slab
            .user_leaves
            .get((u64::from(mdu) - layout.first_user_mdu()) as usize)
            .ok_or_else(|| Miss::Withheld(format!("MDU {mdu} beyond the slab")))?;
        let leaves = proto_leaves(leaves);
        let req = FetchRequest {
            deal: id,
            slot,
            mdu,
            what: FetchWhat::Shard,
        };
        let r = timeout(
            &*self.clock,
            self.tuning.read_timeout,
            self.net.fetch(ep.peer, ep.addrs.clone(), req),
        )
        .await
        .map_err(|_| {
            Miss::Withheld(format!(
                "slot {slot}: no answer in {:?}",
                self.tuning.read_timeout
            ))
        })?
        .map_err(|e: RequestError| Miss::Withheld(format!("slot {slot}: {e}")))?;
        let bytes = r.bytes.0;
        if bytes.len() != rows * BLOB_BYTES {
            return Err(Miss::Withheld(format!(
                "slot {slot}: {} bytes, not a shard",
                bytes.len()
            )));
        }
        for (row, blob) in bytes.chunks(BLOB_BYTES).enumerate() {
            let leaf = (slot as usize * rows + row) as u32;
            if blob_matches(&leaves, leaf, blob) {
                continue;
            }
            let served = r
                .served
                .iter()
                .find(|(s, _)| s.leaf == leaf)
                .map(|(_, sig)| *sig);
            let why = match served {
                Some(sig) => match self.report_fraud(id, slot, mdu, leaf, &leaves, slab, blob, sig).await {
                    Ok(()) => format!("slot {slot}: row {row} does not match its leaf; fraud evidence submitted"),
                    Err(e) => format!("slot {slot}: row {row} does not match its leaf; evidence not accepted: {e:#}"),
                },
                None => format!("slot {slot}: row {row} does not match its leaf (unsigned)"),
            };
            return Err(Miss::Fraud(why));
        }
        Ok(bytes)
    }

    #[allow(clippy::too_many_arguments)]
    async fn report_fraud(
        &self,
        id: u64,
        slot: u32,
        mdu: u32,
        leaf: u32,
        leaves: &[Leaf],
        slab: &OpenSlab,
        bytes: &[u8],
        sig: Sig65,
    ) -> Result<()> {
        let ev = fraud_evidence(
            self.kzg,
            id,
            slot,
            mdu,
            leaf,
            leaves,
            &slab.mdu_roots,
            bytes,
            sig,
        )
        .map_err(|e| anyhow!("{e}"))?;
        self.send(Msg::SubmitFraud {
            evidence: Box::new(ev),
        })
        .await?;
        tracing::warn!(deal = id, slot, mdu, leaf, "fraud evidence accepted");
        Ok(())
    }

    /// Every row of a withheld shard through the first deputy that serves them all.
    async fn via_deputy(
        &self,
        id: u64,
        slab: &OpenSlab,
        ep: &Endpoint,
        deputies: &[Endpoint],
        slot: u32,
        mdu: u32,
    ) -> Option<Vec<u8>> {
        let layout = slab.meta.layout().ok()?;
        let rows = layout.profile.rows();
        let leaves = proto_leaves(
            slab.user_leaves
                .get((u64::from(mdu) - layout.first_user_mdu()) as usize)?,
        );
        'deputy: for d in deputies {
            let mut out = Vec::with_capacity(rows * BLOB_BYTES);
            for row in 0..rows as u32 {
                let req = self.deputy_request(id, ep, slot, mdu, row);
                match self.net.deputy(d.peer, d.addrs.clone(), req).await {
                    Ok(DeputyResponse::Data(r))
                        if blob_matches(&leaves, slot * rows as u32 + row, &r.bytes.0) =>
                    {
                        out.extend_from_slice(&r.bytes.0);
                    }
                    Ok(DeputyResponse::Data(_)) => {
                        tracing::warn!(deputy = %d.account, slot, mdu, row, "deputy returned bytes that do not match the leaf");
                        continue 'deputy;
                    }
                    Ok(DeputyResponse::Failed { attestation, .. }) => {
                        tracing::warn!(deputy = %d.account, slot, mdu, row, transcript = ?attestation, "the provider did not answer the deputy; attested");
                        return None; // the provider withholds: no other deputy will fare better now
                    }
                    Err(e) => {
                        tracing::warn!(deputy = %d.account, %e, "deputy unavailable");
                        continue 'deputy;
                    }
                }
            }
            return Some(out);
        }
        None
    }

    /// Hands every provider that served this read its cumulative signed receipt
    /// (best effort: a provider that misses one redeems the next).
    async fn send_receipts(&self, id: u64, tally: &Tally) {
        let _guard = self.receipts.lock().await;
        let mut book: ReceiptBook = self
            .store
            .read(RECEIPTS, Kind::Plain)
            .await
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (provider, (ep, blobs, deputy)) in &tally.blobs {
            let key = format!("{id}:{provider}");
            let (mut cum_blobs, mut cum_bytes, mut nonce) =
                book.signed.get(&key).copied().unwrap_or((0, 0, 0));
            if let Ok(st) = self.chain.receipt_state(id, provider).await {
                if st.nonce > nonce || st.blobs > cum_blobs {
                    nonce = nonce.max(st.nonce);
                    cum_blobs = cum_blobs.max(st.blobs);
                    cum_bytes = cum_bytes.max(st.blobs * BLOB_BYTES as u64);
                }
            }
            cum_blobs += blobs;
            cum_bytes += blobs * BLOB_BYTES as u64;
            nonce += 1;
            let receipt = Receipt {
                deal: id,
                provider: *provider,
                deputy: deputy.unwrap_or(Address::ZERO),
                blobs: cum_blobs,
                bytes: cum_bytes,
                nonce,
            };
            let sig = self
                .signer
                .key()
                .sign_digest(&receipt.digest(self.chain.chain_id()));
            book.signed.insert(key, (cum_blobs, cum_bytes, nonce));
            let sent = self
                .net
                .receipt(ep.peer, ep.addrs.clone(), ReceiptSubmit { receipt, sig })
                .await;
            if let Err(e) = sent {
                tracing::warn!(%provider, %e, "receipt not delivered (the next one covers it)");
            }
        }
        // Best effort like the delivery: a lost book only means the chain's receipt state
        // (read above) sets the next nonce.
        if let Ok(b) = serde_json::to_vec_pretty(&book) {
            if let Err(e) = self.store.put(RECEIPTS, &b, Kind::Plain).await {
                tracing::warn!(%e, "receipts not saved");
            }
        }
    }

    /// The deal's verified metadata: fetched from one slot after another until a copy
    /// matches the chain's manifest root.
    pub(crate) async fn remote_slab(
        &self,
        id: u64,
        deal: &Deal,
        progress: Progress<'_>,
    ) -> Result<OpenSlab> {
        let root = deal
            .manifest_root
            .ok_or_else(|| anyhow!("deal {id} holds no files yet"))?;
        let eps = self.endpoints(deal).await?;
        let mut problems = Vec::new();
        let mut order: Vec<usize> = (0..eps.len())
            .filter(|&s| deal.slots[s].status == SlotStatus::Active)
            .collect();
        order.extend((0..eps.len()).filter(|&s| deal.slots[s].status != SlotStatus::Active));
        // Hedged like shard reads: another slot is asked every `hedge_after` until one
        // copy verifies.
        let found = async {
            let start = |s: usize| {
                let ep = &eps[s];
                async move { (s, self.metadata_from(id, deal, ep, s as u32).await) }
            };
            let mut next = 0;
            let mut inflight = FuturesUnordered::new();
            let mut hedge = self.clock.sleep(self.tuning.hedge_after);
            loop {
                if inflight.is_empty() {
                    if next >= order.len() {
                        return None;
                    }
                    inflight.push(start(order[next]));
                    next += 1;
                    hedge = self.clock.sleep(self.tuning.hedge_after);
                }
                let armed = (next < order.len()).then_some(&mut hedge);
                match next_or_hedge(&mut inflight, armed).await {
                    Hedged::Done(Some((s, r))) => {
                        match r.and_then(|mdus| self.verify_metadata(id, deal, &root.0, mdus)) {
                            Ok(slab) => return Some(slab),
                            Err(e) => {
                                progress(&Event::Fallback {
                                    slot: s as u32,
                                    mdu: 0,
                                    why: format!("metadata: {e:#}"),
                                });
                                problems.push(format!("slot {s}: {e:#}"));
                            }
                        }
                    }
                    Hedged::Done(None) => {} // refilled above
                    Hedged::Hedge => {
                        inflight.push(start(order[next]));
                        next += 1;
                        hedge = self.clock.sleep(self.tuning.hedge_after);
                    }
                }
            }
        }
        .await;
        match found {
            Some(slab) => Ok(slab),
            None => bail!(
                "no slot of deal {id} served metadata matching the chain: {}",
                problems.join("; ")
            ),
        }
    }

    async fn metadata_from(
        &self,
        id: u64,
        deal: &Deal,
        ep: &Endpoint,
        slot: u32,
    ) -> Result<Vec<(Vec<u8>, [u8; 32])>> {
        let mut out = Vec::new();
        for j in 0..=deal.witness_mdus as u32 {
            let ask = |what| {
                timeout(
                    &*self.clock,
                    self.tuning.read_timeout,
                    self.net.fetch(
                        ep.peer,
                        ep.addrs.clone(),
                        FetchRequest {
                            deal: id,
                            slot,
                            mdu: j,
                            what,
                        },
                    ),
                )
            };
            let leaves = ask(FetchWhat::Leaves)
                .await
                .map_err(|_| anyhow!("no answer"))??
                .leaves;
            let bytes = ask(FetchWhat::Shard)
                .await
                .map_err(|_| anyhow!("no answer"))??
                .bytes
                .0;
            ensure!(
                leaves.len() == 64 && bytes.len() == 64 * BLOB_BYTES,
                "metadata MDU {j}: malformed answer"
            );
            for (i, blob) in bytes.chunks(BLOB_BYTES).enumerate() {
                ensure!(
                    blob_matches(&leaves, i as u32, blob),
                    "metadata MDU {j}: blob {i} does not match its leaf"
                );
            }
            out.push((bytes, mdu_root(&leaves)));
        }
        Ok(out)
    }

    fn verify_metadata(
        &self,
        id: u64,
        deal: &Deal,
        root: &[u8; 48],
        mdus: Vec<(Vec<u8>, [u8; 32])>,
    ) -> Result<OpenSlab> {
        let profile = Profile::new(deal.k as usize, deal.m as usize)?;
        let layout = Layout::new(profile, deal.capacity_mdus)?;
        ensure!(
            layout.witness_mdus == deal.witness_mdus,
            "witness MDUs disagree with the deal"
        );
        let user_mdus = deal.user_mdus();
        let table = wasm_core::slab::decode_file_table(&mdus[0].0)?;
        let w: Vec<&[u8]> = mdus[1..].iter().map(|(b, _)| b.as_slice()).collect();
        let user_leaves = wasm_core::slab::decode_witness(&layout, &w, user_mdus)?;
        let mut roots: Vec<[u8; 32]> = mdus.iter().map(|(_, r)| *r).collect();
        let code = Code::new(profile);
        for (i, l) in user_leaves.iter().enumerate() {
            let r = MerkleTree::new(l).root_fr();
            wasm_core::slab::check_user_mdu_leaves(&code, l, &r)
                .with_context(|| format!("user MDU {i}: parity commitments"))?;
            roots.push(r);
        }
        wasm_core::slab::check_manifest(self.kzg, &roots, root)
            .context("the metadata against the deal's manifest root")?;
        let slots = profile.slots();
        Ok(OpenSlab {
            files: None,
            meta: SlotMeta {
                format: DIR_FORMAT_VERSION,
                slot: 0,
                k: profile.k(),
                m: profile.m(),
                witness_mdus: deal.witness_mdus,
                user_mdus,
                total_mdus: deal.total_mdus,
                generation: deal.generation,
                deal_id: id,
                manifest_root: hex::encode(root),
            },
            present: vec![true; slots],
            mdu_roots: roots,
            table,
            user_leaves,
            problems: Vec::new(),
        })
    }
}

/// What [`next_or_hedge`] saw first.
enum Hedged<T> {
    /// A request finished (`None`: none was in flight).
    Done(Option<T>),
    /// The hedge timer fired first: time to ask one more slot.
    Hedge,
}

/// The next request of `inflight` to finish, or [`Hedged::Hedge`] when the armed `hedge`
/// timer fires first (a finished request wins a tie).
async fn next_or_hedge<F: std::future::Future>(
    inflight: &mut FuturesUnordered<F>,
    hedge: Option<&mut Sleep>,
) -> Hedged<F::Output> {
    match hedge {
        Some(h) => match futures::future::select(inflight.next(), h).await {
            futures::future::Either::Left((done, _)) => Hedged::Done(done),
            futures::future::Either::Right(((), _)) => Hedged::Hedge,
        },
        None => Hedged::Done(inflight.next().await),
    }
}
