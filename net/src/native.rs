//! Native nodes (providers, relays, the CLI client) on tokio: TCP and QUIC for native peers,
//! WebRTC-direct and WebSocket (optionally TLS) for browsers, noise + yamux, identify,
//! ping, circuit relay v2 (server optional, client always), connection and memory limits.

use std::path::Path;
use std::time::Duration;

use chain_light::secret_file;
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, dns, identify, memory_connection_limits, noise, ping, relay, tcp, websocket,
    yamux, Multiaddr, Swarm, SwarmBuilder, Transport as _,
};
use libp2p_webrtc as webrtc;

use crate::behaviour::Protocols;
use crate::proto::Protocol;

pub use crate::BoxError;
/// The WebRTC-direct certificate type.
pub use libp2p_webrtc::tokio::Certificate as WebRtcCertificate;

pub use derived::{Behaviour, BehaviourEvent};

/// The derive generates `BehaviourEvent`, one variant per field (documented there).
mod derived {
    #![allow(missing_docs)]
    use super::*;

    /// A native node's behaviour. Connection limits come first, so they refuse a connection
    /// before anything else allocates for it.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Connection counts.
        pub limits: connection_limits::Behaviour,
        /// No new connections while the process is over its memory budget.
        pub memory: memory_connection_limits::Behaviour,
        /// The NilStore protocols.
        pub nilstore: Protocols,
        /// Identify (addresses, protocols).
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Circuit relay v2 server (relays only).
        pub relay: Toggle<relay::Behaviour>,
        /// Circuit relay v2 client (reservations, dialing through relays).
        pub relay_client: relay::client::Behaviour,
    }
}

/// Limits of a relay server. libp2p's defaults (128 KiB and 2 min per circuit) are for
/// hole-punching signalling; NilStore relays carry data, so they are raised.
#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    /// Reservations held at once.
    pub max_reservations: usize,
    /// Circuits at once.
    pub max_circuits: usize,
    /// Circuits per peer.
    pub max_circuits_per_peer: usize,
    /// Longest circuit.
    pub max_circuit_duration: Duration,
    /// Bytes per circuit (0: unlimited).
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: 1024,
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 1 << 30,
        }
    }
}

/// Connection limits of a node.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Connections being established, each way.
    pub pending: u32,
    /// Established connections in total.
    pub established: u32,
    /// Established connections per peer.
    pub per_peer: u32,
    /// Refuse new connections above this fraction of physical memory.
    pub memory_fraction: f64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            pending: 128,
            established: 1024,
            per_peer: 4,
            memory_fraction: 0.9,
        }
    }
}

/// What a native node is.
pub struct NodeConfig {
    /// The libp2p identity.
    pub keypair: Keypair,
    /// The WebRTC-direct DTLS certificate (persist it: its hash is in the address).
    pub webrtc_cert: webrtc::tokio::Certificate,
    /// TLS for `/tls/ws` (secure WebSocket) listeners; None: plain `/ws` only.
    pub wss_tls: Option<websocket::tls::Config>,
    /// Run a relay server with these limits.
    pub relay: Option<RelayLimits>,
    /// Protocols this node serves.
    pub serve: Vec<Protocol>,
    /// Connection limits.
    pub limits: ConnLimits,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
}

/// Builds the swarm (inside a tokio runtime).
pub fn build_swarm(cfg: NodeConfig) -> Result<Swarm<Behaviour>, BoxError> {
    let NodeConfig {
        keypair,
        webrtc_cert,
        wss_tls,
        relay,
        serve,
        limits,
        idle_timeout,
    } = cfg;
    // QUIC brings aws-lc-rs and WebRTC/WebSocket bring ring into rustls: without a chosen
    // process default the WebRTC stack panics at connection time.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let yamux = || {
        let mut c = yamux::Config::default();
        c.set_max_num_streams(512);
        c
    };
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux,
        )?
        .with_quic()
        .with_other_transport(|key| webrtc::tokio::Transport::new(key.clone(), webrtc_cert))?
        .with_other_transport(|key| -> Result<_, BoxError> {
            let mut ws = websocket::Config::new(dns::tokio::Transport::system(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
            )?);
            ws.set_max_data_size(crate::proto::Protocol::Upload.max_request() + (1 << 20));
            if let Some(tls) = wss_tls {
                ws.set_tls_config(tls);
            }
            Ok(ws
                .upgrade(upgrade::Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux()))
        })?
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux)?
        .with_behaviour(|key, relay_client| {
            let n = |v: u32| Some(v);
            Behaviour {
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_pending_incoming(n(limits.pending))
                        .with_max_pending_outgoing(n(limits.pending))
                        .with_max_established(n(limits.established))
                        .with_max_established_per_peer(n(limits.per_peer)),
                ),
                memory: memory_connection_limits::Behaviour::with_max_percentage(
                    limits.memory_fraction,
                ),
                nilstore: Protocols::new(&serve),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/nilstore/id/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
                relay: Toggle::from(relay.map(|l| {
                    relay::Behaviour::new(
                        key.public().to_peer_id(),
                        relay::Config {
                            max_reservations: l.max_reservations,
                            max_circuits: l.max_circuits,
                            max_circuits_per_peer: l.max_circuits_per_peer,
                            max_circuit_duration: l.max_circuit_duration,
                            max_circuit_bytes: l.max_circuit_bytes,
                            ..Default::default()
                        },
                    )
                })),
                relay_client,
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

/// A client swarm under a fresh identity, serving nothing (TCP and QUIC): what a deputy
/// fetches with, so a provider cannot tell it from any other reader (SPEC §7).
pub fn ephemeral_client(idle_timeout: Duration) -> Result<Swarm<Protocols>, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|_| Protocols::new(&[]))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build())
}

