//! The provider daemon: the libp2p node serving the NilStore protocols through the
//! [`Service`] handlers (CPU-heavy work on blocking threads, answers routed back to the
//! swarm), the chain follower, and the HTTP API (reads, `/health`, Prometheus `/metrics`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chain_light::block::Genesis;
use chain_light::crypto::SecretKey;
use chain_light::state::Provider;
use futures::StreamExt as _;
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::request_response::{self, Message, ResponseChannel};
use nilstore_net::libp2p::swarm::SwarmEvent;
use nilstore_net::libp2p::{websocket, Multiaddr, PeerId};
use nilstore_net::native::{self, BehaviourEvent, ConnLimits, ListenPorts, NodeConfig};
use nilstore_net::proto::{FetchRequest, FetchResponse, FetchWhat, NetError, Protocol, ReceiptAck};
use nilstore_net::requester::Requester;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::AtomicBool;

use crate::repair::{Repairer, ShardSource};
use crate::service::{Limits, Service};
use crate::store::Store;
use crate::worker::Worker;
use nilstore_net::chain::HttpChain;

/// Deployment profile: what the node insists on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Loopback-friendly: plain WebSocket allowed.
    Devnet,
    /// Public test network: secure WebSocket required.
    Testnet,
    /// Production: secure WebSocket required.
    Mainnet,
}

/// How to run a provider.
#[derive(Clone, Debug)]
pub struct Options {
    /// Home directory (store, keys).
    pub home: PathBuf,
    /// The validator API to follow.
    pub chain: String,
    /// The chain's genesis document.
    pub genesis: Genesis,
    /// The account key (secp256k1).
    pub key: SecretKey,
    /// Profile.
    pub profile: Profile,
    /// Listen IP for p2p.
    pub listen_ip: std::net::IpAddr,
    /// p2p ports (0: any).
    pub ports: ListenPorts,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Per-peer limits.
    pub limits: Limits,
    /// Secure WebSocket certificate chain and key (DER), for `/tls/ws`.
    pub wss: Option<(Vec<u8>, Vec<u8>)>,
    /// How long an upload the chain has not committed is kept
    /// ([`crate::worker::UNCOMMITTED_TTL`] by default).
    pub uncommitted_ttl: Duration,
    /// The reverse proxy in front of the HTTP API, if any: only its `X-Forwarded-For`
    /// names the client (anyone else's header is ignored).
    pub trusted_proxy: Option<std::net::IpAddr>,
}

/// What a running provider reports once it listens.
#[derive(Clone, Debug)]
pub struct Started {
    /// Its libp2p peer id.
    pub peer_id: PeerId,
    /// Its p2p listen addresses (with `/p2p/<id>`).
    pub addrs: Vec<Multiaddr>,
    /// Its HTTP API address.
    pub http: SocketAddr,
}

/// Uploads decoded and waiting for (or in) their checks at once: 32 of up to 8 MiB.
const MAX_UPLOADS_QUEUED: usize = 32;

