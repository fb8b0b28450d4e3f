//! Two real libp2p nodes on loopback exchange the NilStore protocols over every native
//! transport: TCP, QUIC, WebSocket, secure WebSocket (self-signed) and WebRTC-direct (with
//! messages far over WebRTC's 8 KiB read buffer, which needs the patched webrtc-data). Typed
//! errors cross the wire; oversized requests are refused before sending; a protocol the
//! server does not serve is refused as unsupported.
#![allow(clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use chain_light::bytes::{Address, Blob, Sig65};
use futures::StreamExt as _;
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::identity::Keypair;
use nilstore_net::libp2p::request_response::{self, Message, OutboundFailure};
use nilstore_net::libp2p::swarm::SwarmEvent;
use nilstore_net::libp2p::{websocket, Multiaddr, PeerId, Swarm};
use nilstore_net::native::{build_swarm, Behaviour, BehaviourEvent, ConnLimits, NodeConfig};
use nilstore_net::proto::{
    FetchRequest, FetchResponse, FetchWhat, NetError, Protocol, UploadAck, UploadAuth, UploadShard,
    BLOB_BYTES,
};

fn node(serve: &[Protocol], wss: Option<websocket::tls::Config>) -> Swarm<Behaviour> {
    build_swarm(NodeConfig {
        keypair: Keypair::generate_ed25519(),
        webrtc_cert: libp2p_webrtc::tokio::Certificate::generate(&mut rand10::rng()).unwrap(),
        wss_tls: wss,
        relay: None,
        serve: serve.to_vec(),
        limits: ConnLimits::default(),
        idle_timeout: Duration::from_secs(30),
    })
    .unwrap()
}

async fn listen(swarm: &mut Swarm<Behaviour>, addr: &str) -> Multiaddr {
    swarm.listen_on(addr.parse().unwrap()).unwrap();
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            return address;
        }
    }
}

/// The server: fetch answers `slot` bytes of `deal as u8` (MDU 404: not found); upload acks
/// the bytes received.
fn serve(mut server: Swarm<Behaviour>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match server.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Fetch(
                    request_response::Event::Message {
                        message:
                            Message::Request {
                                request, channel, ..
                            },
                        ..
                    },
                ))) => {
                    let r = if request.mdu == 404 {
                        Err(NetError::NotFound(format!("MDU {}", request.mdu)))
                    } else {
                        Ok(FetchResponse {
                            bytes: Blob(vec![request.deal as u8; request.slot as usize]),
                            leaves: Vec::new(),
                            served: Vec::new(),
                        })
                    };
                    let _ = server
                        .behaviour_mut()
                        .nilstore
                        .fetch
                        .send_response(channel, r);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Nilstore(ProtocolsEvent::Upload(
                    request_response::Event::Message {
                        message:
                            Message::Request {
                                request, channel, ..
                            },
                        ..
                    },
                ))) => {
                    let bytes = request.blobs.iter().map(|b| b.0.len() as u64).sum();
                    let ack = UploadAck {
                        mdu_root: chain_light::bytes::H256(
                            *blake3::hash(&request.blobs[0].0).as_bytes(),
                        ),
                        bytes,
                        fresh: true,
                    };
                    let _ = server
                        .behaviour_mut()
                        .nilstore
                        .upload
                        .send_response(channel, Ok(ack));
                }
                _ => {}
            }
        }
    })
}

enum Outcome<T> {
    Response(T),
    Failure(OutboundFailure),
}

/// Drives the client until `pick` recognises the answer (or failure) of a request.
async fn answer<T>(
    client: &mut Swarm<Behaviour>,
    mut pick: impl FnMut(ProtocolsEvent) -> Option<Outcome<T>>,
) -> Outcome<T> {
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = client.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Nilstore(e)) = ev {
                    if let Some(o) = pick(e) {
                        return o;
                    }
                }
            }
            _ = &mut deadline => panic!("no answer in 60 s"),
        }
    }
}

