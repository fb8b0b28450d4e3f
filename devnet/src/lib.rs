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
use chain_light::validator::daemon::{start_until, GenesisKeys, StartOptions};
use nilstore_client::network::{dev_keys, NetworkInfo, NodeInfo};
use nilstore_net::chain::{read_genesis, HttpChain, Signer, TxStatus};
use nilstore_net::native::{ListenPorts, RelayLimits};
use rand::{RngCore, SeedableRng};

pub mod web;

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
    /// Validators: 1 (embedded, no p2p) or more (simplex on loopback, one home each).
    pub validators: usize,
    /// Chain parameters to change in a fresh genesis (a JSON object merged into the
    /// devnet defaults, e.g. `{"min_fee": 5000}`); ignored when the chain exists.
    pub params: Option<serde_json::Value>,
    /// Run providers and relays as child processes of these binaries
    /// (`DIR/nilstore-provider`, `DIR/nilstore-relay`) instead of in this process, so that
    /// each can be killed or stopped on its own (end-to-end tests).
    pub processes: Option<PathBuf>,
    /// Keys of a fresh genesis: random unless dev keys (derived from public seeds, for
    /// reproducible demos) are asked for.
    pub genesis_keys: GenesisKeys,
    /// Serve the web app (and a faucet) from here.
    pub web: Option<web::Web>,
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

