//! Command line, home directory, start-up (replay) and the consensus engine wiring.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use chain_light::block::{Chain, Genesis, GenesisAccount, GenesisValidator};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::light::{self, Digest};
use chain_light::params::Params;
use clap::{Parser, Subcommand};
use commonware_codec::{Decode as _, Encode as _};
use commonware_consensus::simplex;
use commonware_cryptography::Signer as _;
use commonware_cryptography::{ed25519, ChaCha20Poly1305};
use commonware_p2p::authenticated::{self, lookup};
use commonware_p2p::utils::mocks::inert_channel;
use commonware_p2p::utils::mux::{prefixed, MuxHandle, Muxer};
use commonware_p2p::{max_message_size, AddressableManager as _, Receiver as _};
use commonware_runtime::Quota;
use commonware_runtime::{tokio as cw_tokio, Runner as _, Spawner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::NZUsize;
use commonware_utils::{union, TryCollect as _, NZU32};
use serde::{Deserialize, Serialize};

use chain_light::validator::metrics::Metrics;
use chain_light::validator::node::Node;
use chain_light::validator::store::Store;
use chain_light::validator::{run_epochs, sync, EpochChannels};

#[derive(Parser)]
#[command(
    name = "nilstore-validator",
    version,
    about = "NilStore chain validator (commonware simplex)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a validator from a home directory (a fresh one gets a single-validator dev genesis).
    Start {
        /// Home directory: genesis.json, validator_key.json, chain.redb, consensus/.
        #[arg(long)]
        home: PathBuf,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:26657")]
        api: SocketAddr,
        /// Chain id of a dev genesis written into a fresh home.
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// Minimum milliseconds between blocks.
        #[arg(long, default_value_t = 500)]
        block_ms: u64,
        /// p2p listen address (default: this validator's entry in peers.json).
        #[arg(long)]
        p2p: Option<SocketAddr>,
        /// Transactions per second accepted from one client address (`POST /tx`).
        #[arg(long, default_value_t = 5_000)]
        tx_rate: u32,
    },
    /// Write a dev genesis for N validators: OUT/genesis.json, OUT/dev-keys.json and one
    /// home per validator (OUT/validator-<i>/ with genesis.json and validator_key.json).
    Genesis {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Chain id.
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// First p2p port on 127.0.0.1 (validator i listens on base + i).
        #[arg(long, default_value_t = 27100)]
        p2p_base_port: u16,
        /// First API port on 127.0.0.1 (validator i serves on base + i).
        #[arg(long, default_value_t = 26657)]
        api_base_port: u16,
        /// Extra nodes with keys, funded accounts and peers.json entries but outside the
        /// genesis set: they follow by sync until a `CreateValidator` elects them.
        #[arg(long, default_value_t = 0)]
        standby: u64,
    },
}

/// A validator's secrets (`validator_key.json`, mode 0600).
#[derive(Serialize, Deserialize)]
struct ValidatorKey {
    /// Index in the dev genesis (informational).
    index: u64,
    /// ed25519 identity secret, hex.
    identity: String,
    /// BLS secret scalar, hex.
    bls: String,
    /// secp256k1 account secret, hex.
    account: String,
}

/// A funded dev account (`dev-keys.json`).
#[derive(Serialize, Deserialize)]
struct DevAccount {
    name: String,
    address: Address,
    secret: String,
}

const DEV_ACCOUNTS: u64 = 16;
const DEV_BALANCE: u128 = 1_000_000_000_000_000_000_000;
const VALIDATOR_STAKE: u128 = 10_000_000_000_000;

