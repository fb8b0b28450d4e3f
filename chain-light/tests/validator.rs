//! The `nilstore-validator` binary end to end: the embedded single validator starts on a
//! fresh home, finalizes blocks, takes transactions over HTTP, serves headers with
//! finalization certificates and state with proofs that a light client verifies, refuses
//! bad input with JSON errors, and after `kill -9` resumes with the same state roots.
//!
//! With `NILSTORE_RECORD_LIGHT=1` it also rewrites `tests/data/light.json`, the recorded
//! data the light-client tests (native and Chromium) check.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "validator")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chain_light::auth::StateProof;
use chain_light::block::{Chain, Genesis, Header};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::light::LightClient;
use chain_light::tx::{Msg, Tx};
use serde_json::{json, Value};

struct Validator {
    child: Child,
    port: u16,
}

impl Drop for Validator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port below the ephemeral range: a restarted validator gets it back.
fn free_port() -> u16 {
    chain_light::validator::daemon::free_loopback_ports(1).unwrap()
}

fn start(home: &Path, port: u16) -> Validator {
    start_with(home, port, &[])
}

fn start_with(home: &Path, port: u16, extra: &[&str]) -> Validator {
    let child = Command::new(env!("CARGO_BIN_EXE_nilstore-validator"))
        .args(["start", "--home"])
        .arg(home)
        .args(["--api", &format!("127.0.0.1:{port}"), "--block-ms", "200"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let v = Validator { child, port };
    let t0 = Instant::now();
    while get(&v, "/health").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "validator did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    v
}

fn url(v: &Validator, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", v.port)
}

fn get(v: &Validator, path: &str) -> Option<Value> {
    match ureq::get(&url(v, path)).call() {
        Ok(r) => {
            let s = r.into_string().ok()?;
            Some(serde_json::from_str(&s).unwrap_or(Value::String(s)))
        }
        Err(_) => None,
    }
}

/// Status and JSON body, errors included.
fn request(v: &Validator, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let req = ureq::request(method, &url(v, path)).set("content-type", "application/json");
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.into_string().unwrap()).unwrap(),
    )
}

fn height(v: &Validator) -> u64 {
    get(v, "/status").unwrap()["height"].as_u64().unwrap()
}