/// The listen addresses of a node on `ip`: TCP, QUIC, WebRTC-direct and WebSocket, with the
/// given ports (0: any).
pub fn listen_addrs(ip: std::net::IpAddr, ports: ListenPorts) -> Vec<Multiaddr> {
    let ip = match ip {
        std::net::IpAddr::V4(v) => format!("/ip4/{v}"),
        std::net::IpAddr::V6(v) => format!("/ip6/{v}"),
    };
    let ws = if ports.wss { "tls/ws" } else { "ws" };
    [
        format!("{ip}/tcp/{}", ports.tcp),
        format!("{ip}/udp/{}/quic-v1", ports.quic),
        format!("{ip}/udp/{}/webrtc-direct", ports.webrtc),
        format!("{ip}/tcp/{}/{ws}", ports.ws),
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Ports of [`listen_addrs`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenPorts {
    /// TCP.
    pub tcp: u16,
    /// QUIC (UDP).
    pub quic: u16,
    /// WebRTC-direct (UDP).
    pub webrtc: u16,
    /// WebSocket (TCP).
    pub ws: u16,
    /// Secure WebSocket instead of plain.
    pub wss: bool,
}

/// Loads the node identity from `path` (protobuf encoding, mode 0600), creating it if absent.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, BoxError> {
    if path.exists() {
        return Ok(Keypair::from_protobuf_encoding(&secret_file::read(path)?)?);
    }
    let k = Keypair::generate_ed25519();
    secret_file::write(path, &k.to_protobuf_encoding()?)?;
    Ok(k)
}

/// Loads the WebRTC certificate from `path` (PEM with its key, mode 0600), creating it if
/// absent; a stable certificate keeps the node's `/certhash` address stable.
pub fn load_or_create_webrtc_cert(path: &Path) -> Result<webrtc::tokio::Certificate, BoxError> {
    if path.exists() {
        let pem = String::from_utf8(secret_file::read(path)?)?;
        return Ok(webrtc::tokio::Certificate::from_pem(&pem)?);
    }
    // The RNG argument is ignored by libp2p-webrtc 0.10 (it uses its own).
    let cert = webrtc::tokio::Certificate::generate(&mut rand10::rng())?;
    secret_file::write(path, cert.serialize_pem().as_bytes())?;
    Ok(cert)
}

/// `HOME/node.json`: how to reach a running daemon, written once it listens (operators and
/// supervisors such as the devnet read it instead of parsing logs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeFile {
    /// Chain account.
    pub account: chain_light::bytes::Address,
    /// libp2p peer id.
    pub peer_id: String,
    /// p2p listen addresses (with `/p2p/<id>`).
    pub addrs: Vec<String>,
    /// HTTP API address.
    pub http: String,
    /// Process id.
    pub pid: u32,
}

impl NodeFile {
    /// This process's record.
    pub fn of(
        account: chain_light::bytes::Address,
        peer_id: &libp2p::PeerId,
        addrs: &[Multiaddr],
        http: std::net::SocketAddr,
    ) -> NodeFile {
        NodeFile {
            account,
            peer_id: peer_id.to_string(),
            addrs: addrs.iter().map(ToString::to_string).collect(),
            http: http.to_string(),
            pid: std::process::id(),
        }
    }

    /// The file's path in a daemon home.
    pub fn path(home: &Path) -> std::path::PathBuf {
        home.join("node.json")
    }

    /// Writes it atomically.
    pub fn write(&self, home: &Path) -> std::io::Result<()> {
        let tmp = home.join("node.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(home))
    }

    /// Reads it.
    pub fn read(home: &Path) -> std::io::Result<NodeFile> {
        let raw = std::fs::read(Self::path(home))?;
        serde_json::from_slice(&raw).map_err(std::io::Error::other)
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM: when a daemon should stop cleanly.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