pub fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Start {
            home,
            api,
            chain_id,
            block_ms,
            p2p,
            tx_rate,
        } => start(
            &home,
            api,
            p2p,
            tx_rate,
            chain_id,
            Duration::from_millis(block_ms),
        ),
        Cmd::Genesis {
            validators,
            out,
            chain_id,
            p2p_base_port,
            api_base_port,
            standby,
        } => write_genesis(
            &out,
            (validators, standby),
            chain_id,
            (p2p_base_port, api_base_port),
        )
        .map(|_| ()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn dev_account_key(chain_id: u64, name: &str) -> SecretKey {
    SecretKey::from_seed(format!("nilstore/dev/{chain_id}/{name}").as_bytes())
}

/// Writes a dev genesis for `n` validators under `out`; returns the genesis.
fn write_genesis(
    out: &Path,
    (n, standby): (u64, u64),
    chain_id: u64,
    ports: (u16, u16),
) -> Result<Genesis> {
    if n == 0 || n > 64 {
        bail!("--validators must be 1..=64");
    }
    if standby > 64 {
        bail!("--standby must be 0..=64");
    }
    std::fs::create_dir_all(out)?;
    let mut accounts = Vec::new();
    let mut dev = Vec::new();
    for i in 0..DEV_ACCOUNTS {
        let name = format!("dev{i}");
        let k = dev_account_key(chain_id, &name);
        accounts.push(GenesisAccount {
            address: k.address(),
            balance: DEV_BALANCE,
        });
        dev.push(DevAccount {
            name,
            address: k.address(),
            secret: format!("0x{}", hex::encode(k.to_bytes())),
        });
    }
    let mut validators = Vec::new();
    let mut keys = Vec::new();
    for i in 0..n + standby {
        let (identity, bls) = light::dev_keys(chain_id, i);
        let account = dev_account_key(chain_id, &format!("validator{i}"));
        if i < n {
            validators.push(GenesisValidator {
                account: account.address(),
                consensus_key: light::make_consensus_key(&identity, &bls),
                stake: VALIDATOR_STAKE,
            });
        }
        accounts.push(GenesisAccount {
            address: account.address(),
            balance: DEV_BALANCE,
        });
        keys.push(ValidatorKey {
            index: i,
            identity: hex::encode(identity.encode()),
            bls: hex::encode(bls.encode()),
            account: hex::encode(account.to_bytes()),
        });
    }
    let genesis = Genesis {
        chain_id,
        time_ms: 0,
        params: Params::devnet(dev[0].address),
        accounts,
        validators,
    };
    let gbytes = serde_json::to_vec_pretty(&genesis)?;
    let dbytes = serde_json::to_vec_pretty(&dev)?;
    write_public(&out.join("genesis.json"), &gbytes)?;
    write_private(&out.join("dev-keys.json"), &dbytes)?;
    if n == 1 && standby == 0 {
        write_private(
            &out.join("validator_key.json"),
            &serde_json::to_vec_pretty(&keys[0])?,
        )?;
    } else {
        let peers: Vec<Peer> = (0..n + standby)
            .map(|i| {
                let (identity, _) = light::dev_keys(chain_id, i);
                let port =
                    |base: u16| SocketAddr::from(([127, 0, 0, 1], base.saturating_add(i as u16)));
                Peer {
                    identity: format!("0x{}", hex::encode(identity.public_key().encode())),
                    p2p: port(ports.0),
                    api: port(ports.1),
                }
            })
            .collect();
        let pbytes = serde_json::to_vec_pretty(&peers)?;
        write_public(&out.join("peers.json"), &pbytes)?;
        for (i, k) in keys.iter().enumerate() {
            let home = out.join(format!("validator-{i}"));
            std::fs::create_dir_all(&home)?;
            write_public(&home.join("genesis.json"), &gbytes)?;
            write_public(&home.join("peers.json"), &pbytes)?;
            write_private(
                &home.join("validator_key.json"),
                &serde_json::to_vec_pretty(k)?,
            )?;
        }
        println!(
            "wrote {} validator homes ({} standby) under {}",
            n + standby,
            standby,
            out.display()
        );
    }
    Ok(genesis)
}

fn load_key(
    home: &Path,
) -> Result<(
    ValidatorKey,
    commonware_cryptography::ed25519::PrivateKey,
    commonware_cryptography::bls12381::primitives::group::Private,
    SecretKey,
)> {
    let path = home.join("validator_key.json");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .with_context(|| format!("read {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} must not be readable by group or others (chmod 600)",
                path.display()
            );
        }
    }
    let k: ValidatorKey = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("parse {}", path.display()))?;
    let identity = light::decode_ed25519(&hex::decode(&k.identity)?)
        .context("validator_key.json: bad identity key")?;
    let bls =
        light::decode_bls(&hex::decode(&k.bls)?).context("validator_key.json: bad BLS key")?;
    let acct: [u8; 32] = hex::decode(&k.account)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("validator_key.json: account key must be 32 bytes"))?;
    let account = SecretKey::from_bytes(&acct).map_err(|e| anyhow::anyhow!("account key: {e}"))?;
    Ok((k, identity, bls, account))
}

