//! `nilstore bench kzg|rs|pack`: throughput tables with a reference measured in the same
//! run (c-kzg-4844 and blst's Pippenger for KZG, the naive interpolation for RS), so each
//! result is a ratio on this machine, not a number from elsewhere.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use wasm_core::constants::{BYTES_PER_BLOB, BYTES_PER_FIELD_ELEMENT, PAYLOAD_BYTES_PER_BLOB};
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::packing;
use wasm_core::rs::{naive, Code, Profile};
use wasm_core::slab::{EncodedMdu, Layout, ShardSink, SlabBuilder, SlabError};

/// One row of a results table.
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Median time per operation.
    pub per_op: Duration,
    /// Bytes processed per operation (for MB/s), if meaningful.
    pub bytes: Option<u64>,
    /// Ratio against the row's reference (reference time / this time), if any.
    pub speedup: Option<(String, f64)>,
}

/// Median of `samples` runs of `f`, each run timed as a whole and divided by `ops`.
pub fn median(samples: usize, ops: usize, mut f: impl FnMut()) -> Duration {
    mid(&interleaved(samples, ops, &mut [&mut f])[0])
}

/// Runs every function once per sample, in turn; returns each one's per-op times.
pub fn interleaved(samples: usize, ops: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Vec<Duration>> {
    let mut out = vec![Vec::with_capacity(samples); fs.len()];
    for _ in 0..samples.max(1) {
        for (f, times) in fs.iter_mut().zip(out.iter_mut()) {
            let s = Instant::now();
            f();
            times.push(s.elapsed() / ops.max(1) as u32);
        }
    }
    out
}

fn mid(t: &[Duration]) -> Duration {
    let mut t = t.to_vec();
    t.sort();
    t[t.len() / 2]
}

/// Median over samples of `reference / candidate`.
fn ratio_median(reference: &[Duration], candidate: &[Duration]) -> f64 {
    let mut r: Vec<f64> = reference
        .iter()
        .zip(candidate)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}

/// Prints a table of rows.
pub fn print(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<58} {:>12} {:>10} {:>22}",
        "operation", "per op", "MB/s", "vs reference"
    );
    println!("{}", "-".repeat(105));
    for r in rows {
        let mbs = r
            .bytes
            .map(|b| format!("{:.1}", b as f64 / r.per_op.as_secs_f64() / 1e6))
            .unwrap_or_default();
        let vs = r
            .speedup
            .as_ref()
            .map(|(n, x)| format!("{x:.2}x {n}"))
            .unwrap_or_default();
        println!("{:<58} {:>12.3?} {:>10} {:>22}", r.name, r.per_op, mbs, vs);
    }
}

/// Blobs of packed random payload (what the slab stores).
pub fn packed_blobs(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut p = vec![0u8; PAYLOAD_BYTES_PER_BLOB];
            rng.fill(&mut p[..]);
            packing::pack_blob(&p).unwrap_or_default()
        })
        .collect()
}

/// Blobs of random full-width (254-bit) field elements.
pub fn wide_blobs(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = vec![0u8; BYTES_PER_BLOB];
            rng.fill(&mut b[..]);
            for e in b.chunks_mut(BYTES_PER_FIELD_ELEMENT) {
                e[0] &= 0x3f;
            }
            b
        })
        .collect()
}

