//! The validator node (native only): the simplex application and reporter, the redb block
//! log, block sync and metrics. The `nilstore-validator` binary wires them to the tokio
//! runtime, the real network and the HTTP API; tests wire them to commonware's
//! deterministic runtime and simulated network.

use std::time::Duration;

use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::Sha256;
use commonware_p2p::utils::mux::MuxHandle;
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_utils::{NZDuration, NZUsize, NZU16};

use crate::light::Digest;
use node::{App, ChainReporter};

/// Genesis, then every stored block re-executed (each header re-checked): the chain at the
/// tip of the block log, and the genesis header's digest (consensus's floor).
pub fn replay(
    genesis: &crate::block::Genesis,
    store: &store::Store,
) -> anyhow::Result<(crate::block::Chain, Digest)> {
    use anyhow::Context as _;
    let mut chain = crate::block::Chain::from_genesis(genesis).context("genesis")?;
    let genesis_digest = crate::light::header_digest(&chain.tip);
    let env = crate::exec::Env {
        kzg: wasm_core::kzg::KzgSettings::ethereum(),
        faults: &crate::light::SimplexFaults,
    };
    for h in 1..=store.last_height()? {
        let block = store
            .block(h)?
            .with_context(|| format!("block log has no block {h}"))?;
        chain
            .import(&env, &block)
            .with_context(|| format!("replaying block {h}"))?;
    }
    Ok((chain, genesis_digest))
}

/// What a consensus engine needs of its runtime context (tokio in the binary, the
/// deterministic runtime in simulations).
pub trait EngineContext:
    commonware_runtime::Clock
    + rand_core10::CryptoRng
    + commonware_runtime::Spawner
    + commonware_runtime::Storage
    + commonware_runtime::Metrics
{
}

impl<T> EngineContext for T where
    T: commonware_runtime::Clock
        + rand_core10::CryptoRng
        + commonware_runtime::Spawner
        + commonware_runtime::Storage
        + commonware_runtime::Metrics
{
}

/// The p2p channels an epoch's engine runs on, multiplexed by consensus epoch (the
/// subchannel is the epoch number), so consecutive engines never see each other's messages.
pub struct EpochChannels<
    VS: commonware_p2p::Sender,
    CS: commonware_p2p::Sender,
    RS: commonware_p2p::Sender,
> {
    /// Votes.
    pub vote: MuxHandle<VS>,
    /// Certificates.
    pub cert: MuxHandle<CS>,
    /// Resolver (certificate fetches).
    pub resolver: MuxHandle<RS>,
}

/// How long a finished epoch's engine keeps running (answering peers that have not yet
/// seen its last finalization) after the next one started.
pub const EPOCH_OVERLAP: Duration = Duration::from_secs(5);
const EPOCH_POLL: Duration = Duration::from_millis(50);