/// The chain rebuilt from the block log, timed for the log.
fn replay(genesis: &Genesis, store: &Store) -> Result<(Chain, Digest)> {
    let t0 = Instant::now();
    let (chain, digest) = chain_light::validator::replay(genesis, store)?;
    if chain.tip.height > 0 {
        tracing::info!(blocks = chain.tip.height, root = %chain.tip.state_root, secs = t0.elapsed().as_secs_f64(), "replayed block log");
    }
    Ok((chain, digest))
}

fn start(
    home: &Path,
    api: SocketAddr,
    p2p: Option<SocketAddr>,
    tx_rate: u32,
    chain_id: u64,
    block_interval: Duration,
) -> Result<()> {
    std::fs::create_dir_all(home)?;
    let gpath = home.join("genesis.json");
    if !gpath.exists() {
        write_genesis(home, (1, 0), chain_id, (0, 0))?;
        tracing::info!(home = %home.display(), chain_id, "wrote a single-validator dev genesis; dev accounts in dev-keys.json");
    }
    let genesis: Genesis = serde_json::from_slice(&std::fs::read(&gpath)?)
        .with_context(|| format!("parse {}", gpath.display()))?;
    let (_key, identity, bls, account) = load_key(home)?;
    let store = Arc::new(Store::open(home)?);
    let (chain, _) = replay(&genesis, &store)?;
    let set = chain.state.g.validators.clone();
    let participants = light::participants(&set)?;
    let me = identity.public_key();
    // A single-validator network runs without p2p; otherwise peers.json is the address
    // book, and a validator outside the current set follows by sync until it is elected.
    let solo = set.len() == 1 && !home.join("peers.json").exists();
    if solo && participants.get_value(&me).is_none() {
        bail!("this validator's identity is not in the validator set");
    }
    let network = if solo {
        None
    } else {
        Some(p2p_config(home, &genesis, identity.clone(), p2p)?)
    };
    let metrics = Arc::new(Metrics::new());
    let node = Node::new(chain, store, metrics, account, block_interval);

    let cfg = cw_tokio::Config::new()
        .with_storage_directory(home.join("consensus"))
        .with_worker_threads(2)
        .with_catch_panics(false);
    let executor = cw_tokio::Runner::new(cfg);
    executor.start(|context| async move {
        let listener = match tokio::net::TcpListener::bind(api).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%api, %e, "cannot bind the API address");
                std::process::exit(1);
            }
        };
        tracing::info!(api = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "API listening");
        let router = crate::api::router(node.clone(), tx_rate);
        context.child("api").spawn(move |_| async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%e, "API server stopped");
            }
        });
        let handle = if let Some(net) = network {
            let (mut network, mut oracle) =
                lookup::Network::new(context.child("network"), net.config);
            oracle.track(0, net.peers);
            let rate = Quota::per_second(NZU32!(1_000));
            let (vote_tx, vote_rx) = network.register(CH_VOTE, rate);
            let (cert_tx, cert_rx) = network.register(CH_CERT, rate);
            let (res_tx, res_rx) = network.register(CH_RESOLVER, rate);
            let (block_tx, mut block_rx) = network.register(CH_BLOCKS, rate);
            let (sync_tx, sync_rx) = network.register(CH_SYNC, Quota::per_second(NZU32!(50)));
            network.start();
            let receiver_node = node.clone();
            context.child("blocks").spawn(move |_| async move {
                while let Ok((_peer, bytes)) = block_rx.recv().await {
                    match chain_light::codec::decode::<chain_light::block::Block>(
                        bytes.as_ref(),
                        chain_light::validator::store::MAX_BLOCK_BYTES,
                    ) {
                        Ok(b) => receiver_node.receive_block(b),
                        Err(e) => tracing::debug!(%e, "malformed block body from a peer"),
                    }
                }
            });
            let _sync = sync::start(context.child("sync"), node.clone(), sync_tx, sync_rx);
            let channels = EpochChannels {
                vote: mux(&context, "vote_mux", vote_tx, vote_rx),
                cert: mux(&context, "cert_mux", cert_tx, cert_rx),
                resolver: mux(&context, "resolver_mux", res_tx, res_rx),
            };
            run_epochs(
                context.child("consensus"),
                node.clone(),
                bls,
                block_tx,
                oracle,
                "simplex".into(),
                channels,
            )
        } else {
            let peers = vec![me.clone()];
            let (block_tx, _block_rx) = inert_channel(&peers);
            let (v, vr) = inert_channel(&peers);
            let (c, cr) = inert_channel(&peers);
            let (r, rr) = inert_channel(&peers);
            let channels = EpochChannels {
                vote: mux(&context, "vote_mux", v, vr),
                cert: mux(&context, "cert_mux", c, cr),
                resolver: mux(&context, "resolver_mux", r, rr),
            };
            run_epochs(
                context.child("consensus"),
                node.clone(),
                bls,
                block_tx,
                chain_light::validator::node::NoPeers,
                "simplex".into(),
                channels,
            )
        };
        tracing::info!(chain_id = genesis.chain_id, "validator started");
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping");
        handle.abort();
        let _ = context.stop(0, Some(Duration::from_secs(5))).await;
    });
    Ok(())
}

