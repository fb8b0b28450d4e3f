//! The provider's handlers end to end over a real store and real encoded MDUs (the chain is
//! an in-memory deal table): uploads of metadata and user MDUs; after the commit, verified
//! reads (blob, range, shard, leaves) with the provider's signed `Served` statements; a
//! triple proof that verifies against the committed manifest; and refusals — unknown deal,
//! unassigned slot, replacing committed content, out-of-range reads, rate limits.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use chain_light::bytes::{Address, G1Bytes, H256};
use chain_light::crypto::SecretKey;
use chain_light::state::Deal;
use common::{deal, encoded, leaves, mdu_bytes, owner, upload, DEAL};
use nilstore_net::proto::{FetchRequest, FetchWhat, NetError, ProofRequest, BLOB_BYTES};
use nilstore_provider::service::{ChainView, Limits, Service};
use nilstore_provider::store::Store;
use wasm_core::kzg::KzgSettings;

#[derive(Clone)]
struct Chain(Arc<Mutex<Deal>>);

impl ChainView for Chain {
    fn chain_id(&self) -> u64 {
        1
    }
    fn epoch(&self) -> u64 {
        0
    }
    fn deal(&self, id: u64) -> Result<Option<Deal>, NetError> {
        Ok((id == 1).then(|| self.0.lock().unwrap().clone()))
    }
}

fn status<T>(r: Result<T, NetError>) -> u16 {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.http_status(),
    }
}

