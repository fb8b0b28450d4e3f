//! `nilstore`: the NilStore command line.
//!
//! ```text
//! nilstore kzg commit --in FILE                  N blobs in, N commitments out
//! nilstore kzg vector FUNCTION PATH/data.yaml    one EIP-4844 vector, output as JSON
//! nilstore slab pack FILE... --out DIR [--k K --m M] [--key-file F]
//! nilstore slab verify DIR | unpack DIR --out DIR2 | inspect DIR
//! nilstore bench kzg|rs|pack
//! nilstore demo                                  pack, verify, lose M slots, rebuild
//! nilstore devnet up [--dir D] [--providers N] [--relays R]   a local network, one process
//! nilstore put FILE... [--deal ID | --k K --m M --term T --escrow X] [--as PATH] [--json]
//! nilstore get DEAL PATH --out FILE | ls DEAL | rm DEAL PATH... | mirror DEAL DIR | resume
//! nilstore deal create|show|extend|cancel|fund | provider register|status | delegate DEAL
//! ```

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nilstore_cli::{bench, vectors};
use nilstore_client::slabdir;
use rand::RngCore;
use wasm_core::constants::BYTES_PER_BLOB;
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::Profile;

#[cfg(feature = "network")]
mod netcli;

#[derive(Parser)]
#[command(
    name = "nilstore",
    version,
    about = "NilStore: verifiable storage from the browser"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[cfg(feature = "network")]
    #[command(flatten)]
    net: netcli::NetArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// EIP-4844 KZG.
    Kzg {
        #[command(subcommand)]
        cmd: KzgCmd,
    },
    /// Slabs: pack files into per-slot directories, verify, unpack, inspect.
    Slab {
        #[command(subcommand)]
        cmd: SlabCmd,
    },
    /// Throughput tables with a reference measured in the same run.
    Bench {
        /// What to measure.
        what: BenchWhat,
        /// Timed samples per row (median reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// MiB to pack for `pack` (the large file of `ingest`).
        #[arg(long, default_value_t = 64)]
        mib: usize,
        /// `ingest`: 1 MiB files to put and get for the latency percentiles.
        #[arg(long, default_value_t = 20)]
        small: usize,
        /// `ingest`: providers of the in-process devnet.
        #[arg(long, default_value_t = 6)]
        providers: usize,
        /// `ingest`: data slots.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// `ingest`: parity slots.
        #[arg(long, default_value_t = 2)]
        m: u32,
    },
    /// The main demo: pack a file, verify it, lose M slots, rebuild it, print timings.
    Demo {
        /// Size of the generated input file in MiB.
        #[arg(long, default_value_t = 24)]
        size_mib: usize,
        /// Working directory (default: a fresh one under the system temp dir).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Pack this file instead of a generated one.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    #[cfg(feature = "network")]
    #[command(flatten)]
    Net(netcli::NetCmd),
    /// A local network: validator, providers and relays in this process.
    #[cfg(feature = "network")]
    Devnet {
        #[command(subcommand)]
        cmd: DevnetCmd,
    },
}