/// Multiplexes a consensus channel by epoch.
fn mux<S, R>(
    context: &cw_tokio::Context,
    label: &'static str,
    sender: S,
    receiver: R,
) -> MuxHandle<S>
where
    S: commonware_p2p::Sender<PublicKey = light::PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = light::PublicKey>,
{
    let (muxer, handle) = Muxer::new(context.child(label), sender, receiver);
    muxer.start();
    handle
}

const CH_VOTE: u64 = 0;
const CH_CERT: u64 = 1;
const CH_RESOLVER: u64 = 2;
const CH_BLOCKS: u64 = 3;
const CH_SYNC: u64 = 4;

/// A peer of a multi-validator network (`peers.json`).
#[derive(Serialize, Deserialize, Clone)]
struct Peer {
    /// ed25519 identity, hex.
    identity: String,
    /// p2p listen address.
    p2p: SocketAddr,
    /// HTTP API address.
    api: SocketAddr,
}

type Handshake = Cups<Sake<ed25519::PrivateKey>, ChaCha20Poly1305>;

struct NetworkSetup {
    config: lookup::Config<Handshake>,
    peers: Map<light::PublicKey, commonware_p2p::Address>,
}

/// The authenticated (encrypted, identity-checked) p2p transport among the genesis
/// validators, every address known from `peers.json`.
fn p2p_config(
    home: &Path,
    genesis: &Genesis,
    identity: ed25519::PrivateKey,
    listen_override: Option<SocketAddr>,
) -> Result<NetworkSetup> {
    let path = home.join("peers.json");
    let peers: Vec<Peer> = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )
    .with_context(|| format!("parse {}", path.display()))?;
    let me = identity.public_key();
    let mut map = Vec::new();
    let mut listen = listen_override;
    for p in &peers {
        let bytes = hex::decode(p.identity.trim_start_matches("0x"))?;
        let pk = light::PublicKey::decode_cfg(commonware_codec::Copying(bytes.as_slice()), &())
            .map_err(|e| anyhow::anyhow!("peers.json: bad identity: {e}"))?;
        if pk == me && listen.is_none() {
            listen = Some(p.p2p);
        }
        map.push((pk, commonware_p2p::Address::from(p.p2p)));
    }
    let listen = listen.context("this validator is not in peers.json (or pass --p2p)")?;
    // Every node of the address book may be elected: sizes and limits cover them all.
    let everyone: Set<light::PublicKey> = map
        .iter()
        .map(|(k, _)| k.clone())
        .try_collect()
        .map_err(|_| anyhow::anyhow!("duplicate identity in peers.json"))?;
    let peers: Map<light::PublicKey, commonware_p2p::Address> = map
        .into_iter()
        .try_collect()
        .map_err(|_| anyhow::anyhow!("duplicate identity in peers.json"))?;
    let payload = prefixed(simplex::max_payload_size::<light::Scheme, Digest>(
        everyone.len() as u32,
    ));
    let namespace = union(&light::namespace(genesis.chain_id), b"_P2P");
    let config = lookup::Config::local(
        Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: identity.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        ),
        &namespace,
        listen,
        authenticated::peer_set_limit(&everyone, &me),
        max_message_size(&[
            payload,
            chain_light::validator::store::MAX_BLOCK_BYTES,
            sync::MAX_SYNC_BYTES,
        ]),
        NZUsize!(4_096),
    );
    Ok(NetworkSetup { config, peers })
}
