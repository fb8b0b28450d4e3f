//! The client in headless Chromium against a live devnet. `scripts/browser-client.sh`
//! starts it (six providers and a relay, as child processes), passes `devnet.json`, the
//! genesis document and a free funded dev key at build time, and runs the tests in
//! phases, acting on the network between them:
//!
//! - **phase A**: the page follows the chain with its light client (`ChainView` over
//!   `fetch`), creates an RS(4, 2) deal, packs, encrypts, commits and erasure-codes an
//!   8 MiB file on the page, sends every slot its shards over its own libp2p node
//!   (WebRTC-direct or WebSocket), commits on chain and reads the file back from K
//!   providers, every blob verified against its leaf and every chunk authenticated; a range
//!   fetches only its MDUs; without the deal key, or with a wrong one, the read is refused.
//!   The page keeps its state (deal keys, upload jobs, acknowledgements) in OPFS: an
//!   upload interrupted mid-way is resumed by a new client from there.
//!   Interop: it reads the file the CLI stored (deal key handed over), and stores one that
//!   the CLI then reads. Each stored deal is handed to the script on a `HANDOVER` line.
//! - **phase B**: the script has killed (`kill -9`) the provider of slot 0 of the 8 MiB
//!   deal and paused (`SIGSTOP`) that of slot 1: a fresh page, given only the deal key,
//!   reads the file from the others, and the relay, as a deputy, attests the silence.
//! - **phase C**: the paused provider is back, every shard of slot 2 is corrupted on its
//!   disk, and a proxy in front of the validator API rewrites headers: the read is still
//!   byte-identical and the corrupt slot is caught; a client behind the lying API refuses
//!   to act and writes nothing.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chain_light::block::Genesis;
use chain_light::crypto::SecretKey;
use nilstore_client::network::NetworkInfo;
use nilstore_client::platform::{BrowserClock, Inline};
use nilstore_client::remote::{Client, Event, GetReport, Network, Parts, PutOptions, Tuning};
use nilstore_client::slabdir::{Input, MemorySink};
use nilstore_client::store::{MemStore, OpfsStore, Store};
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

/// A phase's JSON input (set by the script at build time).
fn input(v: Option<&'static str>, name: &str) -> serde_json::Value {
    serde_json::from_str(var(v, name)).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
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

fn genesis() -> Genesis {
    serde_json::from_str(var(
        option_env!("NILSTORE_CHAIN_GENESIS"),
        "NILSTORE_CHAIN_GENESIS",
    ))
    .unwrap()
}

/// A client of the page: its own light client and libp2p node, and `store`.
async fn client(store: Arc<dyn Store>) -> Client {
    let info = info();
    let chain = ChainView::new(FetchApi::new(&info.api), &genesis()).unwrap();
    chain.sync().await.unwrap();
    client_on(chain, store)
}

/// A client over `chain` (synced or not).
fn client_on(chain: ChainView<FetchApi>, store: Arc<dyn Store>) -> Client {
    let info = info();
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
    if !["Packing", "Uploading", "Downloading", "ShardAcked"]
        .iter()
        .any(|p| line.starts_with(p))
    {
        console_log!("{line}");
    }
}

/// A new encrypted RS(4, 2) deal.
fn new_deal() -> PutOptions {
    PutOptions {
        deal: None,
        k: 4,
        m: 2,
        term_epochs: 1_000,
        escrow: None,
        capacity_mdus: None,
        encrypt: true,
    }
}

/// Hands a deal to the script (which reads the runner's output).
fn handover(what: &str, v: serde_json::Value) {
    console_log!("HANDOVER {what} {v}");
}

#[wasm_bindgen_test]
async fn phase_a_the_browser_stores_a_file_and_reads_it_back_verified() {
    // The page's state in OPFS: the deal key is durable before the deal is funded.
    let store: Arc<dyn Store> = Arc::new(OpfsStore::open("nilstore-phase-a").await.unwrap());
    let c = client(store.clone()).await;
    let file = data(8 << 20, b"browser put");
    let opts = new_deal();
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

    handover(
        "faults",
        serde_json::json!({
            "deal": deal,
            "key": c.export_deal_key(deal).await.unwrap(),
            "path": "big.bin",
            "len": file.len(),
            "seed": "browser put",
        }),
    );

    // Keys: a malformed one, or one that differs from the key held, is refused.
    let e = c.import_deal_key(deal, "not hex").await.unwrap_err();
    assert!(format!("{e:#}").contains("64 hex digits"), "{e:#}");
    let e = c
        .import_deal_key(deal, &hex::encode([9u8; 32]))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("different key"), "{e:#}");
    c.import_deal_key(deal, &c.export_deal_key(deal).await.unwrap())
        .await
        .unwrap();

    // A page without the deal key, and one with a wrong key: refused, nothing written.
    let other = client(Arc::new(MemStore::default())).await;
    let mut sink = MemorySink::default();
    let e = other
        .get(deal, "big.bin", &mut sink, &log)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("no key for deal"), "{e:#}");
    assert!(sink.files.is_empty());
    other
        .import_deal_key(deal, &hex::encode([9u8; 32]))
        .await
        .unwrap();
    let e = other
        .get(deal, "big.bin", &mut sink, &log)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("decryption failed"), "{e:#}");
    assert!(sink.files.is_empty());
    assert_eq!(store.list("keys").await.unwrap().len(), 1);
}

