//! The validator daemon: home directory, dev genesis, keys, start-up (replay), the p2p
//! network, the consensus engines and the HTTP API. The `nilstore-validator` binary is a
//! command line over this; devnets and tests run it in-process.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::block::{Chain, Genesis, GenesisAccount, GenesisValidator};
use crate::bytes::Address;
use crate::crypto::SecretKey;
use crate::light::{self, Digest};
use crate::params::Params;
use anyhow::{bail, Context as _, Result};
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

use super::metrics::Metrics;
use super::node::Node;
use super::store::Store;
use super::{run_epochs, sync, EpochChannels};

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

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::secret_file::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Where the keys of a fresh genesis come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GenesisKeys {
    /// OS randomness: validator, governor and dev-account keys nobody else can compute.
    #[default]
    Random,
    /// Derived from public seeds (chain id and index): anyone can recompute them. For
    /// reproducible tests and demos only (`--dev-keys`).
    Dev,
}

impl GenesisKeys {
    /// The secret of account `name` (`dev<i>`, `validator<i>`).
    fn account(self, master: &[u8; 32], chain_id: u64, name: &str) -> SecretKey {
        match self {
            GenesisKeys::Random => {
                let mut label = b"nilstore/genesis/account/".to_vec();
                label.extend_from_slice(master);
                label.extend_from_slice(name.as_bytes());
                SecretKey::from_seed(&label)
            }
            GenesisKeys::Dev => {
                SecretKey::from_seed(format!("nilstore/dev/{chain_id}/{name}").as_bytes())
            }
        }
    }

    /// The consensus keys of validator `i`.
    fn consensus(
        self,
        master: &[u8; 32],
        chain_id: u64,
        i: u64,
    ) -> (
        commonware_cryptography::ed25519::PrivateKey,
        commonware_cryptography::bls12381::primitives::group::Private,
    ) {
        match self {
            GenesisKeys::Random => {
                let mut h = blake3::Hasher::new();
                h.update(b"nilstore/genesis/validator/");
                h.update(master);
                h.update(&i.to_be_bytes());
                light::consensus_keys(*h.finalize().as_bytes())
            }
            GenesisKeys::Dev => light::dev_keys(chain_id, i),
        }
    }
}

