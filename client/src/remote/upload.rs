//! Content changes: put (new deal or append) and rm, through a resumable job.
//!
//! A job lives in the store under `uploads/deal-<id>-g<generation>/`: `job.json` (what
//! and how far), `slab/` (the packed slot directories; natively the home directory's files,
//! in a browser records of the store) and `acked.log` (one `slot mdu provider check` line
//! per shard a provider acknowledged, durable). [`Client::resume`] finishes any job an
//! interruption left behind: it sends only what the slot's current provider did not
//! acknowledge, then commits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use chain_light::bytes::{Address, Blob, G1Bytes, Sig65};
use chain_light::state::Deal;
use chain_light::tx::Msg;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use nilstore_net::proto::{Leaf, NetError, UploadAuth, UploadShard, BLOB_BYTES};
use nilstore_net::requester::RequestError;
use serde::{Deserialize, Serialize};
use wasm_core::constants::PAYLOAD_BYTES_PER_MDU;
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::Profile;

use super::{backoff, proto_leaves, Client, Endpoint, Event, Progress};
use crate::platform::run_blocking;
use crate::slabdir::{self, Input, OpenSlab, SlabFiles};
use crate::store::{Kind, Store};

/// How to put files.
#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Append to this deal; `None` creates one.
    pub deal: Option<u64>,
    /// Data slots of a new deal.
    pub k: u32,
    /// Parity slots of a new deal.
    pub m: u32,
    /// Term of a new deal, in epochs.
    pub term_epochs: u64,
    /// Escrow of a new deal (`None`: rent for the term plus a read budget).
    pub escrow: Option<chain_light::Amount>,
    /// User MDUs of capacity of a new deal (`None`: twice what the files need, ≥ 4).
    pub capacity_mdus: Option<u64>,
    /// Encrypt (the default); plaintext only on request.
    pub encrypt: bool,
}

/// What a put (or rm) did.
#[derive(Clone, Debug, Serialize)]
pub struct PutReport {
    /// Deal.
    pub deal_id: u64,
    /// The committed generation.
    pub generation: u64,
    /// The committed manifest root, hex.
    pub manifest_root: String,
    /// Paths stored (or deleted).
    pub paths: Vec<String>,
    /// File bytes in.
    pub bytes: u64,
    /// Shard bytes acknowledged by providers.
    pub shard_bytes: u64,
    /// Seconds from start to the verified commit.
    pub seconds: f64,
}

/// An upload an interruption left in the store ([`Client::pending`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJob {
    /// Deal.
    pub deal: u64,
    /// The generation it would commit.
    pub generation: u64,
    /// Paths of the files in the deal.
    pub names: Vec<String>,
    /// File bytes.
    pub bytes: u64,
    /// Packing had finished (the slab is in the store).
    pub packed: bool,
    /// [`Client::resume`] can finish it here.
    pub resumable: bool,
}

/// `job.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    deal: u64,
    generation: u64,
    /// Where each input can be read again (native files), so an interrupted packing can
    /// be redone; `None` for a source only a new put can supply (a browser Blob).
    files: Vec<Option<PathBuf>>,
    names: Vec<String>,
    delete: Vec<String>,
    encrypt: bool,
    /// First user MDU this job writes (earlier ones are committed already).
    first_new_mdu: u64,
    /// Packing finished.
    packed: bool,
    bytes: u64,
}

impl Job {
    /// Replaces the job's record in the store, atomically and durably.
    async fn save(&self, store: &dyn Store, prefix: &str) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        store
            .put(&format!("{prefix}/job.json"), &bytes, Kind::Plain)
            .await?;
        Ok(())
    }
}

/// The store prefix of an upload job (natively, its directory under the home).
fn job_prefix(deal: u64, generation: u64) -> String {
    format!("uploads/deal-{deal}-g{generation}")
}

/// The acknowledgement log (`<job>/acked.log` in the store): each record is durable before
/// its acknowledgement counts.
struct Acks {
    store: Arc<dyn Store>,
    key: String,
    /// (slot, MDU) → the provider that acknowledged it.
    done: BTreeMap<(u32, u32), Address>,
}

impl Acks {
    async fn open(store: Arc<dyn Store>, key: String) -> Result<Acks> {
        let (done, torn) = match store.read(&key, Kind::Plain).await? {
            Some(raw) => {
                let s = String::from_utf8_lossy(&raw);
                (
                    s.lines().filter_map(Acks::parse).collect(),
                    !s.is_empty() && !s.ends_with('\n'),
                )
            }
            None => (BTreeMap::new(), false),
        };
        if torn {
            // End the torn line so the next record starts on its own.
            store.append(&key, b"\n").await?;
        }
        Ok(Acks { store, key, done })
    }

