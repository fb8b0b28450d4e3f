//! The validator node: the chain, the mempool, and the simplex application (Automaton,
//! Relay, Reporter) that turns consensus decisions into committed blocks.
//!
//! Consensus orders header digests. A proposal is built on the finalized tip (the proposer
//! waits for its parent to be committed), executed, remembered durably, then offered; a
//! block under verification is re-executed against the tip. A finalization commits the
//! matching executed candidate, and the block and its certificate go to the block log in
//! one transaction.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::block::{Block, Candidate, Chain};
use crate::bytes::{Address, H256};
use crate::codec;
use crate::crypto::SecretKey;
use crate::exec::{Env, TxError};
use crate::light::SimplexFaults;
use crate::light::{header_digest, Digest, PublicKey, Scheme};
use crate::tx::SignedTx;
use crate::tx::{Msg, Tx};
use commonware_actor::Feedback;
use commonware_codec::Encode as _;
use commonware_consensus::simplex::types::{Activity, Context};
use commonware_consensus::simplex::Plan;
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter, Viewable as _};
use commonware_p2p::{Recipients, Sender as P2pSender};
use commonware_runtime::{Clock, Spawner};
use commonware_utils::channel::fallible::OneshotExt as _;
use commonware_utils::channel::oneshot;
use serde::Serialize;
use tokio::sync::broadcast;
use wasm_core::kzg::KzgSettings;

use super::metrics::Metrics;
use super::store::{Store, MAX_BLOCK_BYTES};

/// Most transactions waiting in the mempool.
pub const MEMPOOL_MAX: usize = 20_000;
/// Most bytes of transactions waiting in the mempool (transactions are up to 16 MiB each:
/// a count alone bounds nothing).
pub const MEMPOOL_MAX_BYTES: usize = 128 << 20;
/// How far ahead of the account's nonce a queued transaction may be.
pub const NONCE_WINDOW: u64 = 64;
/// Most bytes one sender may have waiting, so that one account cannot fill the mempool.
pub const SENDER_MAX_BYTES: usize = 16 << 20;
/// A transaction replaces a waiting one of the same sender and nonce only with a fee
/// higher by at least this many percent (and at least one unit): replacements cost, so
/// they cannot churn the mempool for free.
pub const REPLACE_BUMP_PERCENT: u128 = 10;

/// A waiting transaction, by (sender, nonce): its hash, fee and encoded size.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    hash: H256,
    fee: crate::Amount,
    bytes: usize,
}

/// A committed block as the event feed shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FeedItem {
    /// Height.
    pub height: u64,
    /// Header hash.
    pub hash: H256,
    /// State root.
    pub state_root: H256,
    /// Block-level events (epoch processing).
    pub block_events: Vec<crate::Event>,
    /// Per transaction: hash, outcome, events.
    pub txs: Vec<crate::TxResult>,
}

/// Mutable node state (behind one mutex; never held across an await).
pub struct Shared {
    /// The chain at the finalized tip.
    pub chain: Chain,
    /// Waiting transactions in arrival order (one per sender and nonce).
    pub mempool: VecDeque<SignedTx>,
    mempool_ids: HashSet<H256>,
    /// The same transactions by (sender, nonce): per-sender limits and replacement.
    waiting: BTreeMap<(Address, u64), Waiting>,
    /// Their encoded bytes in all.
    mempool_bytes: usize,
    /// Executed, uncommitted candidates by digest (looked up, never iterated).
    pending: HashMap<Digest, Candidate>,
    /// Received bodies whose parent is not yet the tip.
    orphans: HashMap<Digest, Block>,
    /// Bodies that failed to execute (bounded): verification answers false at once.
    rejected: HashSet<Digest>,
    /// Recent results by transaction hash (for `GET /tx`).
    pub recent: HashMap<H256, (u64, crate::TxResult)>,
    recent_order: VecDeque<H256>,
    /// A finalization arrived that this node could not apply: fetch blocks from peers.
    behind: bool,
}