/// When the first scrub runs after start.
const SCRUB_FIRST: Duration = Duration::from_secs(3600);
/// How often every stored byte is re-hashed.
const SCRUB_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Re-hashes the store and drops the shards whose bytes rotted.
fn scrub(svc: &Svc, worker: &Worker) {
    let bad = match svc.store().scrub() {
        Ok(bad) => bad,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "scrub");
            return;
        }
    };
    for key in bad {
        match svc.store().drop_if_corrupt(key) {
            Ok(0) => {}
            Ok(n) => {
                worker
                    .counters
                    .scrub_dropped
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(
                    deal = key.0,
                    slot = key.1,
                    mdu = key.2,
                    "a stored shard's bytes rotted on disk; dropped it"
                );
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "drop a corrupt shard"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Svc = Arc<Service<HttpChain>>;

/// An answer computed off the event loop, to be sent on the swarm.
enum Answer {
    Upload(
        ResponseChannel<Result<nilstore_net::proto::UploadAck, NetError>>,
        Result<nilstore_net::proto::UploadAck, NetError>,
    ),
    Fetch(
        ResponseChannel<Result<nilstore_net::proto::FetchResponse, NetError>>,
        Result<nilstore_net::proto::FetchResponse, NetError>,
    ),
    Proof(
        ResponseChannel<Result<nilstore_net::proto::ProofResponse, NetError>>,
        Result<nilstore_net::proto::ProofResponse, NetError>,
    ),
    Receipt(
        ResponseChannel<Result<ReceiptAck, NetError>>,
        Result<ReceiptAck, NetError>,
    ),
}

/// [`ShardSource`] over this node's swarm (the repair loop's fetches from other
/// providers), through the shared request plumbing.
struct NetSource {
    net: Requester,
}

impl ShardSource for NetSource {
    fn fetch(&self, provider: &Provider, req: FetchRequest) -> Result<FetchResponse> {
        let peer: PeerId = provider
            .peer_id
            .parse()
            .with_context(|| format!("peer id {:?}", provider.peer_id))?;
        let addrs = provider
            .endpoints
            .iter()
            .filter_map(|e| e.parse::<Multiaddr>().ok())
            .collect();
        // The repair loop runs on a blocking thread: wait here for the swarm's answer.
        futures::executor::block_on(self.net.fetch(peer, addrs, req))
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Runs the provider until `shutdown` completes; `started` receives its addresses.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> Result<()> {
    std::fs::create_dir_all(&opts.home)?;
    let (store, rec) = Store::open(&opts.home.join("store"))?;
    if rec != Default::default() {
        tracing::warn!(?rec, "recovered the store after an interrupted write");
    }
    // From the checkpoint of the last run, if any: never behind what this node trusted.
    let chain = crate::checkpoint::open_view(&opts.home, &opts.chain, &opts.genesis)?;
    let mut salt = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let svc: Svc = Arc::new(Service::new(
        Arc::new(store),
        chain,
        opts.key.clone(),
        salt,
        opts.limits,
    ));

    let worker = Arc::new(
        Worker::new(svc.clone(), opts.key.clone(), &opts.home)?
            .with_uncommitted_ttl(opts.uncommitted_ttl, now_ms),
    );
    let stop = Arc::new(AtomicBool::new(false));

    // Chain follower: verify new headers, then the duties of the round.
    let follower = {
        let (svc, worker, stop) = (svc.clone(), worker.clone(), stop.clone());
        let saver = Arc::new(std::sync::Mutex::new(crate::checkpoint::Saver::new(
            &opts.home,
            opts.genesis.clone(),
            Duration::from_secs(10),
        )));
        tokio::spawn(async move {
            loop {
                let (s, w, saver) = (svc.clone(), worker.clone(), saver.clone());
                let round = tokio::task::spawn_blocking(move || {
                    s.chain().sync()?;
                    if let Ok(mut saver) = saver.lock() {
                        if let Err(e) = saver.tick(s.chain(), std::time::Instant::now()) {
                            tracing::warn!(error = %format!("{e:#}"), "chain checkpoint not saved");
                        }
                    }
                    w.tick()
                });
                match round.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "chain round"),
                    Err(e) => tracing::error!(%e, "chain round task"),
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    // The event feed: hints of deals that name this node. A detached thread (it blocks in
    // reads) that ends at the first event after shutdown.
    {
        // Its own view (the feed needs no trusted state) and a weak handle on the worker, so
        // a stopped node's store is released even while this thread waits in a read.
        let feed = HttpChain::new(&opts.chain, &opts.genesis)?;
        let (worker, stop) = (Arc::downgrade(&worker), stop.clone());
        std::thread::Builder::new()
            .name("event-feed".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = feed.follow_events(|b| match worker.upgrade() {
                        Some(w) if !stop.load(Ordering::Relaxed) => {
                            w.hint_block(b);
                            true
                        }
                        _ => false,
                    });
                    if let Err(e) = r {
                        tracing::debug!(error = %format!("{e:#}"), "event feed");
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })?;
    }

    if opts.profile != Profile::Devnet && opts.wss.is_none() {
        anyhow::bail!(
            "the {:?} profile requires secure WebSocket (--wss-cert and --wss-key)",
            opts.profile
        );
    }
    let wss_tls = match &opts.wss {
        Some((cert, key)) => Some(
            websocket::tls::Config::new(
                websocket::tls::PrivateKey::new(key.clone()),
                vec![websocket::tls::Certificate::new(cert.clone())],
            )
            .map_err(|e| anyhow::anyhow!("secure WebSocket certificate: {e}"))?,
        ),
        None => None,
    };
    let ports = ListenPorts {
        wss: wss_tls.is_some(),
        ..opts.ports
    };
    let keypair = native::load_or_create_keypair(&opts.home.join("p2p.key"))
        .map_err(|e| anyhow::anyhow!("p2p key: {e}"))?;
    let cert = native::load_or_create_webrtc_cert(&opts.home.join("webrtc.pem"))
        .map_err(|e| anyhow::anyhow!("webrtc certificate: {e}"))?;
    let mut swarm = native::build_swarm(NodeConfig {
        keypair,
        webrtc_cert: cert,
        wss_tls,
        relay: None,
        serve: vec![
            Protocol::Upload,
            Protocol::Fetch,
            Protocol::Proof,
            Protocol::Receipt,
        ],
        limits: ConnLimits::default(),
        idle_timeout: Duration::from_secs(60),
    })
    .map_err(|e| anyhow::anyhow!("swarm: {e}"))?;
    let peer_id = *swarm.local_peer_id();
    let want = native::listen_addrs(opts.listen_ip, ports);
    for a in &want {
        swarm
            .listen_on(a.clone())
            .with_context(|| format!("listen on {a}"))?;
    }
    let mut addrs = Vec::new();
    while addrs.len() < want.len() {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            addrs.push(address.with_p2p(peer_id).unwrap_or_else(|a| a));
        }
    }

    // Repairs run apart from the follower (they fetch whole slots).
    let (net, mut outbound) = Requester::channel(peer_id);
    let repairs = {
        let (svc, worker, stop) = (svc.clone(), worker.clone(), stop.clone());
        let source = NetSource { net };
        tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = Repairer {
                    chain: svc.chain(),
                    store: svc.store(),
                    source: &source,
                    counters: Some(&worker.counters),
                    now_ms,
                };
                if let Err(e) = worker.repairs(&r) {
                    tracing::debug!(error = %format!("{e:#}"), "repair round");
                }
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };

    // Every stored byte is re-hashed once a day (first after an hour): a shard that
    // rotted is dropped rather than served or proven.
    let scrubs = {
        let (svc, worker, stop) = (svc.clone(), worker.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut next = std::time::Instant::now() + SCRUB_FIRST;
            while !stop.load(Ordering::Relaxed) {
                if std::time::Instant::now() >= next {
                    next = std::time::Instant::now() + SCRUB_EVERY;
                    scrub(&svc, &worker);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .context("bind the HTTP API")?;
    let http = listener.local_addr()?;
    let router = router(svc.clone(), worker.clone(), opts.trusted_proxy);
    let api = tokio::spawn(chain_light::http_server::serve(
        listener,
        router,
        chain_light::http_server::Limits::default(),
    ));
    tracing::info!(%peer_id, ?addrs, %http, "provider started");
    let node = native::NodeFile::of(opts.key.address(), &peer_id, &addrs, http);
    if let Err(e) = node.write(&opts.home) {
        tracing::warn!(%e, "cannot write node.json");
    }
    if let Some(tx) = started {
        let _ = tx.send(Started {
            peer_id,
            addrs,
            http,
        });
    }

    let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<Answer>(256);
    let upload_queue = Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS_QUEUED));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(req) = outbound.recv() => {
                outbound.send(&mut swarm, |b| &mut b.nilstore, req);
            }
            Some(a) = answers.recv() => {
                let b = &mut swarm.behaviour_mut().nilstore;
                let _ = match a {
                    Answer::Upload(ch, r) => b.upload.send_response(ch, r).map_err(|_| ()),
                    Answer::Fetch(ch, r) => b.fetch.send_response(ch, r).map_err(|_| ()),
                    Answer::Proof(ch, r) => b.proof.send_response(ch, r).map_err(|_| ()),
                    Answer::Receipt(ch, r) => b.receipt.send_response(ch, r).map_err(|_| ()),
                };
            }
            ev = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ev)) = ev else { continue };
                // Answers to the repair loop's fetches settle here; the rest is served.
                let Some(ev) = outbound.settle(ev) else { continue };
                let (svc, tx) = (svc.clone(), answers_tx.clone());
                match ev {
                    ProtocolsEvent::Upload(request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    }) => {
                        // Decoded uploads waiting to be checked hold their bytes: past
                        // the queue's cap they are answered (and dropped) at once.
                        let Ok(slot) = upload_queue.clone().try_acquire_owned() else {
                            svc.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                            let busy = Err(NetError::RateLimited { retry_ms: 500 });
                            let _ = swarm.behaviour_mut().nilstore.upload.send_response(channel, busy);
                            continue;
                        };
                        tokio::task::spawn_blocking(move || {
                            let r = svc.upload(&peer.to_string(), now_ms(), request);
                            drop(slot);
                            let _ = tx.blocking_send(Answer::Upload(channel, r));
                        });
                    }
                    ProtocolsEvent::Fetch(request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    }) => {
                        tokio::task::spawn_blocking(move || {
                            let r = svc.fetch(&peer.to_string(), now_ms(), request);
                            let _ = tx.blocking_send(Answer::Fetch(channel, r));
                        });
                    }
                    ProtocolsEvent::Proof(request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    }) => {
                        tokio::task::spawn_blocking(move || {
                            let r = svc.prove(&peer.to_string(), now_ms(), request);
                            let _ = tx.blocking_send(Answer::Proof(channel, r));
                        });
                    }
                    ProtocolsEvent::Receipt(request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    }) => {
                        let worker = worker.clone();
                        tokio::task::spawn_blocking(move || {
                            let r = svc
                                .check_receipt(&peer.to_string(), now_ms(), &request)
                                .and_then(|_| {
                                    worker
                                        .keep_receipt(request.receipt, request.sig)
                                        .map_err(|e| NetError::Internal(format!("{e:#}")))
                                })
                                .map(|nonce| ReceiptAck { nonce });
                            let _ = tx.blocking_send(Answer::Receipt(channel, r));
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    api.abort();
    drop(outbound);
    let _ = api.await;
    let _ = follower.await;
    let _ = repairs.await;
    let _ = scrubs.await;
    Ok(())
}

/// A JSON error with its status code.
struct ApiError(NetError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({ "error": { "message": self.0.to_string(), "detail": self.0 } })),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct ReadQuery {
    row: Option<u32>,
    offset: Option<u32>,
    len: Option<u32>,
}

fn router(svc: Svc, worker: Arc<Worker>, trusted_proxy: Option<std::net::IpAddr>) -> Router {
    let stored = Arc::new(StoredGauge::default());
    Router::new()
        .route("/health", get(health))
        .route(
            "/metrics",
            get(move |st: State<Svc>| metrics(st, worker.clone(), stored.clone())),
        )
        .route(
            "/v1/shards/{deal}/{slot}/{mdu}",
            get(
                move |st: State<Svc>,
                      path: Path<(u64, u32, u32)>,
                      q: Query<ReadQuery>,
                      ConnectInfo(client): ConnectInfo<SocketAddr>,
                      headers: axum::http::HeaderMap| {
                    let forwarded = headers
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let key = http_client_key(client, forwarded.as_deref(), trusted_proxy);
                    read(st, path, q, key)
                },
            ),
        )
        .with_state(svc)
}

/// The limiter key of an HTTP client: its address (IPv6 by /64, what one host gets), or,
/// only for a request from the configured reverse proxy, the address that proxy appended
/// last to `X-Forwarded-For`. A header from anyone else is ignored: a client would pick a
/// fresh bucket per request, or drain someone else's. (The `http:` prefix keeps these
/// keys apart from libp2p peer ids, which share the limiter.)
fn http_client_key(
    client: SocketAddr,
    forwarded: Option<&str>,
    trusted_proxy: Option<std::net::IpAddr>,
) -> String {
    use std::net::IpAddr;
    let ip = match (trusted_proxy, forwarded) {
        (Some(proxy), Some(xff)) if client.ip() == proxy => xff
            .rsplit(',')
            .next()
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
            .unwrap_or(client.ip()),
        _ => client.ip(),
    };
    match ip {
        IpAddr::V4(v4) => format!("http:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("http:{v4}"),
            None => {
                let s = v6.segments();
                format!("http:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// `nilstore_provider_bytes_stored`, recomputed from the index at most every
/// [`StoredGauge::EVERY_MS`] (a scrape must not decode the whole index each time).
#[derive(Default)]
struct StoredGauge {
    value: std::sync::atomic::AtomicU64,
    /// When it was last computed (ms since the epoch; 0: never).
    at_ms: std::sync::atomic::AtomicU64,
}

impl StoredGauge {
    const EVERY_MS: u64 = 30_000;

    /// The value, recomputed first (by one caller, off the async threads) when stale.
    async fn get(&self, svc: &Svc, now_ms: u64) -> u64 {
        let at = self.at_ms.load(Ordering::Relaxed);
        let stale = at == 0 || now_ms.saturating_sub(at) >= Self::EVERY_MS;
        if stale
            && self
                .at_ms
                .compare_exchange(at, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let svc = svc.clone();
            if let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.store().bytes_stored()).await
            {
                self.value.store(v, Ordering::Relaxed);
            }
        }
        self.value.load(Ordering::Relaxed)
    }
}

/// `GET /v1/shards/{deal}/{slot}/{mdu}[?row=R[&offset=O&len=N]]`: the shard, a blob or a
/// range, as bytes (errors as JSON).
async fn read(
    State(svc): State<Svc>,
    Path((deal, slot, mdu)): Path<(u64, u32, u32)>,
    Query(q): Query<ReadQuery>,
    peer: String,
) -> Result<Response, ApiError> {
    let what = match (q.row, q.offset, q.len) {
        (None, None, None) => FetchWhat::Shard,
        (Some(row), None, None) => FetchWhat::Blob { row },
        (Some(row), Some(offset), Some(len)) => FetchWhat::Range { row, offset, len },
        _ => {
            return Err(ApiError(NetError::BadRequest(
                "use row, or row+offset+len".into(),
            )))
        }
    };
    let req = FetchRequest {
        deal,
        slot,
        mdu,
        what,
    };
    let r = tokio::task::spawn_blocking(move || svc.fetch(&peer, now_ms(), req))
        .await
        .map_err(|e| ApiError(NetError::Internal(e.to_string())))?
        .map_err(ApiError)?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        r.bytes.0,
    )
        .into_response())
}

/// `GET /health`: liveness plus the chain height this node has verified (its light client's
/// trusted header); 503 while the chain view is unusable.
async fn health(State(svc): State<Svc>) -> Response {
    match svc.chain().trusted() {
        Ok(h) => Json(json!({ "status": "ok", "chain_height": h.height })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(svc): State<Svc>, worker: Arc<Worker>, gauge: Arc<StoredGauge>) -> Response {
    let c = &svc.counters;
    let w = &worker.counters;
    let stored = gauge.get(&svc, now_ms()).await;
    let height = svc.chain().trusted().map_or(0, |h| h.height);
    let body = format!(
        "# TYPE nilstore_provider_bytes_stored gauge\nnilstore_provider_bytes_stored {stored}\n\
         # TYPE nilstore_provider_shards_stored_total counter\nnilstore_provider_shards_stored_total {}\n\
         # TYPE nilstore_provider_verify_batches_total counter\nnilstore_provider_verify_batches_total {}\n\
         # TYPE nilstore_provider_uploads_refused_total counter\nnilstore_provider_uploads_refused_total {}\n\
         # TYPE nilstore_provider_bytes_served_total counter\nnilstore_provider_bytes_served_total {}\n\
         # TYPE nilstore_provider_rate_limited_total counter\nnilstore_provider_rate_limited_total {}\n\
         # TYPE nilstore_provider_chain_height gauge\nnilstore_provider_chain_height {height}\n\
         # TYPE nilstore_provider_proofs_submitted_total counter\nnilstore_provider_proofs_submitted_total {}\n\
         # TYPE nilstore_provider_proofs_failed_total counter\nnilstore_provider_proofs_failed_total {}\n\
         # TYPE nilstore_provider_receipts_redeemed_total counter\nnilstore_provider_receipts_redeemed_total {}\n\
         # TYPE nilstore_provider_deals_collected_total counter\nnilstore_provider_deals_collected_total {}\n\
         # TYPE nilstore_provider_uncommitted_expired_total counter\nnilstore_provider_uncommitted_expired_total {}\n\
         # TYPE nilstore_provider_scrub_dropped_total counter\nnilstore_provider_scrub_dropped_total {}\n\
         # TYPE nilstore_provider_repairs_completed_total counter\nnilstore_provider_repairs_completed_total {}\n\
         # TYPE nilstore_provider_repair_mdus_done_total counter\nnilstore_provider_repair_mdus_done_total {}\n\
         # TYPE nilstore_provider_repair_mdus_total counter\nnilstore_provider_repair_mdus_total {}\n",
        c.shards_stored.load(Ordering::Relaxed),
        svc.verify_batches(),
        c.uploads_refused.load(Ordering::Relaxed),
        c.bytes_served.load(Ordering::Relaxed),
        c.rate_limited.load(Ordering::Relaxed),
        w.proofs_submitted.load(Ordering::Relaxed),
        w.proofs_failed.load(Ordering::Relaxed),
        w.receipts_redeemed.load(Ordering::Relaxed),
        w.deals_collected.load(Ordering::Relaxed),
        w.uncommitted_expired.load(Ordering::Relaxed),
        w.scrub_dropped.load(Ordering::Relaxed),
        w.repairs_completed.load(Ordering::Relaxed),
        w.repair_mdus_done.load(Ordering::Relaxed),
        w.repair_mdus_total.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::http_client_key;

    /// A client's own `X-Forwarded-For` changes nothing (it would otherwise pick a fresh
    /// bucket per request, or name another client's); behind the configured proxy the
    /// address the proxy appended counts; IPv6 clients share a bucket per /64.
    #[test]
    fn http_clients_are_keyed_by_their_address_not_their_headers() {
        let direct = "203.0.113.7:5000".parse().unwrap();
        assert_eq!(http_client_key(direct, None, None), "http:203.0.113.7");
        for spoof in ["1.2.3.4", "12D3KooWPeerIdOfSomeoneElse", "garbage"] {
            assert_eq!(
                http_client_key(direct, Some(spoof), None),
                "http:203.0.113.7"
            );
        }
        let proxy = "10.0.0.2".parse().unwrap();
        let via = "10.0.0.2:443".parse().unwrap();
        assert_eq!(
            http_client_key(via, Some("6.6.6.6, 198.51.100.9"), Some(proxy)),
            "http:198.51.100.9",
            "the address the proxy appended, not one the client sent"
        );
        assert_eq!(
            http_client_key(direct, Some("198.51.100.9"), Some(proxy)),
            "http:203.0.113.7",
            "only the proxy's header counts"
        );
        assert_eq!(
            http_client_key(via, Some("not an address"), Some(proxy)),
            "http:10.0.0.2"
        );
        let a = http_client_key("[2001:db8:1:2:aaaa::1]:80".parse().unwrap(), None, None);
        let b = http_client_key("[2001:db8:1:2:bbbb::9]:80".parse().unwrap(), None, None);
        let c = http_client_key("[2001:db8:1:3::1]:80".parse().unwrap(), None, None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            http_client_key("[::ffff:192.0.2.1]:80".parse().unwrap(), None, None),
            "http:192.0.2.1"
        );
    }
}
