//! A native node for the browser transport test (`scripts/browser-p2p.sh`): it listens on
//! WebRTC-direct and WebSocket (and TCP/QUIC), writes its multiaddrs to the file named by its
//! argument, and answers fetches with a deterministic pattern of the size asked for and
//! uploads with the size received. It exits when its standard input closes.
#![allow(clippy::unwrap_used)]

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main]
async fn main() {
    use std::time::Duration;

    use futures::StreamExt as _;
    use nilstore_net::behaviour::ProtocolsEvent;
    use nilstore_net::libp2p::identity::Keypair;
    use nilstore_net::libp2p::request_response::{Event, Message};
    use nilstore_net::libp2p::swarm::SwarmEvent;
    use nilstore_net::native::{self, BehaviourEvent, ConnLimits, ListenPorts, NodeConfig};
    use nilstore_net::proto::{FetchResponse, FetchWhat, Protocol, UploadAck, BLOB_BYTES};

    let out = std::env::args()
        .nth(1)
        .expect("usage: browser_peer ADDRS_FILE");
    let dir = std::env::temp_dir().join(format!("nilstore-browser-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut swarm = native::build_swarm(NodeConfig {
        keypair: Keypair::generate_ed25519(),
        webrtc_cert: native::load_or_create_webrtc_cert(&dir.join("webrtc.pem")).unwrap(),
        wss_tls: None,
        relay: None,
        serve: vec![Protocol::Fetch, Protocol::Upload],
        limits: ConnLimits::default(),
        idle_timeout: Duration::from_secs(60),
    })
    .unwrap();
    let want = native::listen_addrs("127.0.0.1".parse().unwrap(), ListenPorts::default());
    for a in &want {
        swarm.listen_on(a.clone()).unwrap();
    }
    let me = *swarm.local_peer_id();
    let mut addrs = Vec::new();
    let mut stdin_closed = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        while std::io::stdin().read_line(&mut s).is_ok_and(|n| n > 0) {}
    });
    loop {
        tokio::select! {
            _ = &mut stdin_closed => break,
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    addrs.push(address.with_p2p(me).unwrap().to_string());
                    if addrs.len() == want.len() {
                        std::fs::write(&out, addrs.join("\n") + "\n").unwrap();
                        eprintln!("listening: {addrs:?}");
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Fetch(
                    Event::Message { message: Message::Request { request, channel, .. }, .. },
                ))) => {
                    // Range asks for `len` bytes: the pattern byte i = (i * 7 + row) mod 251.
                    let (row, len) = match request.what {
                        FetchWhat::Range { row, len, .. } => (row, len as usize),
                        _ => (0, BLOB_BYTES),
                    };
                    let bytes = (0..len).map(|i| ((i * 7 + row as usize) % 251) as u8).collect();
                    let r = FetchResponse {
                        bytes: chain_light::bytes::Blob(bytes),
                        leaves: Vec::new(),
                        served: Vec::new(),
                    };
                    let _ = swarm.behaviour_mut().nilstore.fetch.send_response(channel, Ok(r));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Upload(
                    Event::Message { message: Message::Request { request, channel, .. }, .. },
                ))) => {
                    let n: u64 = request.blobs.iter().map(|b| b.0.len() as u64).sum();
                    let ack = UploadAck {
                        mdu_root: chain_light::bytes::H256(*blake3::hash(&request.blobs[0].0).as_bytes()),
                        bytes: n,
                        fresh: true,
                    };
                    let _ = swarm.behaviour_mut().nilstore.upload.send_response(channel, Ok(ack));
                }
                _ => {}
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(target_arch = "wasm32")]
fn main() {}
