//! The provider's light-client chain view against a real validator running in-process: it
//! follows certified headers, reads a real deal (registered provider, placement by the
//! chain) and a proven absence through state proofs, refuses an API that lies about a
//! header, and restarts from its checkpoint so that a lagging API cannot take it back.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chain_light::block::Genesis;
use chain_light::bytes::Address;
use chain_light::tx::Msg;
use common::{dev_key, included, submit, validator};
use nilstore_net::chain::HttpChain;

const CHAIN: u64 = 4_242;

/// An HTTP proxy that forwards GETs to `upstream`, counts the header requests and, when
/// `lie`, rewrites each header's state root; while `low` is set it reports height 0 in
/// `/status`.
fn proxy(upstream: SocketAddr, lie: bool, low: Arc<AtomicBool>) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let headers = Arc::new(AtomicUsize::new(0));
    let count = headers.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(c.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            // Drain the request headers.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let mut body = String::new();
            if let Ok(resp) = ureq::get(&format!("http://{upstream}{path}")).call() {
                let _ = resp.into_reader().read_to_string(&mut body);
            }
            if path.starts_with("/headers/") {
                count.fetch_add(1, Ordering::SeqCst);
            }
            if path == "/status" && low.load(Ordering::SeqCst) {
                let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["height"] = serde_json::json!(0);
                body = v.to_string();
            }
            if lie && path.starts_with("/headers/") {
                let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["header"]["state_root"] = serde_json::json!(format!("0x{}", "11".repeat(32)));
                body = v.to_string();
            }
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, headers)
}