fn wait_height(v: &Validator, h: u64) {
    let t0 = Instant::now();
    while height(v) < h {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "stuck below height {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn home(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nilstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn dev_key(home: &Path, i: usize) -> SecretKey {
    let keys: Value =
        serde_json::from_slice(&std::fs::read(home.join("dev-keys.json")).unwrap()).unwrap();
    let hexs = keys[i]["secret"].as_str().unwrap();
    let b: [u8; 32] = hex::decode(&hexs[2..]).unwrap().try_into().unwrap();
    SecretKey::from_bytes(&b).unwrap()
}

fn header_and_cert(v: &Validator, h: u64) -> Option<(Header, Vec<u8>)> {
    let j = get(v, &format!("/headers/{h}")).unwrap();
    let header: Header = serde_json::from_value(j["header"].clone()).unwrap();
    let cert = hex::decode(&j["finalization"].as_str()?[2..]).unwrap();
    Some((header, cert))
}

fn proof_of(j: &Value) -> StateProof {
    let p = &j["proof"];
    let h = |v: &Value| hex::decode(&v.as_str().unwrap()[2..]).unwrap();
    StateProof {
        key: h(&p["key"]),
        value: p["value"].as_str().map(|_| h(&p["value"])),
        proof: h(&p["proof"]),
    }
}

#[test]
fn embedded_validator_serves_verifiable_state_and_survives_kill_9() {
    let dir = home("validator");
    let v = start(&dir, free_port());
    wait_height(&v, 3);
    let status = get(&v, "/status").unwrap();
    let chain_id = status["chain_id"].as_u64().unwrap();
    assert!(status["state_root"].as_str().unwrap().starts_with("0x"));

    // A transfer through the API.
    let alice = dev_key(&dir, 0);
    let bob = dev_key(&dir, 1).address();
    let tx = Tx {
        chain_id,
        from: alice.address(),
        nonce: 0,
        fee: 1_000,
        msg: Msg::Transfer {
            to: bob,
            amount: 12_345,
        },
    }
    .sign(&alice);
    let body = serde_json::to_string(&tx).unwrap();
    let (code, r) = request(&v, "POST", "/tx", Some(&body));
    assert_eq!(code, 202, "{r}");
    let hash = r["hash"].as_str().unwrap().to_string();
    // The same again: 409. Garbage: 400. Another chain: 400. Forged signature: 403.
    assert_eq!(request(&v, "POST", "/tx", Some(&body)).0, 409);
    let (code, e) = request(&v, "POST", "/tx", Some("{\"nope\":1}"));
    assert_eq!(code, 400);
    assert_eq!(e["error"]["code"], "bad_request");
    let mut other = tx.clone();
    other.tx.chain_id += 1;
    let other = other.tx.sign(&alice);
    assert_eq!(
        request(
            &v,
            "POST",
            "/tx",
            Some(&serde_json::to_string(&other).unwrap())
        )
        .0,
        400
    );
    let mut forged = tx.clone();
    forged.tx.nonce = 1;
    assert_eq!(
        request(
            &v,
            "POST",
            "/tx",
            Some(&serde_json::to_string(&forged).unwrap())
        )
        .0,
        403
    );
    assert_eq!(request(&v, "GET", "/headers/99999999", None).0, 404);
    assert_eq!(request(&v, "GET", "/state/account/0x12", None).0, 400);

    // Included and applied.
    let t0 = Instant::now();
    let included = loop {
        let (_, s) = request(&v, "GET", &format!("/tx/{hash}"), None);
        if s["status"] == "included" {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "not included: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(included["result"]["outcome"]["status"], "ok", "{included}");

    // A light client from genesis verifies the tip's certificate and bob's balance proof.
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(dir.join("genesis.json")).unwrap()).unwrap();
    let g = Chain::from_genesis(&genesis).unwrap();
    let mut lc = LightClient::new(g.tip.clone(), g.state.g.validators.clone()).unwrap();
    // The newest header with its own certificate (a block finalized implicitly, as an
    // ancestor of a finalized one, has none), and bob's account proven at that height.
    let (header, cert) = (1..=height(&v))
        .rev()
        .find_map(|h| header_and_cert(&v, h))
        .unwrap();
    let at = header.height;
    let acct = get(&v, &format!("/state/account/{bob}?height={at}")).unwrap();
    let mut bad = cert.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(lc.advance(&header, &bad, None).is_err());
    lc.advance(&header, &cert, None).unwrap();
    let proof = proof_of(&acct);
    let value = lc.verify_state(&proof).unwrap().unwrap();
    let account: chain_light::state::Account = chain_light::codec::decode(&value, 1 << 20).unwrap();
    assert_eq!(account.balance, 1_000_000_000_000_000_000_000 + 12_345);
    assert_eq!(acct["value"]["balance"], json!(account.balance.to_string()));
    let absent = get(&v, &format!("/state/deal/77?height={at}")).unwrap();
    assert!(lc.verify_state(&proof_of(&absent)).unwrap().is_none());

    if std::env::var_os("NILSTORE_RECORD_LIGHT").is_some() {
        let fixture = json!({
            "genesis": genesis,
            "header": header,
            "finalization": format!("0x{}", hex::encode(&cert)),
            "account": acct,
            "absent_deal": absent,
        });
        std::fs::write(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/light.json"),
            serde_json::to_vec_pretty(&fixture).unwrap(),
        )
        .unwrap();
    }

    // Metrics.
    let m = ureq::get(&url(&v, "/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(m.contains("nilstore_chain_height"), "{m}");
    assert!(
        m.contains("nilstore_chain_transactions_applied_total 1"),
        "{m}"
    );

    // CORS: a page on any origin may read the API and submit transactions (a browser light
    // client checks every answer itself).
    let pre = ureq::request("OPTIONS", &url(&v, "/tx"))
        .set("origin", "http://127.0.0.1:9")
        .set("access-control-request-method", "POST")
        .set("access-control-request-headers", "content-type")
        .call()
        .unwrap();
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    let methods = pre.header("access-control-allow-methods").unwrap_or("");
    assert!(methods.contains("POST"), "{methods}");
    let st = ureq::get(&url(&v, "/status"))
        .set("origin", "http://127.0.0.1:9")
        .call()
        .unwrap();
    assert_eq!(st.header("access-control-allow-origin"), Some("*"));

    // kill -9 and restart: past headers unchanged, the chain goes on.
    let before = height(&v);
    let roots: Vec<Value> = (1..=before)
        .map(|h| get(&v, &format!("/headers/{h}")).unwrap()["header"].clone())
        .collect();
    let port = v.port;
    drop(v); // SIGKILL
    let v = start(&dir, port);
    wait_height(&v, before + 3);
    for (i, h) in roots.iter().enumerate() {
        let now = get(&v, &format!("/headers/{}", i + 1)).unwrap()["header"].clone();
        assert_eq!(&now, h, "header {} changed across the restart", i + 1);
    }
    let acct = get(&v, &format!("/state/account/{bob}")).unwrap();
    assert_eq!(acct["value"]["balance"], json!(account.balance.to_string()));
    let _ = Address::ZERO;
    drop(v);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transaction_submission_is_rate_limited_per_client() {
    let dir = home("ratelimit");
    let v = start_with(&dir, free_port(), &["--tx-rate", "1"]);
    // Burst of 2, then 1/s: garbage still spends a token, so the answers are 400, 400, 429.
    let codes: Vec<u16> = (0..3)
        .map(|_| request(&v, "POST", "/tx", Some("{}")).0)
        .collect();
    assert_eq!(codes, vec![400, 400, 429]);
    let (_, e) = request(&v, "POST", "/tx", Some("{}"));
    assert_eq!(e["error"]["code"], "rate_limited");
    // Reads are not limited.
    for _ in 0..5 {
        assert!(get(&v, "/status").is_some());
    }
    drop(v);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `head` on a fresh connection to `v` and returns the stream.
fn raw(v: &Validator, head: &str) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// What arrives on `s` within `within` (None: nothing at all).
fn first_bytes(s: &mut std::net::TcpStream, within: Duration) -> Option<String> {
    use std::io::Read as _;
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 512];
    match s.read(&mut b) {
        Ok(n) => Some(String::from_utf8_lossy(&b[..n]).into_owned()),
        Err(_) => None,
    }
}

/// The API as an attacker uses it (issue 17 item 14): event-stream subscribers beyond the
/// cap are refused with 503 and a closed subscription frees its slot; clients that never
/// finish their headers hold connections only until the header timeout, and connections
/// beyond the cap wait instead of being served.
#[test]
fn api_connections_subscribers_and_slow_clients_are_bounded() {
    let dir = home("validator-limits");
    let v = start_with(
        &dir,
        free_port(),
        &[
            "--http-max-connections",
            "4",
            "--http-header-timeout-ms",
            "1500",
            "--max-event-subscribers",
            "2",
        ],
    );
    let sub = "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    let mut subs: Vec<_> = (0..2).map(|_| raw(&v, sub)).collect();
    for s in &mut subs {
        let got = first_bytes(s, Duration::from_secs(10)).unwrap();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    let mut third = raw(&v, sub);
    let got = first_bytes(&mut third, Duration::from_secs(10)).unwrap();
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("at most 2 event subscribers"), "{got}");
    drop(third);
    // A subscriber that leaves frees its slot (noticed at the next block's events).
    drop(subs.pop());
    let t0 = Instant::now();
    loop {
        let mut s = raw(&v, sub);
        let got = first_bytes(&mut s, Duration::from_secs(10)).unwrap();
        if got.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the slot was not freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(subs);

    // Slow clients: four connections whose headers never end take every slot...
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut slow: Vec<_> = (0..4)
        .map(|_| raw(&v, "GET /status HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = raw(
        &v,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        first_bytes(&mut waiting, Duration::from_millis(500)),
        None,
        "served beyond the connection cap"
    );
    // ...until their header time is up: they are cut off and the waiting request is served.
    for s in &mut slow {
        let got = first_bytes(s, Duration::from_secs(10)).expect("cut off");
        assert!(!got.contains("200 OK"), "{got}");
    }
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    let got = first_bytes(&mut waiting, Duration::from_secs(10)).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(get(&v, "/status").is_some());
}

/// Posts a signed transaction: status and JSON answer.
fn post_tx(v: &Validator, tx: &chain_light::tx::SignedTx) -> (u16, Value) {
    request(v, "POST", "/tx", Some(&serde_json::to_string(tx).unwrap()))
}

/// Waits until transaction `hash` is included; returns its status JSON.
fn included(v: &Validator, hash: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, s) = request(v, "GET", &format!("/tx/{hash}"), None);
        if s["status"] == "included" {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "not included: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nonce(v: &Validator, a: &Address) -> u64 {
    get(v, &format!("/state/account/{a}")).unwrap()["value"]["nonce"]
        .as_u64()
        .unwrap_or(0)
}

/// The hardening issue's chain attacks (items 2–5) run as a user of the public API would
/// run them, against the real validator binary: transactions with extreme values (an
/// attestation for epoch u64::MAX, a deal of u64::MAX MDUs, reservations without escrow,
/// transfers of u128::MAX) are refused at admission or fail alone; one sender cannot fill
/// the mempool (a byte cap per sender, same-nonce replacements must pay) nor delay another
/// sender; blocks of 16 MiB of transactions are finalized, served, and replayed after
/// `kill -9`; through all of it the chain keeps finalizing.
#[test]
fn public_api_attacks_leave_the_chain_running() {
    use chain_light::bytes::{Blob, Sig65, H256};
    use chain_light::tx::Attestation;

    let dir = home("attacks");
    let v = start_with(&dir, free_port(), &["--tx-rate", "10000"]);
    wait_height(&v, 2);
    let chain_id = get(&v, "/status").unwrap()["chain_id"].as_u64().unwrap();
    let (alice, bob, carol) = (dev_key(&dir, 0), dev_key(&dir, 1), dev_key(&dir, 2));
    let tx = |key: &SecretKey, nonce: u64, fee: u128, msg: Msg| {
        Tx {
            chain_id,
            from: key.address(),
            nonce,
            fee,
            msg,
        }
        .sign(key)
    };

    // 1. Extreme values: refused at admission, or included and failed alone.
    let poison = [
        Msg::SubmitAttestation {
            att: Attestation {
                deal: 1,
                slot: 0,
                mdu: u32::MAX,
                leaf: u32::MAX,
                provider: bob.address(),
                epoch: u64::MAX,
                transcript: H256([7; 32]),
            },
            sig: Sig65([1; 65]),
        },
        Msg::CreateDeal {
            k: 2,
            m: 1,
            capacity_mdus: u64::MAX,
            term_epochs: u64::MAX,
            escrow: 0,
            spend_cap: u128::MAX,
        },
        // A reservation without escrow (item 5): it would hold capacity for free.
        Msg::CreateDeal {
            k: 2,
            m: 1,
            capacity_mdus: 64,
            term_epochs: 100,
            escrow: 0,
            spend_cap: 0,
        },
        Msg::ExtendDeal {
            deal: u64::MAX,
            epochs: u64::MAX,
        },
        Msg::SubmitProofs {
            epoch: u64::MAX,
            items: Vec::new(),
        },
        Msg::Transfer {
            to: bob.address(),
            amount: u128::MAX,
        },
    ];
    for msg in poison {
        let what = format!("{msg:?}");
        let (code, r) = post_tx(&v, &tx(&alice, nonce(&v, &alice.address()), 1_000, msg));
        if code == 202 {
            let s = included(&v, r["hash"].as_str().unwrap());
            assert_ne!(
                s["result"]["outcome"]["status"], "ok",
                "{what} executed: {s}"
            );
        } else {
            assert!((400..500).contains(&code), "{what}: {code} {r}");
        }
    }
    let h = height(&v);
    wait_height(&v, h + 3);

    // 2. Same-nonce variants must pay to replace; one sender's bytes are capped. Alice
    //    queues ~0.9 MB transactions behind a nonce gap so none can execute yet.
    let next = nonce(&v, &alice.address());
    let big = |n: u64, fee: u128| {
        tx(
            &alice,
            n,
            fee,
            Msg::CompleteRepair {
                deal: 1,
                slot: 0,
                proofs: vec![Blob(vec![n as u8; 900_000])],
            },
        )
    };
    let (code, _) = post_tx(&v, &big(next + 1, 1_000));
    assert_eq!(code, 202);
    let (code, r) = post_tx(&v, &big(next + 1, 1_050));
    assert_eq!(code, 409, "a replacement below the fee bump: {r}");
    let (code, r) = post_tx(&v, &big(next + 1, 1_100));
    assert_eq!(code, 202, "a replacement that pays: {r}");
    let mut admitted = 1u64;
    let refused = loop {
        let (code, r) = post_tx(&v, &big(next + 1 + admitted, 1_000));
        if code != 202 {
            break (code, r);
        }
        admitted += 1;
        assert!(admitted <= 30, "no per-sender byte cap");
    };
    assert_eq!(refused.0, 429, "{}", refused.1);
    assert!(
        (16..=19).contains(&admitted),
        "{admitted} transactions of 0.9 MB under a 16 MiB cap"
    );
    // Bob is not held up by alice's queue.
    let (code, r) = post_tx(
        &v,
        &tx(
            &bob,
            nonce(&v, &bob.address()),
            1_000,
            Msg::Transfer {
                to: carol.address(),
                amount: 5,
            },
        ),
    );
    assert_eq!(code, 202, "{r}");
    let s = included(&v, r["hash"].as_str().unwrap());
    assert_eq!(s["result"]["outcome"]["status"], "ok", "{s}");

    // 3. Alice fills the gap: her queue executes (each repair fails alone: no such deal)
    //    in blocks of up to 32 MiB, which are finalized and served.
    let (code, r) = post_tx(
        &v,
        &tx(
            &alice,
            next,
            1_000,
            Msg::Transfer {
                to: carol.address(),
                amount: 1,
            },
        ),
    );
    assert_eq!(code, 202, "{r}");
    let t0 = Instant::now();
    while nonce(&v, &alice.address()) < next + 1 + admitted {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "alice's queue is stuck"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tip = height(&v);
    let mut largest = 0usize;
    for h in 1..=tip {
        // A block of 16 MiB is 32 MB of hex: more than ureq's `into_string` reads.
        let mut b = String::new();
        std::io::Read::read_to_string(
            &mut ureq::get(&url(&v, &format!("/blocks/{h}")))
                .call()
                .unwrap_or_else(|e| panic!("block {h}: {e}"))
                .into_reader(),
            &mut b,
        )
        .unwrap();
        let b: Value = serde_json::from_str(&b).unwrap();
        largest = largest.max(b["txs"].as_array().map_or(0, Vec::len));
    }
    assert!(
        largest >= 8,
        "the queue went into big blocks (largest: {largest} txs)"
    );

    // 4. kill -9 and restart: the big blocks replay from the log to the same headers, and
    //    the chain goes on.
    let headers: Vec<Value> = (1..=tip)
        .map(|h| get(&v, &format!("/headers/{h}")).unwrap()["header"].clone())
        .collect();
    let port = v.port;
    drop(v);
    let v = start(&dir, port);
    wait_height(&v, tip + 3);
    for (i, h) in headers.iter().enumerate() {
        let now = get(&v, &format!("/headers/{}", i + 1)).unwrap()["header"].clone();
        assert_eq!(&now, h, "header {} changed across the restart", i + 1);
    }
    drop(v);
    let _ = std::fs::remove_dir_all(&dir);
}
