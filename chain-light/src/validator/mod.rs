//! The validator node (native only): the simplex application and reporter, the redb block
//! log, block sync and metrics. The `nilstore-validator` binary wires them to the tokio
//! runtime, the real network and the HTTP API; tests wire them to commonware's
//! deterministic runtime and simulated network.

use std::time::Duration;

use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::Sha256;
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
        faults: &crate::exec::NoFaults,
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

pub mod metrics;
pub mod node;
pub mod store;
pub mod sync;

/// Starts the simplex engine (bls12381_multisig, round-robin leaders) over the given
/// channels; `partition` names its journal in the runtime's storage.
#[allow(clippy::too_many_arguments)]
pub fn start_engine<E, AE, S, B, VS, VR, CS, CR, RS, RR>(
    context: E,
    scheme: crate::light::Scheme,
    app: App<AE, S>,
    reporter: ChainReporter,
    blocker: B,
    genesis_digest: Digest,
    partition: String,
    vote: (VS, VR),
    cert: (CS, CR),
    resolver: (RS, RR),
) -> commonware_runtime::Handle<()>
where
    E: commonware_runtime::Clock
        + rand_core10::CryptoRng
        + commonware_runtime::Spawner
        + commonware_runtime::Storage
        + commonware_runtime::Metrics,
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
        epoch: Epoch::zero(),
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