/// The node: shared state, the block log, the feed and metrics.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Mutex<Shared>>,
    /// The block log.
    pub store: Arc<Store>,
    /// Committed blocks, for SSE subscribers.
    pub feed: broadcast::Sender<Arc<FeedItem>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This validator's account (block proposer field).
    pub account: Address,
    /// Its key: signs fault reports.
    account_key: Arc<SecretKey>,
    /// Minimum time between blocks.
    pub block_interval: Duration,
}

/// Why the mempool refused a transaction.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The envelope is invalid.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Already queued or included.
    #[error("transaction already known")]
    Duplicate,
    /// The mempool is full.
    #[error("mempool full")]
    Full,
    /// The sender already has as many transactions or bytes waiting as one sender may.
    #[error("too many transactions waiting from this sender")]
    SenderFull,
    /// A transaction with this sender and nonce is waiting with a fee this one does not
    /// beat by enough.
    #[error("a transaction with this nonce is waiting; a replacement must pay at least {need}")]
    Underpriced {
        /// The lowest fee that replaces the waiting transaction.
        need: crate::Amount,
    },
}

impl Node {
    /// A node over a replayed chain.
    pub fn new(
        chain: Chain,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        account_key: SecretKey,
        block_interval: Duration,
    ) -> Node {
        let (feed, _) = broadcast::channel(1024);
        metrics.observe_tip(&chain);
        Node {
            inner: Arc::new(Mutex::new(Shared {
                chain,
                mempool: VecDeque::new(),
                mempool_ids: HashSet::new(),
                waiting: BTreeMap::new(),
                mempool_bytes: 0,
                pending: HashMap::new(),
                orphans: HashMap::new(),
                rejected: HashSet::new(),
                recent: HashMap::new(),
                recent_order: VecDeque::new(),
                behind: false,
            })),
            store,
            feed,
            metrics,
            account: account_key.address(),
            account_key: Arc::new(account_key),
            block_interval,
        }
    }