/// Runs the consensus engines: one simplex instance per consensus epoch, each with the
/// validator set the chain names for it, started on the block that closed the previous
/// epoch. When a committed block changes the set's membership, the next epoch's engine starts
/// (if this validator is in the new set; otherwise it follows by block sync) and the old
/// one stops after [`EPOCH_OVERLAP`].
#[allow(clippy::too_many_arguments)]
pub fn run_epochs<E, S, B, VS, CS, RS>(
    context: E,
    node: node::Node,
    bls: commonware_cryptography::bls12381::primitives::group::Private,
    blocks: S,
    blocker: B,
    partition_prefix: String,
    mut channels: EpochChannels<VS, CS, RS>,
) -> commonware_runtime::Handle<()>
where
    E: EngineContext,
    S: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    B: commonware_p2p::Blocker<PublicKey = crate::light::PublicKey> + Clone,
    VS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    CS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    RS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
{
    context.child("epochs").spawn(move |ctx| async move {
        let mut running: Option<(u64, Option<commonware_runtime::Handle<()>>)> = None;
        loop {
            let (epoch, set, start) = match node.consensus_epoch() {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(%e, "cannot read the consensus epoch; stopping");
                    return;
                }
            };
            if running.as_ref().map(|(e, _)| *e) == Some(epoch) {
                ctx.sleep(EPOCH_POLL).await;
                continue;
            }
            if let Some((old, Some(h))) = running.take() {
                ctx.child("retire").spawn(move |c| async move {
                    c.sleep(EPOCH_OVERLAP).await;
                    h.abort();
                    tracing::info!(epoch = old, "stopped the previous epoch's engine");
                });
            }
            node.metrics.consensus_epoch.set(epoch as i64);
            let namespace = crate::light::namespace(node.lock().chain.state.g.chain_id);
            let scheme = crate::light::participants(&set)
                .ok()
                .and_then(|p| crate::light::Scheme::signer(&namespace, p, bls.clone()));
            let Some(scheme) = scheme else {
                tracing::info!(
                    epoch,
                    "not in this epoch's validator set; following by sync"
                );
                running = Some((epoch, None));
                continue;
            };
            let sub = epoch as commonware_p2p::Channel;
            let (Ok(vote), Ok(cert), Ok(resolver)) = (
                channels.vote.register(sub).await,
                channels.cert.register(sub).await,
                channels.resolver.register(sub).await,
            ) else {
                tracing::error!(epoch, "cannot open the epoch's channels; stopping");
                return;
            };
            let app = node::App::new(
                ctx.child("app").with_attribute("epoch", epoch),
                node.clone(),
                blocks.clone(),
                epoch,
            );
            let handle = start_engine(
                ctx.child("consensus").with_attribute("epoch", epoch),
                scheme,
                app,
                node::ChainReporter::new(node.clone()),
                blocker.clone(),
                epoch,
                start,
                format!("{partition_prefix}-epoch-{epoch}"),
                vote,
                cert,
                resolver,
            );
            tracing::info!(epoch, validators = set.len(), %start, "consensus epoch started");
            running = Some((epoch, Some(handle)));
        }
    })
}

pub mod api;
pub mod daemon;
pub mod metrics;
pub mod node;
pub mod store;
pub mod sync;

/// Starts the simplex engine (bls12381_multisig, round-robin leaders) for consensus epoch
/// `epoch`, whose first proposal builds on `genesis_digest`, over the given channels;
/// `partition` names its journal in the runtime's storage.
#[allow(clippy::too_many_arguments)]
pub fn start_engine<E, AE, S, B, VS, VR, CS, CR, RS, RR>(
    context: E,
    scheme: crate::light::Scheme,
    app: App<AE, S>,
    reporter: ChainReporter,
    blocker: B,
    epoch: u64,
    genesis_digest: Digest,
    partition: String,
    vote: (VS, VR),
    cert: (CS, CR),
    resolver: (RS, RR),
) -> commonware_runtime::Handle<()>
where
    E: EngineContext,
    AE: commonware_runtime::Spawner + commonware_runtime::Clock,
    S: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    B: commonware_p2p::Blocker<PublicKey = crate::light::PublicKey>,
    VS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    VR: commonware_p2p::Receiver<PublicKey = crate::light::PublicKey>,
    CS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    CR: commonware_p2p::Receiver<PublicKey = crate::light::PublicKey>,
    RS: commonware_p2p::Sender<PublicKey = crate::light::PublicKey>,
    RR: commonware_p2p::Receiver<PublicKey = crate::light::PublicKey>,
{
    let cfg = simplex::Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker,
        automaton: app.clone(),
        relay: app,
        reporter,
        strategy: Sequential,
        partition,
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::new(epoch),
        floor: simplex::Floor::Genesis(genesis_digest),
        replay_buffer: NZUsize!(1 << 20),
        write_buffer: NZUsize!(1 << 20),
        page_cache: CacheRef::new(NZU16!(16_384), NZUsize!(1_000)),
        leader_timeout: Duration::from_secs(2),
        certification_timeout: Duration::from_secs(3),
        timeout_retry: Duration::from_secs(10),
        fetch_timeout: NZDuration!(Duration::from_secs(1)),
        fetch_retry_delay: Duration::from_millis(100),
        view_retention: ViewDelta::new(64),
        skip: SkipPolicy::Enabled {
            timeout: Duration::from_secs(11),
            budget: SkipBudget::Participants,
        },
        forward: ForwardPolicy::Disabled,
        track_historical_votes: false,
    };
    simplex::Engine::new(context.child("engine"), cfg).start(vote, cert, resolver)
}