/// Test 4: an upload interrupted mid-way (its future dropped, as when the page closes)
/// leaves its job, its packed slab and its acknowledgements in OPFS; a new client over the
/// same OPFS directory (what a new page of the origin opens) resumes it, sends only the
/// shards that no provider acknowledged, commits, and the file reads back identical.
#[wasm_bindgen_test]
async fn phase_a_an_interrupted_upload_resumes_in_a_new_client_from_opfs() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = "nilstore-resume";
    let file = data(20 << 20, b"interrupted");
    let first = client(Arc::new(OpfsStore::open(dir).await.unwrap())).await;
    let deal = AtomicU64::new(u64::MAX);
    let stop = AtomicBool::new(false);
    let watch = |e: &Event| {
        log(e);
        match e {
            Event::DealCreated { deal: d } => deal.store(*d, Ordering::Relaxed),
            // Upload progress is reported once the slab is packed and in OPFS: close the
            // page then.
            Event::Uploading { .. } => stop.store(true, Ordering::Relaxed),
            _ => {}
        }
    };
    let opts = new_deal();
    {
        let put = first.put(
            vec![Input::bytes("big.bin", file.clone(), 0)],
            &opts,
            &watch,
        );
        let closed = async {
            while !stop.load(Ordering::Relaxed) {
                nilstore_client::platform::Clock::sleep(&BrowserClock, Duration::from_millis(5))
                    .await;
            }
        };
        futures::pin_mut!(put, closed);
        if let futures::future::Either::Left((r, _)) = futures::future::select(put, closed).await {
            panic!("the put ended before the interruption: {r:?}");
        }
    }
    drop(first);
    let deal = deal.load(Ordering::Relaxed);
    assert_ne!(deal, u64::MAX, "no deal was created");

    let store: Arc<dyn Store> = Arc::new(OpfsStore::open(dir).await.unwrap());
    let log_key = format!("uploads/deal-{deal}-g0/acked.log");
    let acked = store
        .read(&log_key, nilstore_client::store::Kind::Plain)
        .await
        .unwrap();
    let acked = String::from_utf8(acked.expect("the acknowledgements are in OPFS")).unwrap();
    let acked = acked.lines().filter(|l| !l.is_empty()).count() as u64;
    let second = client(store.clone()).await;
    let sent = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let count = |e: &Event| {
        log(e);
        if let Event::ShardAcked { slot, mdu } = e {
            assert!(
                sent.lock().unwrap().insert((*slot, *mdu)),
                "{slot}/{mdu} sent twice"
            );
        }
    };
    // The new client sees the job, and that it can finish it (packing had finished).
    let pending = second.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].deal, pending[0].generation), (deal, 0));
    assert!(pending[0].packed && pending[0].resumable, "{pending:?}");
    assert!(
        !second.forget_job(deal, 7).await.unwrap(),
        "there is no job for generation 7"
    );
    let reports = second.resume(&count).await.unwrap();
    assert!(second.pending().await.unwrap().is_empty());
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].deal_id, deal);
    let d = second.deal(deal).await.unwrap();
    let shards = d.total_mdus * d.slots.len() as u64;
    let resent = sent.lock().unwrap().len() as u64;
    console_log!(
        "resume: {acked} of {shards} shards were acknowledged before the interruption, {resent} sent after"
    );
    assert!(
        0 < acked && acked < shards,
        "{acked} of {shards}: not mid-way"
    );
    assert_eq!(
        resent,
        shards - acked,
        "the resume sent only what was missing"
    );
    assert!(
        store.list("uploads").await.unwrap().is_empty(),
        "the finished job is gone"
    );
    let mut sink = MemorySink::default();
    second.get(deal, "big.bin", &mut sink, &log).await.unwrap();
    assert!(
        sink.files["big.bin"] == file,
        "the resumed file came back different"
    );
}

