//! The provider's request handlers, independent of the transport: libp2p protocols and the
//! HTTP API both call these. Each handler bounds the caller (per-peer token bucket and
//! in-flight cap), validates everything before touching the store, and answers a typed
//! [`NetError`]. Time comes in as an argument; the chain is behind [`ChainView`].

use std::sync::{Arc, Mutex};

use chain_light::bytes::{Blob, H256};
use chain_light::crypto::SecretKey;
use chain_light::state::Deal;
use chain_light::tx::Served;
use nilstore_net::limit::{Concurrency, RateLimiter};
use nilstore_net::proto::{
    FetchRequest, FetchResponse, FetchWhat, NetError, ProofRequest, ProofResponse, ReceiptSubmit,
    UploadAck, UploadShard, BLOB_BYTES,
};
use wasm_core::kzg::{KzgSettings, Polynomial};

use crate::auth::{authorize_upload, AuthContext};
use crate::store::{Put, PutError, ShardMeta, Store};
use crate::verify::{prepare_upload, DealShape, GroupVerifier};

/// What the provider reads from the chain.
pub trait ChainView: Send + Sync {
    /// The chain id.
    fn chain_id(&self) -> u64;
    /// The current epoch.
    fn epoch(&self) -> u64;
    /// A deal by id (None: no such deal).
    fn deal(&self, id: u64) -> Result<Option<Deal>, NetError>;
}

/// Limits per peer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests per second per peer.
    pub rate_per_s: u32,
    /// Burst per peer.
    pub burst: u32,
    /// Requests in flight per peer.
    pub inflight_per_peer: u32,
    /// Peers tracked by the rate limiter.
    pub max_peers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            rate_per_s: 200,
            burst: 400,
            inflight_per_peer: 32,
            max_peers: 10_000,
        }
    }
}

/// Counters the daemon exports.
#[derive(Debug, Default)]
pub struct Counters {
    /// Shards stored.
    pub shards_stored: std::sync::atomic::AtomicU64,
    /// Uploads refused.
    pub uploads_refused: std::sync::atomic::AtomicU64,
    /// Bytes served.
    pub bytes_served: std::sync::atomic::AtomicU64,
    /// Requests refused by rate or concurrency limits.
    pub rate_limited: std::sync::atomic::AtomicU64,
}

/// The handlers.
pub struct Service<C: ChainView> {
    store: Arc<Store>,
    chain: C,
    key: SecretKey,
    salt: [u8; 32],
    kzg: &'static KzgSettings,
    /// Uploads arriving together share one commitment check.
    group: GroupVerifier,
    rate: Mutex<RateLimiter<String>>,
    inflight: Mutex<Concurrency<String>>,
    /// Counters.
    pub counters: Counters,
}

/// Holds one in-flight slot of a peer until dropped.
struct Slot<'a, C: ChainView> {
    svc: &'a Service<C>,
    peer: String,
}

impl<C: ChainView> Drop for Slot<'_, C> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.svc.inflight.lock() {
            c.end(&self.peer);
        }
    }
}

fn internal(e: impl std::fmt::Display) -> NetError {
    NetError::Internal(e.to_string())
}

