//! The provider daemon end to end, in-process, on loopback: a real validator, the provider
//! (libp2p + HTTP), and a client swarm. The provider registers; a deal is placed on it; the
//! owner uploads the metadata MDUs and a user MDU over libp2p (verified, stored, acked with
//! the MDU root); a forged upload is refused with a typed error and stores nothing; the
//! blob comes back over libp2p (with the provider's signed `Served`) and a range over HTTP;
//! `/metrics` counts the stored bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use chain_light::block::Genesis;
use chain_light::tx::Msg;
use common::{ask, client, dev_key, included, leaves, mdu_bytes, submit, validator};
use nilstore_net::behaviour::ProtocolsEvent;
use nilstore_net::libp2p::request_response::{self, Message};
use nilstore_net::native::ListenPorts;
use nilstore_net::proto::{
    FetchRequest, FetchWhat, NetError, UploadAck, UploadAuth, UploadShard, BLOB_BYTES,
};
use nilstore_provider::daemon::{run, Options, Profile};
use nilstore_provider::service::Limits;
use wasm_core::kzg::KzgSettings;

const CHAIN: u64 = 5_151;

fn upload_answer(e: ProtocolsEvent) -> Option<Result<UploadAck, NetError>> {
    match e {
        ProtocolsEvent::Upload(request_response::Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => Some(response),
        ProtocolsEvent::Upload(request_response::Event::OutboundFailure { error, .. }) => {
            panic!("upload failed: {error:?}")
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_daemon_stores_verified_uploads_and_serves_them() {
    let base = std::env::temp_dir().join(format!("nilstore-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let vhome = base.join("validator");
    let v = validator(&vhome, CHAIN);
    let api = v.api;
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(vhome.join("genesis.json")).unwrap()).unwrap();
    let (pkey, owner) = (dev_key(&vhome, 0), dev_key(&vhome, 1));

    // The provider.
    let (stop_p, prx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let popts = Options {
        home: base.join("provider"),
        chain: format!("http://{api}"),
        genesis,
        key: pkey.clone(),
        profile: Profile::Devnet,
        listen_ip: "127.0.0.1".parse().unwrap(),
        ports: ListenPorts::default(),
        http: "127.0.0.1:0".parse().unwrap(),
        limits: Limits::default(),
        wss: None,
        uncommitted_ttl: nilstore_provider::worker::UNCOMMITTED_TTL,
        trusted_proxy: None,
    };
    let provider = tokio::spawn(run(
        popts,
        async move {
            let _ = prx.await;
        },
        Some(started_tx),
    ));
    let p = started.await.unwrap();

    // Register, then a K = 1 deal placed on the only provider.
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
            term_epochs: 5,
            escrow: 1_000_000_000_000,
            spend_cap: 1_000_000_000,
        },
    );
    // The deal's id, from its creation event once included.
    let created = tokio::task::block_in_place(|| included(api, &create));
    let deal_id = created["result"]["events"][0]["deal"].as_u64().unwrap();
    let at = created["height"].as_u64().unwrap();
    // The provider's light client has verified the block with the deal.
    let t0 = Instant::now();
    loop {
        let h: serde_json::Value = ureq::get(&format!("http://{}/health", p.http))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if h["chain_height"].as_u64().unwrap() >= at {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "provider stuck at {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut c = client();
    let tcp = p
        .addrs
        .iter()
        .find(|a| a.to_string().contains("/tcp/") && !a.to_string().contains("/ws"))
        .unwrap()
        .clone();
    c.add_peer_address(p.peer_id, tcp);
    let kzg = KzgSettings::ethereum();
    let shard_of = |mdu: u32, data: &[u8], l: &[wasm_core::merkle::Leaf]| UploadShard {
        chain_id: CHAIN,
        deal: deal_id,
        slot: 0,
        mdu,
        generation: 0,
        leaves: leaves(l),
        blobs: data
            .chunks(BLOB_BYTES)
            .map(|b| chain_light::bytes::Blob(b.to_vec()))
            .collect(),
        auth: UploadAuth {
            signer: chain_light::bytes::Address::ZERO,
            expires_ms: 0,
            sig: chain_light::bytes::Sig65([0; 65]),
        },
    };
    // A K = 1 deal with capacity 4 has one witness MDU: MDUs 0 and 1 are metadata, 2 is user
    // data (all 64 blobs on the one slot, the same layout as metadata).
    let mut stored = 0;
    for mdu in 0..3u32 {
        let data = mdu_bytes(10 + u64::from(mdu));
        let (l, root) = wasm_core::slab::encode_metadata_mdu(kzg, &data).unwrap();
        let up = shard_of(mdu, &data, &l).sign(&owner, u64::MAX);
        let ack = ask(
            &mut c,
            |c| {
                c.behaviour_mut()
                    .nilstore
                    .upload
                    .send_request(&p.peer_id, up);
            },
            upload_answer,
        )
        .await;
        let ack = ack.unwrap();
        assert_eq!(ack.mdu_root.0, root);
        stored += ack.bytes;
    }
    // Forged: signed by someone else claiming to be the owner.
    let data = mdu_bytes(99);
    let (l, _) = wasm_core::slab::encode_metadata_mdu(kzg, &data).unwrap();
    let mut forged = shard_of(3, &data, &l).sign(&pkey, u64::MAX);
    forged.auth.signer = owner.address();
    let r = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .upload
                .send_request(&p.peer_id, forged);
        },
        upload_answer,
    )
    .await;
    assert!(matches!(r, Err(NetError::Forbidden(_))), "{r:?}");

    // Read back over libp2p: a blob with the provider's signed statement.
    let want = &mdu_bytes(12)[5 * BLOB_BYTES..6 * BLOB_BYTES];
    let req = FetchRequest {
        deal: deal_id,
        slot: 0,
        mdu: 2,
        what: FetchWhat::Blob { row: 5 },
    };
    let got = ask(
        &mut c,
        |c| {
            c.behaviour_mut()
                .nilstore
                .fetch
                .send_request(&p.peer_id, req);
        },
        |e| match e {
            ProtocolsEvent::Fetch(request_response::Event::Message {
                message: Message::Response { response, .. },
                ..
            }) => Some(response),
            _ => None,
        },
    )
    .await
    .unwrap();
    assert_eq!(got.bytes.0, want);
    let (served, sig) = &got.served[0];
    assert_eq!(
        chain_light::crypto::recover(&served.digest(CHAIN), sig).unwrap(),
        pkey.address()
    );
    // And a range over HTTP; an out-of-range read is a JSON 400.
    let r = ureq::get(&format!(
        "http://{}/v1/shards/{deal_id}/0/2?row=5&offset=10&len=20",
        p.http
    ))
    .call()
    .unwrap();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
    assert_eq!(body, want[10..30]);
    match ureq::get(&format!("http://{}/v1/shards/{deal_id}/0/2?row=64", p.http)).call() {
        Err(ureq::Error::Status(400, r)) => {
            let v: serde_json::Value = r.into_json().unwrap();
            assert!(v["error"]["message"].as_str().unwrap().contains("row"));
        }
        other => panic!("{other:?}"),
    }
    let m = ureq::get(&format!("http://{}/metrics", p.http))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        m.contains(&format!("nilstore_provider_bytes_stored {stored}")),
        "{m}"
    );
    assert!(
        m.contains("nilstore_provider_uploads_refused_total 1"),
        "{m}"
    );

    let _ = stop_p.send(());
    provider.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || drop(v)).await.unwrap();
    let _ = std::fs::remove_dir_all(&base);
}