    /// Locks the shared state. A poisoned lock means a panic while mutating the chain; the
    /// state may be torn, so the process stops rather than serve it.
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(_) => {
                tracing::error!("node state poisoned by a panic; exiting");
                std::process::exit(70);
            }
        }
    }

    fn env() -> Env<'static> {
        Env {
            kzg: KzgSettings::ethereum(),
            faults: &SimplexFaults,
        }
    }

    /// Turns consensus-fault evidence the engine observed into a `ReportValidatorFault`
    /// transaction from this validator's account, queued in its own mempool (whoever's
    /// report lands first is rewarded; the chain punishes a fault once).
    pub fn report_fault(&self, evidence: crate::bytes::Blob) {
        let tx = {
            let s = self.lock();
            let st = &s.chain.state;
            let Some(identity) = SimplexFaults::accused(&evidence.0, &st.open_fault_epochs())
            else {
                tracing::warn!("fault evidence names no validator of an open epoch");
                return;
            };
            let id = commonware_codec::Encode::encode(&identity);
            let Some((validator, _)) = st
                .validators
                .iter()
                .find(|(_, v)| v.consensus_key.0.get(..32) == Some(id.as_ref()))
            else {
                tracing::warn!("fault evidence against an unknown validator");
                return;
            };
            let queued = s
                .mempool
                .iter()
                .filter(|t| t.tx.from == self.account)
                .count() as u64;
            let nonce = st.accounts.get(&self.account).map_or(0, |a| a.nonce) + queued;
            tracing::warn!(%validator, "consensus fault observed; reporting it");
            Tx {
                chain_id: st.g.chain_id,
                from: self.account,
                nonce,
                fee: st.g.params.min_fee,
                msg: Msg::ReportValidatorFault {
                    validator: *validator,
                    evidence,
                },
            }
            .sign(&self.account_key)
        };
        self.metrics.faults_reported.inc();
        if let Err(e) = self.submit(tx) {
            tracing::warn!(%e, "fault report refused by the mempool");
        }
    }

    /// Admits a transaction to the mempool after the envelope checks (nonce may run ahead
    /// of the account by [`NONCE_WINDOW`]).
    pub fn submit(&self, tx: SignedTx) -> Result<H256, SubmitError> {
        let len = codec::encode(&tx).len();
        let hash = tx.hash();
        // The expensive check outside the lock.
        tx.verify_signature().map_err(TxError::from)?;
        let mut s = self.lock();
        if s.mempool_ids.contains(&hash) || s.recent.contains_key(&hash) {
            return Err(SubmitError::Duplicate);
        }
        s.chain
            .state
            .check_envelope_fields(&tx, len, NONCE_WINDOW)?;
        let (from, nonce) = (tx.tx.from, tx.tx.nonce);
        let replaced = s.waiting.get(&(from, nonce)).copied();
        if let Some(old) = replaced {
            let need = old
                .fee
                .saturating_add(old.fee / 100 * REPLACE_BUMP_PERCENT)
                .max(old.fee.saturating_add(1));
            if tx.tx.fee < need {
                return Err(SubmitError::Underpriced { need });
            }
        }
        let freed = replaced.map_or(0, |w| w.bytes);
        let (count, bytes) = s
            .waiting
            .range((from, 0)..=(from, u64::MAX))
            .fold((0usize, 0usize), |(c, b), (_, w)| (c + 1, b + w.bytes));
        // The nonce window bounds a sender's count; its bytes are bounded here.
        if bytes - freed + len > SENDER_MAX_BYTES {
            return Err(SubmitError::SenderFull);
        }
        debug_assert!(count <= NONCE_WINDOW as usize + 1);
        if (replaced.is_none() && s.mempool.len() >= MEMPOOL_MAX)
            || s.mempool_bytes - freed + len > MEMPOOL_MAX_BYTES
        {
            return Err(SubmitError::Full);
        }
        if let Some(old) = replaced {
            s.mempool
                .retain(|t| !(t.tx.from == from && t.tx.nonce == nonce));
            s.mempool_ids.remove(&old.hash);
            s.mempool_bytes -= old.bytes;
        }
        s.waiting.insert(
            (from, nonce),
            Waiting {
                hash,
                fee: tx.tx.fee,
                bytes: len,
            },
        );
        s.mempool_bytes += len;
        s.mempool_ids.insert(hash);
        s.mempool.push_back(tx);
        self.metrics.mempool.set(s.mempool.len() as i64);
        Ok(hash)
    }

    /// The uncommitted candidates from the tip's child up to `d` (oldest first): empty when
    /// `d` is the tip, None when `d` does not chain to the tip through known candidates.
    fn chain_to(s: &Shared, d: &Digest) -> Option<Vec<Digest>> {
        let tip = header_digest(&s.chain.tip);
        let mut out = Vec::new();
        let mut cur = *d;
        while cur != tip {
            let c = s.pending.get(&cur)?;
            out.push(cur);
            if out.len() > 256 {
                return None;
            }
            cur = Digest::from(c.block.header.parent.0);
        }
        out.reverse();
        Some(out)
    }

    /// The time and consensus epoch of `parent` when a block can be built on it (it is the
    /// tip or a candidate chaining to the tip).
    pub fn parent_time(&self, parent: &Digest) -> Option<(u64, u64)> {
        let s = self.lock();
        let path = Self::chain_to(&s, parent)?;
        let h = match path.last() {
            Some(d) => &s.pending.get(d)?.block.header,
            None => &s.chain.tip,
        };
        Some((h.time_ms, h.consensus_epoch))
    }

    /// The consensus epoch after the tip or a known candidate.
    fn epoch_after(s: &Shared, d: &Digest) -> Option<u64> {
        if header_digest(&s.chain.tip) == *d {
            return Some(s.chain.tip.consensus_epoch);
        }
        s.pending.get(d).map(|c| c.block.header.consensus_epoch)
    }

    /// The consensus epoch to run, its validator set, and the digest of the block it starts
    /// after (its engine's genesis): from the tip's state.
    pub fn consensus_epoch(&self) -> anyhow::Result<(u64, Vec<crate::state::SetMember>, Digest)> {
        let s = self.lock();
        let g = &s.chain.state.g;
        let start = if g.set_start_height == s.chain.tip.height {
            header_digest(&s.chain.tip)
        } else if g.set_start_height == 0 {
            Digest::from(s.chain.genesis_header_hash.0)
        } else {
            let b = self
                .store
                .block(g.set_start_height)?
                .ok_or_else(|| anyhow::anyhow!("block log lacks block {}", g.set_start_height))?;
            header_digest(&b.header)
        };
        Ok((g.set_epoch, g.validators.clone(), start))
    }

    /// Builds a candidate on `parent` (the tip, or a notarized candidate chaining to it).
    fn build_on(&self, parent: &Digest, now_ms: u64) -> Option<(Digest, Block)> {
        let mut s = self.lock();
        let path = Self::chain_to(&s, parent)?;
        let mut txs: Vec<SignedTx> = s.mempool.iter().cloned().collect();
        // Per sender in nonce order, senders in arrival order.
        let mut first: HashMap<Address, usize> = HashMap::new();
        for (i, t) in txs.iter().enumerate() {
            first.entry(t.tx.from).or_insert(i);
        }
        txs.sort_by_key(|t| (first.get(&t.tx.from).copied().unwrap_or(0), t.tx.nonce));
        let built = {
            let ancestors: Vec<&Candidate> = path.iter().filter_map(|d| s.pending.get(d)).collect();
            s.chain
                .build_on(&ancestors, &Self::env(), self.account, now_ms, &txs)
        };
        let c = match built {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%e, "building a block failed");
                return None;
            }
        };
        let digest = header_digest(&c.block.header);
        let block = c.block.clone();
        s.pending.insert(digest, c);
        Some((digest, block))
    }

    /// Executes a received or remembered body on its parent (the tip or a known candidate),
    /// or parks it until the parent is known.
    pub fn receive_block(&self, block: Block) {
        let mut queue = vec![block];
        while let Some(block) = queue.pop() {
            let digest = header_digest(&block.header);
            let mut s = self.lock();
            if s.pending.contains_key(&digest) || block.header.height <= s.chain.tip.height {
                continue;
            }
            let parent = Digest::from(block.header.parent.0);
            let Some(path) = Self::chain_to(&s, &parent) else {
                if s.orphans.len() < 256 {
                    s.orphans.insert(digest, block);
                }
                continue;
            };
            let checked = {
                let ancestors: Vec<&Candidate> =
                    path.iter().filter_map(|d| s.pending.get(d)).collect();
                s.chain.check_on(&ancestors, &Self::env(), &block)
            };
            match checked {
                Ok(c) => {
                    if let Err(e) = self.store.put_candidate(&digest.0, &block) {
                        tracing::error!(%e, "remembering a candidate failed");
                        continue;
                    }
                    s.pending.insert(digest, c);
                    // Children that arrived first can execute now.
                    let hash = block.header.hash();
                    let kids: Vec<Digest> = s
                        .orphans
                        .iter()
                        .filter(|(_, b)| b.header.parent == hash)
                        .map(|(d, _)| *d)
                        .collect();
                    queue.extend(kids.iter().filter_map(|d| s.orphans.remove(d)));
                }
                Err(e) => {
                    tracing::warn!(height = block.header.height, %e, "invalid block");
                    if s.rejected.len() >= 1024 {
                        s.rejected.clear();
                    }
                    s.rejected.insert(digest);
                }
            }
        }
    }

    /// Verdict on a digest proposed in consensus epoch `epoch`: Some(true) executed fine on
    /// `parent`, which is in that epoch; Some(false) invalid or across an epoch boundary;
    /// None not known yet.
    fn verdict(&self, digest: &Digest, parent: &Digest, epoch: u64, now_ms: u64) -> Option<bool> {
        let s = self.lock();
        if s.rejected.contains(digest) {
            return Some(false);
        }
        let c = s.pending.get(digest)?;
        if Digest::from(c.block.header.parent.0) != *parent {
            return Some(false);
        }
        if !time_acceptable(c.block.header.time_ms, now_ms) {
            tracing::warn!(
                time_ms = c.block.header.time_ms,
                now_ms,
                "proposal dated too far ahead of this validator's clock; voting no"
            );
            return Some(false);
        }
        Some(Self::epoch_after(&s, parent)? == epoch)
    }

    /// Commits the finalized digest with its certificate, and its uncommitted ancestors
    /// (finalized implicitly); idempotent.
    pub fn finalize(&self, digest: Digest, cert: Vec<u8>) {
        let mut s = self.lock();
        if header_digest(&s.chain.tip) == digest {
            return; // a replayed report of the tip
        }
        if !s.pending.contains_key(&digest) {
            // After a restart: a body remembered before the crash, on the tip.
            if let Ok(Some(b)) = self.store.candidate(&digest.0) {
                if b.header.parent == s.chain.tip.hash() {
                    if let Ok(c) = s.chain.check(&Self::env(), &b) {
                        s.pending.insert(digest, c);
                    }
                }
            }
        }
        let Some(path) = Self::chain_to(&s, &digest) else {
            // An old finalization replayed after a restart, or blocks this node has not
            // seen: the sync task fetches them from peers.
            tracing::debug!(%digest, "finalization of an unknown or past block");
            s.behind = true;
            return;
        };
        let mut items = Vec::new();
        let mut orphans = Vec::new();
        let last = path.len().saturating_sub(1);
        for (i, d) in path.iter().enumerate() {
            let Some(c) = s.pending.remove(d) else { break };
            let (item, o) = self.apply(&mut s, c, (i == last).then_some(cert.as_slice()));
            items.push(item);
            orphans.extend(o);
        }
        drop(s);
        for item in items {
            let _ = self.feed.send(item);
        }
        for b in orphans {
            self.receive_block(b);
        }
    }

    /// Imports blocks finalized elsewhere (sync): a run of blocks chaining to the tip whose
    /// last one carries a finalization certificate that verifies against the current
    /// validator set (the earlier ones are final as its ancestors). Returns how many were
    /// imported.
    pub fn import_finalized(&self, run: Vec<Block>, cert: &[u8]) -> usize {
        let mut s = self.lock();
        let Some(last) = run.last() else { return 0 };
        let mut prev = s.chain.tip.hash();
        for b in &run {
            if b.header.parent != prev {
                return 0;
            }
            prev = b.header.hash();
        }
        // One validator set signs the whole run: only its last block may close the epoch.
        let epoch = s.chain.tip.consensus_epoch;
        if run[..run.len() - 1]
            .iter()
            .any(|b| b.header.consensus_epoch != epoch)
        {
            tracing::warn!("synced run crosses a consensus epoch boundary");
            return 0;
        }
        let chain_id = s.chain.state.g.chain_id;
        if let Err(e) = crate::light::verify_finalization(
            chain_id,
            &s.chain.state.g.validators,
            &last.header,
            cert,
        ) {
            tracing::warn!(height = last.header.height, %e, "synced block with a bad certificate");
            return 0;
        }
        let n = run.len();
        let mut items = Vec::new();
        let mut orphans = Vec::new();
        for (i, block) in run.into_iter().enumerate() {
            let cand = match s.chain.check(&Self::env(), &block) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(height = block.header.height, %e, "synced block does not execute");
                    break;
                }
            };
            let (item, o) = self.apply(&mut s, cand, (i + 1 == n).then_some(cert));
            items.push(item);
            orphans.extend(o);
        }
        drop(s);
        let count = items.len();
        for item in items {
            let _ = self.feed.send(item);
        }
        for b in orphans {
            self.receive_block(b);
        }
        count
    }

    /// The commit path shared by consensus and sync: block log first, then the state.
    fn apply(
        &self,
        s: &mut Shared,
        cand: Candidate,
        cert: Option<&[u8]>,
    ) -> (Arc<FeedItem>, Vec<Block>) {
        let block = cand.block.clone();
        // Durable first: the block log is what a restart replays.
        if let Err(e) = self.store.append(&block, cert) {
            tracing::error!(%e, "block log write failed; stopping");
            std::process::exit(74);
        }
        let ex = match s.chain.commit(cand) {
            Ok(ex) => ex,
            Err(e) => {
                tracing::error!(%e, "commit after a successful check failed; stopping");
                std::process::exit(70);
            }
        };
        s.behind = false;
        s.pending
            .retain(|_, c| c.block.header.height > block.header.height);
        let included: HashSet<H256> = block.txs.iter().map(|t| t.hash()).collect();
        let chain_nonce =
            |s: &Shared, a: &Address| s.chain.state.accounts.get(a).map_or(0, |x| x.nonce);
        // Still waiting: not included and not yet overtaken by the account's nonce.
        let keep: BTreeMap<(Address, u64), Waiting> = s
            .waiting
            .iter()
            .filter(|((a, n), w)| !included.contains(&w.hash) && *n >= chain_nonce(s, a))
            .map(|(k, w)| (*k, *w))
            .collect();
        let mempool: VecDeque<SignedTx> = std::mem::take(&mut s.mempool)
            .into_iter()
            .filter(|t| keep.contains_key(&(t.tx.from, t.tx.nonce)))
            .collect();
        s.mempool_ids = keep.values().map(|w| w.hash).collect();
        s.mempool_bytes = keep.values().map(|w| w.bytes).sum();
        s.waiting = keep;
        s.mempool = mempool;
        for r in &ex.results {
            s.recent.insert(r.hash, (block.header.height, r.clone()));
            s.recent_order.push_back(r.hash);
        }
        while s.recent_order.len() > 50_000 {
            if let Some(h) = s.recent_order.pop_front() {
                s.recent.remove(&h);
            }
        }
        self.metrics.observe_block(&ex, &s.chain, s.mempool.len());
        let tip = s.chain.tip.hash();
        let ready: Vec<Digest> = s
            .orphans
            .iter()
            .filter(|(_, b)| b.header.parent == tip)
            .map(|(d, _)| *d)
            .collect();
        let orphans: Vec<Block> = ready.iter().filter_map(|d| s.orphans.remove(d)).collect();
        s.orphans
            .retain(|_, b| b.header.height > block.header.height);
        tracing::info!(
            height = block.header.height,
            txs = block.txs.len(),
            root = %block.header.state_root,
            "finalized"
        );
        let item = Arc::new(FeedItem {
            height: block.header.height,
            hash: block.header.hash(),
            state_root: block.header.state_root,
            block_events: ex.block_events,
            txs: ex.results,
        });
        (item, orphans)
    }

    /// Whether the node knows it is behind (a finalization it could not apply).
    pub fn tip_height_and_behind(&self) -> (u64, bool) {
        let s = self.lock();
        (s.chain.tip.height, s.behind)
    }
}

