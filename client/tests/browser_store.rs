//! The client's store seam in headless Chromium: `OpfsStore` (the origin private file
//! system) keeps the same contract as the native stores — atomic `put`, ordered `append`,
//! `list` of the names directly under a prefix, `remove`, `remove_all`, bad keys refused
//! and changing nothing, concurrent appends all landing — and its records outlive the
//! handle that wrote them. `MemStore`
//! runs the same contract on the page.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use nilstore_client::store::{Kind, MemStore, OpfsStore, Store, StoreError};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The contract every store keeps, from empty.
async fn contract(s: &dyn Store) {
    assert_eq!(
        s.read("uploads/j/job.json", Kind::Plain).await.unwrap(),
        None
    );
    assert_eq!(s.list("uploads").await.unwrap(), Vec::<String>::new());
    s.put("uploads/j/job.json", b"one", Kind::Plain)
        .await
        .unwrap();
    s.put("uploads/j/job.json", b"two", Kind::Plain)
        .await
        .unwrap();
    assert_eq!(
        s.read("uploads/j/job.json", Kind::Plain).await.unwrap(),
        Some(b"two".to_vec())
    );
    // A shorter record replaces a longer one whole.
    s.put("uploads/j/job.json", b"2", Kind::Plain)
        .await
        .unwrap();
    assert_eq!(
        s.read("uploads/j/job.json", Kind::Plain).await.unwrap(),
        Some(b"2".to_vec())
    );
    s.append("uploads/j/acked.log", b"a\n").await.unwrap();
    s.append("uploads/j/acked.log", b"b\n").await.unwrap();
    assert_eq!(
        s.read("uploads/j/acked.log", Kind::Plain).await.unwrap(),
        Some(b"a\nb\n".to_vec())
    );
    s.put("uploads/k/job.json", b"x", Kind::Plain)
        .await
        .unwrap();
    // A sibling whose name extends a listed one is not under it.
    s.put("uploads-old/z", b"x", Kind::Plain).await.unwrap();
    assert_eq!(s.list("uploads").await.unwrap(), vec!["j", "k"]);
    assert_eq!(
        s.list("uploads/j").await.unwrap(),
        vec!["acked.log", "job.json"]
    );
    assert!(s.remove("uploads/k/job.json").await.unwrap());
    assert!(!s.remove("uploads/k/job.json").await.unwrap());
    assert!(!s.remove("nowhere/at/all").await.unwrap());
    s.remove_all("uploads/j").await.unwrap();
    s.remove_all("uploads/j").await.unwrap();
    assert_eq!(
        s.read("uploads/j/job.json", Kind::Plain).await.unwrap(),
        None
    );
    assert_eq!(s.list("uploads-old").await.unwrap(), vec!["z"]);
    // Secrets read back as they were written.
    s.put("keys/1-deal-2.key", b"k", Kind::Secret)
        .await
        .unwrap();
    assert_eq!(
        s.read("keys/1-deal-2.key", Kind::Secret).await.unwrap(),
        Some(b"k".to_vec())
    );
    // Bad keys are refused and change nothing.
    for bad in ["../escape", "", "a//b", "/abs", "a b"] {
        assert!(
            matches!(
                s.put(bad, b"x", Kind::Plain).await,
                Err(StoreError::BadKey(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(s.list(bad).await, Err(StoreError::BadKey(_))));
    }
    assert_eq!(s.list("uploads-old").await.unwrap(), vec!["z"]);
    // Concurrent appends (acknowledgements of shards sent in parallel) all land.
    let lines: Vec<String> = (0..24).map(|i| format!("{i}\n")).collect();
    futures::future::join_all(
        lines
            .iter()
            .map(|l| s.append("uploads/c/acked.log", l.as_bytes())),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .unwrap();
    let got = s
        .read("uploads/c/acked.log", Kind::Plain)
        .await
        .unwrap()
        .unwrap();
    let mut got: Vec<u32> = String::from_utf8(got)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..24).collect::<Vec<u32>>(), "appends were lost");
    // A record of 8 MiB (a packed MDU) round-trips.
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 + (i >> 13)) as u8).collect();
    s.put("uploads/big/mdu", &big, Kind::Plain).await.unwrap();
    assert!(
        s.read("uploads/big/mdu", Kind::Plain)
            .await
            .unwrap()
            .unwrap()
            == big
    );
}

#[wasm_bindgen_test]
async fn mem_store_keeps_the_contract() {
    contract(&MemStore::default()).await;
}

#[wasm_bindgen_test]
async fn opfs_store_keeps_the_contract_and_its_records_outlive_the_handle() {
    let mut id = [0u8; 8];
    getrandom_02::getrandom(&mut id).unwrap();
    let root = format!("test-{}", hex::encode(id));
    let s = OpfsStore::open(&root).await.unwrap();
    contract(&s).await;
    s.append("uploads/j/acked.log", b"0 1 x\n").await.unwrap();
    drop(s);
    // Another handle on the same directory (a new page of the origin opens it so).
    let again = OpfsStore::open(&root).await.unwrap();
    assert_eq!(
        again.read("keys/1-deal-2.key", Kind::Secret).await.unwrap(),
        Some(b"k".to_vec())
    );
    assert_eq!(
        again
            .read("uploads/j/acked.log", Kind::Plain)
            .await
            .unwrap(),
        Some(b"0 1 x\n".to_vec())
    );
    // Other directories of the origin are other stores.
    let other = OpfsStore::open(&format!("{root}-other")).await.unwrap();
    assert_eq!(other.list("keys").await.unwrap(), Vec::<String>::new());
    assert!(matches!(
        OpfsStore::open("../x").await,
        Err(StoreError::BadKey(_))
    ));
}
