//! A network on loopback, in one process: a validator, four providers, a relay. An owner
//! makes a K = 2, M = 1 deal (three slots; one provider is spare), uploads its slab over
//! libp2p and commits it. Then:
//! - every slot's provider proves its challenges on chain, epoch after epoch;
//! - the relay locates the deal's providers and fetches a blob as a deputy;
//! - a receipt sent to a provider is redeemed on chain;
//! - a byzantine provider (a flipped byte on its disk) serves a wrong blob: the reader
//!   builds fraud evidence, the chain slashes and evicts it, the spare rebuilds the slot
//!   bit-exactly from the other two and proves it (`CompleteRepair`), and the byzantine one
//!   deletes the data it no longer holds;
//! - a silent provider (stopped): the deputy signs a failure attestation and the chain
//!   counts it.
#![allow(clippy::unwrap_used)]

#[path = "../../provider/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chain_light::block::Genesis;
use chain_light::bytes::{Address, Blob, G1Bytes, Sig65};
use chain_light::crypto::SecretKey;
use chain_light::tx::{Msg, Receipt};
use common::{
    ask, client, dev_key, included, leaves, mdu_bytes, metric, submit, validator_with, wait_for,
};
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::request_response::{self, Message};
use nilstore_net::libp2p::Multiaddr;
use nilstore_net::native::{ListenPorts, RelayLimits};
use nilstore_net::proto::{
    DeputyRequest, DeputyResponse, FetchRequest, FetchResponse, FetchWhat, LocateRequest, NetError,
    ReceiptSubmit, UploadAuth, UploadShard, BLOB_BYTES,
};
use nilstore_net::read::{blob_matches, fraud_evidence, mdu_root};
use nilstore_provider::daemon::{run as run_provider, Options, Profile, Started};
use nilstore_provider::service::Limits;
use nilstore_relay::daemon::{run as run_relay, Options as RelayOptions, Profile as RelayProfile};
use nilstore_relay::deputy::DeputyLimits;
use serde_json::Value;
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::{Code, Profile as RsProfile};

const CHAIN: u64 = 7_171;

struct Node {
    started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    key: SecretKey,
    home: PathBuf,
}

impl Node {
    async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

async fn provider(
    base: &Path,
    i: usize,
    api: SocketAddr,
    genesis: &Genesis,
    key: SecretKey,
) -> Node {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, started) = tokio::sync::oneshot::channel();
    let home = base.join(format!("provider-{i}"));
    let task = tokio::spawn(run_provider(
        Options {
            home: home.clone(),
            chain: format!("http://{api}"),
            genesis: genesis.clone(),
            key: key.clone(),
            profile: Profile::Devnet,
            listen_ip: "127.0.0.1".parse().unwrap(),
            ports: ListenPorts::default(),
            http: "127.0.0.1:0".parse().unwrap(),
            limits: Limits::default(),
            wss: None,
            uncommitted_ttl: nilstore_provider::worker::UNCOMMITTED_TTL,
            trusted_proxy: None,
        },
        async move {
            let _ = rx.await;
        },
        Some(tx),
    ));
    Node {
        started: started.await.unwrap(),
        stop: Some(stop),
        task: Some(task),
        key,
        home,
    }
}