/// Writes a genesis under `out` for `n` validators and `standby` extra nodes (keys,
/// funded dev accounts and `peers.json` entries, outside the genesis set); returns the
/// genesis. Keys come from `keys`: OS randomness unless dev keys are asked for.
pub fn write_genesis(
    out: &Path,
    (n, standby): (u64, u64),
    chain_id: u64,
    ports: (u16, u16),
    keys: GenesisKeys,
) -> Result<Genesis> {
    if n == 0 || n > 64 {
        bail!("--validators must be 1..=64");
    }
    if standby > 64 {
        bail!("--standby must be 0..=64");
    }
    std::fs::create_dir_all(out)?;
    // Every random key derives from one 32-byte secret that is never written down.
    let mut master = [0u8; 32];
    if keys == GenesisKeys::Random {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut master);
    }
    let mut accounts = Vec::new();
    let mut dev = Vec::new();
    for i in 0..DEV_ACCOUNTS {
        let name = format!("dev{i}");
        let k = keys.account(&master, chain_id, &name);
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
    let mut vkeys = Vec::new();
    let mut identities = Vec::new();
    for i in 0..n + standby {
        let (identity, bls) = keys.consensus(&master, chain_id, i);
        let account = keys.account(&master, chain_id, &format!("validator{i}"));
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
        identities.push(identity.public_key());
        vkeys.push(ValidatorKey {
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
            &serde_json::to_vec_pretty(&vkeys[0])?,
        )?;
    } else {
        let peers: Vec<Peer> = identities
            .iter()
            .enumerate()
            .map(|(i, identity)| {
                let port =
                    |base: u16| SocketAddr::from(([127, 0, 0, 1], base.saturating_add(i as u16)));
                Peer {
                    identity: format!("0x{}", hex::encode(identity.encode())),
                    p2p: port(ports.0),
                    api: port(ports.1),
                }
            })
            .collect();
        let pbytes = serde_json::to_vec_pretty(&peers)?;
        write_public(&out.join("peers.json"), &pbytes)?;
        for (i, k) in vkeys.iter().enumerate() {
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
    let bytes = crate::secret_file::read(&path).map_err(anyhow::Error::msg)?;
    let k: ValidatorKey =
        serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
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
    let (chain, digest) = crate::validator::replay(genesis, store)?;
    if chain.tip.height > 0 {
        tracing::info!(blocks = chain.tip.height, root = %chain.tip.state_root, secs = t0.elapsed().as_secs_f64(), "replayed block log");
    }
    Ok((chain, digest))
}

/// How to run a validator.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Home directory (a fresh one gets a single-validator dev genesis).
    pub home: PathBuf,
    /// HTTP API address (port 0: any; the bound address is sent on `api_bound`).
    pub api: SocketAddr,
    /// p2p listen address (default: this validator's entry in peers.json).
    pub p2p: Option<SocketAddr>,
    /// Transactions per second accepted from one client address.
    pub tx_rate: u32,
    /// Chain id of a dev genesis written into a fresh home.
    pub chain_id: u64,
    /// Minimum time between blocks.
    pub block_interval: Duration,
    /// Keys of a genesis written into a fresh home.
    pub genesis_keys: GenesisKeys,
    /// Limits of the HTTP API.
    pub api_limits: super::api::ApiLimits,
}

/// Runs a validator until ctrl-c.
pub fn start(opts: &StartOptions) -> Result<()> {
    start_until(
        opts,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
        None,
    )
}

/// Runs a validator until `shutdown` completes (in-process devnets and tests); the bound API
/// address is sent on `api_bound` once listening. Blocks the calling thread.
pub fn start_until(
    opts: &StartOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    api_bound: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> Result<()> {
    let StartOptions {
        home,
        api,
        p2p,
        tx_rate,
        chain_id,
        block_interval,
        genesis_keys,
        api_limits,
    } = opts.clone();
    let (home, p2p, block_interval) = (home.as_path(), p2p, block_interval);
    std::fs::create_dir_all(home)?;
    let gpath = home.join("genesis.json");
    if !gpath.exists() {
        write_genesis(home, (1, 0), chain_id, (0, 0), genesis_keys)?;
        let keys = match genesis_keys {
            GenesisKeys::Random => "random keys",
            GenesisKeys::Dev => "DEV KEYS derived from public seeds: anyone can sign for them",
        };
        tracing::info!(home = %home.display(), chain_id, keys, "wrote a single-validator genesis; funded dev accounts in dev-keys.json");
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
        if let (Some(tx), Ok(a)) = (api_bound, listener.local_addr()) {
            let _ = tx.send(a);
        }
        let router = super::api::router(node.clone(), tx_rate, api_limits.max_subscribers);
        context.child("api").spawn(move |_| {
            crate::http_server::serve(listener, router, api_limits.http)
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
                    match crate::codec::decode::<crate::block::Block>(
                        bytes.as_ref(),
                        crate::validator::store::MAX_BLOCK_BYTES,
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
                crate::validator::node::NoPeers,
                "simplex".into(),
                channels,
            )
        };
        tracing::info!(chain_id = genesis.chain_id, "validator started");
        shutdown.await;
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
    // The transport panics in a worker if it cannot bind, which leaves a validator that
    // runs without peers; fail here instead, with the address. A port held for a moment
    // (a predecessor killed just now) gets a few seconds.
    wait_bindable(listen, Duration::from_secs(10))
        .with_context(|| format!("cannot listen for peers on {listen}"))?;
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
            crate::validator::store::MAX_BLOCK_BYTES,
            sync::MAX_SYNC_BYTES,
        ]),
        NZUsize!(4_096),
    );
    Ok(NetworkSetup { config, peers })
}

/// Waits up to `patience` for `addr` to be bindable (probing by binding and releasing it).
fn wait_bindable(addr: SocketAddr, patience: Duration) -> std::io::Result<()> {
    let t0 = Instant::now();
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => return Ok(()),
            Err(e) if t0.elapsed() >= patience => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `n` consecutive loopback TCP ports, free now, below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): an outgoing connection never takes one, so
/// a daemon that owns one can restart on it. Returns the first. For devnets and tests.
pub fn free_loopback_ports(n: u16) -> Result<u16> {
    use std::hash::{BuildHasher as _, Hasher as _};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let lo: u16 = 10_000;
    let hi = ephemeral_low.saturating_sub(n);
    if hi <= lo {
        bail!("no room for {n} ports between {lo} and the ephemeral range at {ephemeral_low}");
    }
    let span = u64::from(hi - lo);
    // Concurrent devnets and tests start at different places (a random seed per call).
    let mut x = {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    for _ in 0..1_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let p = lo + ((x >> 33) % span) as u16;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return Ok(p);
        }
    }
    bail!("no {n} consecutive free loopback ports between {lo} and {hi}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("nilstore-genesis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn keys_of(g: &Genesis) -> (Vec<Address>, Vec<Vec<u8>>) {
        (
            g.accounts.iter().map(|a| a.address).collect(),
            g.validators
                .iter()
                .map(|v| v.consensus_key.0.clone())
                .collect(),
        )
    }

    /// Issue 17 item 9: by default no genesis key can be recomputed from public seeds; two
    /// fresh geneses share no key. Dev keys are reproducible, and only when asked for.
    #[test]
    fn genesis_keys_are_random_unless_dev_keys_are_asked_for() {
        let (a, b, c, d) = (scratch("a"), scratch("b"), scratch("c"), scratch("d"));
        let ra = write_genesis(&a, (2, 1), 7, (0, 0), GenesisKeys::Random).unwrap();
        let rb = write_genesis(&b, (2, 1), 7, (0, 0), GenesisKeys::Random).unwrap();
        let da = write_genesis(&c, (2, 1), 7, (0, 0), GenesisKeys::Dev).unwrap();
        let db = write_genesis(&d, (2, 1), 7, (0, 0), GenesisKeys::Dev).unwrap();
        let (ra, rb, da, db) = (keys_of(&ra), keys_of(&rb), keys_of(&da), keys_of(&db));
        assert_eq!(da, db, "dev keys are reproducible");
        for x in &ra.0 {
            assert!(
                !rb.0.contains(x) && !da.0.contains(x),
                "account {x} repeats"
            );
        }
        for x in &ra.1 {
            assert!(
                !rb.1.contains(x) && !da.1.contains(x),
                "a consensus key repeats"
            );
        }
        // The governor is dev account 0: random too.
        let gov = |dir: &Path| -> Address {
            let g: Genesis =
                serde_json::from_slice(&std::fs::read(dir.join("genesis.json")).unwrap()).unwrap();
            g.params.governor
        };
        assert_ne!(gov(&a), gov(&c));
        assert_eq!(gov(&c), dev_account_address(7, "dev0"));
        // The keys written down are the ones in the genesis.
        let (k, _, _, account) = load_key(&a.join("validator-0")).unwrap();
        assert_eq!(k.index, 0);
        assert_eq!(account.address(), ra.0[DEV_ACCOUNTS as usize]);
        for dir in [a, b, c, d] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn dev_account_address(chain_id: u64, name: &str) -> Address {
        SecretKey::from_seed(format!("nilstore/dev/{chain_id}/{name}").as_bytes()).address()
    }
}
