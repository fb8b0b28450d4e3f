//! `nilstore bench ingest`: the user-visible rates through a devnet brought up in this
//! process, next to the KZG-only rate of the same machine measured in the same run (the
//! ceiling: packing is KZG-bound).
//!
//! ```text
//!  KZG only      commit every data blob of N MDUs (all cores)       the reference
//!  ingest        put FILE: pack+encrypt+commit+stripe+upload+chain  vs the reference
//!  download      get FILE: verified, K slots, decrypt                MB/s, first byte
//!  small files   put / get of 1 MiB files                            p50, p99
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{RngCore, SeedableRng};

use crate::bench::Row;
use nilstore_client::network::NetworkInfo;
use nilstore_client::remote::{Client, Event, Network, PutOptions, Tuning};
use nilstore_devnet::Options;

/// What to measure.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Size of the large file, MiB.
    pub mib: usize,
    /// Small (1 MiB) files to put and get.
    pub small: usize,
    /// Providers of the devnet.
    pub providers: usize,
    /// Data slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The KZG-only rate: payload bytes per second when committing every data blob of
/// `mdus` MDUs (the commitments packing cannot avoid).
fn kzg_only(mdus: usize) -> Result<Row> {
    let kzg = wasm_core::kzg::KzgSettings::ethereum();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut payload = vec![0u8; wasm_core::constants::PAYLOAD_BYTES_PER_MDU];
    let mut blobs = Vec::new();
    for _ in 0..mdus {
        rng.fill_bytes(&mut payload);
        blobs.push(wasm_core::packing::pack(&payload));
    }
    let refs: Vec<&[u8]> = blobs
        .iter()
        .flat_map(|m| m.chunks(wasm_core::constants::BYTES_PER_BLOB))
        .collect();
    let t0 = Instant::now();
    kzg.blobs_to_kzg_commitments(&refs)?;
    Ok(Row {
        name: format!("KZG only: commit {} blobs (reference)", refs.len()),
        per_op: t0.elapsed(),
        bytes: Some((mdus * wasm_core::constants::PAYLOAD_BYTES_PER_MDU) as u64),
        speedup: None,
    })
}

/// Shards stored and commitment batches checked, summed over the devnet's providers (from
/// their `/metrics`; a provider that does not answer counts nothing).
fn verification_batches(info: &NetworkInfo) -> (u64, u64) {
    let mut sum = (0, 0);
    for p in &info.providers {
        let base = p.http.trim_end_matches('/');
        let url = if base.starts_with("http") {
            format!("{base}/metrics")
        } else {
            format!("http://{base}/metrics")
        };
        let Some(body) = ureq::get(&url)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
        else {
            continue;
        };
        for line in body.lines() {
            let mut it = line.split_whitespace();
            let (Some(name), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
            else {
                continue;
            };
            match name {
                "nilstore_provider_shards_stored_total" => sum.0 += v,
                "nilstore_provider_verify_batches_total" => sum.1 += v,
                _ => {}
            }
        }
    }
    sum
}

/// Runs the benchmark; returns its rows (the first is the reference).
pub fn ingest(o: &IngestOptions) -> Result<Vec<Row>> {
    let dir = std::env::temp_dir().join(format!("nilstore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = tokio::sync::oneshot::channel::<NetworkInfo>();
    let opts = Options {
        dir: dir.join("net"),
        providers: o.providers,
        relays: 0,
        api: "127.0.0.1:0".parse()?,
        port_base: 0,
        chain_id: 1337,
        block_interval: Duration::from_millis(100),
        validators: 1,
        params: None,
        processes: None,
        genesis_keys: Default::default(),
        web: None,
    };
    let net = rt.spawn(nilstore_devnet::up(
        opts,
        async move {
            let _ = stopped.await;
        },
        Some(ready_tx),
    ));
    let info = rt.block_on(ready).context("the devnet did not start")?;
    let network = Network {
        path: dir.join("net").join("devnet.json"),
        info,
    };
    let devnet = network.info.clone();
    let key = network.account(None)?;
    let client = rt.block_on(Client::connect(
        network,
        key,
        dir.join("client"),
        Tuning::default(),
    ))?;
    let quiet = |_: &Event| {};

    let mut rows = Vec::new();
    let mdus = o.mib.div_ceil(8).clamp(1, 16);
    let reference = kzg_only(mdus)?;
    let ref_rate = reference.bytes.unwrap_or(0) as f64 / reference.per_op.as_secs_f64();
    let vs = |bytes: u64, t: Duration| {
        Some((
            "of the KZG-only rate".to_string(),
            (bytes as f64 / t.as_secs_f64()) / ref_rate,
        ))
    };
    rows.push(reference);

    let big = dir.join("big.bin");
    let len = o.mib << 20;
    nilstore_devnet::random_file(&big, len, 1)?;
    let put = PutOptions {
        deal: None,
        k: o.k,
        m: o.m,
        term_epochs: 10_000,
        escrow: None,
        capacity_mdus: None,
        encrypt: true,
    };
    let t0 = Instant::now();
    let r = rt.block_on(client.put_files(std::slice::from_ref(&big), None, &put, &quiet))?;
    let t_put = t0.elapsed();
    rows.push(Row {
        name: format!(
            "ingest: put {} MiB, RS({},{}), {} providers",
            o.mib, o.k, o.m, o.providers
        ),
        per_op: t_put,
        bytes: Some(len as u64),
        speedup: vs(len as u64, t_put),
    });
    let (shards, batches) = verification_batches(&devnet);
    eprintln!(
        "providers verified {shards} shards in {batches} commitment batches ({:.2} per batch)",
        shards as f64 / batches.max(1) as f64
    );
    let out = dir.join("big.out");
    let t0 = Instant::now();
    let mut sink = nilstore_client::slabdir::SingleFile::new(&out);
    let g = rt.block_on(client.get(r.deal_id, "big.bin", &mut sink, &quiet))?;
    let t_get = t0.elapsed();
    rows.push(Row {
        name: format!("download: get {} MiB, verified", o.mib),
        per_op: t_get,
        bytes: Some(len as u64),
        speedup: None,
    });
    rows.push(Row {
        name: "download: time to first verified shard".into(),
        per_op: Duration::from_secs_f64(g.first_byte_ms / 1e3),
        bytes: None,
        speedup: None,
    });
    std::fs::remove_file(&big)?;
    std::fs::remove_file(&out)?;

    let mut puts = Vec::new();
    let mut gets = Vec::new();
    let small = dir.join("small.bin");
    let small_out = dir.join("small.out");
    for i in 0..o.small.max(1) {
        nilstore_devnet::random_file(&small, 1 << 20, 100 + i as u64)?;
        let t0 = Instant::now();
        let r = rt.block_on(client.put_files(std::slice::from_ref(&small), None, &put, &quiet))?;
        puts.push(t0.elapsed());
        let t0 = Instant::now();
        let mut sink = nilstore_client::slabdir::SingleFile::new(&small_out);
        rt.block_on(client.get(r.deal_id, "small.bin", &mut sink, &quiet))?;
        gets.push(t0.elapsed());
    }
    for (what, v) in [("put", &mut puts), ("get", &mut gets)] {
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            rows.push(Row {
                name: format!("1 MiB {what} (new deal each), {name} of {}", v.len()),
                per_op: percentile(v, p),
                bytes: None,
                speedup: None,
            });
        }
    }
    drop(client);
    let _ = stop.send(());
    rt.block_on(net)??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}