#[test]
fn follows_a_real_validator_with_proofs_and_refuses_lies() {
    let home = std::env::temp_dir().join(format!("nilstore-chainview-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let v = validator(&home, CHAIN);
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).unwrap()).unwrap();
    let (provider, owner) = (dev_key(&home, 0), dev_key(&home, 1));
    let reg = submit(
        v.api,
        CHAIN,
        &provider,
        0,
        Msg::RegisterProvider {
            stake: 10_000_000_000,
            capacity_mdus: 1_000,
            operator: provider.address(),
            peer_id: "12D3KooWexample".into(),
            endpoints: vec!["/ip4/127.0.0.1/tcp/1".into()],
        },
    );
    // The registration lands before the deal needs it.
    included(v.api, &reg);
    submit(
        v.api,
        CHAIN,
        &owner,
        0,
        Msg::CreateDeal {
            k: 1,
            m: 0,
            capacity_mdus: 4,
            term_epochs: 5,
            escrow: 1_000_000_000_000,
            spend_cap: 1_000_000_000,
        },
    );
    let view = HttpChain::new(&format!("http://{}", v.api), &genesis).unwrap();
    let t0 = Instant::now();
    let (deal_id, deal) = loop {
        view.sync().unwrap();
        if let Some(d) = (0..3).find_map(|id| view.deal(id).unwrap().map(|d| (id, d))) {
            break d;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the deal never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(deal.owner, owner.address());
    assert_eq!(deal.slots.len(), 1);
    assert_eq!(deal.slots[0].provider, provider.address());
    assert!(view.trusted().unwrap().height > 0);
    assert_eq!(view.chain_id(), CHAIN);
    // Proven absence.
    assert!(view.deal(999).unwrap().is_none());
    assert_ne!(deal.owner, Address::ZERO);

    // A fresh view far behind the tip skips to a certified header of the same validator
    // set: a handful of header requests, not one per block, and the same proven deal.
    let far = view.sync().unwrap() + 20;
    while view.sync().unwrap() < far {
        std::thread::sleep(Duration::from_millis(100));
    }
    let low = Arc::new(AtomicBool::new(false));
    let (counted, headers) = proxy(v.api, false, low.clone());
    let fresh = HttpChain::new(&format!("http://{counted}"), &genesis).unwrap();
    let reached = fresh.sync().unwrap();
    assert!(reached >= far, "synced to {reached}, below {far}");
    let requests = headers.load(Ordering::SeqCst);
    assert!(
        requests <= 10 && (requests as u64) < reached,
        "{requests} header requests to reach height {reached}"
    );
    let again = fresh
        .deal(deal_id)
        .unwrap()
        .expect("the deal, proven at the new height");
    assert_eq!(again.owner, deal.owner);
    assert_eq!(again.slots[0].provider, deal.slots[0].provider);
    // An API that reports a height below the verified one lags or lies: the sync fails
    // (the provider's round, and its garbage collection, is skipped) and nothing moves.
    low.store(true, Ordering::SeqCst);
    let e = fresh.sync().unwrap_err();
    assert!(
        format!("{e:#}").contains("below the verified height"),
        "{e:#}"
    );
    assert!(fresh.trusted().unwrap().height >= reached);
    low.store(false, Ordering::SeqCst);
    assert!(fresh.sync().unwrap() >= reached);

    // A restart from the checkpoint (issue 17 item 11): the view picks up at the height it
    // trusted, and the lagging API cannot take it back — where a view from genesis believes
    // the lag and proves nothing newer.
    let url = format!("http://{counted}");
    let dir = home.join("checkpointed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut saver =
        nilstore_provider::checkpoint::Saver::new(&dir, genesis.clone(), Duration::ZERO);
    assert!(saver.tick(&fresh, Instant::now()).unwrap(), "first save");
    let held = fresh.trusted().unwrap().height;
    low.store(true, Ordering::SeqCst);
    let restarted = nilstore_provider::checkpoint::open_view(&dir, &url, &genesis).unwrap();
    assert_eq!(restarted.trusted().unwrap().height, held);
    let e = restarted.sync().unwrap_err();
    assert!(
        format!("{e:#}").contains("below the verified height"),
        "{e:#}"
    );
    let amnesiac = HttpChain::new(&url, &genesis).unwrap();
    assert_eq!(
        amnesiac.sync().unwrap(),
        0,
        "from genesis the lag goes unnoticed"
    );
    low.store(false, Ordering::SeqCst);
    assert!(restarted.sync().unwrap() >= held);
    assert_eq!(restarted.deal(deal_id).unwrap().unwrap().owner, deal.owner);
    // A checkpoint of another chain, or with a set that does not hash to its header's, is
    // refused; a node with such a file (or a torn one) follows from genesis.
    let cp = fresh.checkpoint(&genesis).unwrap();
    let mut other = cp.clone();
    other.genesis = chain_light::bytes::H256([7; 32]);
    let e = HttpChain::resume(&url, &genesis, &other).err().unwrap();
    assert!(format!("{e:#}").contains("another chain"), "{e:#}");
    let mut forged = cp.clone();
    forged.validators[0].power += 1;
    assert!(HttpChain::resume(&url, &genesis, &forged).is_err());
    let file = nilstore_provider::checkpoint::path(&dir);
    nilstore_provider::checkpoint::save(&file, &forged).unwrap();
    let fallback = nilstore_provider::checkpoint::open_view(&dir, &url, &genesis).unwrap();
    assert_eq!(fallback.trusted().unwrap().height, 0);
    std::fs::write(&file, b"{\"genesis\":").unwrap();
    let fallback = nilstore_provider::checkpoint::open_view(&dir, &url, &genesis).unwrap();
    assert_eq!(fallback.trusted().unwrap().height, 0);

    // A lying API: headers with another state root fail their certificates.
    let honest_status = Arc::new(AtomicBool::new(false));
    let liar = HttpChain::new(
        &format!("http://{}", proxy(v.api, true, honest_status).0),
        &genesis,
    )
    .unwrap();
    let e = liar.sync().unwrap_err();
    assert!(format!("{e:#}").contains("header"), "{e:#}");
    assert_eq!(liar.trusted().unwrap().height, 0, "nothing was trusted");
    drop(v);
    let _ = std::fs::remove_dir_all(&home);
}