#[cfg(feature = "network")]
#[derive(Subcommand)]
enum DevnetCmd {
    /// Start (or restart) the devnet in the foreground; writes DIR/devnet.json.
    Up {
        /// State directory.
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
        /// Storage providers.
        #[arg(long, default_value_t = 6)]
        providers: usize,
        /// Relays (deputies).
        #[arg(long, default_value_t = 1)]
        relays: usize,
        /// Chain parameters for a fresh chain: a JSON object merged into the devnet
        /// defaults, e.g. '{"min_fee": 5000, "price_per_blob": 1000}'.
        #[arg(long)]
        params: Option<String>,
        /// Validators: 1 embedded, or more on loopback (simplex over authenticated p2p;
        /// `--api` is validator 0's, the others take the next ports).
        #[arg(long, default_value_t = 1)]
        validators: usize,
        /// Validator API address.
        #[arg(long, default_value = "127.0.0.1:26657")]
        api: std::net::SocketAddr,
        /// First port of the daemons (each takes 5 from base + 10·i; 0: any).
        #[arg(long, default_value_t = 27000)]
        port_base: u16,
        /// Chain id of a fresh chain.
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// Minimum time between blocks, ms.
        #[arg(long, default_value_t = 250)]
        block_ms: u64,
        /// Run providers and relays as child processes (`nilstore-provider` and
        /// `nilstore-relay` next to this binary), so each can be stopped on its own.
        #[arg(long)]
        processes: bool,
        /// Derive a fresh chain's keys (validators, dev accounts) from public seeds, so
        /// that runs are reproducible. Anyone can then sign for them: demos only. Without
        /// it they come from OS randomness.
        #[arg(long)]
        dev_keys: bool,
        /// Serve the web app built in this directory (`scripts/build-web.sh`), with a
        /// faucet, and print its URL.
        #[arg(long)]
        web: Option<PathBuf>,
        /// Address of the web app.
        #[arg(long, default_value = "127.0.0.1:8080")]
        web_addr: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum KzgCmd {
    /// Commit to N concatenated 131,072-byte blobs; prints one 0x-hex commitment a line.
    Commit {
        /// Input file.
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Run one consensus-spec test vector and print its output as JSON.
    Vector {
        /// blob_to_kzg_commitment, compute_kzg_proof, compute_blob_kzg_proof,
        /// verify_kzg_proof, verify_blob_kzg_proof or verify_blob_kzg_proof_batch.
        function: String,
        /// The vector's data.yaml.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum SlabCmd {
    /// Pack files into DIR/slot-<s>/ directories.
    Pack {
        /// Files to pack (stored under their file names).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Data slots K.
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// Parity slots M.
        #[arg(long, default_value_t = 4)]
        m: usize,
        /// 32-byte root secret (raw or hex, mode 0600): encrypt files with it.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Deal id the keys derive from.
        #[arg(long, default_value_t = 0)]
        deal_id: u64,
        /// Planned capacity in user MDUs (fixes the witness size).
        #[arg(long)]
        capacity_mdus: Option<u64>,
    },
    /// Verify every byte of every present slot; non-zero exit on any mismatch.
    Verify {
        /// Slab directory.
        dir: PathBuf,
    },
    /// Restore the files (any M slot directories may be missing).
    Unpack {
        /// Slab directory.
        dir: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Root secret for encrypted files.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Print the manifest root, sizes, profile, per-MDU roots and files.
    Inspect {
        /// Slab directory.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchWhat {
    Kzg,
    Rs,
    Pack,
    /// Put/get through an in-process devnet vs the KZG-only rate.
    #[cfg(feature = "network")]
    Ingest,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Kzg {
            cmd: KzgCmd::Commit { input },
        } => kzg_commit(&input),
        Cmd::Kzg {
            cmd: KzgCmd::Vector { function, path },
        } => {
            let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
            let (got, _) = vectors::run_file(KzgSettings::ethereum(), &function, &text)?;
            println!("{}", serde_json::to_string(&got)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Slab { cmd } => slab(cmd),
        Cmd::Bench {
            what,
            samples,
            mib,
            small,
            providers,
            k,
            m,
        } => {
            #[cfg(not(feature = "network"))]
            let _ = (small, providers, k, m); // ingest needs the network feature
            match what {
                BenchWhat::Kzg => bench::print("KZG (EIP-4844), per blob", &bench::kzg(samples)?),
                BenchWhat::Rs => bench::print(
                    "Reed-Solomon over Fr, per row of K blobs",
                    &bench::rs(samples)?,
                ),
                BenchWhat::Pack => {
                    bench::print("Slab packing, end to end in memory", &bench::pack(mib)?)
                }
                #[cfg(feature = "network")]
                BenchWhat::Ingest => {
                    bench::print(
                        "Through an in-process devnet (client, validator and providers share the cores)",
                        &nilstore_cli::ingest::ingest(
                            &nilstore_cli::ingest::IngestOptions {
                                mib,
                                small,
                                providers,
                                k,
                                m,
                            },
                        )?,
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo {
            size_mib,
            workdir,
            file,
        } => demo(size_mib, workdir, file),
        #[cfg(feature = "network")]
        Cmd::Net(cmd) => netcli::run(cmd, &cli.net),
        #[cfg(feature = "network")]
        Cmd::Devnet {
            cmd:
                DevnetCmd::Up {
                    dir,
                    providers,
                    relays,
                    params,
                    validators,
                    api,
                    port_base,
                    chain_id,
                    block_ms,
                    processes,
                    dev_keys,
                    web,
                    web_addr,
                },
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            let opts = nilstore_devnet::Options {
                dir,
                providers,
                relays,
                api,
                port_base,
                chain_id,
                block_interval: std::time::Duration::from_millis(block_ms),
                validators,
                params: params
                    .map(|p| serde_json::from_str(&p))
                    .transpose()
                    .context("--params: not JSON")?,
                processes: processes.then(|| {
                    std::env::current_exe()
                        .ok()
                        .and_then(|p| p.parent().map(Path::to_path_buf))
                        .unwrap_or_default()
                }),
                genesis_keys: if dev_keys {
                    chain_light::validator::daemon::GenesisKeys::Dev
                } else {
                    chain_light::validator::daemon::GenesisKeys::Random
                },
                web: web.map(|dir| nilstore_devnet::web::Web {
                    dir,
                    addr: web_addr,
                }),
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let (tx, ready) = tokio::sync::oneshot::channel();
                let net = tokio::spawn(nilstore_devnet::up(
                    opts,
                    nilstore_net::native::stop_signal(),
                    Some(tx),
                ));
                if let Ok(info) = ready.await {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                    if let Some(url) = &info.web {
                        eprintln!("web app: {url}");
                    }
                    eprintln!("devnet up; Ctrl-C (or SIGTERM) stops it");
                }
                net.await?
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn kzg_commit(input: &Path) -> Result<ExitCode> {
    let data = fs::read(input).with_context(|| format!("{}", input.display()))?;
    ensure!(
        data.len() % BYTES_PER_BLOB == 0,
        "{} has {} bytes, not a multiple of the {BYTES_PER_BLOB}-byte blob size",
        input.display(),
        data.len()
    );
    let blobs: Vec<&[u8]> = data.chunks_exact(BYTES_PER_BLOB).collect();
    let settings = KzgSettings::ethereum();
    let commitments = settings
        .blobs_to_kzg_commitments(&blobs)
        .context("input is not a sequence of canonical blobs")?;
    let mut out = String::with_capacity(commitments.len() * 99);
    for c in commitments {
        out.push_str("0x");
        out.push_str(&hex::encode(c));
        out.push('\n');
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn read_key(path: &Path) -> Result<[u8; 32]> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{}: key file must not be readable by group or others (chmod 600)",
                path.display()
            );
        }
    }
    let mut raw = Vec::new();
    fs::File::open(path)?.read_to_end(&mut raw)?;
    if raw.len() == 32 {
        return raw.try_into().map_err(|_| anyhow::anyhow!("key length"));
    }
    let text = String::from_utf8(raw)
        .map_err(|_| anyhow::anyhow!("key file: 32 raw bytes or 64 hex characters"))?;
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| anyhow::anyhow!("key file: 32 raw bytes or 64 hex characters"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("key file: 32 raw bytes or 64 hex characters"))
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

struct Packed {
    manifest_root: String,
    user_mdus: u64,
    total_mdus: u64,
    stored: u64,
}

fn do_pack(
    files: &[PathBuf],
    out: &Path,
    profile: Profile,
    key: Option<[u8; 32]>,
    deal_id: u64,
    capacity: Option<u64>,
) -> Result<Packed> {
    let total: u64 = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let pb = bar(total, "pack");
    let mut rng = rand::rngs::OsRng;
    let mut nonce = || {
        let mut n = [0u8; wasm_core::aead::STREAM_NONCE_LEN];
        rng.fill_bytes(&mut n);
        n
    };
    let progress = |b: u64| pb.inc(b);
    let report = slabdir::pack(
        KzgSettings::ethereum(),
        slabdir::inputs(files, None)?,
        &slabdir::DirFiles::new(out),
        slabdir::PackOptions {
            profile,
            root_secret: key,
            deal_id,
            capacity_user_mdus: capacity,
            nonce: &mut nonce,
            progress: &progress,
            base: None,
            delete: Vec::new(),
            on_mdu: None,
        },
    )?;
    pb.finish_and_clear();
    Ok(Packed {
        manifest_root: hex::encode(report.output.manifest_root),
        user_mdus: report.output.user_mdus(),
        total_mdus: report.output.total_mdus(),
        stored: report.stored_bytes,
    })
}

fn slab(cmd: SlabCmd) -> Result<ExitCode> {
    let settings = KzgSettings::ethereum();
    match cmd {
        SlabCmd::Pack {
            files,
            out,
            k,
            m,
            key_file,
            deal_id,
            capacity_mdus,
        } => {
            let key = key_file.as_deref().map(read_key).transpose()?;
            let p = do_pack(
                &files,
                &out,
                Profile::new(k, m)?,
                key,
                deal_id,
                capacity_mdus,
            )?;
            println!("manifest_root 0x{}", p.manifest_root);
            println!(
                "profile RS({k},{m}) user_mdus {} total_mdus {} stored_bytes {}",
                p.user_mdus, p.total_mdus, p.stored
            );
            Ok(ExitCode::SUCCESS)
        }
        SlabCmd::Verify { dir } => {
            let r = slabdir::verify(settings, &dir)?;
            for s in &r.missing_slots {
                eprintln!("warning: slot {s} is missing");
            }
            for p in &r.problems {
                eprintln!("MISMATCH: {p}");
            }
            if r.problems.is_empty() {
                println!(
                    "ok: {} blobs verified (BLAKE3 and KZG), {} slots missing",
                    r.blobs_checked,
                    r.missing_slots.len()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!("FAILED: {} problems", r.problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        SlabCmd::Unpack { dir, out, key_file } => {
            let key = key_file.as_deref().map(read_key).transpose()?;
            let slab = slabdir::open(settings, &dir)?;
            let pb = bar(
                slab.meta.user_mdus * wasm_core::constants::PAYLOAD_BYTES_PER_MDU as u64,
                "unpack",
            );
            let r = slabdir::unpack(&slab, &out, key, &|b| pb.inc(b))?;
            pb.finish_and_clear();
            for (mdu, bad) in &r.bad_slots {
                eprintln!("warning: MDU {mdu}: slots {bad:?} served bytes that do not match their leaves (fraud evidence)");
            }
            println!(
                "restored {} files, {} bytes ({} MDUs rebuilt from parity)",
                r.files, r.bytes, r.reconstructed_mdus
            );
            Ok(ExitCode::SUCCESS)
        }
        SlabCmd::Inspect { dir } => {
            let s = slabdir::open(settings, &dir)?;
            let m = &s.meta;
            println!("manifest_root 0x{}", m.manifest_root);
            println!("profile RS({},{}) rows/MDU {}", m.k, m.m, 64 / m.k);
            println!("generation {} deal_id {}", m.generation, m.deal_id);
            println!(
                "total_mdus {} witness_mdus {} user_mdus {}",
                m.total_mdus, m.witness_mdus, m.user_mdus
            );
            let present: Vec<usize> = (0..s.present.len()).filter(|&i| s.present[i]).collect();
            println!("slots present {present:?}");
            for (j, r) in s.mdu_roots.iter().enumerate() {
                let kind = match j as u64 {
                    0 => "file table",
                    j if j <= m.witness_mdus => "witness",
                    _ => "user",
                };
                println!("mdu {j:>4} {kind:<10} root 0x{}", hex::encode(r));
            }
            for r in s.table.records() {
                let state = if r.is_tombstone() {
                    "deleted"
                } else if r.is_encrypted() {
                    "encrypted"
                } else {
                    "plain"
                };
                println!(
                    "file {:?} {} bytes at {} [{state}] blake3 {}",
                    r.path,
                    r.len,
                    r.start,
                    hex::encode(r.blake3)
                );
            }
            for p in &s.problems {
                eprintln!("warning: {p}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn demo(size_mib: usize, workdir: Option<PathBuf>, file: Option<PathBuf>) -> Result<ExitCode> {
    let work = workdir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("nilstore-demo-{}", std::process::id()))
    });
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let mut timings: Vec<(String, f64, Option<u64>)> = Vec::new();
    let t = Instant::now();
    KzgSettings::ethereum().tables();
    timings.push((
        "load setup + build MSM tables".into(),
        t.elapsed().as_secs_f64(),
        None,
    ));

    let input = match file {
        Some(f) => f,
        None => {
            let p = work.join("demo-input.bin");
            let mut data = vec![0u8; size_mib << 20];
            rand::rngs::OsRng.fill_bytes(&mut data);
            fs::write(&p, &data)?;
            p
        }
    };
    let len = fs::metadata(&input)?.len();
    let key_path = work.join("root.key");
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    fs::write(&key_path, hex::encode(key))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))?;
    }
    let profile = Profile::DEFAULT;
    let slab_dir = work.join("slab");
    println!(
        "nilstore demo: {} ({len} bytes), RS({},{}), encrypted",
        input.display(),
        profile.k(),
        profile.m()
    );

    let t = Instant::now();
    let p = do_pack(
        std::slice::from_ref(&input),
        &slab_dir,
        profile,
        Some(key),
        1,
        None,
    )?;
    timings.push((
        "pack (encrypt, commit, RS, Merkle, manifest)".into(),
        t.elapsed().as_secs_f64(),
        Some(len),
    ));
    println!("manifest_root 0x{}", p.manifest_root);
    println!(
        "mdus: {} total, {} user; {} bytes stored",
        p.total_mdus, p.user_mdus, p.stored
    );

    let t = Instant::now();
    let r = slabdir::verify(KzgSettings::ethereum(), &slab_dir)?;
    ensure!(r.problems.is_empty(), "verify failed: {:?}", r.problems);
    timings.push((
        format!("verify all {} blobs (BLAKE3 + KZG)", r.blobs_checked),
        t.elapsed().as_secs_f64(),
        None,
    ));

    let mut lost: Vec<usize> = (0..profile.slots()).collect();
    let mut rng = rand::rngs::OsRng;
    for i in (1..lost.len()).rev() {
        lost.swap(i, (rng.next_u32() as usize) % (i + 1));
    }
    lost.truncate(profile.m());
    lost.sort();
    for s in &lost {
        fs::remove_dir_all(slabdir::slot_dir(&slab_dir, *s))?;
    }
    println!(
        "deleted slots {lost:?} ({} of {})",
        lost.len(),
        profile.slots()
    );

    let out = work.join("restored");
    let t = Instant::now();
    let slab = slabdir::open(KzgSettings::ethereum(), &slab_dir)?;
    let u = slabdir::unpack(&slab, &out, Some(key), &|_| {})?;
    timings.push((
        "unpack (verify, reconstruct, decrypt)".into(),
        t.elapsed().as_secs_f64(),
        Some(len),
    ));
    let name = input.file_name().context("input has no file name")?;
    let same = files_equal(&input, &out.join(name))?;
    ensure!(same, "restored file differs from the input");
    println!(
        "restored {} file(s), byte-identical: {same}; {} MDUs rebuilt from parity",
        u.files, u.reconstructed_mdus
    );
    println!("\n{:<48} {:>10} {:>10}", "step", "seconds", "MB/s");
    for (step, secs, bytes) in timings {
        let mbs = bytes
            .map(|b| format!("{:.1}", b as f64 / secs / 1e6))
            .unwrap_or_default();
        println!("{step:<48} {secs:>10.3} {mbs:>10}");
    }
    println!("\nworkdir: {}", work.display());
    Ok(ExitCode::SUCCESS)
}

fn files_equal(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}