    /// The check of one record: 8 hex digits of BLAKE3 over its fields.
    fn check(slot: u32, mdu: u32, provider: &Address) -> String {
        let h = blake3::hash(format!("nilstore/ack/v1 {slot} {mdu} {provider}").as_bytes());
        hex::encode(&h.as_bytes()[..4])
    }

    /// One record, `slot mdu provider check`; None for anything else (a torn line, whose
    /// prefix could otherwise read as another valid record, or an unchecked old one):
    /// re-sent.
    fn parse(line: &str) -> Option<((u32, u32), Address)> {
        let mut it = line.split(' ');
        let (slot, mdu, provider, check) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let (slot, mdu) = (slot.parse().ok()?, mdu.parse().ok()?);
        let provider = Address::from_hex(provider).ok()?;
        (check == Acks::check(slot, mdu, &provider)).then_some(((slot, mdu), provider))
    }

    /// Whether `provider` acknowledged MDU `mdu` of `slot` (after a repair moved the slot
    /// to another provider, its shards are sent again).
    fn acked(&self, slot: u32, mdu: u32, provider: &Address) -> bool {
        self.done.get(&(slot, mdu)) == Some(provider)
    }

    /// Records that `provider` acknowledged MDU `mdu` of `slot`: durable before it counts.
    /// Takes the log's lock only to count, not across the write (records of different
    /// shards may land in any order).
    async fn add(acks: &Mutex<Acks>, slot: u32, mdu: u32, provider: &Address) -> Result<()> {
        let line = format!(
            "{slot} {mdu} {provider} {}\n",
            Acks::check(slot, mdu, provider)
        );
        let (store, key) = {
            let a = acks.lock().map_err(|_| anyhow!("ack log poisoned"))?;
            (a.store.clone(), a.key.clone())
        };
        store.append(&key, line.as_bytes()).await?;
        acks.lock()
            .map_err(|_| anyhow!("ack log poisoned"))?
            .done
            .insert((slot, mdu), *provider);
        Ok(())
    }
}

/// Everything the slot tasks share.
struct Send<'a> {
    deal: u64,
    generation: u64,
    slab: &'a OpenSlab,
    /// Leaves per MDU index (metadata and new user MDUs).
    leaves: Vec<Option<Vec<Leaf>>>,
    acks: Mutex<Acks>,
    done_bytes: AtomicU64,
    total_bytes: u64,
    slots_done: AtomicUsize,
    t0: Duration,
    progress: Progress<'a>,
}

/// What the packing job tells the uploader while it runs.
enum Packed {
    /// This many more payload bytes are packed.
    Bytes(u64),
    /// A user MDU's shards are on disk: its index, leaves and root.
    Mdu(u32, Vec<Leaf>, [u8; 32]),
}