fn service(name: &str, limits: Limits) -> (Service<Chain>, Chain, SecretKey) {
    let dir = std::env::temp_dir().join(format!("nilstore-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (store, _) = Store::open(&dir).unwrap();
    let key = SecretKey::from_seed(b"provider");
    let chain = Chain(Arc::new(Mutex::new(deal(key.address()))));
    let svc = Service::new(Arc::new(store), chain.clone(), key.clone(), [3; 32], limits);
    (svc, chain, key)
}

#[test]
fn store_commit_serve_and_prove() {
    let kzg = KzgSettings::ethereum();
    let (svc, chain, key) = service("main", Limits::default());
    let slot = 1u32;
    // Metadata MDUs 0 and 1 (whole), user MDU 2 (this slot's shard).
    let meta: Vec<(Vec<u8>, Vec<wasm_core::merkle::Leaf>, [u8; 32])> = (0..2)
        .map(|i| {
            let d = mdu_bytes(100 + i);
            let (l, root) = wasm_core::slab::encode_metadata_mdu(kzg, &d).unwrap();
            (d, l, root)
        })
        .collect();
    for (i, (d, l, root)) in meta.iter().enumerate() {
        let ack = svc
            .upload("client", 0, upload(i as u32, slot, leaves(l), d))
            .unwrap();
        assert_eq!(ack.mdu_root, H256(*root));
        assert!(ack.fresh);
    }
    let e = encoded(7);
    let shard = &e.shards[slot as usize];
    let ack = svc
        .upload("client", 0, upload(2, slot, leaves(&e.leaves), shard))
        .unwrap();
    assert_eq!(ack.mdu_root, H256(e.root_fr));
    // A retry of the same shard is idempotent.
    assert!(
        !svc.upload("client", 0, upload(2, slot, leaves(&e.leaves), shard))
            .unwrap()
            .fresh
    );

    // The owner commits: manifest over the three MDU roots.
    let roots = [meta[0].2, meta[1].2, e.root_fr];
    let manifest = wasm_core::slab::manifest_polynomial(&roots).unwrap();
    let manifest_root = kzg.commit_poly(&manifest).to_compressed();
    {
        let mut d = chain.0.lock().unwrap();
        d.manifest_root = Some(G1Bytes(manifest_root));
        d.total_mdus = 3;
        d.generation = 0;
    }
    svc.store()
        .set_committed(1, &[(slot, 0), (slot, 1), (slot, 2)])
        .unwrap();

    // Reads.
    let req = |mdu, what| FetchRequest {
        deal: 1,
        slot,
        mdu,
        what,
    };
    let rows = 64 / DEAL.k;
    let r = svc
        .fetch("reader", 0, req(2, FetchWhat::Blob { row: 3 }))
        .unwrap();
    assert_eq!(r.bytes.0, shard[3 * BLOB_BYTES..4 * BLOB_BYTES]);
    let (served, sig) = &r.served[0];
    assert_eq!(served.leaf, slot * rows + 3);
    assert_eq!(served.blake3.0, e.leaves[served.leaf as usize].blake3);
    assert_eq!(
        chain_light::crypto::recover(&served.digest(1), sig).unwrap(),
        key.address()
    );
    let r = svc
        .fetch(
            "reader",
            0,
            req(
                2,
                FetchWhat::Range {
                    row: 3,
                    offset: 100,
                    len: 50,
                },
            ),
        )
        .unwrap();
    assert_eq!(r.bytes.0, shard[3 * BLOB_BYTES + 100..3 * BLOB_BYTES + 150]);
    let r = svc.fetch("reader", 0, req(2, FetchWhat::Shard)).unwrap();
    assert_eq!(&r.bytes.0, shard);
    assert_eq!(r.served.len(), rows as usize);
    let r = svc
        .fetch("reader", 0, req(0, FetchWhat::Blob { row: 63 }))
        .unwrap();
    assert_eq!(r.served[0].0.leaf, 63, "metadata: leaf = blob");
    let r = svc.fetch("reader", 0, req(2, FetchWhat::Leaves)).unwrap();
    assert_eq!(r.leaves, leaves(&e.leaves));
    assert_eq!(
        status(svc.fetch("reader", 0, req(2, FetchWhat::Blob { row: rows }))),
        400
    );
    assert_eq!(
        status(svc.fetch(
            "reader",
            0,
            req(
                2,
                FetchWhat::Range {
                    row: 0,
                    offset: 131_000,
                    len: 100
                }
            )
        )),
        400
    );
    assert_eq!(
        status(svc.fetch("reader", 0, req(3, FetchWhat::Shard))),
        404
    );

    // A proof for a challenge verifies against the committed manifest root.
    let challenge = |z: [u8; 32]| ProofRequest {
        deal: 1,
        slot,
        mdu: 2,
        row: 5,
        z: H256(z),
    };
    let z = wasm_core::curve::Fr::from_u64(123_456_789).to_bytes_be();
    let p = svc.prove("chain", 0, challenge(z)).unwrap();
    let proof = wasm_core::proof::TripleProof::from_bytes(&p.proof.0).unwrap();
    wasm_core::proof::verify(kzg, &manifest_root, &proof).unwrap();
    assert_eq!(proof.leaf_index, slot * rows + 5);
    // Non-canonical z.
    assert_eq!(status(svc.prove("chain", 0, challenge([0xff; 32]))), 400);

    // The next generation's content is staged: the committed shard is still what is served
    // and proven until the chain commits the new generation.
    let other = encoded(8);
    let mut up = upload(2, slot, leaves(&other.leaves), &other.shards[slot as usize]);
    up.generation = 1;
    let up = up.sign(&owner(), u64::MAX);
    assert!(svc.upload("client", 0, up).unwrap().fresh);
    assert_eq!(svc.store().meta(1, slot, 2).unwrap().unwrap().generation, 0);
    assert_eq!(
        svc.store().staged(1, slot, 2).unwrap().unwrap().generation,
        1
    );
    let p = svc.prove("chain", 0, challenge(z)).unwrap();
    let proof = wasm_core::proof::TripleProof::from_bytes(&p.proof.0).unwrap();
    wasm_core::proof::verify(kzg, &manifest_root, &proof).unwrap();
    // Issue 17 item 12: local bit rot is caught before a proof leaves (the chain slashes
    // half the stake for a wrong one): a flipped bit in the stored row gives an error,
    // and the repaired file proves again.
    let file = std::env::temp_dir()
        .join(format!("nilstore-svc-main-{}", std::process::id()))
        .join("shards/1")
        .join(svc.store().meta(1, slot, 2).unwrap().unwrap().file);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[5 * BLOB_BYTES + 7] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(status(svc.prove("chain", 0, challenge(z))), 500);
    bytes[5 * BLOB_BYTES + 7] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert!(svc.prove("chain", 0, challenge(z)).is_ok());
    // Unknown deal; a slot now assigned elsewhere.
    let mut up = upload(2, 2, leaves(&e.leaves), &e.shards[2]);
    up.deal = 9;
    assert_eq!(
        status(svc.upload("client", 0, up.sign(&owner(), u64::MAX))),
        404
    );
    chain.0.lock().unwrap().slots[2].provider = Address([9; 20]);
    let mut up = upload(2, 2, leaves(&e.leaves), &e.shards[2]);
    up.generation = 1;
    assert_eq!(
        status(svc.upload("client", 0, up.sign(&owner(), u64::MAX))),
        403
    );
    assert!(
        svc.store().meta(1, 2, 2).unwrap().is_none(),
        "nothing stored"
    );
}

#[test]
fn peers_are_rate_limited_independently() {
    let (svc, _, _) = service(
        "rate",
        Limits {
            rate_per_s: 1,
            burst: 2,
            ..Limits::default()
        },
    );
    let req = FetchRequest {
        deal: 1,
        slot: 0,
        mdu: 2,
        what: FetchWhat::Leaves,
    };
    for _ in 0..2 {
        assert_eq!(
            svc.fetch("a", 0, req.clone()).unwrap_err().http_status(),
            404
        );
    }
    assert!(matches!(
        svc.fetch("a", 0, req.clone()),
        Err(NetError::RateLimited { .. })
    ));
    assert_eq!(
        svc.fetch("b", 0, req.clone()).unwrap_err().http_status(),
        404
    );
    // A second later, one more token.
    assert_eq!(svc.fetch("a", 1_000, req).unwrap_err().http_status(), 404);
}
