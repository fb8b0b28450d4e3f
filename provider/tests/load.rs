//! A bounded load test of one provider daemon (real validator, real libp2p over TCP):
//! `NILSTORE_LOAD_CLIENTS` clients (default 16, each its own peer with one request in flight)
//! fetch random blobs and re-upload a metadata shard (`NILSTORE_LOAD_UPLOAD_PCT` %, default
//! 10: the full verification path) for
//! `NILSTORE_LOAD_SECS` seconds (default 5). Every request must succeed; the table reports
//! throughput and p50/p99 latency per operation (docs/benchmarks.md). Per-peer rate limits
//! are raised for the run: the test measures the serving path, not the limiter.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use chain_light::block::Genesis;
use chain_light::bytes::{Address, Blob, Sig65};
use chain_light::tx::Msg;
use common::{ask, client, dev_key, included, leaves, mdu_bytes, submit, validator, wait_for};
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::request_response::{self, Message};
use nilstore_net::native::ListenPorts;
use nilstore_net::proto::{FetchRequest, FetchWhat, UploadAuth, UploadShard, BLOB_BYTES};
use nilstore_provider::daemon::{run, Options, Profile};
use nilstore_provider::service::Limits;
use rand::{Rng, SeedableRng};
use wasm_core::kzg::KzgSettings;