/// Interop: the page reads what the CLI stored (the deal key handed over, nothing else),
/// and stores a file for the CLI to read.
#[wasm_bindgen_test]
async fn phase_a_the_browser_and_the_cli_read_each_others_files() {
    let cli = input(option_env!("NILSTORE_FROM_CLI"), "NILSTORE_FROM_CLI");
    let deal = cli["deal"].as_u64().unwrap();
    let path = cli["path"].as_str().unwrap();
    let c = client(Arc::new(MemStore::default())).await;
    c.import_deal_key(deal, cli["key"].as_str().unwrap())
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    let got = c.get(deal, path, &mut sink, &log).await.unwrap();
    console_log!("read the CLI's file: {got:?}");
    assert_eq!(
        sha256_hex(&sink.files[path]),
        cli["sha256"].as_str().unwrap()
    );
    assert_eq!(got.bytes, cli["len"].as_u64().unwrap());

    let file = data(3 << 20, b"for the cli");
    let opts = new_deal();
    let put = c
        .put(
            vec![Input::bytes("from-browser.bin", file.clone(), 0)],
            &opts,
            &log,
        )
        .await
        .unwrap();
    handover(
        "to-cli",
        serde_json::json!({
            "deal": put.deal_id,
            "key": c.export_deal_key(put.deal_id).await.unwrap(),
            "path": "from-browser.bin",
            "sha256": sha256_hex(&file),
        }),
    );
}

/// Phase A's 8 MiB file read by a fresh page that holds only its deal key, under
/// `faults`: it must come back byte-identical. The client, the deal and the report.
async fn read_under(faults: &str) -> (Client, u64, GetReport) {
    let f = input(option_env!("NILSTORE_FAULTS"), "NILSTORE_FAULTS");
    let deal = f["deal"].as_u64().unwrap();
    let file = data(
        f["len"].as_u64().unwrap() as usize,
        f["seed"].as_str().unwrap().as_bytes(),
    );
    let c = client(Arc::new(MemStore::default())).await;
    c.import_deal_key(deal, f["key"].as_str().unwrap())
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    let got = c.get(deal, "big.bin", &mut sink, &log).await.unwrap();
    console_log!("with {faults}: {got:?}");
    assert!(
        sink.files["big.bin"] == file,
        "the file came back different"
    );
    (c, deal, got)
}

#[wasm_bindgen_test]
async fn phase_b_a_read_survives_a_killed_and_a_silent_provider() {
    let (_, _, got) = read_under("slot 0 killed and slot 1 silent").await;
    assert!(got.fallbacks > 0, "{got:?}");
    assert!(
        got.deputy_reports > 0,
        "no deputy attested the silence: {got:?}"
    );
    assert_eq!(got.fraud_reports, 0, "{got:?}");
}

#[wasm_bindgen_test]
async fn phase_c_a_corrupt_slot_and_a_lying_validator_api_change_nothing() {
    let (c, deal, got) = read_under("slot 2 corrupt on disk").await;
    // Slot 0 is still dead, so fallbacks alone prove nothing: the corrupt rows must be
    // caught as such, with fraud evidence.
    assert!(
        got.fraud_reports >= 1,
        "the corrupt slot went unnoticed: {got:?}"
    );

    // Behind an API that rewrites headers, the light client refuses them: no read starts.
    let lying = var(option_env!("NILSTORE_LYING_API"), "NILSTORE_LYING_API");
    let chain = ChainView::new(FetchApi::new(lying), &genesis()).unwrap();
    let e = chain.sync().await.unwrap_err();
    console_log!("the lying API: {e:#}");
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    let liar = client_on(chain, Arc::new(MemStore::default()));
    liar.import_deal_key(deal, &c.export_deal_key(deal).await.unwrap())
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    let e = liar
        .get(deal, "big.bin", &mut sink, &log)
        .await
        .unwrap_err();
    console_log!("a read through it: {e:#}");
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    assert!(sink.files.is_empty(), "bytes were written on a lie");
}
