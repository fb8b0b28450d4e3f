//! `nilstore devnet up`: a whole local network in one process — the embedded validator (a
//! single-validator dev chain with funded dev accounts), `providers` storage providers and
//! `relays` relays, each registered on chain with a dev account — described in
//! `DIR/devnet.json` for the other commands. The state lives under `DIR` and survives
//! restarts (fixed ports keep the registered endpoints valid).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::tx::Msg;
use chain_light::validator::daemon::{start_until, StartOptions};
use nilstore_net::chain::{read_genesis, HttpChain, Signer, TxStatus};
use nilstore_net::native::{ListenPorts, RelayLimits};
use serde::{Deserialize, Serialize};

/// How to bring a devnet up.
#[derive(Clone, Debug)]
pub struct Options {
    /// State directory.
    pub dir: PathBuf,
    /// Storage providers.
    pub providers: usize,
    /// Relays (deputies).
    pub relays: usize,
    /// Validator API address (port 0: any).
    pub api: SocketAddr,
    /// First p2p/HTTP port of the daemons (0: any port, for tests).
    pub port_base: u16,
    /// Chain id of a fresh chain.
    pub chain_id: u64,
    /// Minimum time between blocks.
    pub block_interval: Duration,
}

/// One daemon of the devnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its chain account.
    pub account: Address,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its multiaddrs.
    pub addrs: Vec<String>,
    /// Its HTTP API (`/health`, `/metrics`).
    pub http: String,
}

/// `DIR/devnet.json`: what the other commands need to use the devnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetInfo {
    /// Chain id.
    pub chain_id: u64,
    /// Validator API base URL.
    pub api: String,
    /// Genesis document.
    pub genesis: PathBuf,
    /// Funded dev accounts (JSON: name, address, secret), mode 0600.
    pub dev_keys: PathBuf,
    /// Dev accounts the daemons use (the others are free for users).
    pub reserved_dev_accounts: Vec<usize>,
    /// Providers.
    pub providers: Vec<NodeInfo>,
    /// Relays.
    pub relays: Vec<NodeInfo>,
}

impl DevnetInfo {
    /// Reads `devnet.json`.
    pub fn read(path: &Path) -> Result<DevnetInfo> {
        serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        )
        .with_context(|| format!("parse {}", path.display()))
    }
}

/// Dev accounts in a validator home's `dev-keys.json`.
pub fn dev_keys(path: &Path) -> Result<Vec<SecretKey>> {
    let v: serde_json::Value =
        serde_json::from_slice(&chain_light::secret_file::read(path).map_err(anyhow::Error::msg)?)
            .context("dev-keys.json")?;
    v.as_array()
        .ok_or_else(|| anyhow!("dev-keys.json: not a list"))?
        .iter()
        .map(|a| {
            let s = a["secret"]
                .as_str()
                .ok_or_else(|| anyhow!("dev-keys.json: secret"))?;
            let b: [u8; 32] = hex::decode(s.trim_start_matches("0x"))?
                .try_into()
                .map_err(|_| anyhow!("dev-keys.json: 32-byte secret"))?;
            SecretKey::from_bytes(&b).map_err(|e| anyhow!("dev-keys.json: {e}"))
        })
        .collect()
}

fn ports(base: u16, i: usize) -> ListenPorts {
    let p = |k: u16| {
        if base == 0 {
            0
        } else {
            base + 10 * i as u16 + k
        }
    };
    ListenPorts {
        tcp: p(0),
        quic: p(1),
        webrtc: p(2),
        ws: p(3),
        wss: false,
    }
}

