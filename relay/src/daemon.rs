//! The relay daemon: the libp2p node (relay server, browser listeners, locate and deputy
//! protocols), the chain follower, and the HTTP API (`/health`, Prometheus `/metrics`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chain_light::block::Genesis;
use chain_light::crypto::SecretKey;
use futures::StreamExt as _;
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::chain::{HttpChain, Signer};
use nilstore_net::libp2p::request_response::{self, Message, ResponseChannel};
use nilstore_net::libp2p::swarm::SwarmEvent;
use nilstore_net::libp2p::{relay, websocket, Multiaddr, PeerId};
use nilstore_net::native::{
    self, BehaviourEvent, ConnLimits, ListenPorts, NodeConfig, RelayLimits,
};
use nilstore_net::proto::{DeputyRequest, DeputyResponse, LocateResponse, NetError, Protocol};
use serde_json::json;

use crate::deputy::{locate, verdict, Admitted, Deputy, DeputyLimits, Fetched, Verdict};
use crate::gate::{Gate, MAX_DEPUTY_INFLIGHT, MAX_LOCATE_INFLIGHT};

/// Deployment profile (as the provider's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Loopback-friendly: plain WebSocket allowed.
    Devnet,
    /// Public test network: secure WebSocket required.
    Testnet,
    /// Production: secure WebSocket required.
    Mainnet,
}

/// How to run a relay.
#[derive(Clone, Debug)]
pub struct Options {
    /// Home directory (keys).
    pub home: PathBuf,
    /// The validator API to follow.
    pub chain: String,
    /// The chain's genesis document.
    pub genesis: Genesis,
    /// The deputy account key (secp256k1).
    pub key: SecretKey,
    /// Profile.
    pub profile: Profile,
    /// Listen IP for p2p.
    pub listen_ip: std::net::IpAddr,
    /// p2p ports (0: any).
    pub ports: ListenPorts,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Relay server limits.
    pub relay: RelayLimits,
    /// Deputy limits.
    pub deputy: DeputyLimits,
    /// How long a deputy waits for a provider before attesting.
    pub deputy_timeout: Duration,
    /// Secure WebSocket certificate chain and key (DER).
    pub wss: Option<(Vec<u8>, Vec<u8>)>,
}

/// What a running relay reports once it listens.
#[derive(Clone, Debug)]
pub struct Started {
    /// Its libp2p peer id.
    pub peer_id: PeerId,
    /// Its p2p listen addresses (with `/p2p/<id>`).
    pub addrs: Vec<Multiaddr>,
    /// Its HTTP API address.
    pub http: SocketAddr,
    /// Its deputy account.
    pub account: chain_light::bytes::Address,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Relay-server counters.
#[derive(Debug, Default)]
struct RelayCounters {
    reservations: AtomicU64,
    reservations_denied: AtomicU64,
    circuits: AtomicU64,
    circuits_denied: AtomicU64,
    circuits_closed: AtomicU64,
    locate: AtomicU64,
}

struct Shared {
    deputy: Deputy,
    relay: RelayCounters,
    /// Deputy requests: per peer and at most `MAX_DEPUTY_INFLIGHT` at once.
    deputy_gate: Gate,
    /// `Locate` requests: per peer and at most `MAX_LOCATE_INFLIGHT` at once.
    locate_gate: Gate,
}

enum Answer {
    Deputy(
        ResponseChannel<Result<DeputyResponse, NetError>>,
        Result<DeputyResponse, NetError>,
    ),
    Locate(
        ResponseChannel<Result<LocateResponse, NetError>>,
        Result<LocateResponse, NetError>,
    ),
}

/// Fetches one blob from the provider under a fresh identity, recording a transcript.
async fn fetch_fresh(
    req: &DeputyRequest,
    a: &Admitted,
    timeout: Duration,
    transcript: &mut Vec<String>,
) -> Fetched {
    let peer: PeerId = match a.provider.peer_id.parse() {
        Ok(p) => p,
        Err(e) => return Fetched::Local(format!("provider peer id: {e}")),
    };
    let mut swarm = match native::ephemeral_client(timeout) {
        Ok(s) => s,
        Err(e) => return Fetched::Local(format!("swarm: {e}")),
    };
    transcript.push(format!(
        "t={} deputy-identity={} provider={} peer={}",
        now_ms(),
        swarm.local_peer_id(),
        req.provider,
        peer
    ));
    let mut any = false;
    for e in &a.provider.endpoints {
        let Ok(addr) = e.parse::<Multiaddr>() else {
            continue;
        };
        // The ephemeral client speaks TCP and QUIC.
        let s = addr.to_string();
        if s.contains("/tcp/") && !s.contains("/ws") || s.contains("/quic-v1") {
            swarm.add_peer_address(peer, addr);
            any = true;
        }
    }
    if !any {
        return Fetched::Local("the provider registered no TCP or QUIC endpoint".into());
    }
    let id = swarm
        .behaviour_mut()
        .fetch
        .send_request(&peer, req.fetch.clone());
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                transcript.push(format!("t={} timeout after {} ms", now_ms(), timeout.as_millis()));
                return Fetched::Silent("timed out".into());
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(ProtocolsEvent::Fetch(request_response::Event::Message {
                    message: Message::Response { request_id, response }, ..
                })) if request_id == id => {
                    return match response {
                        Ok(r) => Fetched::Answer(r),
                        Err(e) => {
                            transcript.push(format!("t={} refused: {e}", now_ms()));
                            Fetched::Refused(e)
                        }
                    };
                }
                SwarmEvent::Behaviour(ProtocolsEvent::Fetch(request_response::Event::OutboundFailure {
                    request_id, error, ..
                })) if request_id == id => {
                    transcript.push(format!("t={} failure: {error}", now_ms()));
                    return Fetched::Silent(format!("{error}"));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    transcript.push(format!("t={} dial: {error}", now_ms()));
                }
                SwarmEvent::ConnectionEstablished { endpoint, .. } => {
                    transcript.push(format!("t={} connected {}", now_ms(), endpoint.get_remote_address()));
                }
                _ => {}
            }
        }
    }
}