fn now_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The simplex application.
pub struct App<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> {
    ctx: Arc<E>,
    node: Node,
    blocks: S,
    epoch: u64,
}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> Clone for App<E, S> {
    fn clone(&self) -> Self {
        App {
            ctx: self.ctx.clone(),
            node: self.node.clone(),
            blocks: self.blocks.clone(),
            epoch: self.epoch,
        }
    }
}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> App<E, S> {
    /// An application for consensus epoch `epoch` over `node`, shipping block bodies on
    /// `blocks`. It builds and accepts only blocks whose parent is in `epoch`: the block that
    /// changes the validator set is the last its epoch's engine finalizes.
    pub fn new(ctx: E, node: Node, blocks: S, epoch: u64) -> Self {
        App {
            ctx: Arc::new(ctx),
            node,
            blocks,
            epoch,
        }
    }
}

/// How far ahead of a validator's clock a proposal's time may be for its vote. The state
/// machine only knows that time never goes backwards; without this a proposer could date a
/// block years ahead, and every later block would have to follow it.
pub const MAX_CLOCK_AHEAD_MS: u64 = 15_000;

/// Whether a proposal dated `time_ms` may get this validator's vote at `now_ms`.
fn time_acceptable(time_ms: u64, now_ms: u64) -> bool {
    time_ms <= now_ms.saturating_add(MAX_CLOCK_AHEAD_MS)
}