impl<C: ChainView> Service<C> {
    /// Handlers over `store`, answering for the provider with account `key`. `salt` keys
    /// the upload check's random combination (keep it secret; random per process is fine).
    pub fn new(
        store: Arc<Store>,
        chain: C,
        key: SecretKey,
        salt: [u8; 32],
        limits: Limits,
    ) -> Self {
        Service {
            store,
            chain,
            key,
            salt,
            kzg: KzgSettings::ethereum(),
            group: GroupVerifier::default(),
            rate: Mutex::new(RateLimiter::new(
                limits.rate_per_s,
                limits.burst,
                limits.max_peers,
            )),
            inflight: Mutex::new(Concurrency::new(limits.inflight_per_peer)),
            counters: Counters::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The KZG setup.
    pub fn kzg(&self) -> &'static KzgSettings {
        self.kzg
    }

    /// The chain view.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// Commitment batches the group verifier has checked (with `shards_stored`, the mean
    /// batch size: how much verification the uploads share).
    pub fn verify_batches(&self) -> u64 {
        self.group.batches()
    }

    /// Admits one request from `peer` or refuses it (429).
    fn admit(&self, peer: &str, now_ms: u64) -> Result<Slot<'_, C>, NetError> {
        let limited = |retry_ms| {
            self.counters
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            NetError::RateLimited { retry_ms }
        };
        self.rate
            .lock()
            .map_err(internal)?
            .check(&peer.to_string(), now_ms)
            .map_err(limited)?;
        if !self
            .inflight
            .lock()
            .map_err(internal)?
            .start(&peer.to_string())
        {
            return Err(limited(100));
        }
        Ok(Slot {
            svc: self,
            peer: peer.to_string(),
        })
    }

    fn deal(&self, id: u64) -> Result<Deal, NetError> {
        self.chain
            .deal(id)?
            .ok_or_else(|| NetError::NotFound(format!("deal {id}")))
    }