/// Serves one deputy request end to end.
async fn serve_deputy(
    shared: Arc<Shared>,
    peer: PeerId,
    req: DeputyRequest,
    timeout: Duration,
) -> Result<DeputyResponse, NetError> {
    let (s, r) = (shared.clone(), req.clone());
    let admitted =
        tokio::task::spawn_blocking(move || s.deputy.admit(&peer.to_string(), now_ms(), &r))
            .await
            .map_err(|e| NetError::Internal(e.to_string()))??;
    let mut transcript = Vec::new();
    let fetched = fetch_fresh(&req, &admitted, timeout, &mut transcript).await;
    let failure = match verdict(fetched, |r| shared.deputy.check_answer(&req, &admitted, r)) {
        Verdict::Serve(resp) => return Ok(DeputyResponse::Data(resp)),
        Verdict::Refuse(e) => {
            tracing::info!(deal = req.fetch.deal, slot = req.fetch.slot, provider = %req.provider, error = %e, "the deputy's fetch was refused without a failure to attest");
            return Err(e);
        }
        Verdict::Attest(why) => {
            transcript.push(format!("t={} {why}", now_ms()));
            why
        }
    };
    tracing::info!(deal = req.fetch.deal, slot = req.fetch.slot, provider = %req.provider, %failure, "provider did not serve the deputy");
    let s = shared.clone();
    let (attestation, sig) =
        tokio::task::spawn_blocking(move || s.deputy.attest(&req, &admitted, &transcript))
            .await
            .map_err(|e| NetError::Internal(e.to_string()))?
            .map_err(|e| NetError::Internal(format!("{e:#}")))?;
    Ok(DeputyResponse::Failed { attestation, sig })
}