/// KZG: our fixed-base commit vs blst Pippenger vs c-kzg, proofs and verification.
pub fn kzg(samples: usize) -> Result<Vec<Row>> {
    let s = KzgSettings::ethereum();
    let t0 = Instant::now();
    let tables = s.tables();
    let setup = t0.elapsed();
    let c = c_kzg::ethereum_kzg_settings(0);
    let mut rows = vec![Row {
        name: "setup: fixed-base tables (once per process, cacheable)".into(),
        per_op: setup,
        bytes: None,
        speedup: None,
    }];
    for (label, blobs) in [("packed", packed_blobs(8, 1)), ("wide", wide_blobs(8, 2))] {
        let polys: Vec<Polynomial> = blobs
            .iter()
            .map(|b| Polynomial::from_blob(b))
            .collect::<Result<_, _>>()?;
        let cblobs: Vec<c_kzg::Blob> = blobs
            .iter()
            .map(|b| c_kzg::Blob::from_bytes(b))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        // Byte-for-byte agreement before timing anything.
        for (p, cb) in polys.iter().zip(&cblobs) {
            let theirs = c
                .blob_to_kzg_commitment(cb)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            anyhow::ensure!(
                tables.msm(&p.0).to_compressed() == *theirs.to_bytes(),
                "mismatch with c-kzg"
            );
        }
        let n = polys.len();
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        // Interleaved: every sample times each implementation back to back, so a noisy
        // neighbour slows them alike; ratios are medians of per-sample ratios.
        let t = interleaved(
            samples,
            n,
            &mut [
                &mut || {
                    for b in &cblobs {
                        let _ = c.blob_to_kzg_commitment(b);
                    }
                },
                &mut || {
                    for p in &polys {
                        std::hint::black_box(tables.msm(&p.0));
                    }
                },
                &mut || {
                    for p in &polys {
                        std::hint::black_box(s.commit_poly_pippenger(p));
                    }
                },
                &mut || {
                    let _ = s.blobs_to_kzg_commitments(&refs);
                },
            ],
        );
        let (ckzg, ours, pip, batch) = (mid(&t[0]), mid(&t[1]), mid(&t[2]), mid(&t[3]));
        let ratio = |k: usize| Some(("c-kzg".to_string(), ratio_median(&t[0], &t[k])));
        let per_blob = Some(BYTES_PER_BLOB as u64);
        rows.push(Row {
            name: format!("commit [{label}] c-kzg blob_to_kzg_commitment (ref)"),
            per_op: ckzg,
            bytes: per_blob,
            speedup: None,
        });
        rows.push(Row {
            name: format!("commit [{label}] blst Pippenger, 1 thread"),
            per_op: pip,
            bytes: per_blob,
            speedup: ratio(2),
        });
        rows.push(Row {
            name: format!("commit [{label}] ours fixed-base MSM, 1 thread"),
            per_op: ours,
            bytes: per_blob,
            speedup: ratio(1),
        });
        rows.push(Row {
            name: format!("commit [{label}] ours batch, {} threads", rayon_threads()),
            per_op: batch,
            bytes: per_blob,
            speedup: ratio(3),
        });
    }
    let blobs = packed_blobs(4, 3);
    let cblobs: Vec<c_kzg::Blob> = blobs
        .iter()
        .filter_map(|b| c_kzg::Blob::from_bytes(b).ok())
        .collect();
    let commits: Vec<[u8; 48]> = blobs
        .iter()
        .map(|b| s.blob_to_kzg_commitment(b))
        .collect::<Result<_, _>>()?;
    let proofs: Vec<[u8; 48]> = blobs
        .iter()
        .zip(&commits)
        .map(|(b, c)| s.compute_blob_kzg_proof(b, c))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    // Same interleaving as the commitments: c-kzg and ours back to back in every sample.
    let t = interleaved(
        samples,
        blobs.len(),
        &mut [
            &mut || {
                for (b, cm) in cblobs.iter().zip(&commits) {
                    let _ = c.compute_blob_kzg_proof(b, &c_kzg::Bytes48::new(*cm));
                }
            },
            &mut || {
                for (b, cm) in blobs.iter().zip(&commits) {
                    let _ = s.compute_blob_kzg_proof(b, cm);
                }
            },
            &mut || {
                for ((b, cm), p) in cblobs.iter().zip(&commits).zip(&proofs) {
                    let (cm, p) = (c_kzg::Bytes48::new(*cm), c_kzg::Bytes48::new(*p));
                    let _ = c.verify_blob_kzg_proof(b, &cm, &p);
                }
            },
            &mut || {
                for ((b, cm), p) in blobs.iter().zip(&commits).zip(&proofs) {
                    let _ = s.verify_blob_kzg_proof(b, cm, p);
                }
            },
            &mut || {
                let _ = s.verify_blob_kzg_proof_batch(&refs, &commits, &proofs);
            },
        ],
    );
    let row = |name: String, k: usize, reference: Option<(&str, usize)>| Row {
        name,
        per_op: mid(&t[k]),
        bytes: None,
        speedup: reference.map(|(n, r)| (n.to_string(), ratio_median(&t[r], &t[k]))),
    };
    rows.push(row("compute_blob_kzg_proof c-kzg (ref)".into(), 0, None));
    rows.push(row(
        "compute_blob_kzg_proof ours".into(),
        1,
        Some(("c-kzg", 0)),
    ));
    rows.push(row("verify_blob_kzg_proof c-kzg (ref)".into(), 2, None));
    rows.push(row(
        "verify_blob_kzg_proof ours".into(),
        3,
        Some(("c-kzg", 2)),
    ));
    rows.push(row(
        format!(
            "verify_blob_kzg_proof_batch ours, per blob (n={})",
            blobs.len()
        ),
        4,
        Some(("single", 3)),
    ));
    Ok(rows)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// RS over Fr: encode and worst-case reconstruct, fast path vs the naive oracle.
pub fn rs(samples: usize) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (k, m) in [(8, 4), (4, 2), (16, 16)] {
        let p = Profile::new(k, m)?;
        let code = Code::new(p);
        let data = wide_blobs(k, 5);
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let row_bytes = Some((k * BYTES_PER_BLOB) as u64);
        let fast = median(samples, 1, || {
            let _ = code.encode_row(&refs);
        });
        let slow = median(1.max(samples / 4), 1, || {
            let _ = naive::encode_row(p, &refs);
        });
        rows.push(Row {
            name: format!("RS({k},{m}) encode row, naive oracle (ref), 1 core"),
            per_op: slow,
            bytes: row_bytes,
            speedup: None,
        });
        rows.push(Row {
            name: format!("RS({k},{m}) encode row, ours, 1 core"),
            per_op: fast,
            bytes: row_bytes,
            speedup: Some(("naive".into(), slow.as_secs_f64() / fast.as_secs_f64())),
        });
        let mut all = data.clone();
        all.extend(code.encode_row(&refs)?);
        let shards: Vec<Option<&[u8]>> = all
            .iter()
            .enumerate()
            .map(|(s, b)| (s >= m.min(k)).then_some(b.as_slice()))
            .collect();
        let rec = median(samples, 1, || {
            let _ = code.reconstruct_row(&shards);
        });
        rows.push(Row {
            name: format!(
                "RS({k},{m}) reconstruct row, {} data slots lost, 1 core",
                m.min(k)
            ),
            per_op: rec,
            bytes: row_bytes,
            speedup: None,
        });
    }
    Ok(rows)
}