/// Starts a daemon binary (`start --home HOME ...`) with `key` as its account; returns once
/// it has written `HOME/node.json`.
#[allow(clippy::too_many_arguments)]
async fn spawn_daemon(
    bin: &Path,
    home: &Path,
    key: &SecretKey,
    api: &str,
    genesis: &Path,
    ports: ListenPorts,
    http: SocketAddr,
    extra: &[&str],
) -> Result<(std::process::Child, NodeInfo)> {
    std::fs::create_dir_all(home)?;
    let key_file = home.join("account.key");
    if !key_file.exists() {
        chain_light::secret_file::write(&key_file, hex::encode(key.to_bytes()).as_bytes())?;
    }
    let node_file = nilstore_net::native::NodeFile::path(home);
    let _ = std::fs::remove_file(&node_file);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("daemon.log"))?;
    let mut child = std::process::Command::new(bin)
        .arg("start")
        .arg("--home")
        .arg(home)
        .args(["--chain", api])
        .arg("--genesis")
        .arg(genesis)
        .args(["--tcp-port", &ports.tcp.to_string()])
        .args(["--quic-port", &ports.quic.to_string()])
        .args(["--webrtc-port", &ports.webrtc.to_string()])
        .args(["--ws-port", &ports.ws.to_string()])
        .args(["--http", &http.to_string()])
        .args(extra)
        .env_remove("NILSTORE_PROVIDER_KEY")
        .env_remove("NILSTORE_RELAY_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let t0 = std::time::Instant::now();
    loop {
        if let Ok(n) = nilstore_net::native::NodeFile::read(home) {
            if n.pid == child.id() {
                return Ok((
                    child,
                    NodeInfo {
                        account: n.account,
                        peer_id: n.peer_id,
                        addrs: n.addrs,
                        http: n.http,
                        home: home.to_path_buf(),
                        pid: Some(n.pid),
                    },
                ));
            }
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(home.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "exited with {status}: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            bail!("did not start within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a child daemon: SIGTERM (a clean stop), then SIGKILL after 10 s.
async fn stop_child(mut c: std::process::Child) {
    if matches!(c.try_wait(), Ok(Some(_))) {
        return; // already gone (a test killed it)
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    for _ in 0..100 {
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.kill();
    let _ = c.wait();
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
    ready: Option<tokio::sync::oneshot::Sender<NetworkInfo>>,
) -> Result<()> {
    if opts.providers + opts.relays > 12 {
        bail!("at most 12 providers and relays together (16 dev accounts, 4 kept for users)");
    }
    std::fs::create_dir_all(&opts.dir)?;
    let vs = start_validators(&opts).await?;
    let api = vs.api;
    let api_url = format!("http://{api}");
    let genesis_path = vs.genesis.clone();
    let genesis = read_genesis(&genesis_path)?;
    let keys = dev_keys(&vs.dev_keys)?;
    tracing::info!(%api, chain_id = genesis.chain_id, validators = vs.nodes.len(), "validators up");

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
    let mut children = Vec::new();
    for i in 0..opts.providers {
        let key = next_key();
        if let Some(bin) = &opts.processes {
            let home = opts.dir.join(format!("provider-{i}"));
            let (child, node) = spawn_daemon(
                &bin.join("nilstore-provider"),
                &home,
                &key,
                &api_url,
                &genesis_path,
                ports(opts.port_base, i),
                http_addr(opts.port_base, i),
                &[],
            )
            .await
            .with_context(|| format!("provider {i}"))?;
            children.push(child);
            providers.push((key, node));
            continue;
        }
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
                uncommitted_ttl: nilstore_provider::worker::UNCOMMITTED_TTL,
                trusted_proxy: None,
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
                home: opts.dir.join(format!("provider-{i}")),
                pid: None,
            },
        ));
    }
    let mut relays = Vec::new();
    for j in 0..opts.relays {
        let key = next_key();
        let slot = opts.providers + j;
        if let Some(bin) = &opts.processes {
            let home = opts.dir.join(format!("relay-{j}"));
            let (child, node) = spawn_daemon(
                &bin.join("nilstore-relay"),
                &home,
                &key,
                &api_url,
                &genesis_path,
                ports(opts.port_base, slot),
                http_addr(opts.port_base, slot),
                &["--deputy-timeout-ms", "5000"],
            )
            .await
            .with_context(|| format!("relay {j}"))?;
            children.push(child);
            relays.push((key, node));
            continue;
        }
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, started) = tokio::sync::oneshot::channel();
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
                home: opts.dir.join(format!("relay-{j}")),
                pid: None,
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

    let web = match &opts.web {
        Some(w) => {
            let listener = web::bind(w).await?;
            let url = format!("http://{}/", listener.local_addr()?);
            Some((w.clone(), listener, url))
        }
        None => None,
    };
    let info = NetworkInfo {
        web: web.as_ref().map(|(_, _, url)| url.clone()),
        chain_id: genesis.chain_id,
        api: api_url.clone(),
        genesis: genesis_path.clone(),
        dev_keys: vs.dev_keys.clone(),
        reserved_dev_accounts: reserved.clone(),
        providers: providers
            .into_iter()
            .map(|(k, n)| NodeInfo {
                account: k.address(),
                ..n
            })
            .collect(),
        relays: relays.into_iter().map(|(_, n)| n).collect(),
        validators: vs.nodes.clone(),
    };
    let path = opts.dir.join("devnet.json");
    let tmp = opts.dir.join("devnet.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!(file = %path.display(), providers = info.providers.len(), relays = info.relays.len(), "devnet ready");
    let web_task = match web {
        Some((w, listener, url)) => {
            // The faucet pays from the last dev account no daemon uses (the CLI takes the
            // first).
            let faucet_key = (0..keys.len())
                .rev()
                .find(|i| !reserved.contains(i))
                .map(|i| keys[i].clone());
            let chain = {
                let (api_url, genesis) = (api_url.clone(), genesis.clone());
                tokio::task::spawn_blocking(move || HttpChain::new(&api_url, &genesis)).await??
            };
            let router = web::router(
                &w.dir,
                serde_json::to_vec_pretty(&info)?,
                std::fs::read(&genesis_path)
                    .with_context(|| format!("read {}", genesis_path.display()))?,
                faucet_key.map(|k| (k, std::sync::Arc::new(chain))),
            );
            tracing::info!(%url, dir = %w.dir.display(), "web app");
            Some(tokio::spawn(chain_light::http_server::serve(
                listener,
                router,
                chain_light::http_server::Limits::default(),
            )))
        }
        None => None,
    };
    if let Some(r) = ready {
        let _ = r.send(info);
    }

    shutdown.await;
    if let Some(t) = web_task {
        t.abort();
    }
    for s in stops {
        let _ = s.send(());
    }
    for c in children {
        stop_child(c).await;
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
    vs.stop().await
}

/// The running validators of a devnet.
struct Validators {
    /// API of validator 0 (what clients use).
    api: SocketAddr,
    genesis: PathBuf,
    dev_keys: PathBuf,
    nodes: Vec<NodeInfo>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<Result<()>>>,
    children: Vec<std::process::Child>,
}

impl Validators {
    async fn stop(self) -> Result<()> {
        for s in self.stops {
            let _ = s.send(());
        }
        for c in self.children {
            stop_child(c).await;
        }
        for t in self.threads {
            tokio::task::spawn_blocking(move || t.join())
                .await?
                .map_err(|_| anyhow!("a validator thread panicked"))??;
        }
        Ok(())
    }
}

/// Merges `params` into the parameters of fresh genesis files (checked: the result must
/// parse and pass `Params::validate`).
fn patch_params(files: &[PathBuf], params: Option<&serde_json::Value>) -> Result<()> {
    let Some(over) = params else { return Ok(()) };
    let over = over
        .as_object()
        .ok_or_else(|| anyhow!("--params must be a JSON object"))?;
    for f in files {
        let mut g: serde_json::Value = serde_json::from_slice(&std::fs::read(f)?)?;
        let p = g["params"]
            .as_object_mut()
            .ok_or_else(|| anyhow!("{}: no params", f.display()))?;
        for (k, v) in over {
            if !p.contains_key(k) {
                bail!("--params: no parameter {k}");
            }
            p.insert(k.clone(), v.clone());
        }
        let parsed: chain_light::block::Genesis =
            serde_json::from_value(g.clone()).context("--params: genesis does not parse")?;
        parsed
            .params
            .validate()
            .map_err(|e| anyhow!("--params: {e}"))?;
        std::fs::write(f, serde_json::to_vec_pretty(&g)?)?;
    }
    Ok(())
}

/// `n` consecutive free loopback TCP ports outside the ephemeral range (restarts keep them).
fn free_ports(n: u16) -> Result<u16> {
    chain_light::validator::daemon::free_loopback_ports(n)
}

/// Starts the validators: one (`DIR/validator`, no p2p) or `opts.validators` on loopback
/// (`DIR/validators/validator-<i>`, simplex over authenticated p2p, `peers.json`), in
/// threads of this process or, with `opts.processes`, as `nilstore-validator` children.
async fn start_validators(opts: &Options) -> Result<Validators> {
    let n = opts.validators.max(1);
    let (root, homes) = if n == 1 {
        let home = opts.dir.join("validator");
        if opts.params.is_some() && !home.join("genesis.json").exists() {
            chain_light::validator::daemon::write_genesis(
                &home,
                (1, 0),
                opts.chain_id,
                (0, 0),
                opts.genesis_keys,
            )?;
            patch_params(&[home.join("genesis.json")], opts.params.as_ref())?;
        }
        (home.clone(), vec![home])
    } else {
        let root = opts.dir.join("validators");
        if !root.join("genesis.json").exists() {
            let p2p = if opts.port_base == 0 {
                free_ports(n as u16)?
            } else {
                opts.port_base + 300
            };
            let api = if opts.api.port() == 0 {
                free_ports(n as u16)?
            } else {
                opts.api.port()
            };
            chain_light::validator::daemon::write_genesis(
                &root,
                (n as u64, 0),
                opts.chain_id,
                (p2p, api),
                opts.genesis_keys,
            )?;
            let mut files = vec![root.join("genesis.json")];
            files.extend((0..n).map(|i| root.join(format!("validator-{i}")).join("genesis.json")));
            patch_params(&files, opts.params.as_ref())?;
        }
        let homes = (0..n)
            .map(|i| root.join(format!("validator-{i}")))
            .collect();
        (root, homes)
    };
    // API addresses: peers.json for a multi-validator network, the option for one.
    let apis: Vec<SocketAddr> = if n == 1 {
        vec![opts.api]
    } else {
        let peers: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("peers.json"))?)?;
        (0..n)
            .map(|i| {
                peers[i]["api"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| anyhow!("peers.json: no API address for validator {i}"))
            })
            .collect::<Result<_>>()?
    };
    let mut vs = Validators {
        api: apis[0],
        genesis: root.join("genesis.json"),
        dev_keys: root.join("dev-keys.json"),
        nodes: Vec::new(),
        stops: Vec::new(),
        threads: Vec::new(),
        children: Vec::new(),
    };
    for (i, home) in homes.iter().enumerate() {
        let mut pid = None;
        let api = if let (Some(bin), false) = (&opts.processes, n == 1) {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join(format!("validator-{i}.log")))?;
            let child = std::process::Command::new(bin.join("nilstore-validator"))
                .arg("start")
                .arg("--home")
                .arg(home)
                .args(["--api", &apis[i].to_string()])
                .args(["--block-ms", &opts.block_interval.as_millis().to_string()])
                .args(["--chain-id", &opts.chain_id.to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {}", bin.join("nilstore-validator").display()))?;
            pid = Some(child.id());
            vs.children.push(child);
            apis[i]
        } else {
            let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (bound_tx, bound_rx) = std::sync::mpsc::channel();
            let vopts = StartOptions {
                home: home.clone(),
                api: apis[i],
                p2p: None,
                tx_rate: 10_000,
                chain_id: opts.chain_id,
                block_interval: opts.block_interval,
                genesis_keys: opts.genesis_keys,
                api_limits: Default::default(),
            };
            vs.threads.push(
                std::thread::Builder::new()
                    .name(format!("validator-{i}"))
                    .spawn(move || {
                        start_until(
                            &vopts,
                            async move {
                                let _ = stop_rx.await;
                            },
                            Some(bound_tx),
                        )
                    })?,
            );
            vs.stops.push(stop);
            tokio::task::spawn_blocking(move || bound_rx.recv_timeout(Duration::from_secs(120)))
                .await?
                .map_err(|_| anyhow!("validator {i} did not start"))?
        };
        if i == 0 {
            vs.api = api;
        }
        vs.nodes.push(NodeInfo {
            account: Address::ZERO,
            peer_id: String::new(),
            addrs: Vec::new(),
            http: api.to_string(),
            home: home.clone(),
            pid,
        });
    }
    // Every validator answers before anything is sent to the chain.
    for v in &vs.nodes {
        let url = format!("http://{}/status", v.http);
        let t0 = std::time::Instant::now();
        loop {
            let ok = tokio::task::spawn_blocking({
                let url = url.clone();
                move || {
                    ureq::get(&url)
                        .timeout(Duration::from_secs(2))
                        .call()
                        .is_ok()
                }
            })
            .await?;
            if ok {
                break;
            }
            if t0.elapsed() > Duration::from_secs(120) {
                bail!("validator API {} did not answer within 120 s", v.http);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(vs)
}

/// Writes `len` pseudo-random bytes (seeded) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        std::io::Write::write_all(&mut f, &buf[..n])?;
        left -= n;
    }
    std::io::Write::flush(&mut f)?;
    Ok(())
}