    /// Accepts a shard: authorization, full verification, then durable storage.
    pub fn upload(&self, peer: &str, now_ms: u64, up: UploadShard) -> Result<UploadAck, NetError> {
        let _slot = self.admit(peer, now_ms)?;
        let r = self.upload_inner(now_ms, &up);
        if r.is_err() {
            self.counters
                .uploads_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn upload_inner(&self, now_ms: u64, up: &UploadShard) -> Result<UploadAck, NetError> {
        let deal = self.deal(up.deal)?;
        let cx = AuthContext {
            chain_id: self.chain.chain_id(),
            me: self.key.address(),
            epoch: self.chain.epoch(),
            now_ms,
        };
        authorize_upload(&deal, up, &cx)?;
        let shape = DealShape {
            k: deal.k,
            m: deal.m,
            witness_mdus: deal.witness_mdus,
        };
        let arriving = self.group.arriving();
        let prepared = prepare_upload(up, &shape, &self.salt)?;
        let v = self.group.verify(self.kzg, arriving, prepared)?;
        let put = self
            .store
            .put(
                (up.deal, up.slot, up.mdu),
                up.generation,
                &up.leaves,
                v.mdu_root,
                &v.data,
                now_ms,
            )
            .map_err(|e| match e {
                PutError::Committed { .. } => NetError::Conflict(e.to_string()),
                PutError::Io(e) => internal(e),
            })?;
        if put != Put::Unchanged {
            self.counters
                .shards_stored
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(UploadAck {
            mdu_root: v.mdu_root,
            bytes: v.data.len() as u64,
            fresh: put != Put::Unchanged,
        })
    }

    fn meta(&self, deal: u64, slot: u32, mdu: u32) -> Result<ShardMeta, NetError> {
        self.store
            .meta(deal, slot, mdu)
            .map_err(internal)?
            .ok_or_else(|| NetError::NotFound(format!("deal {deal} slot {slot} MDU {mdu}")))
    }

    /// The leaf index of `row` of a stored shard.
    fn leaf_index(meta: &ShardMeta, slot: u32, row: u32) -> u32 {
        if meta.leaves.len() == meta.blobs as usize {
            row // metadata: every slot stores the whole MDU
        } else {
            slot * meta.blobs + row
        }
    }

    fn served(
        &self,
        req: &FetchRequest,
        meta: &ShardMeta,
        row: u32,
        bytes: &[u8],
    ) -> (Served, chain_light::bytes::Sig65) {
        let s = Served {
            deal: req.deal,
            generation: meta.generation,
            slot: req.slot,
            mdu: req.mdu,
            mdu_root: meta.mdu_root,
            leaf: Self::leaf_index(meta, req.slot, row),
            blake3: H256(*blake3::hash(bytes).as_bytes()),
        };
        let sig = self.key.sign_digest(&s.digest(self.chain.chain_id()));
        (s, sig)
    }

    /// Serves a blob, a range, a shard, or the MDU's leaves.
    pub fn fetch(
        &self,
        peer: &str,
        now_ms: u64,
        req: FetchRequest,
    ) -> Result<FetchResponse, NetError> {
        let _slot = self.admit(peer, now_ms)?;
        let meta = self.meta(req.deal, req.slot, req.mdu)?;
        let check_row = |row: u32| {
            if row >= meta.blobs {
                Err(NetError::BadRequest(format!("row {row} of {}", meta.blobs)))
            } else {
                Ok(())
            }
        };
        let read = |offset: u64, len: usize| {
            self.store
                .read(req.deal, req.slot, req.mdu, offset, len)
                .map_err(internal)?
                .ok_or_else(|| NetError::NotFound("shard removed".into()))
        };
        let out = match req.what {
            FetchWhat::Blob { row } => {
                check_row(row)?;
                let bytes = read(u64::from(row) * BLOB_BYTES as u64, BLOB_BYTES)?;
                let served = vec![self.served(&req, &meta, row, &bytes)];
                FetchResponse {
                    bytes: Blob(bytes),
                    leaves: Vec::new(),
                    served,
                }
            }
            FetchWhat::Range { row, offset, len } => {
                check_row(row)?;
                if len == 0 || u64::from(offset) + u64::from(len) > BLOB_BYTES as u64 {
                    return Err(NetError::BadRequest(format!(
                        "range {offset}+{len} outside a {BLOB_BYTES}-byte blob"
                    )));
                }
                let at = u64::from(row) * BLOB_BYTES as u64 + u64::from(offset);
                FetchResponse {
                    bytes: Blob(read(at, len as usize)?),
                    leaves: Vec::new(),
                    served: Vec::new(),
                }
            }
            FetchWhat::Shard => {
                let bytes = read(0, meta.blobs as usize * BLOB_BYTES)?;
                let served = bytes
                    .chunks_exact(BLOB_BYTES)
                    .enumerate()
                    .map(|(r, b)| self.served(&req, &meta, r as u32, b))
                    .collect();
                FetchResponse {
                    bytes: Blob(bytes),
                    leaves: Vec::new(),
                    served,
                }
            }
            FetchWhat::Leaves => FetchResponse {
                bytes: Blob(Vec::new()),
                leaves: meta.leaves.clone(),
                served: Vec::new(),
            },
        };
        self.counters.bytes_served.fetch_add(
            out.bytes.0.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(out)
    }

    /// The roots of every MDU of a deal this provider stores for `slot` (the manifest's
    /// elements), in MDU order; None if one is missing.
    fn mdu_roots(
        &self,
        deal: u64,
        slot: u32,
        total: u64,
    ) -> Result<Option<Vec<[u8; 32]>>, NetError> {
        let shards = self.store.deal_shards(deal).map_err(internal)?;
        let mut roots = vec![None; total as usize];
        for ((s, mdu), meta) in shards {
            if s == slot && (mdu as u64) < total {
                roots[mdu as usize] = Some(meta.mdu_root.0);
            }
        }
        Ok(roots.into_iter().collect())
    }

    /// A triple proof for a challenge on a stored shard, against the deal's committed
    /// manifest.
    pub fn prove(
        &self,
        peer: &str,
        now_ms: u64,
        req: ProofRequest,
    ) -> Result<ProofResponse, NetError> {
        let _slot = self.admit(peer, now_ms)?;
        self.prove_local(&req)
    }

    /// [`Service::prove`] without the per-peer limits: the node's own challenge prover.
    pub fn prove_local(&self, req: &ProofRequest) -> Result<ProofResponse, NetError> {
        let deal = self.deal(req.deal)?;
        if deal.manifest_root.is_none() {
            return Err(NetError::NotFound(
                "the deal has no committed content".into(),
            ));
        }
        let meta = self.meta(req.deal, req.slot, req.mdu)?;
        if req.row >= meta.blobs {
            return Err(NetError::BadRequest(format!(
                "row {} of {}",
                req.row, meta.blobs
            )));
        }
        let roots = self
            .mdu_roots(req.deal, req.slot, deal.total_mdus)?
            .ok_or_else(|| NetError::NotFound("not every MDU of the deal is stored here".into()))?;
        let manifest = wasm_core::slab::manifest_polynomial(&roots).map_err(internal)?;
        let bytes = self
            .store
            .read(
                req.deal,
                req.slot,
                req.mdu,
                u64::from(req.row) * BLOB_BYTES as u64,
                BLOB_BYTES,
            )
            .map_err(internal)?
            .ok_or_else(|| NetError::NotFound("shard removed".into()))?;
        let blob = Polynomial::from_blob(&bytes).map_err(internal)?;
        let z = wasm_core::curve::Fr::from_bytes_be(&req.z.0)
            .map_err(|_| NetError::BadRequest("z is not a canonical field element".into()))?;
        let leaves: Vec<wasm_core::merkle::Leaf> = meta.leaves.iter().map(|&l| l.into()).collect();
        let proof = wasm_core::proof::prove(
            self.kzg,
            &manifest,
            req.mdu,
            &leaves,
            Self::leaf_index(&meta, req.slot, req.row),
            &blob,
            &z,
        )
        .map_err(internal)?;
        // Checked against the chain's manifest root before it leaves: a wrong proof costs
        // half the stake, while no answer only misses this challenge. Local corruption (a
        // flipped bit on disk, roots that are not the committed content) shows up here.
        if let Some(root) = deal.manifest_root {
            wasm_core::proof::verify(self.kzg, &root.0, &proof).map_err(|e| {
                NetError::Internal(format!(
                    "the stored data does not prove against the committed manifest \
                     (deal {} slot {} MDU {} row {}): {e}",
                    req.deal, req.slot, req.mdu, req.row
                ))
            })?;
        }
        Ok(ProofResponse {
            proof: Blob(proof.to_bytes()),
        })
    }

    /// Checks a reader's cumulative receipt for this provider: the deal exists, the receipt
    /// names this provider, and the owner or a delegate signed it. Returns the signer.
    pub fn check_receipt(
        &self,
        peer: &str,
        now_ms: u64,
        r: &ReceiptSubmit,
    ) -> Result<chain_light::bytes::Address, NetError> {
        let _slot = self.admit(peer, now_ms)?;
        if r.receipt.provider != self.key.address() {
            return Err(NetError::BadRequest(format!(
                "the receipt names provider {}, this is {}",
                r.receipt.provider,
                self.key.address()
            )));
        }
        let deal = self.deal(r.receipt.deal)?;
        let signer = chain_light::crypto::recover(&r.receipt.digest(self.chain.chain_id()), &r.sig)
            .map_err(|e| NetError::Forbidden(format!("receipt signature: {e}")))?;
        if !deal.is_authorized(&signer, self.chain.epoch()) {
            return Err(NetError::Forbidden(format!(
                "receipt signed by {signer}, not the owner or a delegate"
            )));
        }
        Ok(signer)
    }
}

impl ChainView for nilstore_net::chain::HttpChain {
    fn chain_id(&self) -> u64 {
        nilstore_net::chain::HttpChain::chain_id(self)
    }

    fn epoch(&self) -> u64 {
        nilstore_net::chain::HttpChain::epoch(self)
    }

    fn deal(&self, id: u64) -> Result<Option<Deal>, NetError> {
        nilstore_net::chain::HttpChain::deal(self, id)
            .map_err(|e| NetError::Unavailable(format!("chain: {e:#}")))
    }
}