/// Packs a job's inputs into its slab, telling `tell` about progress and about each user
/// MDU once its shards are written.
#[allow(clippy::too_many_arguments)]
fn pack_inputs(
    kzg: &KzgSettings,
    inputs: Vec<Input>,
    files: &dyn SlabFiles,
    job: &Job,
    deal: &Deal,
    base: Option<wasm_core::slab::SlabState>,
    root_secret: Option<[u8; 32]>,
    tell: &(dyn Fn(Packed) + Sync),
) -> Result<slabdir::PackReport> {
    let step = |n: u64| tell(Packed::Bytes(n));
    let on_mdu = |mdu: u64, e: &wasm_core::slab::EncodedMdu| {
        tell(Packed::Mdu(mdu as u32, proto_leaves(&e.leaves), e.root_fr));
    };
    let mut nonce = || {
        let mut n = [0u8; wasm_core::aead::STREAM_NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
        n
    };
    let report = slabdir::pack(
        kzg,
        inputs,
        files,
        slabdir::PackOptions {
            profile: Profile::new(deal.k as usize, deal.m as usize)?,
            root_secret,
            deal_id: job.deal,
            capacity_user_mdus: Some(deal.capacity_mdus),
            nonce: &mut nonce,
            progress: &step,
            base,
            delete: job.delete.clone(),
            on_mdu: Some(&on_mdu),
        },
    )?;
    Ok(report)
}

impl Client {
    /// Stores `inputs` in a new deal or appends them to `opts.deal`; returns once the
    /// chain shows the new content. Inputs are read once, while they are packed.
    pub async fn put(
        &self,
        inputs: Vec<Input>,
        opts: &PutOptions,
        progress: Progress<'_>,
    ) -> Result<PutReport> {
        ensure!(!inputs.is_empty(), "no files to put");
        for i in &inputs {
            wasm_core::slab::table::validate_path(&i.name)
                .map_err(|e| anyhow!("{}: {e}", i.name))?;
        }
        let bytes = inputs.iter().try_fold(0u64, |sum, i| {
            sum.checked_add(i.len)
                .ok_or_else(|| anyhow!("the files' total size overflows"))
        })?;
        let (id, deal) = match opts.deal {
            Some(id) => (id, self.deal(id).await?),
            None => {
                let stored: u64 = inputs
                    .iter()
                    .map(|i| {
                        if opts.encrypt {
                            wasm_core::aead::ciphertext_len(i.len)
                        } else {
                            i.len
                        }
                    })
                    .fold(0u64, u64::saturating_add);
                let needed = stored.div_ceil(PAYLOAD_BYTES_PER_MDU as u64).max(1);
                let capacity = opts
                    .capacity_mdus
                    .unwrap_or(needed.saturating_mul(2).max(4));
                ensure!(
                    capacity >= needed,
                    "capacity {capacity} MDUs < {needed} needed"
                );
                let mut terms = self
                    .default_terms(opts.k, opts.m, capacity, opts.term_epochs)
                    .await?;
                if let Some(e) = opts.escrow {
                    terms.escrow = e;
                }
                let id = self.create_deal(&terms).await?;
                progress(&Event::DealCreated { deal: id });
                (id, self.deal(id).await?)
            }
        };
        self.change(id, &deal, inputs, Vec::new(), opts.encrypt, bytes, progress)
            .await
    }

    /// [`Client::put`] of native files, named `names` (default: their file names).
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn put_files(
        &self,
        files: &[PathBuf],
        names: Option<&[String]>,
        opts: &PutOptions,
        progress: Progress<'_>,
    ) -> Result<PutReport> {
        let files: Vec<PathBuf> = files
            .iter()
            .map(|f| std::fs::canonicalize(f).with_context(|| format!("{}", f.display())))
            .collect::<Result<_>>()?;
        self.put(slabdir::inputs(&files, names)?, opts, progress)
            .await
    }

    /// Deletes `paths` from a deal: a tombstone in the file table, committed as the next
    /// generation (the bytes stay until the deal ends; without the key they are noise).
    pub async fn rm(&self, id: u64, paths: &[String], progress: Progress<'_>) -> Result<PutReport> {
        ensure!(!paths.is_empty(), "nothing to delete");
        let deal = self.deal(id).await?;
        self.change(id, &deal, Vec::new(), paths.to_vec(), false, 0, progress)
            .await
    }

    /// Where the packed slab of the job under `prefix` lives: files under the home
    /// directory natively, records of the store otherwise.
    fn job_files(&self, prefix: &str) -> std::sync::Arc<dyn SlabFiles> {
        match &self.home {
            Some(home) => std::sync::Arc::new(slabdir::DirFiles::new(
                prefix
                    .split('/')
                    .fold(home.clone(), |p, s| p.join(s))
                    .join("slab"),
            )),
            None => std::sync::Arc::new(slabdir::MemFiles::new(
                self.slabs.clone(),
                format!("{prefix}/slab"),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        id: u64,
        deal: &Deal,
        inputs: Vec<Input>,
        delete: Vec<String>,
        encrypt: bool,
        bytes: u64,
        progress: Progress<'_>,
    ) -> Result<PutReport> {
        let epoch = self.chain.epoch();
        ensure!(
            deal.is_authorized(&self.address(), epoch),
            "deal {id} belongs to {}; this account ({}) is not a delegate",
            deal.owner,
            self.address()
        );
        let generation = deal.next_generation();
        let base = if deal.manifest_root.is_some() {
            let slab = self.remote_slab(id, deal, progress).await?;
            for p in &delete {
                ensure!(slab.table.get(p).is_some(), "deal {id} has no file {p}");
            }
            Some(slab.state()?)
        } else {
            ensure!(delete.is_empty(), "deal {id} holds no files yet");
            None
        };
        let first_new_mdu =
            1 + deal.witness_mdus + base.as_ref().map_or(0, |b| b.user_leaves.len() as u64);
        let prefix = job_prefix(id, generation);
        // An unfinished job of the same generation: redo it.
        self.store.remove_all(&prefix).await?;
        self.slabs.remove_all_now(&prefix)?;
        let files = self.job_files(&prefix);
        let mut job = Job {
            deal: id,
            generation,
            files: inputs.iter().map(|i| i.origin.clone()).collect(),
            names: inputs.iter().map(|i| i.name.clone()).collect(),
            delete,
            encrypt,
            first_new_mdu,
            packed: false,
            bytes,
        };
        job.save(&*self.store, &prefix).await?;
        let packed = self
            .pack_and_send_early(inputs, files.clone(), &job, deal, base, progress)
            .await?;
        // Without a home the packed slab is in memory: the store gets a copy before the
        // job counts as packed, so a new page (a new client) can finish it.
        self.persist_slab(&*files, &prefix).await?;
        job.packed = true;
        job.save(&*self.store, &prefix).await?;
        let slab = slabdir::OpenSlab::from_packed(files.clone(), &packed.output, id);
        let metadata = packed.output.metadata_leaves;
        self.finish_job(&*files, &job, Some((slab, metadata)), progress)
            .await
    }

    /// Packs the job and, while later MDUs are still being packed, uploads each new user
    /// MDU to every slot as soon as its shards are on disk. Acknowledgements go to the
    /// job's log, so [`Client::finish_job`] sends only what is left: the metadata MDUs
    /// (final only once every user MDU is packed) and any shard a provider did not take
    /// yet. The network and the providers take earlier MDUs while later ones are
    /// committed: with remote providers the upload no longer waits for packing (on one
    /// 2-core machine both stages are CPU-bound and the total stays the same).
    ///
    /// Packing runs through the client's [`Spawner`](crate::platform::Spawner) (a thread
    /// natively), and tells this future about progress and packed MDUs over a channel.
    async fn pack_and_send_early(
        &self,
        inputs: Vec<Input>,
        files: std::sync::Arc<dyn SlabFiles>,
        job: &Job,
        deal: &Deal,
        base: Option<wasm_core::slab::SlabState>,
        progress: Progress<'_>,
    ) -> Result<slabdir::PackReport> {
        let secret = if job.encrypt {
            Some(
                self.deal_secret(job.deal, deal.manifest_root.is_none())
                    .await?,
            )
        } else {
            None
        };
        let eps = match self.endpoints(deal).await {
            Ok(eps) if eps.len() == deal.slots.len() => Some(eps),
            _ => None, // finish_job resolves them again and reports the problem
        };
        let (tx, rx) = futures::channel::mpsc::unbounded::<Packed>();
        let (kzg, owned) = (self.kzg, (files.clone(), job.clone(), deal.clone()));
        let packing = run_blocking(&*self.spawner, move || {
            let (files, job, deal) = owned;
            // A closed receiver only means nobody listens any more.
            let tell = move |p: Packed| {
                let _ = tx.unbounded_send(p);
            };
            pack_inputs(kzg, inputs, &*files, &job, &deal, base, secret, &tell)
        });
        let total = job.bytes;
        let mut done = 0u64;
        let announced = rx.filter_map(move |p| {
            std::future::ready(match p {
                Packed::Bytes(n) => {
                    done = done.saturating_add(n);
                    progress(&Event::Packing {
                        done: done.min(total),
                        total,
                    });
                    None
                }
                Packed::Mdu(mdu, leaves, root) => Some((mdu, leaves, root)),
            })
        });
        let sending = async {
            match &eps {
                Some(eps) => {
                    self.send_early(&*files, job, eps, announced, progress)
                        .await
                }
                None => announced.for_each(|_| async {}).await,
            }
        };
        let (packed, ()) = futures::join!(packing, sending);
        packed.map_err(|_| anyhow!("the packing job stopped (it panicked)"))?
    }

    /// Sends each user MDU that `ready` announces to every slot, `per_slot` MDUs at a time.
    /// A slot that refuses an MDU after the usual retries is left to `finish_job`.
    async fn send_early(
        &self,
        files: &dyn SlabFiles,
        job: &Job,
        eps: &[Endpoint],
        announced: impl Stream<Item = (u32, Vec<Leaf>, [u8; 32])>,
        progress: Progress<'_>,
    ) {
        let acks_key = format!("{}/acked.log", job_prefix(job.deal, job.generation));
        let Ok(acks) = Acks::open(self.store.clone(), acks_key).await else {
            return;
        };
        let acks = Mutex::new(acks);
        let given_up: Vec<std::sync::atomic::AtomicBool> =
            eps.iter().map(|_| Default::default()).collect();
        // MDUs go out in groups of `per_slot`: a provider that receives a group at once
        // checks its shards' commitments in one batch (see provider::verify), which a
        // trickle of single MDUs, each sent as soon as it is packed, would never allow.
        let group = self.tuning.per_slot.max(1);
        announced
            .chunks(group)
            .map(|mdus| {
                let (acks, given_up) = (&acks, &given_up);
                let sends = eps.iter().enumerate().flat_map(move |(s, ep)| {
                    mdus.clone()
                        .into_iter()
                        .map(move |(mdu, leaves, root)| async move {
                            if given_up[s].load(Ordering::Relaxed) {
                                return;
                            }
                            let sent = self
                                .send_early_shard(
                                    files,
                                    job,
                                    (s as u32, ep),
                                    (mdu, leaves, root),
                                    progress,
                                )
                                .await;
                            match sent {
                                // An unrecorded ack only means a second send later.
                                Ok(()) => {
                                    if Acks::add(acks, s as u32, mdu, &ep.account).await.is_ok() {
                                        progress(&Event::ShardAcked {
                                            slot: s as u32,
                                            mdu,
                                        });
                                    }
                                }
                                Err(e) => {
                                    tracing::debug!(slot = s, mdu, "early upload gave up: {e:#}");
                                    given_up[s].store(true, Ordering::Relaxed);
                                }
                            }
                        })
                });
                futures::future::join_all(sends)
            })
            // The next group is packed while this one is sent and checked.
            .buffer_unordered(2)
            .for_each(|_| async {})
            .await;
    }

    /// One slot's shard of a freshly packed user MDU, read back from the slab directory.
    async fn send_early_shard(
        &self,
        files: &dyn SlabFiles,
        job: &Job,
        (slot, ep): (u32, &Endpoint),
        (mdu, leaves, root): (u32, Vec<Leaf>, [u8; 32]),
        progress: Progress<'_>,
    ) -> Result<()> {
        let name = slabdir::shard_name(slot as usize, mdu.into());
        let data = files
            .read(&name)?
            .ok_or_else(|| anyhow!("{name} is missing"))?;
        let up = self.upload_request((job.deal, job.generation), slot, mdu, leaves, &data);
        self.upload_with_retries(ep, up, root, progress).await
    }

    /// Copies a home-less job's packed slab into the store (`<job>/slab/<slot>/<name>`);
    /// natively the slab is files of the home already.
    async fn persist_slab(&self, files: &dyn SlabFiles, prefix: &str) -> Result<()> {
        if self.home.is_some() {
            return Ok(());
        }
        for slot in files.slots()? {
            for name in self.slabs.list_now(&format!("{prefix}/slab/{slot}"))? {
                let rel = format!("{slot}/{name}");
                let bytes = files
                    .read(&rel)?
                    .ok_or_else(|| anyhow!("{prefix}/slab/{rel} vanished"))?;
                self.store
                    .put(&format!("{prefix}/slab/{rel}"), &bytes, Kind::Plain)
                    .await?;
            }
        }
        Ok(())
    }

    /// Brings a home-less job's packed slab back from the store into memory (a new page
    /// resuming what an earlier one packed).
    async fn load_slab(&self, prefix: &str) -> Result<()> {
        if self.home.is_some() {
            return Ok(());
        }
        let root = format!("{prefix}/slab");
        for slot in self.store.list(&root).await? {
            for name in self.store.list(&format!("{root}/{slot}")).await? {
                let key = format!("{root}/{slot}/{name}");
                if self.slabs.read_now(&key, Kind::Plain)?.is_none() {
                    if let Some(bytes) = self.store.read(&key, Kind::Plain).await? {
                        self.slabs.put_now(&key, &bytes, Kind::Plain)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The uploads an interruption left in the store: what [`Client::resume`] would finish,
    /// and whether it can. A job interrupted while packing needs its files again, which
    /// only a native client can open by path (a browser's `File` is gone with its page).
    pub async fn pending(&self) -> Result<Vec<PendingJob>> {
        let mut out = Vec::new();
        for (_, job) in self.jobs().await? {
            let reopenable = job
                .files
                .iter()
                .all(|f| f.as_ref().is_some_and(|p| p.is_file()));
            out.push(PendingJob {
                deal: job.deal,
                generation: job.generation,
                resumable: job.packed || reopenable,
                packed: job.packed,
                bytes: job.bytes,
                names: job.names,
            });
        }
        Ok(out)
    }

    /// Drops the job an interruption left for `deal`'s `generation` (its record, packed
    /// slab and acknowledgements), for one that cannot be resumed; the deal stays as the
    /// chain has it. False when there was no such job.
    pub async fn forget_job(&self, deal: u64, generation: u64) -> Result<bool> {
        let prefix = job_prefix(deal, generation);
        let known = self
            .store
            .read(&format!("{prefix}/job.json"), Kind::Plain)
            .await?
            .is_some();
        self.store.remove_all(&prefix).await?;
        self.slabs.remove_all_now(&prefix)?;
        Ok(known)
    }

    /// The jobs in the store's `uploads`, with their prefixes.
    async fn jobs(&self) -> Result<Vec<(String, Job)>> {
        let mut out = Vec::new();
        for name in self.store.list("uploads").await? {
            let prefix = format!("uploads/{name}");
            let Some(raw) = self
                .store
                .read(&format!("{prefix}/job.json"), Kind::Plain)
                .await?
            else {
                continue;
            };
            let job: Job =
                serde_json::from_slice(&raw).with_context(|| format!("{prefix}/job.json"))?;
            out.push((prefix, job));
        }
        Ok(out)
    }

    /// Finishes every job an interruption left in `HOME/uploads`.
    pub async fn resume(&self, progress: Progress<'_>) -> Result<Vec<PutReport>> {
        let mut out = Vec::new();
        for (prefix, job) in self.jobs().await? {
            let files = self.job_files(&prefix);
            let deal = self.deal(job.deal).await?;
            if deal.manifest_root.is_some() && deal.generation >= job.generation {
                // Committed before the interruption (or superseded): nothing left to do.
                self.store.remove_all(&prefix).await?;
                self.slabs.remove_all_now(&prefix)?;
                continue;
            }
            ensure!(
                deal.next_generation() == job.generation,
                "{prefix}: the deal moved on to generation {}",
                deal.generation
            );
            if !job.packed {
                // Packing is redone from the files (shards only go out after packing).
                let inputs = job
                    .files
                    .iter()
                    .zip(&job.names)
                    .map(|(f, name)| match f {
                        Some(path) => Input::file(path, Some(name.clone())),
                        None => bail!(
                            "{prefix}: packing was interrupted and {name} cannot be read again \
                             here: put it again"
                        ),
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push(
                    self.change(
                        job.deal,
                        &deal,
                        inputs,
                        job.delete,
                        job.encrypt,
                        job.bytes,
                        progress,
                    )
                    .await?,
                );
            } else {
                self.load_slab(&prefix).await?;
                out.push(self.finish_job(&*files, &job, None, progress).await?);
            }
        }
        Ok(out)
    }

    /// Sends what providers have not acknowledged, commits and verifies. `packed` is the
    /// slab and its metadata MDUs' leaves when this process just packed them; a resumed
    /// job reads the slab directory back and verifies it instead.
    async fn finish_job(
        &self,
        files: &dyn SlabFiles,
        job: &Job,
        packed: Option<(slabdir::OpenSlab, Vec<Vec<wasm_core::merkle::Leaf>>)>,
        progress: Progress<'_>,
    ) -> Result<PutReport> {
        let t0 = self.clock.monotonic();
        let (slab, metadata_leaves) = match packed {
            Some((slab, leaves)) => (slab, Some(leaves)),
            None => (
                slabdir::open_files(
                    self.kzg,
                    self.job_files(&job_prefix(job.deal, job.generation)),
                )?,
                None,
            ),
        };
        let deal = self.deal(job.deal).await?;
        let eps = self.endpoints(&deal).await?;
        let n = deal.slots.len();
        ensure!(
            slab.meta.k + slab.meta.m == n,
            "the packed slab has {} slots, the deal {n}",
            slab.meta.k + slab.meta.m
        );
        let total = slab.meta.total_mdus;
        let w = slab.meta.witness_mdus;
        // Leaves of what this job sends: metadata MDUs (from packing, or recomputed when
        // resuming) and the new user MDUs.
        let mut leaves: Vec<Option<Vec<Leaf>>> = vec![None; total as usize];
        match metadata_leaves {
            Some(ls) => {
                ensure!(
                    ls.len() as u64 == w + 1,
                    "packing gave {} metadata MDUs",
                    ls.len()
                );
                for (j, l) in ls.iter().enumerate() {
                    leaves[j] = Some(proto_leaves(l));
                }
            }
            None => {
                for j in 0..=w {
                    let name = slabdir::mdu_name(0, j);
                    let bytes = files
                        .read(&name)?
                        .ok_or_else(|| anyhow!("{name} is missing"))?;
                    let (l, root) = wasm_core::slab::encode_metadata_mdu(self.kzg, &bytes)?;
                    ensure!(
                        root == slab.mdu_roots[j as usize],
                        "metadata MDU {j}: root mismatch"
                    );
                    leaves[j as usize] = Some(proto_leaves(&l));
                }
            }
        }
        let first_user = 1 + w;
        for j in job.first_new_mdu..total {
            leaves[j as usize] = Some(proto_leaves(&slab.user_leaves[(j - first_user) as usize]));
        }
        let mdus: Vec<u32> = (0..=w)
            .chain(job.first_new_mdu..total)
            .map(|j| j as u32)
            .collect();
        let rows = slab.meta.profile()?.rows() as u64;
        let per_slot: u64 = mdus
            .iter()
            .map(|&j| {
                if u64::from(j) <= w {
                    (BLOB_BYTES * 64) as u64
                } else {
                    rows * BLOB_BYTES as u64
                }
            })
            .sum();
        let acks_key = format!("{}/acked.log", job_prefix(job.deal, job.generation));
        let acks = Acks::open(self.store.clone(), acks_key).await?;
        let already: u64 = acks
            .done
            .iter()
            .filter(|&(&(s, _), p)| eps.get(s as usize).is_some_and(|ep| ep.account == *p))
            .map(|(&(_, j), _)| {
                if u64::from(j) <= w {
                    (BLOB_BYTES * 64) as u64
                } else {
                    rows * BLOB_BYTES as u64
                }
            })
            .sum();
        let ctx = Send {
            deal: job.deal,
            generation: job.generation,
            slab: &slab,
            leaves,
            acks: Mutex::new(acks),
            done_bytes: AtomicU64::new(already),
            total_bytes: per_slot * n as u64,
            slots_done: AtomicUsize::new(0),
            t0,
            progress,
        };
        futures::future::try_join_all(
            eps.iter()
                .enumerate()
                .map(|(s, ep)| self.send_slot(&ctx, files, s as u32, ep, &mdus)),
        )
        .await?;
        let size: u64 = slab
            .table
            .records()
            .iter()
            .map(|r| r.start + r.len)
            .max()
            .unwrap_or(0);
        let root = slab.meta.manifest_root()?;
        self.send(Msg::CommitContent {
            deal: job.deal,
            generation: job.generation,
            manifest_root: G1Bytes(root),
            total_mdus: total,
            size_bytes: size,
        })
        .await?;
        let d = self.deal(job.deal).await?;
        ensure!(
            d.manifest_root == Some(G1Bytes(root)) && d.generation == job.generation,
            "the chain does not show the commit (generation {}, root {:?})",
            d.generation,
            d.manifest_root
        );
        progress(&Event::Committed {
            deal: job.deal,
            generation: job.generation,
        });
        let paths = if job.delete.is_empty() {
            job.names.clone()
        } else {
            job.delete.clone()
        };
        let report = PutReport {
            deal_id: job.deal,
            generation: job.generation,
            manifest_root: hex::encode(root),
            paths,
            bytes: job.bytes,
            shard_bytes: ctx.done_bytes.load(Ordering::Relaxed),
            seconds: self.clock.since(t0).as_secs_f64(),
        };
        drop(ctx);
        let prefix = job_prefix(job.deal, job.generation);
        self.store.remove_all(&prefix).await?;
        self.slabs.remove_all_now(&prefix)?;
        Ok(report)
    }

    async fn send_slot(
        &self,
        ctx: &Send<'_>,
        files: &dyn SlabFiles,
        slot: u32,
        ep: &Endpoint,
        mdus: &[u32],
    ) -> Result<()> {
        let todo: Vec<u32> = {
            let a = ctx.acks.lock().map_err(|_| anyhow!("ack log poisoned"))?;
            mdus.iter()
                .copied()
                .filter(|&j| !a.acked(slot, j, &ep.account))
                .collect()
        };
        futures::stream::iter(todo)
            .map(|mdu| self.send_one(ctx, files, slot, ep, mdu))
            .buffer_unordered(self.tuning.per_slot.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        let slots_acked = ctx.slots_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.report_upload(ctx, slots_acked);
        Ok(())
    }

    fn report_upload(&self, ctx: &Send<'_>, slots_acked: usize) {
        let done = ctx.done_bytes.load(Ordering::Relaxed);
        (ctx.progress)(&Event::Uploading {
            done,
            total: ctx.total_bytes,
            slots_acked,
            slots: ctx.slab.present.len(),
            mb_per_s: done as f64 / 1e6 / self.clock.since(ctx.t0).as_secs_f64().max(1e-3),
        });
    }

    async fn send_one(
        &self,
        ctx: &Send<'_>,
        files: &dyn SlabFiles,
        slot: u32,
        ep: &Endpoint,
        mdu: u32,
    ) -> Result<()> {
        let w = ctx.slab.meta.witness_mdus;
        let name = if u64::from(mdu) <= w {
            slabdir::mdu_name(slot as usize, mdu.into())
        } else {
            slabdir::shard_name(slot as usize, mdu.into())
        };
        let data = files
            .read(&name)?
            .ok_or_else(|| anyhow!("{name} is missing"))?;
        let leaves = ctx.leaves[mdu as usize]
            .clone()
            .ok_or_else(|| anyhow!("no leaves for MDU {mdu}"))?;
        let job = (ctx.deal, ctx.generation);
        let up = self.upload_request(job, slot, mdu, leaves, &data);
        let want = ctx.slab.mdu_roots[mdu as usize];
        self.upload_with_retries(ep, up, want, ctx.progress).await?;
        Acks::add(&ctx.acks, slot, mdu, &ep.account).await?;
        (ctx.progress)(&Event::ShardAcked { slot, mdu });
        ctx.done_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.report_upload(ctx, ctx.slots_done.load(Ordering::Relaxed));
        Ok(())
    }

    /// A signed upload of one shard (`data`: its blobs) of generation `generation`.
    fn upload_request(
        &self,
        (deal, generation): (u64, u64),
        slot: u32,
        mdu: u32,
        leaves: Vec<Leaf>,
        data: &[u8],
    ) -> UploadShard {
        UploadShard {
            chain_id: self.chain.chain_id(),
            deal,
            slot,
            mdu,
            generation,
            leaves,
            blobs: data.chunks(BLOB_BYTES).map(|b| Blob(b.to_vec())).collect(),
            auth: UploadAuth {
                signer: Address::ZERO,
                expires_ms: 0,
                sig: Sig65([0; 65]),
            },
        }
        .sign(
            self.signer.key(),
            self.clock.unix_ms().saturating_add(3_600_000),
        )
    }

    /// Uploads `up` to its slot's provider, retrying transient failures (and a provider
    /// that has not followed the chain to the deal yet) with backoff; the provider must
    /// acknowledge the MDU root `want`.
    async fn upload_with_retries(
        &self,
        ep: &Endpoint,
        up: UploadShard,
        want: [u8; 32],
        progress: Progress<'_>,
    ) -> Result<()> {
        let (slot, mdu) = (up.slot, up.mdu);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.net.upload(ep.peer, ep.addrs.clone(), up.clone()).await {
                Ok(ack) => {
                    ensure!(
                        ack.mdu_root.0 == want,
                        "slot {slot} ({}) acknowledged MDU {mdu} with another root",
                        ep.account
                    );
                    return Ok(());
                }
                // A provider that has not followed the chain to the deal yet says
                // NotFound: retried like a transient failure.
                Err(e)
                    if (e.is_transient()
                        || matches!(e, RequestError::Refused(NetError::NotFound(_))))
                        && attempt < self.tuning.attempts =>
                {
                    progress(&Event::Retry {
                        slot,
                        mdu,
                        attempt,
                        error: e.to_string(),
                    });
                    self.clock.sleep(backoff(&self.tuning, attempt)).await;
                }
                Err(e) => bail!(
                    "slot {slot} (provider {}) did not take MDU {mdu} after {attempt} attempts: {e}",
                    ep.account
                ),
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::store::DirStore;
    use futures::executor::block_on;
    use std::fs;

    /// Every record carries the acknowledging provider and a check: a line torn by a crash
    /// (whose prefix could read as another record), an unchecked line and a wrong check
    /// all read as nothing, so those shards are sent again rather than skipped; a record of
    /// another provider (the slot was repaired elsewhere since) does not count.
    #[test]
    fn ack_records_are_checked_and_name_their_provider() {
        let (p1, p2) = (Address([1; 20]), Address([2; 20]));
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(DirStore::new(dir.path()));
        let key = "uploads/deal-1-g0/acked.log".to_string();
        let p = dir.path().join(&key);
        let open = || Mutex::new(block_on(Acks::open(store.clone(), key.clone())).unwrap());
        let a = open();
        block_on(Acks::add(&a, 5, 12, &p1)).unwrap();
        block_on(Acks::add(&a, 0, 3, &p2)).unwrap();
        drop(a);
        let mut text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        text.push_str(&format!("7 9 {p1} {}\n", Acks::check(7, 8, &p1)));
        text.push_str(&format!("7 9 {p2} {}\n", Acks::check(7, 9, &p1)));
        text.push_str("7 9\n");
        let torn = format!("5 13 {p1} {}", Acks::check(5, 13, &p1));
        text.push_str(&torn[..torn.len() - 3]);
        fs::write(&p, text).unwrap();
        let a = open();
        {
            let a = a.lock().unwrap();
            assert_eq!(a.done, BTreeMap::from([((0, 3), p2), ((5, 12), p1)]));
            assert!(a.acked(5, 12, &p1));
            assert!(!a.acked(5, 12, &p2), "acknowledged by another provider");
            assert!(!a.acked(5, 13, &p1), "torn record");
        }
        // The torn line is ended first: a record appended after it reads back.
        block_on(Acks::add(&a, 1, 1, &p2)).unwrap();
        let a = open().into_inner().unwrap();
        assert_eq!(
            a.done,
            BTreeMap::from([((0, 3), p2), ((1, 1), p2), ((5, 12), p1)])
        );
    }
}
