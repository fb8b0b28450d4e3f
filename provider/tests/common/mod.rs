//! Shared test data: real encoded MDUs and signed uploads.
#![allow(clippy::unwrap_used, dead_code)]

use chain_light::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chain_light::crypto::SecretKey;
use chain_light::state::{Deal, Slot, SlotStatus};
use chain_light::tx::{Msg, Tx};
use chain_light::validator::daemon::{start_until, StartOptions};
use futures::StreamExt as _;
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::identity::Keypair;
use nilstore_net::libp2p::swarm::SwarmEvent;
use nilstore_net::libp2p::Swarm;
use nilstore_net::native::{self, Behaviour, BehaviourEvent, ConnLimits, NodeConfig};
use nilstore_net::proto::{Leaf, UploadAuth, UploadShard, BLOB_BYTES};
use nilstore_provider::verify::DealShape;
use rand::{Rng, SeedableRng};
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::{Code, Profile};
use wasm_core::slab::{encode_user_mdu, EncodedMdu};

pub const DEAL: DealShape = DealShape {
    k: 4,
    m: 2,
    witness_mdus: 1,
};
pub const SALT: [u8; 32] = [7; 32];

/// 64 blobs of packed random payload (every element canonical: byte 0 is zero).
pub fn mdu_bytes(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; 64 * BLOB_BYTES];
    for el in v.chunks_exact_mut(32) {
        rng.fill(&mut el[1..]);
    }
    v
}

pub fn encoded(seed: u64) -> EncodedMdu {
    let code = Code::new(Profile::new(DEAL.k as usize, DEAL.m as usize).unwrap());
    encode_user_mdu(KzgSettings::ethereum(), &code, &mdu_bytes(seed)).unwrap()
}

pub fn leaves(e: &[wasm_core::merkle::Leaf]) -> Vec<Leaf> {
    e.iter()
        .map(|l| Leaf {
            commitment: G1Bytes(l.commitment),
            blake3: H256(l.blake3),
        })
        .collect()
}

pub fn upload(mdu: u32, slot: u32, leaves: Vec<Leaf>, shard: &[u8]) -> UploadShard {
    UploadShard {
        chain_id: 1,
        deal: 1,
        slot,
        mdu,
        generation: 0,
        leaves,
        blobs: shard.chunks(BLOB_BYTES).map(|b| Blob(b.to_vec())).collect(),
        auth: UploadAuth {
            signer: Address::ZERO,
            expires_ms: 0,
            sig: Sig65([0; 65]),
        },
    }
    .sign(&owner(), u64::MAX)
}

pub fn owner() -> SecretKey {
    SecretKey::from_seed(b"owner")
}

/// A deal of shape [`DEAL`] owned by [`owner`], every slot assigned to `provider`.
pub fn deal(provider: Address) -> Deal {
    Deal {
        owner: owner().address(),
        k: DEAL.k,
        m: DEAL.m,
        capacity_mdus: 4,
        witness_mdus: DEAL.witness_mdus,
        reserved_mdus: 0,
        manifest_root: None,
        total_mdus: 0,
        size_bytes: 0,
        generation: 0,
        content_epoch: 0,
        start_epoch: 0,
        end_epoch: 10,
        escrow: 0,
        rent_reserved: 0,
        spend_cap: 0,
        spent_epoch: 0,
        spent: 0,
        slots: vec![
            Slot {
                provider,
                status: SlotStatus::Active,
                pending: None,
                health: 100,
            };
            6
        ],
        delegates: Default::default(),
    }
}

/// An in-process validator.
pub struct Running {
    /// Its API address.
    pub api: SocketAddr,
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

/// A validator running in-process (stopped on drop), 100 ms blocks.
pub fn validator(home: &Path, chain_id: u64) -> Running {
    validator_with(home, chain_id, Duration::from_millis(100))
}

/// A validator running in-process with blocks every `block_interval`.
pub fn validator_with(home: &Path, chain_id: u64, block_interval: Duration) -> Running {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, bound) = std::sync::mpsc::channel();
    let opts = StartOptions {
        home: home.to_path_buf(),
        api: "127.0.0.1:0".parse().unwrap(),
        p2p: None,
        tx_rate: 1_000,
        chain_id,
        block_interval,
        genesis_keys: Default::default(),
        api_limits: Default::default(),
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

/// Dev account `i` of a validator home.
pub fn dev_key(home: &Path, i: usize) -> SecretKey {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("dev-keys.json")).unwrap()).unwrap();
    let hexkey = v[i]["secret"].as_str().unwrap().trim_start_matches("0x");
    SecretKey::from_bytes(&hex::decode(hexkey).unwrap().try_into().unwrap()).unwrap()
}

/// Submits a transaction; returns its hash.
pub fn submit(api: SocketAddr, chain_id: u64, key: &SecretKey, nonce: u64, msg: Msg) -> String {
    let tx = Tx {
        chain_id,
        from: key.address(),
        nonce,
        fee: 1_000_000,
        msg,
    }
    .sign(key);
    let r = ureq::post(&format!("http://{api}/tx"))
        .send_json(serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.into_json().unwrap();
    v["hash"].as_str().unwrap().to_string()
}

/// Waits (up to 60 s) for a transaction to be included; returns its result, asserting it ran
/// without error.
pub fn included(api: SocketAddr, hash: &str) -> serde_json::Value {
    let t0 = std::time::Instant::now();
    loop {
        let v: serde_json::Value = ureq::get(&format!("http://{api}/tx/{hash}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if v["status"] == "included" {
            assert_eq!(v["result"]["outcome"]["status"], "ok", "{v}");
            return v;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "not included: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A native client node (fresh identity, serves nothing).
pub fn client() -> Swarm<Behaviour> {
    let dir = std::env::temp_dir().join(format!("nilstore-client-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    native::build_swarm(NodeConfig {
        keypair: Keypair::generate_ed25519(),
        webrtc_cert: native::load_or_create_webrtc_cert(&dir.join("c.pem")).unwrap(),
        wss_tls: None,
        relay: None,
        serve: Vec::new(),
        limits: ConnLimits::default(),
        idle_timeout: Duration::from_secs(60),
    })
    .unwrap()
}

/// Sends one request and drives the client until `pick` takes an event (2 min at most).
pub async fn ask<T>(
    c: &mut Swarm<Behaviour>,
    send: impl FnOnce(&mut Swarm<Behaviour>),
    mut pick: impl FnMut(ProtocolsEvent) -> Option<T>,
) -> T {
    send(c);
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = c.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Nilstore(e)) = ev {
                    if let Some(t) = pick(e) {
                        return t;
                    }
                }
            }
            _ = &mut deadline => panic!("no answer"),
        }
    }
}

/// Polls `ok` every 100 ms until it holds (panics after `secs`).
pub async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !tokio::task::block_in_place(&mut ok) {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A value from a node's Prometheus `/metrics` (0 when absent).
pub fn metric(http: SocketAddr, name: &str) -> u64 {
    let body = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}
