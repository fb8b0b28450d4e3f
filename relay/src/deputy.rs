//! The deputy service (SPEC §7): a reader that cannot get a blob from a provider asks a
//! deputy to fetch it. The deputy checks the reader's signed request, fetches under a fresh
//! identity, and either returns the provider's signed bytes or signs a failure attestation
//! and submits it to the chain.
//!
//! The checks and the attestation are synchronous and deterministic given the chain view and
//! the clock passed in; the daemon runs the network part.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Result;
use chain_light::bytes::{Address, Sig65, H256};
use chain_light::state::{Deal, Provider, SlotStatus};
use chain_light::tx::{Attestation, Msg};
use nilstore_net::chain::{HttpChain, Signer};
use nilstore_net::limit::RateLimiter;
use nilstore_net::proto::{DeputyRequest, FetchResponse, NetError, BLOB_BYTES};
use sha2::{Digest as _, Sha256};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DeputyCounters {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests refused (bad signature, replay, limits, unknown deal).
    pub refused: AtomicU64,
    /// Blobs fetched and returned.
    pub served: AtomicU64,
    /// Attestations signed.
    pub attestations: AtomicU64,
    /// Attestations the chain did not take (submission failed).
    pub attestations_failed: AtomicU64,
}

/// Replay protection: the (reader, nonce) pairs seen, bounded (oldest forgotten first).
struct Seen {
    set: BTreeSet<(Address, u64)>,
    order: VecDeque<(Address, u64)>,
    max: usize,
}

impl Seen {
    fn insert(&mut self, k: (Address, u64)) -> bool {
        if !self.set.insert(k) {
            return false;
        }
        self.order.push_back(k);
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// How the deputy's fetch from a provider went.
#[derive(Debug)]
pub enum Fetched {
    /// The provider answered with bytes (checked by [`Deputy::check_answer`] next).
    Answer(FetchResponse),
    /// No answer: every dial failed, the connection dropped, or the deadline passed.
    Silent(String),
    /// The provider answered with a refusal.
    Refused(NetError),
    /// The deputy could not try (its own swarm failed; no endpoint it can dial).
    Local(String),
}

/// What the deputy does after a fetch.
#[derive(Debug)]
pub enum Verdict {
    /// Return the provider's verified answer to the reader.
    Serve(FetchResponse),
    /// Sign and submit a failure attestation (its reason).
    Attest(String),
    /// Answer the reader with this error and attest nothing.
    Refuse(NetError),
}

/// Decides what a fetch means (`check` is [`Deputy::check_answer`] for the request).
///
/// Attested: silence, and an answer that is not the requested blob under the provider's
/// signature. A refusal of a request the deputy admitted (the chain shows the provider in
/// that slot, the content committed, the reader authorized) is a refusal to serve stored
/// data and is attested too — except load shedding (`RateLimited`, `Unavailable`), which
/// an honest provider answers under a flood: that goes back to the reader, who asks again
/// later. (A reader who owns a deal could otherwise flood deputies to have its own honest
/// providers attested.) A failure on the deputy's side is never the provider's fault.
pub fn verdict(
    fetched: Fetched,
    check: impl FnOnce(&FetchResponse) -> Result<(), String>,
) -> Verdict {
    match fetched {
        Fetched::Answer(r) => match check(&r) {
            Ok(()) => Verdict::Serve(r),
            Err(why) => Verdict::Attest(format!("unusable answer: {why}")),
        },
        Fetched::Silent(why) => Verdict::Attest(why),
        Fetched::Refused(e @ (NetError::RateLimited { .. } | NetError::Unavailable(_))) => {
            Verdict::Refuse(e)
        }
        Fetched::Refused(e) => Verdict::Attest(format!("refused: {e}")),
        Fetched::Local(why) => Verdict::Refuse(NetError::Unavailable(format!("deputy: {why}"))),
    }
}

/// What an admitted request needs for the fetch.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The deal as proven.
    pub deal: Deal,
    /// The provider's record (peer id and endpoints).
    pub provider: Provider,
    /// The leaf index requested.
    pub leaf: u32,
}

/// Limits of the deputy service.
#[derive(Clone, Copy, Debug)]
pub struct DeputyLimits {
    /// Requests per second per peer.
    pub rate_per_s: u32,
    /// Burst per peer.
    pub burst: u32,
    /// Peers tracked by the rate limiter.
    pub max_peers: usize,
    /// (reader, nonce) pairs remembered against replays.
    pub replay_window: usize,
}

impl Default for DeputyLimits {
    fn default() -> Self {
        DeputyLimits {
            rate_per_s: 20,
            burst: 40,
            max_peers: 10_000,
            replay_window: 1_000_000,
        }
    }
}

/// The deputy.
pub struct Deputy {
    chain: std::sync::Arc<HttpChain>,
    signer: Signer,
    seen: Mutex<Seen>,
    rate: Mutex<RateLimiter<String>>,
    /// Counters.
    pub counters: DeputyCounters,
}

fn poisoned<T>(_: T) -> NetError {
    NetError::Internal("deputy state poisoned".into())
}

impl Deputy {
    /// A deputy signing with `signer`'s key (a registered deputy's account).
    pub fn new(chain: std::sync::Arc<HttpChain>, signer: Signer, limits: DeputyLimits) -> Deputy {
        Deputy {
            chain,
            signer,
            seen: Mutex::new(Seen {
                set: BTreeSet::new(),
                order: VecDeque::new(),
                max: limits.replay_window.max(1),
            }),
            rate: Mutex::new(RateLimiter::new(
                limits.rate_per_s,
                limits.burst,
                limits.max_peers,
            )),
            counters: DeputyCounters::default(),
        }
    }

