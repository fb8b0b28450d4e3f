//! `nilstore devnet up` in-process: a validator, two providers and a relay come up,
//! register on chain and describe themselves in `devnet.json`; stopped and started again on
//! the same directory (new ports), the chain resumes and the providers' endpoints follow.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nilstore_client::network::NetworkInfo;
use nilstore_devnet::{up, Options};
use nilstore_net::chain::{read_genesis, HttpChain};

async fn run_once(opts: &Options) -> (NetworkInfo, u64) {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, ready) = tokio::sync::oneshot::channel();
    let net = tokio::spawn(up(
        opts.clone(),
        async move {
            let _ = rx.await;
        },
        Some(tx),
    ));
    let info = match tokio::time::timeout(Duration::from_secs(180), ready)
        .await
        .unwrap()
    {
        Ok(info) => info,
        Err(_) => panic!("the devnet stopped: {:?}", net.await),
    };
    assert_eq!(
        NetworkInfo::read(&opts.dir.join("devnet.json")).unwrap(),
        info
    );
    let i = info.clone();
    let height = tokio::task::spawn_blocking(move || {
        let chain = HttpChain::new(&i.api, &read_genesis(&i.genesis).unwrap()).unwrap();
        let h = chain.sync().unwrap();
        for p in &i.providers {
            let rec = chain.provider(&p.account).unwrap().expect("registered");
            assert_eq!(rec.peer_id, p.peer_id);
            assert_eq!(rec.endpoints, p.addrs, "endpoints follow the running node");
            let health: serde_json::Value = ureq::get(&format!("http://{}/health", p.http))
                .call()
                .unwrap()
                .into_json()
                .unwrap();
            assert_eq!(health["status"], "ok");
        }
        for r in &i.relays {
            let rec = chain.deputy(&r.account).unwrap().expect("registered");
            assert_eq!(rec.peer_id, r.peer_id);
        }
        h
    })
    .await
    .unwrap();
    let _ = stop.send(());
    net.await.unwrap().unwrap();
    (info, height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devnet_comes_up_registers_and_restarts() {
    let dir = std::env::temp_dir().join(format!("nilstore-devnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        dir: dir.clone(),
        providers: 2,
        relays: 1,
        api: "127.0.0.1:0".parse().unwrap(),
        port_base: 0,
        validators: 1,
        params: None,
        processes: None,
        genesis_keys: Default::default(),
        web: None,
        chain_id: 4242,
        block_interval: Duration::from_millis(100),
    };
    let (first, h1) = run_once(&opts).await;
    assert_eq!(first.providers.len(), 2);
    assert_eq!(first.relays.len(), 1);
    assert_eq!(first.chain_id, 4242);
    // Again on the same state: the chain resumes past where it was; the same identities
    // re-register their new endpoints.
    let (second, h2) = run_once(&opts).await;
    assert!(h2 > h1, "the chain resumed ({h1} → {h2})");
    for (a, b) in first.providers.iter().zip(&second.providers) {
        assert_eq!((a.account, &a.peer_id), (b.account, &b.peer_id));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
