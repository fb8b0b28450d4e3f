//! The client in headless Chromium against a live devnet (`scripts/browser-client.sh`
//! starts it with six providers and a relay and passes `devnet.json`, the genesis document
//! and a free funded dev key at build time): the page follows the chain with its light
//! client (`ChainView` over `fetch`), creates an RS(4, 2) deal, packs, encrypts, commits
//! and erasure-codes an 8 MiB file on the page, sends every slot its shards over its own
//! libp2p node (WebRTC-direct or WebSocket), commits the content on chain, and reads the
//! file back from K providers, every blob verified against its leaf and every chunk
//! authenticated: byte-identical. A range of it comes back the same way, fetching only its
//! MDUs; without the deal key, or with a wrong one, the read is refused and gives nothing.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chain_light::block::Genesis;
use chain_light::crypto::SecretKey;
use nilstore_client::network::NetworkInfo;
use nilstore_client::platform::{BrowserClock, Inline};
use nilstore_client::remote::{Client, Event, Network, Parts, PutOptions, Tuning};
use nilstore_client::slabdir::{Input, MemorySink};
use nilstore_client::store::{Kind, MemStore, Store as _};
use nilstore_net::browser::{build_swarm, requester};
use nilstore_net::chain::{ChainView, FetchApi};
use nilstore_net::libp2p::identity::Keypair;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn var(v: Option<&'static str>, name: &str) -> &'static str {
    v.unwrap_or_else(|| panic!("{name} is unset: run this test through scripts/browser-client.sh"))
}

fn dev_key() -> SecretKey {
    let hex_key = var(option_env!("NILSTORE_CHAIN_KEY"), "NILSTORE_CHAIN_KEY");
    let b: [u8; 32] = hex::decode(hex_key.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    SecretKey::from_bytes(&b).unwrap()
}

fn info() -> NetworkInfo {
    serde_json::from_str(var(
        option_env!("NILSTORE_DEVNET_JSON"),
        "NILSTORE_DEVNET_JSON",
    ))
    .unwrap()
}

/// Deterministic, incompressible bytes.
fn data(len: usize, seed: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed)
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A client of the page: its own light client and libp2p node, and `store`.
async fn client(store: Arc<MemStore>) -> Client {
    let info = info();
    let genesis: Genesis = serde_json::from_str(var(
        option_env!("NILSTORE_CHAIN_GENESIS"),
        "NILSTORE_CHAIN_GENESIS",
    ))
    .unwrap();
    let chain = ChainView::new(FetchApi::new(&info.api), &genesis).unwrap();
    chain.sync().await.unwrap();
    let node = build_swarm(Keypair::generate_ed25519(), Duration::from_secs(120)).unwrap();
    Client::new(Parts {
        chain,
        key: dev_key(),
        net: requester(node),
        network: Network {
            path: "devnet.json".into(),
            info,
        },
        home: None,
        store,
        clock: Arc::new(BrowserClock),
        spawner: Arc::new(Inline),
        tuning: Tuning {
            // Shards of 2 to 8 MiB cross WebRTC data channels: give them time.
            read_timeout: Duration::from_secs(30),
            hedge_after: Duration::from_secs(5),
            per_slot: 2,
            ..Tuning::default()
        },
    })
}

fn log(e: &Event) {
    let line = format!("{e:?}");
    // Progress comes often; the milestones are enough here.
    if !["Packing", "Uploading", "Downloading"]
        .iter()
        .any(|p| line.starts_with(p))
    {
        console_log!("{line}");
    }
}

#[wasm_bindgen_test]
async fn the_browser_stores_a_file_and_reads_it_back_verified() {
    let store = Arc::new(MemStore::default());
    let c = client(store.clone()).await;
    let file = data(8 << 20, b"browser put");
    let opts = PutOptions {
        deal: None,
        k: 4,
        m: 2,
        term_epochs: 1_000,
        escrow: None,
        capacity_mdus: None,
        encrypt: true,
    };
    let t0 = js_sys::Date::now();
    let put = c
        .put(vec![Input::bytes("big.bin", file.clone(), 0)], &opts, &log)
        .await
        .unwrap();
    console_log!(
        "put: deal {} generation {} in {:.1} s",
        put.deal_id,
        put.generation,
        (js_sys::Date::now() - t0) / 1e3
    );
    assert_eq!(put.generation, 0, "a new deal's first content");
    let deal = put.deal_id;

    let t0 = js_sys::Date::now();
    let mut sink = MemorySink::default();
    let got = c.get(deal, "big.bin", &mut sink, &log).await.unwrap();
    console_log!("get: {got:?} in {:.1} s", (js_sys::Date::now() - t0) / 1e3);
    assert!(
        sink.files["big.bin"] == file,
        "the file came back different"
    );
    assert_eq!(got.bytes, file.len() as u64);
    assert_eq!((got.fallbacks, got.fraud_reports), (0, 0), "{got:?}");

    // A range: only the MDUs holding it (and the stream header) are fetched.
    let (off, len) = (5_000_000u64, 300_000u64);
    let mut part = MemorySink::default();
    let r = c
        .get_range(deal, "big.bin", off, Some(len), &mut part, &log)
        .await
        .unwrap();
    assert!(part.files["big.bin"] == file[off as usize..(off + len) as usize]);
    assert!(
        r.mdus < got.mdus,
        "{} of {} MDUs for a range",
        r.mdus,
        got.mdus
    );
    let listing = c.ls(deal).await.unwrap();
    assert_eq!(listing.files.len(), 1);
    assert_eq!(listing.files[0].size, file.len() as u64);

    // A page without the deal key, and one with a wrong key: refused, nothing written.
    let other = client(Arc::new(MemStore::default())).await;
    let mut sink = MemorySink::default();
    let e = other
        .get(deal, "big.bin", &mut sink, &log)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("no key for deal"), "{e:#}");
    assert!(sink.files.is_empty());
    let names = store.list("keys").unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    let wrong = Arc::new(MemStore::default());
    wrong
        .put(
            &format!("keys/{}", names[0]),
            hex::encode([9u8; 32]).as_bytes(),
            Kind::Secret,
        )
        .unwrap();
    let other = client(wrong).await;
    let e = other
        .get(deal, "big.bin", &mut sink, &log)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("decryption failed"), "{e:#}");
    assert!(sink.files.is_empty());
}