struct Discard(u64);

impl ShardSink for Discard {
    type Error = SlabError;
    fn user_mdu(&mut self, _: u64, e: &EncodedMdu) -> Result<(), SlabError> {
        self.0 += e.shards.iter().map(|s| s.len() as u64).sum::<u64>();
        Ok(())
    }
}

/// End-to-end packing (commit, RS, parity commitments, Merkle, manifest) in memory.
pub fn pack(mib: usize) -> Result<Vec<Row>> {
    let s = KzgSettings::ethereum();
    s.tables();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut chunk = vec![0u8; 1 << 20];
    rng.fill(&mut chunk[..]);
    let total = (mib as u64) << 20;
    let layout = Layout::new(Profile::DEFAULT, (total / 8_000_000 + 2).max(4))?;
    let t = Instant::now();
    let mut b = SlabBuilder::new(s, layout);
    let mut sink = Discard(0);
    b.begin_file("bench.bin", 0, 0)?;
    for _ in 0..mib {
        b.write(&chunk, &mut sink)?;
    }
    b.end_file()?;
    let out = b.finish(&mut sink)?;
    let el = t.elapsed();
    Ok(vec![Row {
        name: format!(
            "pack {mib} MiB, RS(8,4), {} user MDUs, {} threads",
            out.user_mdus(),
            rayon_threads()
        ),
        per_op: el,
        bytes: Some(total),
        speedup: None,
    }])
}