    /// The deputy's account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Checks a request: limits, the reader's signature, that the reader may read the deal
    /// (owner or delegate: the premium is charged through its receipts), that the provider
    /// holds the slot, and that the request is not a replay.
    pub fn admit(
        &self,
        peer: &str,
        now_ms: u64,
        req: &DeputyRequest,
    ) -> Result<Admitted, NetError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let r = self.admit_inner(peer, now_ms, req);
        if r.is_err() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn admit_inner(
        &self,
        peer: &str,
        now_ms: u64,
        req: &DeputyRequest,
    ) -> Result<Admitted, NetError> {
        self.rate
            .lock()
            .map_err(poisoned)?
            .check(&peer.to_string(), now_ms)
            .map_err(|retry_ms| NetError::RateLimited { retry_ms })?;
        if req.chain_id != self.chain.chain_id() {
            return Err(NetError::BadRequest(format!(
                "chain {} (this deputy serves {})",
                req.chain_id,
                self.chain.chain_id()
            )));
        }
        let row = req
            .row()
            .ok_or_else(|| NetError::BadRequest("deputies fetch whole blobs only".into()))?;
        let signer = chain_light::crypto::recover(&req.digest(), &req.sig)
            .map_err(|e| NetError::Forbidden(format!("signature: {e}")))?;
        if signer != req.reader {
            return Err(NetError::Forbidden(format!(
                "signed by {signer}, the request names {}",
                req.reader
            )));
        }
        let unavailable = |e: anyhow::Error| NetError::Unavailable(format!("chain: {e:#}"));
        let deal = self
            .chain
            .deal(req.fetch.deal)
            .map_err(unavailable)?
            .ok_or_else(|| NetError::NotFound(format!("deal {}", req.fetch.deal)))?;
        if !deal.is_authorized(&req.reader, self.chain.epoch()) {
            return Err(NetError::Forbidden(format!(
                "{} is neither the owner nor a delegate of deal {}",
                req.reader, req.fetch.deal
            )));
        }
        let slot = deal
            .slots
            .get(req.fetch.slot as usize)
            .ok_or_else(|| NetError::NotFound(format!("slot {}", req.fetch.slot)))?;
        if slot.provider != req.provider || slot.status != SlotStatus::Active {
            return Err(NetError::Conflict(format!(
                "slot {} is not an active slot of {}",
                req.fetch.slot, req.provider
            )));
        }
        let rows = deal.rows();
        if u64::from(req.fetch.mdu) >= deal.total_mdus.max(1) {
            return Err(NetError::NotFound(format!("MDU {}", req.fetch.mdu)));
        }
        let metadata = u64::from(req.fetch.mdu) <= deal.witness_mdus;
        let leaf = if metadata {
            if row >= 64 {
                return Err(NetError::BadRequest(format!("row {row} of 64")));
            }
            row
        } else {
            if u64::from(row) >= rows {
                return Err(NetError::BadRequest(format!("row {row} of {rows}")));
            }
            u32::try_from(u64::from(req.fetch.slot) * rows + u64::from(row))
                .map_err(|_| NetError::BadRequest("leaf index".into()))?
        };
        let provider = self
            .chain
            .provider(&req.provider)
            .map_err(unavailable)?
            .ok_or_else(|| NetError::NotFound(format!("provider {}", req.provider)))?;
        if !self
            .seen
            .lock()
            .map_err(poisoned)?
            .insert((req.reader, req.nonce))
        {
            return Err(NetError::Conflict(format!(
                "request nonce {} of {} already used",
                req.nonce, req.reader
            )));
        }
        Ok(Admitted {
            deal,
            provider,
            leaf,
        })
    }

