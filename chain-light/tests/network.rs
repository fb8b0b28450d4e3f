//! Four `nilstore-validator` processes on loopback from one `genesis` (authenticated p2p,
//! simplex with bls12381_multisig) plus a standby node outside the set: they agree on every
//! header (the standby by block sync); with one killed (`kill -9`) the other three keep
//! finalizing; restarted, it catches up from its peers (block sync with certificate checks)
//! and agrees again. Then the standby stakes (`CreateValidator` over `POST /tx`), is
//! elected at the epoch boundary (consensus epoch 1, five validators), and with an original
//! validator killed the chain still finalizes — 4 of 5 needs the newcomer's votes.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "validator")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chain_light::crypto::SecretKey;
use chain_light::tx::{Msg, Tx};
use serde_json::Value;

struct Validator {
    child: Option<Child>,
    home: PathBuf,
    port: u16,
}

impl Validator {
    fn start(home: &Path, port: u16) -> Validator {
        let child = Command::new(env!("CARGO_BIN_EXE_nilstore-validator"))
            .args(["start", "--home"])
            .arg(home)
            .args(["--api", &format!("127.0.0.1:{port}"), "--block-ms", "200"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Validator {
            child: Some(child),
            home: home.to_path_buf(),
            port,
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let r = ureq::get(&format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?;
        r.into_json().ok()
    }

    fn height(&self) -> u64 {
        self.get("/status")
            .map_or(0, |s| s["height"].as_u64().unwrap())
    }

    fn header_hash(&self, h: u64) -> Option<String> {
        Some(
            self.get(&format!("/headers/{h}"))?["hash"]
                .as_str()?
                .to_string(),
        )
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port below the ephemeral range: a restarted validator gets it back.
fn free_port() -> u16 {
    chain_light::validator::daemon::free_loopback_ports(1).unwrap()
}

fn wait(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn four_validators_tolerate_one_down_and_a_restart_catches_up() {
    let dir = std::env::temp_dir().join(format!("nilstore-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Five consecutive free p2p ports that no outgoing connection can take meanwhile.
    let base = chain_light::validator::daemon::free_loopback_ports(5).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_nilstore-validator"))
        .args(["genesis", "--validators", "4", "--standby", "1", "--out"])
        .arg(&dir)
        .args(["--chain-id", "4747", "--p2p-base-port", &base.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut vs: Vec<Validator> = (0..5)
        .map(|i| Validator::start(&dir.join(format!("validator-{i}")), free_port()))
        .collect();
    wait(
        "all four finalize 5 blocks, the standby follows",
        120,
        || vs.iter().all(|v| v.height() >= 5),
    );
    // Agreement on every header so far.
    for h in 1..=5 {
        let hs: Vec<_> = vs.iter().map(|v| v.header_hash(h)).collect();
        assert!(
            hs.iter().all(|x| x.is_some() && *x == hs[0]),
            "height {h}: {hs:?}"
        );
    }
    // One down (kill -9): the other three keep finalizing.
    vs[3].kill();
    let h0 = vs[0].height();
    wait("three of four keep finalizing", 120, || {
        vs[..3].iter().all(|v| v.height() >= h0 + 8)
    });
    // Restarted, it catches up with the others and agrees.
    let home = vs[3].home.clone();
    let port = vs[3].port;
    vs[3] = Validator::start(&home, port);
    let target = vs[0].height();
    wait("the restarted validator catches up", 120, || {
        vs[3].height() >= target + 2
    });
    // The standby follows by block sync and may trail by a few blocks.
    wait("every node has the target height", 120, || {
        vs.iter().all(|v| v.height() >= target)
    });
    let h = target;
    let hs: Vec<_> = vs.iter().map(|v| v.header_hash(h)).collect();
    assert!(
        hs.iter().all(|x| x.is_some() && *x == hs[0]),
        "height {h}: {hs:?}"
    );

    // The standby stakes and is elected at the next epoch boundary.
    let key: Value = serde_json::from_slice(
        &std::fs::read(dir.join("validator-4").join("validator_key.json")).unwrap(),
    )
    .unwrap();
    let secret: [u8; 32] = hex::decode(key["account"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let account = SecretKey::from_bytes(&secret).unwrap();
    // Its consensus keys come from the file too: genesis keys are random.
    let id = chain_light::light::decode_ed25519(
        &hex::decode(key["identity"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let bls = chain_light::light::decode_bls(&hex::decode(key["bls"].as_str().unwrap()).unwrap())
        .unwrap();
    let (dev_id, dev_bls) = chain_light::light::dev_keys(4747, 4);
    assert!(
        chain_light::light::make_consensus_key(&id, &bls)
            != chain_light::light::make_consensus_key(&dev_id, &dev_bls),
        "genesis keys must not derive from public seeds by default"
    );
    let genesis: Value = vs[0].get("/genesis").unwrap();
    let min_fee: u128 = genesis["params"]["min_fee"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let tx = Tx {
        chain_id: 4747,
        from: account.address(),
        nonce: 0,
        fee: min_fee,
        msg: Msg::CreateValidator {
            consensus_key: chain_light::light::make_consensus_key(&id, &bls),
            stake: 10_000_000_000,
            commission_bps: 500,
        },
    }
    .sign(&account);
    let r = ureq::post(&format!("http://127.0.0.1:{}/tx", vs[0].port))
        .timeout(Duration::from_secs(5))
        .send_json(serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(r.status(), 202);
    wait(
        "every node enters consensus epoch 1 with five validators",
        120,
        || {
            vs.iter().all(|v| {
                v.get("/status").is_some_and(|s| {
                    s["consensus_epoch"].as_u64() == Some(1)
                        && s["validators"].as_array().map(Vec::len) == Some(5)
                })
            })
        },
    );
    // An original validator down: 4 of 5 finalize only with the newcomer signing.
    vs[1].kill();
    let h1 = vs[0].height();
    wait("the new set finalizes with the newcomer", 120, || {
        [0, 2, 3, 4].iter().all(|&i| vs[i].height() >= h1 + 5)
    });
    let h = h1 + 5;
    let hs: Vec<_> = [0, 2, 3, 4].iter().map(|&i| vs[i].header_hash(h)).collect();
    assert!(
        hs.iter().all(|x| x.is_some() && *x == hs[0]),
        "height {h}: {hs:?}"
    );
    drop(vs);
    let _ = std::fs::remove_dir_all(&dir);
}