async fn await_fetch(client: &mut Swarm<Behaviour>) -> Outcome<Result<FetchResponse, NetError>> {
    answer(client, |e| match e {
        ProtocolsEvent::Fetch(request_response::Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => Some(Outcome::Response(response)),
        ProtocolsEvent::Fetch(request_response::Event::OutboundFailure { error, .. }) => {
            Some(Outcome::Failure(error))
        }
        _ => None,
    })
    .await
}

async fn await_upload(client: &mut Swarm<Behaviour>) -> Outcome<Result<UploadAck, NetError>> {
    answer(client, |e| match e {
        ProtocolsEvent::Upload(request_response::Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => Some(Outcome::Response(response)),
        ProtocolsEvent::Upload(request_response::Event::OutboundFailure { error, .. }) => {
            Some(Outcome::Failure(error))
        }
        _ => None,
    })
    .await
}

fn fetch(size: u32, mdu: u32) -> FetchRequest {
    FetchRequest {
        deal: 7,
        slot: size,
        mdu,
        what: FetchWhat::Shard,
    }
}

fn upload(blobs: usize) -> UploadShard {
    UploadShard {
        chain_id: 1,
        deal: 1,
        slot: 0,
        mdu: 2,
        generation: 1,
        leaves: Vec::new(),
        blobs: (0..blobs)
            .map(|i| Blob(vec![i as u8; BLOB_BYTES]))
            .collect(),
        auth: UploadAuth {
            signer: Address::ZERO,
            expires_ms: 0,
            sig: Sig65([0; 65]),
        },
    }
}

/// Small and large fetches, a typed error, and an 8-blob (1 MiB) upload over `transport`.
async fn exchange(
    server_listen: &str,
    client_listen: Option<&str>,
    tls: Option<(websocket::tls::Config, websocket::tls::Config)>,
) {
    let (server_tls, client_tls) = match tls {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let mut server = node(&[Protocol::Fetch, Protocol::Upload], server_tls);
    let mut client = node(&[], client_tls);
    let addr = listen(&mut server, server_listen).await;
    if let Some(a) = client_listen {
        listen(&mut client, a).await;
    }
    let server_id: PeerId = *server.local_peer_id();
    let _task = serve(server);
    client.add_peer_address(server_id, addr.clone());

    for size in [10u32, 100_000, 3 << 20] {
        client
            .behaviour_mut()
            .nilstore
            .fetch
            .send_request(&server_id, fetch(size, 1));
        match await_fetch(&mut client).await {
            Outcome::Response(Ok(r)) => assert_eq!(r.bytes.0, vec![7u8; size as usize], "{addr}"),
            Outcome::Response(Err(e)) => panic!("{addr}: {e}"),
            Outcome::Failure(e) => panic!("{addr}: {e:?}"),
        }
    }
    client
        .behaviour_mut()
        .nilstore
        .fetch
        .send_request(&server_id, fetch(1, 404));
    assert!(matches!(
        await_fetch(&mut client).await,
        Outcome::Response(Err(NetError::NotFound(_)))
    ));
    client
        .behaviour_mut()
        .nilstore
        .upload
        .send_request(&server_id, upload(8));
    match await_upload(&mut client).await {
        Outcome::Response(Ok(ack)) => assert_eq!(ack.bytes, 8 * BLOB_BYTES as u64),
        Outcome::Response(Err(e)) => panic!("{addr}: {e}"),
        Outcome::Failure(e) => panic!("{addr}: {e:?}"),
    }
}

#[tokio::test]
async fn tcp() {
    exchange("/ip4/127.0.0.1/tcp/0", None, None).await;
}

#[tokio::test]
async fn quic() {
    exchange("/ip4/127.0.0.1/udp/0/quic-v1", None, None).await;
}

#[tokio::test]
async fn websocket_plain() {
    exchange("/ip4/127.0.0.1/tcp/0/ws", None, None).await;
}

#[tokio::test]
async fn websocket_tls_with_a_configured_certificate() {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = websocket::tls::PrivateKey::new(key_pair.serialize_der());
    let cert = websocket::tls::Certificate::new(cert.der().to_vec());
    let server = websocket::tls::Config::new(key, vec![cert.clone()]).unwrap();
    let mut b = websocket::tls::Config::builder();
    b.add_trust(&cert).unwrap();
    exchange(
        "/ip4/127.0.0.1/tcp/0/tls/ws",
        None,
        Some((server, b.finish())),
    )
    .await;
}

#[tokio::test]
async fn webrtc_direct() {
    // A native dialer needs its own WebRTC-direct listener (it reuses the UDP socket).
    exchange(
        "/ip4/127.0.0.1/udp/0/webrtc-direct",
        Some("/ip4/127.0.0.1/udp/0/webrtc-direct"),
        None,
    )
    .await;
}

#[tokio::test]
async fn limits_and_unsupported_protocols() {
    let mut uploads = node(&[Protocol::Upload], None);
    let mut fetch_only = node(&[Protocol::Fetch], None);
    let mut client = node(&[], None);
    let (a, b) = (
        listen(&mut uploads, "/ip4/127.0.0.1/tcp/0").await,
        listen(&mut fetch_only, "/ip4/127.0.0.1/tcp/0").await,
    );
    let (ua, fa) = (*uploads.local_peer_id(), *fetch_only.local_peer_id());
    let _tasks = (serve(uploads), serve(fetch_only));
    client.add_peer_address(ua, a);
    client.add_peer_address(fa, b);
    // Over the upload limit (65 blobs): the client's codec refuses to send it.
    client
        .behaviour_mut()
        .nilstore
        .upload
        .send_request(&ua, upload(65));
    match await_upload(&mut client).await {
        Outcome::Failure(OutboundFailure::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}")
        }
        Outcome::Failure(e) => panic!("{e:?}"),
        Outcome::Response(_) => panic!("an oversized upload was answered"),
    }
    // The largest allowed upload (a whole metadata MDU) goes through.
    client
        .behaviour_mut()
        .nilstore
        .upload
        .send_request(&ua, upload(64));
    assert!(matches!(
        await_upload(&mut client).await,
        Outcome::Response(Ok(_))
    ));
    // A server that does not serve uploads refuses the protocol.
    client
        .behaviour_mut()
        .nilstore
        .upload
        .send_request(&fa, upload(1));
    match await_upload(&mut client).await {
        Outcome::Failure(OutboundFailure::UnsupportedProtocols) => {}
        Outcome::Failure(e) => panic!("{e:?}"),
        Outcome::Response(_) => panic!("answered an unsupported protocol"),
    }
}

#[test]
fn identity_and_certificate_files_are_private_and_stable() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("nilstore-net-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (k, c) = (dir.join("p2p.key"), dir.join("webrtc.pem"));
    let id1 = nilstore_net::native::load_or_create_keypair(&k)
        .unwrap()
        .public()
        .to_peer_id();
    let fp1 = nilstore_net::native::load_or_create_webrtc_cert(&c)
        .unwrap()
        .fingerprint();
    for f in [&k, &c] {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Reloaded: the same peer id and certificate hash (stable addresses).
    let id2 = nilstore_net::native::load_or_create_keypair(&k)
        .unwrap()
        .public()
        .to_peer_id();
    let fp2 = nilstore_net::native::load_or_create_webrtc_cert(&c)
        .unwrap()
        .fingerprint();
    assert_eq!((id1, fp1), (id2, fp2));
    // Readable by others: refused.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = nilstore_net::native::load_or_create_keypair(&k).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shared request plumbing (`Requester` over `requester::drive`): many concurrent
/// requests through one handle, each answered on its own channel with its own bytes; a
/// typed refusal arrives as `Refused`; a peer that cannot be dialled is a transient
/// `Failed`; an owner's `Outbound` that goes away answers `Closed`.
#[tokio::test]
async fn one_requester_carries_concurrent_requests_and_typed_outcomes() {
    use nilstore_net::requester::{RequestError, Requester};

    let mut server = node(&[Protocol::Fetch, Protocol::Upload], None);
    let addr = listen(&mut server, "/ip4/127.0.0.1/tcp/0").await;
    let server_id: PeerId = *server.local_peer_id();
    let _task = serve(server);
    let r = Requester::ephemeral(Duration::from_secs(30)).unwrap();

    let sizes: Vec<u32> = (1..=24).map(|i| i * 4099).collect();
    let answers = futures::future::join_all(sizes.iter().map(|&size| {
        let r = r.clone();
        let addr = addr.clone();
        async move { r.fetch(server_id, vec![addr], fetch(size, 1)).await }
    }))
    .await;
    for (size, a) in sizes.iter().zip(answers) {
        assert_eq!(a.unwrap().bytes.0.len(), *size as usize);
    }
    let ack = r
        .upload(server_id, vec![addr.clone()], upload(2))
        .await
        .unwrap();
    assert_eq!(ack.bytes, 2 * BLOB_BYTES as u64);
    match r.fetch(server_id, vec![], fetch(1, 404)).await {
        Err(e @ RequestError::Refused(NetError::NotFound(_))) => assert!(!e.is_transient()),
        other => panic!("expected a NotFound refusal, got {other:?}"),
    }
    // Nobody listens there.
    let gone = PeerId::random();
    let dead: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    match r.fetch(gone, vec![dead], fetch(1, 1)).await {
        Err(e @ RequestError::Failed(_)) => assert!(e.is_transient()),
        other => panic!("expected a dial failure, got {other:?}"),
    }
    let (orphan, outbound) = Requester::channel(PeerId::random());
    drop(outbound);
    assert!(matches!(
        orphan.fetch(server_id, vec![], fetch(1, 1)).await,
        Err(RequestError::Closed)
    ));
}
