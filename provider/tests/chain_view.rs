//! The provider's light-client chain view against a real validator running in-process: it
//! follows certified headers, reads a real deal (registered provider, placement by the
//! chain) and a proven absence through state proofs, and refuses an API that lies about a
//! header.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use chain_light::block::Genesis;
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::tx::{Msg, Tx};
use chain_light::validator::daemon::{start_until, StartOptions};
use nilstore_provider::chain::HttpChain;
use nilstore_provider::service::ChainView;

const CHAIN: u64 = 4_242;

struct Running {
    api: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn validator(home: &Path) -> Running {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, bound) = std::sync::mpsc::channel();
    let opts = StartOptions {
        home: home.to_path_buf(),
        api: "127.0.0.1:0".parse().unwrap(),
        p2p: None,
        tx_rate: 1_000,
        chain_id: CHAIN,
        block_interval: Duration::from_millis(100),
    };
    let thread = std::thread::spawn(move || {
        start_until(
            &opts,
            async move {
                let _ = rx.await;
            },
            Some(tx),
        )
        .unwrap();
    });
    let api = bound.recv_timeout(Duration::from_secs(120)).unwrap();
    Running {
        api,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn dev_key(home: &Path, i: usize) -> SecretKey {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("dev-keys.json")).unwrap()).unwrap();
    let hexkey = v[i]["secret"].as_str().unwrap().trim_start_matches("0x");
    SecretKey::from_bytes(&hex::decode(hexkey).unwrap().try_into().unwrap()).unwrap()
}

fn submit(api: SocketAddr, key: &SecretKey, msg: Msg) {
    let tx = Tx {
        chain_id: CHAIN,
        from: key.address(),
        nonce: 0,
        fee: 1_000_000,
        msg,
    }
    .sign(key);
    let r = ureq::post(&format!("http://{api}/tx"))
        .send_json(serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// An HTTP proxy that forwards GETs to `upstream` and rewrites each header's state root.
fn lying_proxy(upstream: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
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
    addr
}

#[test]
fn follows_a_real_validator_with_proofs_and_refuses_lies() {
    let home = std::env::temp_dir().join(format!("nilstore-chainview-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let v = validator(&home);
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).unwrap()).unwrap();
    let (provider, owner) = (dev_key(&home, 0), dev_key(&home, 1));
    submit(
        v.api,
        &provider,
        Msg::RegisterProvider {
            stake: 10_000_000_000,
            capacity_mdus: 1_000,
            operator: provider.address(),
            peer_id: "12D3KooWexample".into(),
            endpoints: vec!["/ip4/127.0.0.1/tcp/1".into()],
        },
    );
    // Give the registration a block of its own before the deal needs it.
    std::thread::sleep(Duration::from_millis(500));
    submit(
        v.api,
        &owner,
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
    let deal = loop {
        view.sync().unwrap();
        if let Some(d) = (0..3).find_map(|id| view.deal(id).unwrap()) {
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

    // A lying API: headers with another state root fail their certificates.
    let liar = HttpChain::new(&format!("http://{}", lying_proxy(v.api)), &genesis).unwrap();
    let e = liar.sync().unwrap_err();
    assert!(format!("{e:#}").contains("header"), "{e:#}");
    assert_eq!(liar.trusted().unwrap().height, 0, "nothing was trusted");
    drop(v);
    let _ = std::fs::remove_dir_all(&home);
}