const WAIT_STEP: Duration = Duration::from_millis(5);
const PROPOSE_PATIENCE: Duration = Duration::from_secs(3);

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> Automaton for App<E, S> {
    type Context = Context<Digest, PublicKey>;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Digest> {
        let (tx, rx) = oneshot::channel();
        let node = self.node.clone();
        let parent = context.parent.1;
        let epoch = self.epoch;
        self.ctx.child("propose").spawn(move |ctx| async move {
            let start = ctx.current();
            loop {
                let tip_time = node.parent_time(&parent);
                let now = now_ms(ctx.current());
                if let Some((_, e)) = tip_time {
                    if e != epoch {
                        // The parent closed this epoch: the next engine builds on it.
                        return;
                    }
                }
                if let Some((t, _)) = tip_time {
                    let due = t.saturating_add(node.block_interval.as_millis() as u64);
                    if now >= due {
                        if let Some((digest, block)) = node.build_on(&parent, now) {
                            if let Err(e) = node.store.put_candidate(&digest.0, &block) {
                                tracing::error!(%e, "remembering a proposal failed");
                                return;
                            }
                            tx.send_lossy(digest);
                        }
                        return;
                    }
                }
                if ctx.current().duration_since(start).unwrap_or_default() > PROPOSE_PATIENCE {
                    tracing::debug!(
                        view = context.view().get(),
                        "parent not committed in time; skipping"
                    );
                    return; // dropping the sender: consensus nullifies the view
                }
                ctx.sleep(WAIT_STEP).await;
            }
        });
        rx
    }

    async fn verify(&mut self, context: Self::Context, payload: Digest) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let node = self.node.clone();
        let parent = context.parent.1;
        let epoch = self.epoch;
        self.ctx.child("verify").spawn(move |ctx| async move {
            loop {
                if let Some(v) = node.verdict(&payload, &parent, epoch, now_ms(ctx.current())) {
                    tx.send_lossy(v);
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                ctx.sleep(WAIT_STEP).await;
            }
        });
        rx
    }
}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> CertifiableAutomaton for App<E, S> {}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> Relay for App<E, S> {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Digest, plan: Plan<PublicKey>) -> Feedback {
        let block = {
            let s = self.node.lock();
            s.pending.get(&payload).map(|c| c.block.clone())
        };
        let Some(block) = block else {
            return Feedback::Ok;
        };
        let bytes = codec::encode(&block);
        if bytes.len() > MAX_BLOCK_BYTES {
            return Feedback::Ok;
        }
        let recipients = match plan {
            Plan::Propose { .. } | Plan::Prepare { .. } => Recipients::All,
            Plan::Forward { recipients, .. } => recipients,
        };
        let _ = self.blocks.send(recipients, bytes, true);
        Feedback::Ok
    }
}

