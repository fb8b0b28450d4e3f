//! The validator node: the chain, the mempool, and the simplex application (Automaton,
//! Relay, Reporter) that turns consensus decisions into committed blocks.
//!
//! Consensus orders header digests. A proposal is built on the finalized tip (the proposer
//! waits for its parent to be committed), executed, remembered durably, then offered; a
//! block under verification is re-executed against the tip. A finalization commits the
//! matching executed candidate, and the block and its certificate go to the block log in
//! one transaction.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::block::{Block, Candidate, Chain};
use crate::bytes::{Address, H256};
use crate::codec;
use crate::exec::{Env, NoFaults, TxError};
use crate::light::{header_digest, Digest, PublicKey, Scheme};
use crate::tx::SignedTx;
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
/// How far ahead of the account's nonce a queued transaction may be.
pub const NONCE_WINDOW: u64 = 64;

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
    /// Waiting transactions in arrival order.
    pub mempool: VecDeque<SignedTx>,
    mempool_ids: HashSet<H256>,
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
}

impl Node {
    /// A node over a replayed chain.
    pub fn new(
        chain: Chain,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        account: Address,
        block_interval: Duration,
    ) -> Node {
        let (feed, _) = broadcast::channel(1024);
        metrics.observe_tip(&chain);
        Node {
            inner: Arc::new(Mutex::new(Shared {
                chain,
                mempool: VecDeque::new(),
                mempool_ids: HashSet::new(),
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
            account,
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
            faults: &NoFaults,
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
        if s.mempool.len() >= MEMPOOL_MAX {
            return Err(SubmitError::Full);
        }
        s.chain
            .state
            .check_envelope_fields(&tx, len, NONCE_WINDOW)?;
        s.mempool_ids.insert(hash);
        s.mempool.push_back(tx);
        self.metrics.mempool.set(s.mempool.len() as i64);
        Ok(hash)
    }

    /// Builds a candidate on the tip when the tip is `parent`.
    fn build_on(&self, parent: &Digest, now_ms: u64) -> Option<(Digest, Block)> {
        let mut s = self.lock();
        if header_digest(&s.chain.tip) != *parent {
            return None;
        }
        let mut txs: Vec<SignedTx> = s.mempool.iter().cloned().collect();
        // Per sender in nonce order, senders in arrival order.
        let mut first: HashMap<Address, usize> = HashMap::new();
        for (i, t) in txs.iter().enumerate() {
            first.entry(t.tx.from).or_insert(i);
        }
        txs.sort_by_key(|t| (first.get(&t.tx.from).copied().unwrap_or(0), t.tx.nonce));
        let c = match s.chain.build(&Self::env(), self.account, now_ms, &txs) {
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

    /// Executes a received or remembered body against the tip (or parks it until its
    /// parent is committed).
    pub fn receive_block(&self, block: Block) {
        let digest = header_digest(&block.header);
        let mut s = self.lock();
        if s.pending.contains_key(&digest) || block.header.height <= s.chain.tip.height {
            return;
        }
        if block.header.parent != s.chain.tip.hash() {
            if s.orphans.len() < 256 {
                s.orphans.insert(digest, block);
            }
            return;
        }
        match s.chain.check(&Self::env(), &block) {
            Ok(c) => {
                if let Err(e) = self.store.put_candidate(&digest.0, &block) {
                    tracing::error!(%e, "remembering a candidate failed");
                    return;
                }
                s.pending.insert(digest, c);
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

    /// Verdict on a digest: Some(true) executed fine on `parent`, Some(false) invalid, None
    /// not known yet.
    fn verdict(&self, digest: &Digest, parent: &Digest) -> Option<bool> {
        let s = self.lock();
        if s.rejected.contains(digest) {
            return Some(false);
        }
        let c = s.pending.get(digest)?;
        Some(c.block.header.parent == s.chain.tip.hash() && header_digest(&s.chain.tip) == *parent)
    }

    /// Commits the finalized digest with its certificate; idempotent.
    pub fn finalize(&self, digest: Digest, cert: Vec<u8>) {
        let mut s = self.lock();
        if header_digest(&s.chain.tip) == digest {
            return; // a replayed report of the tip
        }
        let cand = match s.pending.remove(&digest) {
            Some(c) => Some(c),
            None => match self.store.candidate(&digest.0) {
                Ok(Some(b)) => s.chain.check(&Self::env(), &b).ok(),
                _ => None,
            },
        };
        let Some(cand) = cand else {
            // Either an old finalization replayed after a restart (already committed), or a
            // block this node has not seen: the sync task fetches it from peers.
            tracing::debug!(%digest, "finalization of an unknown or past block");
            s.behind = true;
            return;
        };
        if cand.block.header.parent != s.chain.tip.hash() {
            tracing::debug!(
                height = cand.block.header.height,
                "finalized block is ahead of the tip"
            );
            s.behind = true;
            return;
        }
        let (item, orphans) = self.apply(&mut s, cand, &cert);
        drop(s);
        let _ = self.feed.send(item);
        for b in orphans {
            self.receive_block(b);
        }
    }

    /// Imports a block finalized elsewhere (sync): its certificate must verify against the
    /// current validator set.
    pub fn import_finalized(&self, block: Block, cert: &[u8]) -> bool {
        let mut s = self.lock();
        if block.header.height != s.chain.tip.height + 1 {
            return false;
        }
        let chain_id = s.chain.state.g.chain_id;
        if let Err(e) = crate::light::verify_finalization(
            chain_id,
            &s.chain.state.g.validators,
            &block.header,
            cert,
        ) {
            tracing::warn!(height = block.header.height, %e, "synced block with a bad certificate");
            return false;
        }
        let cand = match s.chain.check(&Self::env(), &block) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(height = block.header.height, %e, "synced block does not execute");
                return false;
            }
        };
        let (item, orphans) = self.apply(&mut s, cand, cert);
        drop(s);
        let _ = self.feed.send(item);
        for b in orphans {
            self.receive_block(b);
        }
        true
    }

    /// The commit path shared by consensus and sync: block log first, then the state.
    fn apply(&self, s: &mut Shared, cand: Candidate, cert: &[u8]) -> (Arc<FeedItem>, Vec<Block>) {
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
        let keep: VecDeque<SignedTx> = s
            .mempool
            .iter()
            .filter(|t| !included.contains(&t.hash()) && t.tx.nonce >= chain_nonce(s, &t.tx.from))
            .cloned()
            .collect();
        s.mempool_ids = keep.iter().map(|t| t.hash()).collect();
        s.mempool = keep;
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
}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> Clone for App<E, S> {
    fn clone(&self) -> Self {
        App {
            ctx: self.ctx.clone(),
            node: self.node.clone(),
            blocks: self.blocks.clone(),
        }
    }
}

impl<E: Spawner + Clock, S: P2pSender<PublicKey = PublicKey>> App<E, S> {
    /// An application over `node`, shipping block bodies on `blocks`.
    pub fn new(ctx: E, node: Node, blocks: S) -> Self {
        App {
            ctx: Arc::new(ctx),
            node,
            blocks,
        }
    }
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
        self.ctx.child("propose").spawn(move |ctx| async move {
            let start = ctx.current();
            loop {
                let tip_time = {
                    let s = node.lock();
                    (header_digest(&s.chain.tip) == parent).then_some(s.chain.tip.time_ms)
                };
                let now = now_ms(ctx.current());
                if let Some(t) = tip_time {
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
        self.ctx.child("verify").spawn(move |ctx| async move {
            loop {
                if let Some(v) = node.verdict(&payload, &parent) {
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