/// Runs the relay until `shutdown` completes; `started` receives its addresses.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> Result<()> {
    std::fs::create_dir_all(&opts.home)?;
    if opts.profile != Profile::Devnet && opts.wss.is_none() {
        anyhow::bail!(
            "the {:?} profile requires secure WebSocket (--wss-cert and --wss-key)",
            opts.profile
        );
    }
    let chain = Arc::new(HttpChain::new(&opts.chain, &opts.genesis)?);
    let account = opts.key.address();
    let shared = Arc::new(Shared {
        deputy: Deputy::new(chain.clone(), Signer::new(opts.key.clone()), opts.deputy),
        relay: RelayCounters::default(),
        // The deputy's own per-reader checks (signature, nonce, rate) run after this gate,
        // which only keeps fresh peer ids from holding more than the global cap of swarms.
        deputy_gate: Gate::new(50, 100, 10_000, MAX_DEPUTY_INFLIGHT),
        locate_gate: Gate::new(5, 10, 10_000, MAX_LOCATE_INFLIGHT),
    });

    let follower = {
        let chain = chain.clone();
        tokio::spawn(async move {
            loop {
                let c = chain.clone();
                match tokio::task::spawn_blocking(move || c.sync()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "chain sync"),
                    Err(e) => tracing::error!(%e, "chain sync task"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

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
        relay: Some(opts.relay),
        serve: vec![Protocol::Deputy, Protocol::Locate],
        limits: ConnLimits::default(),
        idle_timeout: Duration::from_secs(120),
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
            // A relay server only hands out reservations on addresses it knows are reachable.
            swarm.add_external_address(address.clone());
            addrs.push(address.with_p2p(peer_id).unwrap_or_else(|a| a));
        }
    }

    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .context("bind the HTTP API")?;
    let http = listener.local_addr()?;
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state((shared.clone(), chain.clone()));
    let api = tokio::spawn(chain_light::http_server::serve(
        listener,
        router,
        chain_light::http_server::Limits::default(),
    ));
    tracing::info!(%peer_id, ?addrs, %http, deputy = %account, "relay started");
    let node = native::NodeFile::of(account, &peer_id, &addrs, http);
    if let Err(e) = node.write(&opts.home) {
        tracing::warn!(%e, "cannot write node.json");
    }
    if let Some(tx) = started {
        let _ = tx.send(Started {
            peer_id,
            addrs,
            http,
            account,
        });
    }

    let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<Answer>(256);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(a) = answers.recv() => {
                let b = &mut swarm.behaviour_mut().nilstore;
                let _ = match a {
                    Answer::Deputy(ch, r) => b.deputy.send_response(ch, r).map_err(|_| ()),
                    Answer::Locate(ch, r) => b.locate.send_response(ch, r).map_err(|_| ()),
                };
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Deputy(
                    request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    },
                ))) => {
                    let permit = match shared.deputy_gate.admit(&peer.to_string(), now_ms()) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = swarm.behaviour_mut().nilstore.deputy.send_response(channel, Err(e));
                            continue;
                        }
                    };
                    let (shared, tx, timeout) = (shared.clone(), answers_tx.clone(), opts.deputy_timeout);
                    tokio::spawn(async move {
                        let r = serve_deputy(shared, peer, request, timeout).await;
                        drop(permit);
                        let _ = tx.send(Answer::Deputy(channel, r)).await;
                    });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Locate(
                    request_response::Event::Message {
                        peer, message: Message::Request { request, channel, .. }, ..
                    },
                ))) => {
                    shared.relay.locate.fetch_add(1, Ordering::Relaxed);
                    let permit = match shared.locate_gate.admit(&peer.to_string(), now_ms()) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = swarm.behaviour_mut().nilstore.locate.send_response(channel, Err(e));
                            continue;
                        }
                    };
                    let (chain, tx) = (chain.clone(), answers_tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let r = locate(&chain, request.deal);
                        drop(permit);
                        let _ = tx.blocking_send(Answer::Locate(channel, r));
                    });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => {
                    let c = &shared.relay;
                    let n = match e {
                        relay::Event::ReservationReqAccepted { .. } => &c.reservations,
                        relay::Event::ReservationReqDenied { .. } => &c.reservations_denied,
                        relay::Event::CircuitReqAccepted { .. } => &c.circuits,
                        relay::Event::CircuitReqDenied { .. } => &c.circuits_denied,
                        relay::Event::CircuitClosed { .. } => &c.circuits_closed,
                        _ => continue,
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
    follower.abort();
    api.abort();
    Ok(())
}

type Ctx = (Arc<Shared>, Arc<HttpChain>);

/// `GET /health`: liveness and the verified chain height (503 while the chain view is
/// unusable).
async fn health(State((_, chain)): State<Ctx>) -> Response {
    match chain.trusted() {
        Ok(h) => Json(json!({ "status": "ok", "chain_height": h.height })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State((shared, chain)): State<Ctx>) -> Response {
    let d = &shared.deputy.counters;
    let r = &shared.relay;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let height = chain.trusted().map_or(0, |h| h.height);
    let lines = [
        ("nilstore_relay_chain_height", "gauge", height),
        (
            "nilstore_relay_deputy_slots_free",
            "gauge",
            shared.deputy_gate.free() as u64,
        ),
        (
            "nilstore_relay_locate_slots_free",
            "gauge",
            shared.locate_gate.free() as u64,
        ),
        (
            "nilstore_relay_reservations_total",
            "counter",
            g(&r.reservations),
        ),
        (
            "nilstore_relay_reservations_denied_total",
            "counter",
            g(&r.reservations_denied),
        ),
        ("nilstore_relay_circuits_total", "counter", g(&r.circuits)),
        (
            "nilstore_relay_circuits_denied_total",
            "counter",
            g(&r.circuits_denied),
        ),
        (
            "nilstore_relay_circuits_closed_total",
            "counter",
            g(&r.circuits_closed),
        ),
        (
            "nilstore_relay_locate_requests_total",
            "counter",
            g(&r.locate),
        ),
        (
            "nilstore_relay_deputy_requests_total",
            "counter",
            g(&d.requests),
        ),
        (
            "nilstore_relay_deputy_refused_total",
            "counter",
            g(&d.refused),
        ),
        (
            "nilstore_relay_deputy_served_total",
            "counter",
            g(&d.served),
        ),
        (
            "nilstore_relay_attestations_total",
            "counter",
            g(&d.attestations),
        ),
        (
            "nilstore_relay_attestations_failed_total",
            "counter",
            g(&d.attestations_failed),
        ),
    ];
    let mut body = String::new();
    for (name, kind, v) in lines {
        body.push_str(&format!("# TYPE {name} {kind}\n{name} {v}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