/// Receives consensus activity: finalizations commit blocks.
#[derive(Clone)]
pub struct ChainReporter {
    node: Node,
}

impl ChainReporter {
    /// A reporter for `node`.
    pub fn new(node: Node) -> Self {
        ChainReporter { node }
    }
}

impl Reporter for ChainReporter {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Activity::Finalization(f) => {
                let cert = f.encode().to_vec();
                self.node.metrics.finalizations.inc();
                self.node.finalize(f.proposal.payload, cert);
            }
            Activity::Nullification(_) => {
                self.node.metrics.nullifications.inc();
            }
            Activity::Notarization(_) => {
                self.node.metrics.notarizations.inc();
            }
            Activity::ConflictingNotarize(_)
            | Activity::ConflictingFinalize(_)
            | Activity::NullifyFinalize(_) => {
                if let Some(evidence) = SimplexFaults::evidence(&activity) {
                    self.node.report_fault(evidence);
                }
            }
            _ => {}
        }
        Feedback::Ok
    }
}

/// The blocker of a validator without peers (nobody to block).
#[derive(Clone)]
pub struct NoPeers;

impl commonware_p2p::Blocker for NoPeers {
    type PublicKey = PublicKey;

    fn block(&mut self, _peer: PublicKey) -> Feedback {
        Feedback::Ok
    }