    /// Checks the provider's answer: one whole blob and the provider's signed statement over
    /// exactly these bytes for the requested leaf. (The reader checks the bytes against the
    /// leaf; a wrong blob with a valid statement is the reader's fraud evidence.)
    pub fn check_answer(
        &self,
        req: &DeputyRequest,
        a: &Admitted,
        resp: &FetchResponse,
    ) -> Result<(), String> {
        if resp.bytes.0.len() != BLOB_BYTES {
            return Err(format!("{} bytes, not a blob", resp.bytes.0.len()));
        }
        let [(served, sig)] = resp.served.as_slice() else {
            return Err("no signed statement".into());
        };
        let want = H256(*blake3::hash(&resp.bytes.0).as_bytes());
        if served.blake3 != want
            || served.deal != req.fetch.deal
            || served.slot != req.fetch.slot
            || served.mdu != req.fetch.mdu
            || served.leaf != a.leaf
        {
            return Err("the statement does not describe the bytes requested".into());
        }
        chain_light::crypto::verify(&served.digest(self.chain.chain_id()), sig, &req.provider)
            .map_err(|e| format!("statement signature: {e}"))?;
        self.counters.served.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Signs the failure attestation of `req` with the transcript of the attempt, and
    /// submits it. Returns it signed even when the submission fails (the reader may relay
    /// it); the error is logged and counted.
    pub fn attest(
        &self,
        req: &DeputyRequest,
        a: &Admitted,
        transcript: &[String],
    ) -> Result<(Attestation, Sig65)> {
        let mut h = Sha256::new();
        h.update(b"nilstore/deputy-transcript/v1");
        h.update(req.digest().0);
        for line in transcript {
            h.update((line.len() as u64).to_be_bytes());
            h.update(line.as_bytes());
        }
        let att = Attestation {
            deal: req.fetch.deal,
            slot: req.fetch.slot,
            mdu: req.fetch.mdu,
            leaf: a.leaf,
            provider: req.provider,
            epoch: self.chain.epoch(),
            transcript: H256(h.finalize().into()),
        };
        let sig = self
            .signer
            .key()
            .sign_digest(&att.digest(self.chain.chain_id()));
        self.counters.attestations.fetch_add(1, Ordering::Relaxed);
        match self.signer.send(
            &self.chain,
            Msg::SubmitAttestation {
                att: att.clone(),
                sig,
            },
        ) {
            Ok(hash) => tracing::info!(
                deal = att.deal,
                slot = att.slot,
                provider = %att.provider,
                %hash,
                "attested a provider's failure"
            ),
            Err(e) => {
                self.counters
                    .attestations_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %format!("{e:#}"), "submit an attestation");
            }
        }
        Ok((att, sig))
    }

    /// The chain view.
    pub fn chain(&self) -> &HttpChain {
        &self.chain
    }
}

/// Locates a deal's slots for a browser, from proven records.
pub fn locate(
    chain: &HttpChain,
    deal: u64,
) -> Result<nilstore_net::proto::LocateResponse, NetError> {
    let unavailable = |e: anyhow::Error| NetError::Unavailable(format!("chain: {e:#}"));
    let height = chain.trusted().map_err(unavailable)?.height;
    let d = chain
        .deal(deal)
        .map_err(unavailable)?
        .ok_or_else(|| NetError::NotFound(format!("deal {deal}")))?;
    let mut slots = Vec::with_capacity(d.slots.len());
    for (i, s) in d.slots.iter().enumerate() {
        let p = chain.provider(&s.provider).map_err(unavailable)?;
        slots.push(nilstore_net::proto::SlotLocation {
            slot: i as u32,
            provider: s.provider,
            active: s.status == SlotStatus::Active,
            peer_id: p.as_ref().map(|p| p.peer_id.clone()).unwrap_or_default(),
            endpoints: p.map(|p| p.endpoints).unwrap_or_default(),
        });
    }
    Ok(nilstore_net::proto::LocateResponse {
        height,
        k: d.k,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chain_light::bytes::Blob;

    fn answer() -> FetchResponse {
        FetchResponse {
            bytes: Blob(vec![0; 4]),
            leaves: Vec::new(),
            served: Vec::new(),
        }
    }

    /// Load shedding and the deputy's own failures are answered, never attested; silence,
    /// a definite refusal of an admitted request and an unusable answer are attested; a
    /// good answer is served.
    #[test]
    fn only_silence_refusal_to_serve_and_bad_answers_are_attested() {
        let good = |_: &FetchResponse| Ok(());
        let bad = |_: &FetchResponse| Err("no signed statement".to_string());
        assert!(matches!(
            verdict(Fetched::Answer(answer()), good),
            Verdict::Serve(_)
        ));
        assert!(matches!(
            verdict(Fetched::Answer(answer()), bad),
            Verdict::Attest(w) if w.contains("no signed statement")
        ));
        assert!(matches!(
            verdict(Fetched::Silent("timed out".into()), good),
            Verdict::Attest(w) if w == "timed out"
        ));
        for shed in [
            NetError::RateLimited { retry_ms: 50 },
            NetError::Unavailable("busy".into()),
        ] {
            assert!(matches!(
                verdict(Fetched::Refused(shed.clone()), good),
                Verdict::Refuse(e) if e == shed
            ));
        }
        assert!(matches!(
            verdict(Fetched::Refused(NetError::NotFound("shard".into())), good),
            Verdict::Attest(w) if w.contains("shard")
        ));
        assert!(matches!(
            verdict(Fetched::Local("swarm: no memory".into()), good),
            Verdict::Refuse(NetError::Unavailable(w)) if w.contains("swarm")
        ));
    }
}