fn http_addr(base: u16, i: usize) -> SocketAddr {
    let port = if base == 0 {
        0
    } else {
        base + 10 * i as u16 + 4
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits for transactions to be included and to succeed.
fn await_included(chain: &HttpChain, hashes: &[String]) -> Result<()> {
    let t0 = std::time::Instant::now();
    for h in hashes {
        loop {
            match chain.tx_status(h)? {
                TxStatus::Included(_, Ok(())) => break,
                TxStatus::Included(_, Err(e)) => bail!("transaction {h} failed: {e}"),
                TxStatus::Pending => {
                    if t0.elapsed() > Duration::from_secs(60) {
                        bail!("transaction {h} not included within 60 s");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    Ok(())
}

/// Runs the devnet until `shutdown` completes; `ready` receives its description once every
/// daemon is registered (it is also written to `DIR/devnet.json`).
pub async fn up(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: Option<tokio::sync::oneshot::Sender<DevnetInfo>>,
) -> Result<()> {
    if opts.providers + opts.relays > 12 {
        bail!("at most 12 providers and relays together (16 dev accounts, 4 kept for users)");
    }
    std::fs::create_dir_all(&opts.dir)?;
    let vhome = opts.dir.join("validator");

    // The validator, on its own thread and runtime.
    let (stop_v, stop_v_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let vopts = StartOptions {
        home: vhome.clone(),
        api: opts.api,
        p2p: None,
        tx_rate: 10_000,
        chain_id: opts.chain_id,
        block_interval: opts.block_interval,
    };
    let validator = std::thread::Builder::new()
        .name("validator".into())
        .spawn(move || {
            start_until(
                &vopts,
                async move {
                    let _ = stop_v_rx.await;
                },
                Some(bound_tx),
            )
        })?;
    let api = tokio::task::spawn_blocking(move || bound_rx.recv_timeout(Duration::from_secs(120)))
        .await?
        .map_err(|_| anyhow!("the validator did not start"))?;
    let api_url = format!("http://{api}");
    let genesis_path = vhome.join("genesis.json");
    let genesis = read_genesis(&genesis_path)?;
    let keys = dev_keys(&vhome.join("dev-keys.json"))?;
    tracing::info!(%api, chain_id = genesis.chain_id, "validator up");

    // Daemons take dev accounts from the end of the list.
    let mut reserved = Vec::new();
    let mut next_key = || {
        let i = keys.len() - 1 - reserved.len();
        reserved.push(i);
        keys[i].clone()
    };
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let mut providers = Vec::new();
    for i in 0..opts.providers {
        let key = next_key();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, started) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(nilstore_provider::daemon::run(
            nilstore_provider::daemon::Options {
                home: opts.dir.join(format!("provider-{i}")),
                chain: api_url.clone(),
                genesis: genesis.clone(),
                key: key.clone(),
                profile: nilstore_provider::daemon::Profile::Devnet,
                listen_ip: "127.0.0.1".parse()?,
                ports: ports(opts.port_base, i),
                http: http_addr(opts.port_base, i),
                limits: nilstore_provider::service::Limits::default(),
                wss: None,
            },
            async move {
                let _ = rx.await;
            },
            Some(tx),
        )));
        stops.push(stop);
        let s = match started.await {
            Ok(s) => s,
            Err(_) => {
                let why = match tasks.pop() {
                    Some(t) => match t.await {
                        Ok(Err(e)) => e,
                        _ => anyhow!("stopped"),
                    },
                    None => anyhow!("stopped"),
                };
                return Err(why.context(format!("provider {i} did not start")));
            }
        };
        providers.push((
            key,
            NodeInfo {
                account: Address::ZERO,
                peer_id: s.peer_id.to_string(),
                addrs: s.addrs.iter().map(|a| a.to_string()).collect(),
                http: s.http.to_string(),
            },
        ));
    }
    let mut relays = Vec::new();
    for j in 0..opts.relays {
        let key = next_key();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, started) = tokio::sync::oneshot::channel();
        let slot = opts.providers + j;
        tasks.push(tokio::spawn(nilstore_relay::daemon::run(
            nilstore_relay::daemon::Options {
                home: opts.dir.join(format!("relay-{j}")),
                chain: api_url.clone(),
                genesis: genesis.clone(),
                key: key.clone(),
                profile: nilstore_relay::daemon::Profile::Devnet,
                listen_ip: "127.0.0.1".parse()?,
                ports: ports(opts.port_base, slot),
                http: http_addr(opts.port_base, slot),
                relay: RelayLimits::default(),
                deputy: nilstore_relay::deputy::DeputyLimits::default(),
                deputy_timeout: Duration::from_secs(5),
                wss: None,
            },
            async move {
                let _ = rx.await;
            },
            Some(tx),
        )));
        stops.push(stop);
        let s = match started.await {
            Ok(s) => s,
            Err(_) => {
                let why = match tasks.pop() {
                    Some(t) => match t.await {
                        Ok(Err(e)) => e,
                        _ => anyhow!("stopped"),
                    },
                    None => anyhow!("stopped"),
                };
                return Err(why.context(format!("relay {j} did not start")));
            }
        };
        relays.push((
            key,
            NodeInfo {
                account: s.account,
                peer_id: s.peer_id.to_string(),
                addrs: s.addrs.iter().map(|a| a.to_string()).collect(),
                http: s.http.to_string(),
            },
        ));
    }

    // Registration (skipped for what a previous run registered).
    let reg = {
        let (api_url, genesis) = (api_url.clone(), genesis.clone());
        let provs: Vec<(SecretKey, NodeInfo)> = providers.clone();
        let rels: Vec<(SecretKey, NodeInfo)> = relays.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let chain = HttpChain::new(&api_url, &genesis)?;
            chain.sync()?;
            let mut sent = Vec::new();
            for (key, n) in &provs {
                let known = chain.provider(&key.address())?;
                if known.is_some_and(|p| p.peer_id == n.peer_id && p.endpoints == n.addrs) {
                    continue;
                }
                let msg = if chain.provider(&key.address())?.is_some() {
                    // Same identity (DIR keeps p2p.key), new endpoints.
                    Msg::UpdateProvider {
                        capacity_mdus: 100_000,
                        endpoints: n.addrs.clone(),
                        add_stake: 0,
                    }
                } else {
                    Msg::RegisterProvider {
                        stake: 10_000_000_000,
                        capacity_mdus: 100_000,
                        operator: key.address(),
                        peer_id: n.peer_id.clone(),
                        endpoints: n.addrs.clone(),
                    }
                };
                sent.push(Signer::new(key.clone()).send(&chain, msg)?);
            }
            for (key, n) in &rels {
                if chain.deputy(&key.address())?.is_some() {
                    continue;
                }
                sent.push(Signer::new(key.clone()).send(
                    &chain,
                    Msg::RegisterDeputy {
                        stake: 1_000_000_000,
                        peer_id: n.peer_id.clone(),
                        endpoints: n.addrs.clone(),
                    },
                )?);
            }
            await_included(&chain, &sent)
        })
    };
    reg.await??;

    let info = DevnetInfo {
        chain_id: genesis.chain_id,
        api: api_url,
        genesis: genesis_path,
        dev_keys: vhome.join("dev-keys.json"),
        reserved_dev_accounts: reserved.clone(),
        providers: providers
            .into_iter()
            .map(|(k, n)| NodeInfo {
                account: k.address(),
                ..n
            })
            .collect(),
        relays: relays.into_iter().map(|(_, n)| n).collect(),
    };
    let path = opts.dir.join("devnet.json");
    let tmp = opts.dir.join("devnet.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!(file = %path.display(), providers = info.providers.len(), relays = info.relays.len(), "devnet ready");
    if let Some(r) = ready {
        let _ = r.send(info);
    }

    shutdown.await;
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "a daemon stopped with an error")
            }
            Err(e) => tracing::warn!(%e, "a daemon task failed"),
        }
    }
    let _ = stop_v.send(());
    tokio::task::spawn_blocking(move || validator.join())
        .await?
        .map_err(|_| anyhow!("the validator thread panicked"))??;
    Ok(())
}