    fn blocked(&mut self) -> commonware_p2p::BlockedSubscription<PublicKey> {
        let (tx, rx) = commonware_utils::channel::ring::channel(commonware_utils::NZUsize!(1));
        // Keep the subscription open for the process lifetime: there will never be updates.
        std::mem::forget(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Genesis, GenesisAccount, GenesisValidator};
    use crate::params::Params;

    const CHAIN: u64 = 77;

    /// A node over a fresh chain where `alice` and `bob` are funded; its log in `dir`.
    fn node(dir: &std::path::Path) -> Node {
        let key = |n: &str| SecretKey::from_seed(n.as_bytes());
        let genesis = Genesis {
            chain_id: CHAIN,
            time_ms: 0,
            params: Params::devnet(key("gov").address()),
            accounts: ["alice", "bob", "val"]
                .iter()
                .map(|n| GenesisAccount {
                    address: key(n).address(),
                    balance: 1 << 80,
                })
                .collect(),
            validators: vec![GenesisValidator {
                account: key("val").address(),
                consensus_key: {
                    let (id, bls) = crate::light::dev_keys(CHAIN, 0);
                    crate::light::make_consensus_key(&id, &bls)
                },
                stake: 10_000_000_000,
            }],
        };
        let chain = Chain::from_genesis(&genesis).unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(Store::open(dir).unwrap_or_else(|e| panic!("{e}")));
        Node::new(
            chain,
            store,
            Arc::new(Metrics::new()),
            key("val"),
            Duration::from_millis(100),
        )
    }

    /// A signed transaction of `who`; `pad` bytes of peer id make it large.
    fn tx(who: &str, nonce: u64, fee: crate::Amount, pad: usize) -> SignedTx {
        Tx {
            chain_id: CHAIN,
            from: SecretKey::from_seed(who.as_bytes()).address(),
            nonce,
            fee,
            msg: Msg::RegisterProvider {
                stake: 1,
                capacity_mdus: 1,
                operator: Address([0; 20]),
                peer_id: "x".repeat(pad),
                endpoints: vec![],
            },
        }
        .sign(&SecretKey::from_seed(who.as_bytes()))
    }

    /// The mempool bounds bytes per sender and replaces a waiting transaction only for a
    /// fee at least 10 % higher (one account used to fill it with same-nonce variants).
    #[test]
    fn mempool_bounds_each_sender_and_prices_replacements() {
        let dir = std::env::temp_dir().join(format!("nilstore-mempool-{}", std::process::id()));
        let n = node(&dir);
        let fee = n.lock().chain.state.g.params.min_fee;
        let first = n
            .submit(tx("alice", 0, fee, 10))
            .unwrap_or_else(|e| panic!("{e}"));
        // Same nonce, same or slightly higher fee: refused, naming the price.
        for f in [fee, fee + 1, fee + fee / 10 - 1] {
            match n.submit(tx("alice", 0, f, 11)) {
                Err(SubmitError::Underpriced { need }) => assert_eq!(need, fee + fee / 10),
                other => panic!("fee {f}: {other:?}"),
            }
        }
        // Enough: it replaces the waiting one, which is gone.
        let second = n
            .submit(tx("alice", 0, fee + fee / 10, 12))
            .unwrap_or_else(|e| panic!("{e}"));
        {
            let s = n.lock();
            assert_eq!(s.mempool.len(), 1);
            assert_eq!(s.mempool[0].hash(), second);
            assert!(!s.mempool_ids.contains(&first) && s.mempool_ids.contains(&second));
        }
        // ~1 MiB transactions: alice reaches her byte budget; bob is not held back by her.
        let big = (1 << 20) - 2048;
        let mut admitted = 1;
        let refused = loop {
            match n.submit(tx("alice", admitted, fee, big)) {
                Ok(_) => admitted += 1,
                Err(e) => break e,
            }
            assert!(admitted < 40, "no per-sender byte bound");
        };
        assert!(matches!(refused, SubmitError::SenderFull), "{refused:?}");
        assert!((15..=17).contains(&admitted), "{admitted} admitted");
        n.submit(tx("bob", 0, fee, big))
            .unwrap_or_else(|e| panic!("{e}"));
        {
            let s = n.lock();
            let bytes: usize = s.mempool.iter().map(|t| codec::encode(t).len()).sum();
            assert_eq!(s.mempool_bytes, bytes);
            assert_eq!(s.waiting.len(), s.mempool.len());
        }
        drop(n);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A proposal dated up to the allowed skew ahead gets a vote, one millisecond more does
    /// not, and no clock value overflows the check.
    #[test]
    fn votes_only_for_proposals_not_dated_ahead() {
        let now = 1_700_000_000_000;
        assert!(time_acceptable(now, now));
        assert!(time_acceptable(0, now));
        assert!(time_acceptable(now + MAX_CLOCK_AHEAD_MS, now));
        assert!(!time_acceptable(now + MAX_CLOCK_AHEAD_MS + 1, now));
        assert!(!time_acceptable(u64::MAX, now));
        assert!(time_acceptable(u64::MAX, u64::MAX));
    }
}