const CHAIN: u64 = 6_161;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_load_has_no_errors() {
    let secs = env_u64("NILSTORE_LOAD_SECS", 5);
    let clients = env_u64("NILSTORE_LOAD_CLIENTS", 16) as usize;
    let upload_pct = env_u64("NILSTORE_LOAD_UPLOAD_PCT", 10).min(100);
    let base = std::env::temp_dir().join(format!("nilstore-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let vhome = base.join("validator");
    let v = tokio::task::block_in_place(|| validator(&vhome, CHAIN));
    let api = v.api;
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(vhome.join("genesis.json")).unwrap()).unwrap();
    let (pkey, owner) = (dev_key(&vhome, 0), dev_key(&vhome, 1));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, started) = tokio::sync::oneshot::channel();
    let provider = tokio::spawn(run(
        Options {
            home: base.join("provider"),
            chain: format!("http://{api}"),
            genesis,
            key: pkey.clone(),
            profile: Profile::Devnet,
            listen_ip: "127.0.0.1".parse().unwrap(),
            ports: ListenPorts::default(),
            http: "127.0.0.1:0".parse().unwrap(),
            limits: Limits {
                rate_per_s: 1_000_000,
                burst: 1_000_000,
                inflight_per_peer: 64,
                max_peers: 10_000,
            },
            wss: None,
            uncommitted_ttl: nilstore_provider::worker::UNCOMMITTED_TTL,
            trusted_proxy: None,
        },
        async move {
            let _ = rx.await;
        },
        Some(tx),
    ));
    let p = started.await.unwrap();
    let reg = submit(
        api,
        CHAIN,
        &pkey,
        0,
        Msg::RegisterProvider {
            stake: 10_000_000_000,
            capacity_mdus: 1_000,
            operator: pkey.address(),
            peer_id: p.peer_id.to_string(),
            endpoints: p.addrs.iter().map(|a| a.to_string()).collect(),
        },
    );
    tokio::task::block_in_place(|| included(api, &reg));
    let create = submit(
        api,
        CHAIN,
        &owner,
        0,
        Msg::CreateDeal {
            k: 1,
            m: 0,
            capacity_mdus: 4,
            term_epochs: 100,
            escrow: 1_000_000_000_000,
            spend_cap: 1_000_000_000,
        },
    );
    let created = tokio::task::block_in_place(|| included(api, &create));
    let deal = created["result"]["events"][0]["deal"].as_u64().unwrap();
    let at = created["height"].as_u64().unwrap();
    let http = p.http;
    wait_for("the provider sees the deal", 60, || {
        ureq::get(&format!("http://{http}/health"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok())
            .and_then(|h| h["chain_height"].as_u64())
            .is_some_and(|h| h >= at)
    })
    .await;

    // Three MDUs on the provider (K = 1: every MDU whole on slot 0).
    let kzg = KzgSettings::ethereum();
    let shard = |mdu: u32| {
        let data = mdu_bytes(300 + u64::from(mdu));
        let (l, _) = wasm_core::slab::encode_metadata_mdu(kzg, &data).unwrap();
        UploadShard {
            chain_id: CHAIN,
            deal,
            slot: 0,
            mdu,
            generation: 0,
            leaves: leaves(&l),
            blobs: data.chunks(BLOB_BYTES).map(|b| Blob(b.to_vec())).collect(),
            auth: UploadAuth {
                signer: Address::ZERO,
                expires_ms: 0,
                sig: Sig65([0; 65]),
            },
        }
        .sign(&owner, u64::MAX)
    };
    let uploads: Vec<UploadShard> = (0..3).map(shard).collect();
    let tcp = p
        .addrs
        .iter()
        .find(|a| a.to_string().contains("/tcp/") && !a.to_string().contains("/ws"))
        .unwrap()
        .clone();
    let peer = p.peer_id;
    {
        let mut c = client();
        c.add_peer_address(peer, tcp.clone());
        for up in &uploads {
            let up = up.clone();
            let r = ask(
                &mut c,
                |c| {
                    c.behaviour_mut().nilstore.upload.send_request(&peer, up);
                },
                |e| match e {
                    ProtocolsEvent::Upload(request_response::Event::Message {
                        message: Message::Response { response, .. },
                        ..
                    }) => Some(response),
                    _ => None,
                },
            )
            .await;
            r.unwrap();
        }
    }

    // The load.
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (tcp, up) = (tcp.clone(), uploads[i % 2].clone());
        tasks.push(tokio::spawn(async move {
            let mut c = client();
            c.add_peer_address(peer, tcp);
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let (mut fetch, mut upload, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            while Instant::now() < until {
                let t0 = Instant::now();
                if rng.gen_range(0..100) < upload_pct {
                    let up = up.clone();
                    let r = ask(
                        &mut c,
                        |c| {
                            c.behaviour_mut().nilstore.upload.send_request(&peer, up);
                        },
                        |e| match e {
                            ProtocolsEvent::Upload(request_response::Event::Message {
                                message: Message::Response { response, .. },
                                ..
                            }) => Some(response.map(|_| ()).map_err(|e| e.to_string())),
                            ProtocolsEvent::Upload(request_response::Event::OutboundFailure {
                                error,
                                ..
                            }) => Some(Err(error.to_string())),
                            _ => None,
                        },
                    )
                    .await;
                    match r {
                        Ok(()) => upload.push(t0.elapsed()),
                        Err(e) => errors.push(e),
                    }
                } else {
                    let req = FetchRequest {
                        deal,
                        slot: 0,
                        mdu: rng.gen_range(0..3),
                        what: FetchWhat::Blob {
                            row: rng.gen_range(0..64),
                        },
                    };
                    let r = ask(
                        &mut c,
                        |c| {
                            c.behaviour_mut().nilstore.fetch.send_request(&peer, req);
                        },
                        |e| match e {
                            ProtocolsEvent::Fetch(request_response::Event::Message {
                                message: Message::Response { response, .. },
                                ..
                            }) => {
                                Some(response.map(|r| r.bytes.0.len()).map_err(|e| e.to_string()))
                            }
                            ProtocolsEvent::Fetch(request_response::Event::OutboundFailure {
                                error,
                                ..
                            }) => Some(Err(error.to_string())),
                            _ => None,
                        },
                    )
                    .await;
                    match r {
                        Ok(n) if n == BLOB_BYTES => fetch.push(t0.elapsed()),
                        Ok(n) => errors.push(format!("{n} bytes")),
                        Err(e) => errors.push(e),
                    }
                }
            }
            (fetch, upload, errors)
        }));
    }
    let (mut fetch, mut upload, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (f, u, e) = t.await.unwrap();
        fetch.extend(f);
        upload.extend(u);
        errors.extend(e);
    }
    fetch.sort();
    upload.sort();
    println!(
        "\nload: {clients} clients for {secs} s, {upload_pct} % uploads, against one provider (TCP, loopback)\n\
         | op | requests | req/s | MiB/s | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|"
    );
    for (name, lat, bytes) in [
        ("fetch blob", &fetch, BLOB_BYTES),
        ("upload MDU (verify)", &upload, 64 * BLOB_BYTES),
    ] {
        let n = lat.len() as f64;
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} |",
            lat.len(),
            n / secs as f64,
            n * bytes as f64 / secs as f64 / (1 << 20) as f64,
            percentile(lat, 0.5).as_secs_f64() * 1e3,
            percentile(lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    println!("errors: {}", errors.len());
    assert!(
        errors.is_empty(),
        "errors under load: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(!fetch.is_empty() || upload_pct == 100);

    let _ = stop.send(());
    provider.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || drop(v)).await.unwrap();
    let _ = std::fs::remove_dir_all(&base);
}
