//! Fault injection: a child process writes, replaces, commits and removes shards in a
//! tight loop and is killed with SIGKILL at a random moment, many times over one store.
//! After every kill the store must open, recover, and hold only whole shards: every index
//! entry's file exists and hashes to the recorded BLAKE3, its bytes are exactly one version
//! the child wrote for that key, and no file or temporary is left unindexed.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chain_light::bytes::{G1Bytes, H256};
use nilstore_net::proto::{Leaf, BLOB_BYTES};
use nilstore_provider::store::{Put, PutError, ShardState, Store};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "NILSTORE_STORE_CRASH_CHILD";

/// The bytes of version `v` of a key: a header naming them, then a keyed pattern.
fn version(key: (u64, u32, u32), v: u64, blobs: usize) -> Vec<u8> {
    let mut out = vec![0u8; blobs * BLOB_BYTES];
    out[..8].copy_from_slice(&key.0.to_be_bytes());
    out[8..12].copy_from_slice(&key.1.to_be_bytes());
    out[12..16].copy_from_slice(&key.2.to_be_bytes());
    out[16..24].copy_from_slice(&v.to_be_bytes());
    out[24..28].copy_from_slice(&(blobs as u32).to_be_bytes());
    let seed = blake3::hash(&out[..28]);
    let mut xof = blake3::Hasher::new_keyed(seed.as_bytes()).finalize_xof();
    xof.fill(&mut out[28..]);
    out
}

fn leaves(v: u64) -> Vec<Leaf> {
    vec![
        Leaf {
            commitment: G1Bytes([v as u8; 48]),
            blake3: H256([v as u8; 32]),
        };
        3
    ]
}

/// The child: churns the store until killed.
fn child(dir: &Path, seed: u64) -> ! {
    let (store, _) = Store::open(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = seed << 32;
    loop {
        let key = (
            rng.gen_range(1..4u64),
            rng.gen_range(0..3u32),
            rng.gen_range(0..4u32),
        );
        match rng.gen_range(0..20) {
            0 => {
                store.remove_deal(key.0).unwrap();
            }
            1 | 2 => {
                store.set_committed(key.0, &[(key.1, key.2)]).unwrap();
            }
            3 => {
                store.promote(key.0, v).unwrap();
            }
            _ => {
                v += 1;
                let blobs = rng.gen_range(1..3);
                let data = version(key, v, blobs);
                match store.put(key, v, &leaves(v), H256([1; 32]), &data, v) {
                    Ok(Put::Stored | Put::Unchanged | Put::Staged)
                    | Err(PutError::Committed { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

#[test]
fn kill_9_at_random_points_never_tears_the_store() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let seed = std::env::var("NILSTORE_STORE_CRASH_SEED")
            .unwrap()
            .parse()
            .unwrap();
        child(Path::new(&dir), seed);
    }
    let dir = std::env::temp_dir().join(format!("nilstore-store-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let iterations: u64 = std::env::var("NILSTORE_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut repaired = 0;
    let mut seen_entries = 0;
    for i in 0..iterations {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_at_random_points_never_tears_the_store",
                "--nocapture",
            ])
            .env(CHILD_ENV, &dir)
            .env("NILSTORE_STORE_CRASH_SEED", (i + 1).to_string())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..200)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the child must die by the signal, not finish"
        );

        let (store, rec) = Store::open(&dir).unwrap();
        if rec != Default::default() {
            repaired += 1;
        }
        assert!(
            store.scrub().unwrap().is_empty(),
            "iteration {i}: a stored shard is torn"
        );
        for deal in store.deals().unwrap() {
            for ((slot, mdu), meta) in store.deal_shards(deal).unwrap() {
                seen_entries += 1;
                let key = (deal, slot, mdu);
                let size = meta.blobs as usize * BLOB_BYTES;
                let bytes = store.read(deal, slot, mdu, 0, size).unwrap().unwrap();
                // Exactly the version its header names, and the index agrees.
                let v = u64::from_be_bytes(bytes[16..24].try_into().unwrap());
                assert_eq!(
                    bytes,
                    version(key, v, meta.blobs as usize),
                    "iteration {i}: {key:?}"
                );
                assert_eq!(meta.generation, v);
                assert_eq!(meta.leaves, leaves(v));
                assert!(matches!(
                    meta.state,
                    ShardState::Pending | ShardState::Committed
                ));
            }
        }
        // Nothing unindexed survives recovery.
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        let files: usize = std::fs::read_dir(dir.join("shards"))
            .unwrap()
            .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum();
        let entries: usize = store
            .deals()
            .unwrap()
            .iter()
            .map(|d| store.deal_shards(*d).unwrap().len() + store.deal_staged(*d).unwrap().len())
            .sum();
        assert_eq!(files, entries, "iteration {i}: files without index entries");
    }
    println!(
        "{iterations} kills; recovery cleaned up after {repaired}; {seen_entries} shard checks"
    );
    assert!(seen_entries > 0, "the child never stored anything");
    let _ = std::fs::remove_dir_all(&dir);
}
