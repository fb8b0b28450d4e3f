//! Chain benchmarks (issue 3), each against a reference in the same run:
//!
//! * `proofs`: storage-proof verification as a block does it — one batch of N triple proofs
//!   (`proof::verify_batch`, one random linear combination, two pairings) vs N single
//!   verifications, samples interleaved. Goal ≥ 3× per proof.
//! * `throughput`: the embedded single validator (the real binary) under a stream of signed
//!   transactions over HTTP — transfers, and a mix with content commits — reporting
//!   sustained transactions/s and p50/p99 submit-to-finalized latency.
//!
//! `cargo bench -p chain-light --bench chain [-- proofs|throughput] [--n N] [--txs T]`

#![allow(clippy::unwrap_used)]

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/common/mod.rs"]
mod common;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use chain_light::bytes::{Address, G1Bytes};
    use chain_light::crypto::SecretKey;
    use chain_light::tx::{Msg, SignedTx, Tx};
    use serde_json::Value;
    use wasm_core::kzg::KzgSettings;
    use wasm_core::proof::{self, TripleProof};

    use super::common::{content, World};

    fn arg(name: &str, default: usize) -> usize {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
        v.sort();
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    /// N real triple proofs (challenges of a real deal) verified singly and in one batch.
    pub fn proofs() {
        let n = arg("--n", 64);
        let samples = arg("--samples", 7);
        let c = content();
        let mut w = World::new(|p| p.epoch_blocks = 8);
        w.register_all();
        let id = w.deal_with_content(c, 20, 10_000_000_000);
        let e = w.chain.state.g.epoch;
        w.advance_to_epoch(e + 1);
        let st = &w.chain.state;
        let d = st.deals.get(&id).unwrap();
        let items: Vec<TripleProof> = (0..n as u32)
            .map(|i| {
                let slot = i % 3;
                let ch = st.challenge(d, id, slot, i, &st.g.beacon).unwrap();
                c.prove(slot, &ch)
            })
            .collect();
        let root = c.root().0;
        let kzg = KzgSettings::ethereum();
        let refs: Vec<(&[u8; 48], &TripleProof)> = items.iter().map(|p| (&root, p)).collect();
        let mut single = Vec::new();
        let mut batch = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            for p in &items {
                proof::verify(kzg, &root, p).unwrap();
            }
            single.push(t.elapsed() / n as u32);
            let t = Instant::now();
            proof::verify_batch(kzg, &refs).unwrap();
            batch.push(t.elapsed() / n as u32);
        }
        let ratios: Vec<f64> = single
            .iter()
            .zip(&batch)
            .map(|(s, b)| s.as_secs_f64() / b.as_secs_f64())
            .collect();
        let mut r = ratios.clone();
        r.sort_by(|a, b| a.total_cmp(b));
        println!(
            "\nstorage-proof verification, N = {n} triple proofs, {samples} interleaved samples"
        );
        println!("| method | per proof (median) | speed-up |");
        println!("|---|---|---|");
        println!(
            "| single `proof::verify` ×N (reference) | {:.3} ms | 1.00× |",
            pct(single, 0.5).as_secs_f64() * 1e3
        );
        println!(
            "| `proof::verify_batch` (one RLC, 2 pairings) | {:.3} ms | {:.2}× |",
            pct(batch, 0.5).as_secs_f64() * 1e3,
            r[r.len() / 2]
        );
    }

    struct Validator(Child, u16);

    impl Drop for Validator {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start(home: &Path) -> Validator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_nilstore-validator"))
            .args(["start", "--home"])
            .arg(home)
            .args(["--api", &format!("127.0.0.1:{port}"), "--block-ms", "250"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let v = Validator(child, port);
        let t0 = Instant::now();
        while ureq::get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_err()
        {
            assert!(t0.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(100));
        }
        v
    }

    fn keys(home: &Path) -> Vec<SecretKey> {
        let j: Value =
            serde_json::from_slice(&std::fs::read(home.join("dev-keys.json")).unwrap()).unwrap();
        j.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = a["secret"].as_str().unwrap();
                SecretKey::from_bytes(&hex::decode(&s[2..]).unwrap().try_into().unwrap()).unwrap()
            })
            .collect()
    }

    fn post(port: u16, tx: &SignedTx) -> bool {
        ureq::post(&format!("http://127.0.0.1:{port}/tx"))
            .send_string(&serde_json::to_string(tx).unwrap())
            .is_ok()
    }

    /// Watches the SSE feed; records when each transaction hash was finalized.
    fn watch(port: u16, seen: Arc<Mutex<HashMap<String, Instant>>>) {
        std::thread::spawn(move || {
            let r = ureq::get(&format!("http://127.0.0.1:{port}/events"))
                .call()
                .unwrap();
            for line in BufReader::new(r.into_reader()).lines() {
                let Ok(line) = line else { return };
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                let now = Instant::now();
                let mut s = seen.lock().unwrap();
                for t in v["txs"].as_array().into_iter().flatten() {
                    if let Some(h) = t["hash"].as_str() {
                        s.insert(h.to_string(), now);
                    }
                }
            }
        });
    }

    fn run_mix(label: &str, port: u16, chain_id: u64, txs: Vec<SignedTx>, rows: &mut Vec<String>) {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        watch(port, seen.clone());
        std::thread::sleep(Duration::from_millis(300));
        let total = txs.len();
        let hashes: Vec<String> = txs.iter().map(|t| t.hash().to_hex()).collect();
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let t0 = Instant::now();
        // Two submitters (the machine has 2 cores and the validator shares them).
        let chunks: Vec<Vec<SignedTx>> = {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for t in txs {
                // Keep each sender's nonces on one submitter, in order.
                if t.tx.from.0[0] % 2 == 0 {
                    a.push(t)
                } else {
                    b.push(t)
                }
            }
            vec![a, b]
        };
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    for t in chunk {
                        let h = t.hash().to_hex();
                        let now = Instant::now();
                        while !post(port, &t) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        sent.lock().unwrap().insert(h, now);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = hashes
                .iter()
                .filter(|h| seen.lock().unwrap().contains_key(*h))
                .count();
            if done == total || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = seen.lock().unwrap();
        let sent = sent.lock().unwrap();
        let last = hashes
            .iter()
            .filter_map(|h| seen.get(h))
            .max()
            .copied()
            .unwrap_or(t0);
        let lat: Vec<Duration> = hashes
            .iter()
            .filter_map(|h| Some(seen.get(h)?.duration_since(*sent.get(h)?)))
            .collect();
        let secs = last.duration_since(t0).as_secs_f64();
        rows.push(format!(
            "| {label} | {} / {total} | {:.1} s | {:.0} | {:.0} ms | {:.0} ms |",
            lat.len(),
            secs,
            lat.len() as f64 / secs,
            pct(lat.clone(), 0.5).as_secs_f64() * 1e3,
            pct(lat, 0.99).as_secs_f64() * 1e3
        ));
        let _ = chain_id;
    }

    pub fn throughput() {
        let n = arg("--txs", 4000);
        let home = std::env::temp_dir().join(format!("nilstore-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let v = start(&home);
        let port = v.1;
        let status: Value = ureq::get(&format!("http://127.0.0.1:{port}/status"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let chain_id = status["chain_id"].as_u64().unwrap();
        let ks = keys(&home);
        let mut nonces = vec![0u64; ks.len()];
        let mut sign = |i: usize, msg: Msg| {
            let t = Tx {
                chain_id,
                from: ks[i].address(),
                nonce: nonces[i],
                fee: 1_000,
                msg,
            }
            .sign(&ks[i]);
            nonces[i] += 1;
            t
        };
        let senders = 12;
        let mut rows = Vec::new();
        // Mix 1: transfers.
        let txs: Vec<SignedTx> = (0..n)
            .map(|i| {
                sign(
                    i % senders,
                    Msg::Transfer {
                        to: Address([(i % 250) as u8 + 1; 20]),
                        amount: 1,
                    },
                )
            })
            .collect();
        run_mix("transfers", port, chain_id, txs, &mut rows);
        // Setup for mix 2: three providers (dev13..15) and one deal per sender.
        let setup: Vec<SignedTx> = (13..16)
            .map(|i| {
                let op = ks[i].address();
                sign(
                    i,
                    Msg::RegisterProvider {
                        stake: 1_000_000_000,
                        capacity_mdus: 1_000_000,
                        operator: op,
                        peer_id: format!("bench-provider-{i}"),
                        endpoints: vec!["/ip4/127.0.0.1/tcp/1".into()],
                    },
                )
            })
            .collect();
        run_mix("(setup: providers)", port, chain_id, setup, &mut Vec::new());
        let deals: Vec<SignedTx> = (0..senders)
            .map(|i| {
                sign(
                    i,
                    Msg::CreateDeal {
                        k: 2,
                        m: 1,
                        capacity_mdus: 3_000,
                        term_epochs: 1_000,
                        escrow: 100_000_000_000_000_000,
                        spend_cap: 0,
                    },
                )
            })
            .collect();
        run_mix("(setup: deals)", port, chain_id, deals, &mut Vec::new());
        // Deal ids are 1..=senders in submission order per sender: look them up.
        let mut deal_of = HashMap::new();
        for id in 1..=senders as u64 {
            let d: Value = ureq::get(&format!("http://127.0.0.1:{port}/state/deal/{id}"))
                .call()
                .unwrap()
                .into_json()
                .unwrap();
            let owner = d["value"]["owner"].as_str().unwrap().to_string();
            deal_of.insert(owner, id);
        }
        let root = G1Bytes(content_free_root());
        let w = wasm_core::slab::Layout::new(wasm_core::rs::Profile::new(2, 1).unwrap(), 3_000)
            .unwrap()
            .witness_mdus;
        let mut gen = vec![0u64; senders];
        let txs: Vec<SignedTx> = (0..n)
            .map(|i| {
                let s = i % senders;
                if i % 2 == 0 {
                    sign(
                        s,
                        Msg::Transfer {
                            to: Address([9; 20]),
                            amount: 1,
                        },
                    )
                } else {
                    let deal = deal_of[&ks[s].address().to_hex()];
                    let g = gen[s];
                    gen[s] += 1;
                    sign(
                        s,
                        Msg::CommitContent {
                            deal,
                            generation: g,
                            manifest_root: root,
                            total_mdus: 2 + w + g,
                            size_bytes: 1,
                        },
                    )
                }
            })
            .collect();
        run_mix(
            "50 % transfers, 50 % commit_content",
            port,
            chain_id,
            txs,
            &mut rows,
        );
        println!("\nembedded validator (nilstore-validator, 1 process, 250 ms blocks), {n} txs per mix, 12 senders");
        println!("| mix | finalized | time | tx/s | p50 latency | p99 latency |");
        println!("|---|---|---|---|---|---|");
        for r in rows {
            println!("{r}");
        }
        drop(v);
        let _ = std::fs::remove_dir_all(&home);
    }

    /// A valid G1 point to commit as a manifest root (the generator).
    fn content_free_root() -> [u8; 48] {
        wasm_core::curve::G1::generator()
            .to_affine()
            .to_compressed()
    }
}

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let args: Vec<String> = std::env::args().collect();
        let want = |n: &str| {
            !args.iter().any(|a| a == "proofs" || a == "throughput") || args.iter().any(|a| a == n)
        };
        if want("proofs") {
            native::proofs();
        }
        if want("throughput") {
            native::throughput();
        }
    }
}