fn get(api: SocketAddr, path: &str) -> Value {
    ureq::get(&format!("http://{api}{path}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

fn tcp(addrs: &[Multiaddr]) -> Multiaddr {
    addrs
        .iter()
        .find(|a| {
            let s = a.to_string();
            s.contains("/tcp/") && !s.contains("/ws")
        })
        .unwrap()
        .clone()
}

fn fetch_answer(e: ProtocolsEvent) -> Option<Result<FetchResponse, NetError>> {
    match e {
        ProtocolsEvent::Fetch(request_response::Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => Some(response),
        ProtocolsEvent::Fetch(request_response::Event::OutboundFailure { error, .. }) => {
            Some(Err(NetError::Unavailable(error.to_string())))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn providers_prove_repair_and_deputies_attest() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let base = std::env::temp_dir().join(format!("nilstore-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let vhome = base.join("validator");
    // 250 ms blocks: a 5 s epoch (20 blocks) leaves the provers room on a loaded machine.
    let v =
        tokio::task::block_in_place(|| validator_with(&vhome, CHAIN, Duration::from_millis(250)));
    let api = v.api;
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(vhome.join("genesis.json")).unwrap()).unwrap();
    let kzg = KzgSettings::ethereum();

    // Four providers, registered.
    let mut ps = Vec::new();
    for i in 0..4 {
        ps.push(provider(&base, i, api, &genesis, dev_key(&vhome, i)).await);
    }
    let mut regs = Vec::new();
    for p in &ps {
        regs.push(submit(
            api,
            CHAIN,
            &p.key,
            0,
            Msg::RegisterProvider {
                stake: 10_000_000_000,
                capacity_mdus: 1_000,
                operator: p.key.address(),
                peer_id: p.started.peer_id.to_string(),
                endpoints: p.started.addrs.iter().map(|a| a.to_string()).collect(),
            },
        ));
    }
    // The relay, registered as a deputy.
    let relay_key = dev_key(&vhome, 6);
    let (stop_relay, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, rstarted) = tokio::sync::oneshot::channel();
    let relay = tokio::spawn(run_relay(
        RelayOptions {
            home: base.join("relay"),
            chain: format!("http://{api}"),
            genesis: genesis.clone(),
            key: relay_key.clone(),
            profile: RelayProfile::Devnet,
            listen_ip: "127.0.0.1".parse().unwrap(),
            ports: ListenPorts::default(),
            http: "127.0.0.1:0".parse().unwrap(),
            relay: RelayLimits::default(),
            deputy: DeputyLimits::default(),
            deputy_timeout: Duration::from_secs(3),
            wss: None,
        },
        async move {
            let _ = rx.await;
        },
        Some(tx),
    ));
    let r = rstarted.await.unwrap();
    regs.push(submit(
        api,
        CHAIN,
        &relay_key,
        0,
        Msg::RegisterDeputy {
            stake: 1_000_000_000,
            peer_id: r.peer_id.to_string(),
            endpoints: r.addrs.iter().map(|a| a.to_string()).collect(),
        },
    ));
    for h in &regs {
        tokio::task::block_in_place(|| included(api, h));
    }

    // The deal: K = 2, M = 1, two user MDUs (W = 1: MDUs 0 and 1 are metadata).
    let owner = dev_key(&vhome, 5);
    let created = submit(
        api,
        CHAIN,
        &owner,
        0,
        Msg::CreateDeal {
            k: 2,
            m: 1,
            capacity_mdus: 2,
            term_epochs: 200,
            escrow: 1_000_000_000_000,
            spend_cap: 1_000_000_000,
        },
    );
    let created = tokio::task::block_in_place(|| included(api, &created));
    let ev = &created["result"]["events"][0];
    let deal = ev["deal"].as_u64().unwrap();
    let by_slot: Vec<usize> = ev["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a: Address = serde_json::from_value(a.clone()).unwrap();
            ps.iter().position(|p| p.key.address() == a).unwrap()
        })
        .collect();
    assert_eq!(by_slot.len(), 3);
    let spare = (0..4).find(|i| !by_slot.contains(i)).unwrap();
    let d = get(api, &format!("/state/deal/{deal}"));
    assert_eq!(d["value"]["witness_mdus"], 1, "{d}");
    let at = created["height"].as_u64().unwrap();
    for p in &ps {
        let http = p.started.http;
        wait_for("providers see the deal", 60, || {
            get(http, "/health")["chain_height"].as_u64().unwrap() >= at
        })
        .await;
    }

    // The slab: two metadata MDUs stored whole by every slot, two user MDUs RS-coded.
    let code = Code::new(RsProfile::new(2, 1).unwrap());
    let mut mdus: Vec<(Vec<nilstore_net::proto::Leaf>, Vec<Vec<u8>>)> = Vec::new();
    for m in 0..2u64 {
        let data = mdu_bytes(100 + m);
        let (l, _) = wasm_core::slab::encode_metadata_mdu(kzg, &data).unwrap();
        mdus.push((leaves(&l), vec![data.clone(), data.clone(), data]));
    }
    for m in 0..2u64 {
        let e = wasm_core::slab::encode_user_mdu(kzg, &code, &mdu_bytes(200 + m)).unwrap();
        mdus.push((leaves(&e.leaves), e.shards));
    }
    let roots: Vec<[u8; 32]> = mdus.iter().map(|(l, _)| mdu_root(l)).collect();
    let manifest = wasm_core::slab::manifest_polynomial(&roots).unwrap();
    let manifest_root = kzg.commit_poly(&manifest).to_compressed();

    let mut c = client();
    for p in &ps {
        c.add_peer_address(p.started.peer_id, tcp(&p.started.addrs));
    }
    c.add_peer_address(r.peer_id, tcp(&r.addrs));
    for (mdu, (l, shards)) in mdus.iter().enumerate() {
        for (slot, &pi) in by_slot.iter().enumerate() {
            let up = UploadShard {
                chain_id: CHAIN,
                deal,
                slot: slot as u32,
                mdu: mdu as u32,
                generation: 0,
                leaves: l.clone(),
                blobs: shards[slot]
                    .chunks(BLOB_BYTES)
                    .map(|b| Blob(b.to_vec()))
                    .collect(),
                auth: UploadAuth {
                    signer: Address::ZERO,
                    expires_ms: 0,
                    sig: Sig65([0; 65]),
                },
            }
            .sign(&owner, u64::MAX);
            let peer = ps[pi].started.peer_id;
            let ack = ask(
                &mut c,
                |c| {
                    c.behaviour_mut().nilstore.upload.send_request(&peer, up);
                },
                |e| match e {
                    ProtocolsEvent::Upload(request_response::Event::Message {
                        message: Message::Response { response, .. },
                        ..
                    }) => Some(response),
                    ProtocolsEvent::Upload(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => panic!("{error}"),
                    _ => None,
                },
            )
            .await;
            assert_eq!(ack.unwrap().mdu_root.0, roots[mdu]);
        }
    }
    let commit = submit(
        api,
        CHAIN,
        &owner,
        1,
        Msg::CommitContent {
            deal,
            generation: 0,
            manifest_root: G1Bytes(manifest_root),
            total_mdus: 4,
            size_bytes: 100_000,
        },
    );
    tokio::task::block_in_place(|| included(api, &commit));

    // Challenges are proven from the next epoch on, by every slot's provider.
    for &pi in &by_slot {
        let http = ps[pi].started.http;
        wait_for("every provider's proofs are accepted", 90, || {
            metric(http, "nilstore_provider_proofs_submitted_total") >= 1
        })
        .await;
    }

    // The relay tells who serves the deal.
    let relay_peer = r.peer_id;
    let loc = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .locate
                .send_request(&relay_peer, LocateRequest { deal });
        },
        |e| match e {
            ProtocolsEvent::Locate(request_response::Event::Message {
                message: Message::Response { response, .. },
                ..
            }) => Some(response),
            _ => None,
        },
    )
    .await
    .unwrap();
    assert_eq!(loc.k, 2);
    for (slot, &pi) in by_slot.iter().enumerate() {
        assert_eq!(loc.slots[slot].peer_id, ps[pi].started.peer_id.to_string());
        assert!(loc.slots[slot].active);
    }

    // A deputy fetch from an honest provider returns the verified blob.
    let slot_addr: Vec<Address> = by_slot.iter().map(|&i| ps[i].key.address()).collect();
    let deputy_req = |slot: u32, nonce: u64| {
        let mut req = DeputyRequest {
            chain_id: CHAIN,
            provider: slot_addr[slot as usize],
            fetch: FetchRequest {
                deal,
                slot,
                mdu: 2,
                what: FetchWhat::Blob { row: 0 },
            },
            reader: owner.address(),
            sig: Sig65([0; 65]),
            nonce,
        };
        req.sig = owner.sign_digest(&req.digest());
        req
    };
    let deputy_answer = |e: ProtocolsEvent| match e {
        ProtocolsEvent::Deputy(request_response::Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => Some(response),
        ProtocolsEvent::Deputy(request_response::Event::OutboundFailure { error, .. }) => {
            panic!("{error}")
        }
        _ => None,
    };
    let req = deputy_req(0, 1);
    let again = req.clone();
    let got = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .deputy
                .send_request(&relay_peer, req);
        },
        deputy_answer,
    )
    .await
    .unwrap();
    let DeputyResponse::Data(data) = got else {
        panic!("{got:?}")
    };
    assert!(blob_matches(&mdus[2].0, 0, &data.bytes.0));
    // The same signed request again is a replay.
    let replay = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .deputy
                .send_request(&relay_peer, again);
        },
        deputy_answer,
    )
    .await;
    assert!(matches!(replay, Err(NetError::Conflict(_))), "{replay:?}");

    // A receipt to slot 0's provider is redeemed on chain.
    let honest = &ps[by_slot[0]];
    let receipt = Receipt {
        deal,
        provider: honest.key.address(),
        deputy: Address::ZERO,
        blobs: 1,
        bytes: BLOB_BYTES as u64,
        nonce: 1,
    };
    let sig = owner.sign_digest(&receipt.digest(CHAIN));
    let hpeer = honest.started.peer_id;
    let ack = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .receipt
                .send_request(&hpeer, ReceiptSubmit { receipt, sig });
        },
        |e| match e {
            ProtocolsEvent::Receipt(request_response::Event::Message {
                message: Message::Response { response, .. },
                ..
            }) => Some(response),
            _ => None,
        },
    )
    .await
    .unwrap();
    assert_eq!(ack.nonce, 1);
    let honest_addr = honest.key.address();
    wait_for("the receipt is redeemed", 60, || {
        get(api, &format!("/state/receipt/{deal}/{honest_addr}"))["value"]["nonce"] == 1
    })
    .await;

    // Byzantine: slot 1's provider has a flipped byte in MDU 2 and serves it signed.
    let bad = by_slot[1];
    let file = find_shard(&ps[bad].home, 1, 2);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let bad_peer = ps[bad].started.peer_id;
    let served = ask(
        &mut c,
        |c| {
            c.behaviour_mut().nilstore.fetch.send_request(
                &bad_peer,
                FetchRequest {
                    deal,
                    slot: 1,
                    mdu: 2,
                    what: FetchWhat::Blob { row: 0 },
                },
            );
        },
        fetch_answer,
    )
    .await
    .unwrap();
    let rows = 64 / 2;
    let leaf = rows; // slot 1, row 0
    assert!(!blob_matches(&mdus[2].0, leaf, &served.bytes.0));
    let evidence = fraud_evidence(
        kzg,
        deal,
        1,
        2,
        leaf,
        &mdus[2].0,
        &roots,
        &served.bytes.0,
        served.served[0].1,
    )
    .unwrap();
    let fraud = submit(
        api,
        CHAIN,
        &owner,
        2,
        Msg::SubmitFraud {
            evidence: Box::new(evidence),
        },
    );
    let fraud = tokio::task::block_in_place(|| included(api, &fraud));
    let events = fraud["result"]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "provider_slashed"),
        "{fraud}"
    );

    // The spare rebuilds slot 1 and proves it; the byzantine provider drops the data.
    let spare_addr = serde_json::to_value(ps[spare].key.address()).unwrap();
    wait_for("the spare completes the repair", 120, || {
        let d = get(api, &format!("/state/deal/{deal}"));
        d["value"]["slots"][1]["provider"] == spare_addr
            && d["value"]["slots"][1]["status"] == "active"
    })
    .await;
    let spare_peer = ps[spare].started.peer_id;
    let rebuilt = ask(
        &mut c,
        |c| {
            c.behaviour_mut().nilstore.fetch.send_request(
                &spare_peer,
                FetchRequest {
                    deal,
                    slot: 1,
                    mdu: 2,
                    what: FetchWhat::Shard,
                },
            );
        },
        fetch_answer,
    )
    .await
    .unwrap();
    assert_eq!(
        rebuilt.bytes.0, mdus[2].1[1],
        "the rebuilt shard is bit-exact"
    );
    let spare_http = ps[spare].started.http;
    wait_for("the spare counts the repair", 30, || {
        metric(spare_http, "nilstore_provider_repairs_completed_total") == 1
    })
    .await;
    let bad_http = ps[bad].started.http;
    wait_for("the evicted provider deletes the deal's data", 60, || {
        metric(bad_http, "nilstore_provider_deals_collected_total") == 1
    })
    .await;

    // Silent: slot 2's provider stops; the deputy attests and the chain counts it.
    let silent = by_slot[2];
    ps[silent].stop().await;
    let req = deputy_req(2, 2);
    let got = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .deputy
                .send_request(&relay_peer, req);
        },
        deputy_answer,
    )
    .await
    .unwrap();
    let DeputyResponse::Failed { attestation, sig } = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        chain_light::crypto::recover(&attestation.digest(CHAIN), &sig).unwrap(),
        r.account
    );
    assert_eq!(attestation.provider, ps[silent].key.address());
    let relay_addr = serde_json::to_value(r.account).unwrap();
    let path = format!("/state/attestations/{deal}/2/{}", attestation.epoch);
    wait_for("the chain counts the attestation", 60, || {
        get(api, &path)["value"]
            .as_array()
            .is_some_and(|a| a.contains(&relay_addr))
    })
    .await;
    assert_eq!(metric(r.http, "nilstore_relay_attestations_total"), 1);
    assert_eq!(metric(r.http, "nilstore_relay_deputy_served_total"), 1);

    let _ = stop_relay.send(());
    relay.await.unwrap().unwrap();
    for p in &mut ps {
        p.stop().await;
    }
    tokio::task::spawn_blocking(move || drop(v)).await.unwrap();
    let _ = std::fs::remove_dir_all(&base);
}

/// The shard file of (slot, MDU) in a provider's store.
fn find_shard(home: &Path, slot: u32, mdu: u32) -> PathBuf {
    let prefix = format!("{slot}-{mdu}-");
    let mut stack = vec![home.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".shard"))
            {
                return p;
            }
        }
    }
    panic!("no shard {slot}-{mdu} under {}", home.display())
}
