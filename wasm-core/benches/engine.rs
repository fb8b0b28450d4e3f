#![allow(missing_docs)] // criterion_group! generates an undocumented public fn
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))] // criterion and c-kzg are native-only dev-dependencies
//! Criterion benches, named `module::op/key=value`, seeded inputs, references in the same
//! run: c-kzg-4844 and blst's Pippenger for commitments, the naive oracle for RS.
//! `cargo bench -p wasm-core --bench engine`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use wasm_core::constants::{BYTES_PER_BLOB, PAYLOAD_BYTES_PER_BLOB};
use wasm_core::kzg::{KzgSettings, Polynomial};
use wasm_core::packing::pack_blob;
use wasm_core::rs::{naive, Code, Profile};

fn packed_blob(seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut p = vec![0u8; PAYLOAD_BYTES_PER_BLOB];
    rng.fill(&mut p[..]);
    pack_blob(&p).expect("one blob of payload")
}

fn commit(c: &mut Criterion) {
    let s = KzgSettings::ethereum();
    let tables = s.tables();
    let blob = packed_blob(1);
    let poly = Polynomial::from_blob(&blob).expect("packed blob is canonical");
    let ckzg = c_kzg::ethereum_kzg_settings(0);
    let cblob = c_kzg::Blob::from_bytes(&blob).expect("blob length");
    let mut g = c.benchmark_group("kzg::commit");
    g.sample_size(20)
        .throughput(Throughput::Bytes(BYTES_PER_BLOB as u64));
    g.bench_function("impl=fixed-base", |b| b.iter(|| tables.msm(&poly.0)));
    g.bench_function("impl=blst-pippenger", |b| {
        b.iter(|| s.commit_poly_pippenger(&poly))
    });
    g.bench_function("impl=c-kzg", |b| {
        b.iter(|| ckzg.blob_to_kzg_commitment(&cblob))
    });
    g.finish();
}

fn rs_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("rs::encode_row");
    for (k, m) in [(8usize, 4usize), (4, 2)] {
        let p = Profile::new(k, m).expect("valid profile");
        let code = Code::new(p);
        let data: Vec<Vec<u8>> = (0..k as u64).map(packed_blob).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        g.throughput(Throughput::Bytes((k * BYTES_PER_BLOB) as u64))
            .sample_size(20);
        g.bench_with_input(
            BenchmarkId::new("impl=fast", format!("k={k},m={m}")),
            &refs,
            |b, r| b.iter(|| code.encode_row(r)),
        );
        g.bench_with_input(
            BenchmarkId::new("impl=naive", format!("k={k},m={m}")),
            &refs,
            |b, r| b.iter(|| naive::encode_row(p, r)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = commit, rs_encode
}
criterion_main!(benches);
