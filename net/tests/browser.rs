//! The browser node in headless Chromium against a native node (`examples/browser_peer.rs`,
//! started by `scripts/browser-p2p.sh`, which passes its addresses at build time): over
//! WebRTC-direct and over WebSocket, a 1 MiB fetch (native → browser) and a 1 MiB upload
//! (browser → native) each arrive whole. Messages this size cross many WebRTC data-channel
//! frames and yamux windows.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chain_light::bytes::{Address, Blob, Sig65};
use nilstore_net::browser::{build_swarm, requester};
use nilstore_net::libp2p::identity::Keypair;
use nilstore_net::libp2p::multiaddr::Protocol as P;
use nilstore_net::libp2p::{Multiaddr, PeerId};
use nilstore_net::proto::{FetchRequest, FetchWhat, UploadAuth, UploadShard, BLOB_BYTES};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const LEN: u32 = 1 << 20;

fn addr(var: Option<&'static str>, name: &str) -> (Multiaddr, PeerId) {
    let a: Multiaddr = var
        .unwrap_or_else(|| panic!("{name} is unset: run this test through scripts/browser-p2p.sh"))
        .parse()
        .unwrap();
    let peer = a
        .iter()
        .find_map(|p| match p {
            P::P2p(id) => Some(id),
            _ => None,
        })
        .unwrap();
    (a, peer)
}

async fn exchange(a: Multiaddr, peer: PeerId) {
    // The shared request plumbing (`requester::drive`), on the page's event loop.
    let r = requester(build_swarm(Keypair::generate_ed25519(), Duration::from_secs(60)).unwrap());
    let got = r
        .fetch(
            peer,
            vec![a.clone()],
            FetchRequest {
                deal: 1,
                slot: 0,
                mdu: 0,
                what: FetchWhat::Range {
                    row: 3,
                    offset: 0,
                    len: LEN,
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(got.bytes.0.len(), LEN as usize);
    assert!(got
        .bytes
        .0
        .iter()
        .enumerate()
        .all(|(i, &b)| b == ((i * 7 + 3) % 251) as u8));

    let blobs: Vec<Blob> = (0..8u8).map(|k| Blob(vec![k; BLOB_BYTES])).collect();
    let ack = r
        .upload(
            peer,
            vec![a],
            UploadShard {
                chain_id: 1,
                deal: 1,
                slot: 0,
                mdu: 0,
                generation: 0,
                leaves: Vec::new(),
                blobs,
                auth: UploadAuth {
                    signer: Address::ZERO,
                    expires_ms: 0,
                    sig: Sig65([0; 65]),
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(ack.bytes, 8 * BLOB_BYTES as u64);
    assert_eq!(
        ack.mdu_root.0,
        *blake3::hash(&vec![0u8; BLOB_BYTES]).as_bytes()
    );
}

#[wasm_bindgen_test]
async fn webrtc_direct_carries_large_messages_both_ways() {
    let (a, peer) = addr(option_env!("NILSTORE_P2P_WEBRTC"), "NILSTORE_P2P_WEBRTC");
    exchange(a, peer).await;
}

#[wasm_bindgen_test]
async fn websocket_carries_large_messages_both_ways() {
    let (a, peer) = addr(option_env!("NILSTORE_P2P_WS"), "NILSTORE_P2P_WS");
    exchange(a, peer).await;
}
