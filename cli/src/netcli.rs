//! The network commands of `nilstore`: put, get, ls, rm, resume, mirror, deal, provider,
//! delegate. Each takes `--network FILE` (or `NILSTORE_NETWORK`), `--json` for scripts,
//! and draws progress bars on stderr otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{anyhow, ensure, Context, Result};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::tx::Msg;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nilstore_client::remote::{self, Client, Event, Network, PutOptions, Tuning};
use nilstore_client::slabdir;
use serde_json::json;

/// Options every network command takes.
#[derive(Args, Clone, Debug)]
pub struct NetArgs {
    /// The network file (`devnet.json`); default `$NILSTORE_NETWORK`, else
    /// `devnet/devnet.json`.
    #[arg(long, global = true)]
    pub network: Option<PathBuf>,
    /// Account key file (hex, mode 0600); default `$NILSTORE_KEY`, else a free devnet
    /// account.
    #[arg(long, global = true)]
    pub key_file: Option<PathBuf>,
    /// Client state (upload jobs, deal keys, receipts); default `$NILSTORE_HOME`, else
    /// `~/.nilstore`.
    #[arg(long, global = true)]
    pub home: Option<PathBuf>,
    /// Print one JSON object instead of text and progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// Most deputies a read asks about a provider that does not answer.
    #[arg(long, global = true, default_value_t = 5)]
    pub deputies: usize,
}

/// Deal management.
#[derive(Subcommand, Debug)]
pub enum DealCmd {
    /// Create an empty deal.
    Create {
        /// Data slots.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity slots.
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// Capacity in user MDUs (8 MiB of payload each).
        #[arg(long, default_value_t = 8)]
        capacity: u64,
        /// Term in epochs.
        #[arg(long, default_value_t = 10_000)]
        term: u64,
        /// Escrow (default: rent for the term plus a read budget).
        #[arg(long)]
        escrow: Option<u128>,
    },
    /// Show a deal (proven read).
    Show {
        /// Deal id.
        deal: u64,
    },
    /// Extend the term.
    Extend {
        /// Deal id.
        deal: u64,
        /// Extra epochs.
        #[arg(long)]
        epochs: u64,
    },
    /// Cancel the deal and forget its key (crypto-erasure).
    Cancel {
        /// Deal id.
        deal: u64,
    },
    /// Add escrow.
    Fund {
        /// Deal id.
        deal: u64,
        /// Amount.
        amount: u128,
    },
    /// Print the deal's key (64 hex digits) to hand to another device or person: whoever
    /// holds it can read the deal's files.
    ExportKey {
        /// Deal id.
        deal: u64,
    },
    /// Store a deal key handed over from elsewhere, read from a file or from stdin; a key
    /// that differs from the one already held here is refused.
    ImportKey {
        /// Deal id.
        deal: u64,
        /// File holding the key (default: stdin, so it stays out of the process list).
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

/// Providers.
#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Register this account as a provider (the daemon's `nilstore-provider register`
    /// does the same from its home).
    Register {
        /// libp2p peer id of the provider daemon.
        #[arg(long)]
        peer_id: String,
        /// Multiaddrs (repeat).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        /// Capacity in MDUs.
        #[arg(long)]
        capacity: u64,
        /// Stake.
        #[arg(long)]
        stake: u128,
    },
    /// A provider's record (proven read); default: this account.
    Status {
        /// Provider address (0x…).
        address: Option<String>,
    },
}

/// The network commands.
#[derive(Subcommand, Debug)]
pub enum NetCmd {
    /// Store files in a new deal (or append to one with --deal).
    Put {
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Append to this deal.
        #[arg(long)]
        deal: Option<u64>,
        /// Data slots of a new deal.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity slots of a new deal.
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// Term of a new deal, in epochs.
        #[arg(long, default_value_t = 10_000)]
        term: u64,
        /// Escrow of a new deal.
        #[arg(long)]
        escrow: Option<u128>,
        /// Capacity of a new deal in user MDUs.
        #[arg(long)]
        capacity: Option<u64>,
        /// Name in the deal (one file only).
        #[arg(long = "as")]
        as_path: Option<String>,
        /// Store plaintext (default: encrypted under a per-deal key).
        #[arg(long)]
        plain: bool,
    },
    /// Read a file of a deal, verified.
    Get {
        /// Deal id.
        deal: u64,
        /// Path in the deal.
        path: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// First byte to read (a range read fetches only the MDUs that hold the range).
        #[arg(long)]
        offset: Option<u64>,
        /// Bytes to read from `--offset` (default: to the end of the file).
        #[arg(long)]
        length: Option<u64>,
    },
    /// List a deal's files.
    Ls {
        /// Deal id.
        deal: u64,
    },
    /// Delete files from a deal (a tombstone, committed as the next generation).
    Rm {
        /// Deal id.
        deal: u64,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Finish uploads an interruption left behind.
    Resume,
    /// Download every file of a deal into a directory.
    Mirror {
        /// Deal id.
        deal: u64,
        /// Directory.
        dir: PathBuf,
    },
    /// Deals.
    Deal {
        #[command(subcommand)]
        cmd: DealCmd,
    },
    /// Providers.
    Provider {
        #[command(subcommand)]
        cmd: ProviderCmd,
    },
    /// A scoped, funded, expiring key for a third-party upload job: it may commit to one
    /// deal until an epoch. Writes a client home for the job (its key and the deal's
    /// encryption key): `nilstore --home DIR --key-file DIR/account.key put F --deal ID`.
    Delegate {
        /// Deal id.
        deal: u64,
        /// Epochs the delegation lasts.
        #[arg(long, default_value_t = 1_000)]
        epochs: u64,
        /// Tokens moved to the new key for fees.
        #[arg(long, default_value_t = 1_000_000_000)]
        fund: u128,
        /// The job's client home to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Progress bars for a command (none with `--json`).
struct Bars {
    bar: Mutex<Option<(String, ProgressBar)>>,
    quiet: bool,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        Bars {
            bar: Mutex::new(None),
            quiet,
        }
    }

    fn set(&self, stage: &str, done: u64, total: u64) {
        if self.quiet {
            return;
        }
        let Ok(mut b) = self.bar.lock() else { return };
        if b.as_ref().map(|(s, _)| s.as_str()) != Some(stage) {
            if let Some((_, old)) = b.take() {
                old.finish_and_clear();
            }
            let pb = ProgressBar::new(total);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg:9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_message(stage.to_string());
            *b = Some((stage.to_string(), pb));
        }
        if let Some((_, pb)) = b.as_ref() {
            pb.set_length(total);
            pb.set_position(done);
        }
    }

    fn note(&self, line: String) {
        if self.quiet {
            return;
        }
        match self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            Some((_, pb)) => pb.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn event(&self, e: &Event) {
        match e {
            Event::Packing { done, total } => self.set("pack", *done, *total),
            Event::Uploading { done, total, .. } => self.set("upload", *done, *total),
            Event::Downloading { done, total, .. } => self.set("download", *done, *total),
            Event::DealCreated { deal } => self.note(format!("deal {deal} created")),
            Event::Committed { deal, generation } => {
                self.note(format!("deal {deal}: generation {generation} committed"))
            }
            Event::Retry {
                slot,
                mdu,
                attempt,
                error,
            } => self.note(format!(
                "slot {slot} MDU {mdu}: attempt {attempt} failed ({error}); retrying"
            )),
            Event::Fallback { slot, mdu, why } => {
                self.note(format!("slot {slot} MDU {mdu}: {why}"))
            }
            // The upload bar counts the bytes.
            Event::ShardAcked { .. } => {}
        }
    }

    fn done(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some((_, pb)) = b.take() {
                pb.finish_and_clear();
            }
        }
    }
}

async fn connect(a: &NetArgs) -> Result<Client> {
    let network = Network::locate(a.network.as_deref())?;
    let key = network.account(a.key_file.as_deref())?;
    let home = a.home.clone().unwrap_or_else(remote::default_home);
    Client::connect(
        network,
        key,
        home,
        Tuning {
            max_deputies: a.deputies,
            ..Tuning::default()
        },
    )
    .await
}

fn print(a: &NetArgs, v: serde_json::Value, text: impl FnOnce() -> String) {
    if a.json {
        println!("{v}");
    } else {
        println!("{}", text());
    }
}

fn parse_address(s: &str) -> Result<Address> {
    serde_json::from_value(json!(s)).map_err(|e| anyhow!("{s}: not an address ({e})"))
}

/// Runs a network command (on a tokio runtime of its own: the client's libp2p node and
/// timers live there).
pub fn run(cmd: NetCmd, a: &NetArgs) -> Result<ExitCode> {
    if !a.json {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_on(cmd, a))
}

async fn run_on(cmd: NetCmd, a: &NetArgs) -> Result<ExitCode> {
    let c = connect(a).await?;
    let bars = Bars::new(a.json);
    let progress = |e: &Event| bars.event(e);
    match cmd {
        NetCmd::Put {
            files,
            deal,
            k,
            m,
            term,
            escrow,
            capacity,
            as_path,
            plain,
        } => {
            if as_path.is_some() {
                ensure!(files.len() == 1, "--as names one file");
            }
            let names = as_path.map(|p| vec![p]);
            let r = c
                .put_files(
                    &files,
                    names.as_deref(),
                    &PutOptions {
                        deal,
                        k,
                        m,
                        term_epochs: term,
                        escrow,
                        capacity_mdus: capacity,
                        encrypt: !plain,
                    },
                    &progress,
                )
                .await?;
            bars.done();
            print(a, serde_json::to_value(&r)?, || {
                format!(
                    "deal {} generation {}: stored {} ({} bytes) in {:.1} s, manifest root {}",
                    r.deal_id,
                    r.generation,
                    r.paths.join(", "),
                    r.bytes,
                    r.seconds,
                    r.manifest_root
                )
            });
        }
        NetCmd::Get {
            deal,
            path,
            out,
            offset,
            length,
        } => {
            let mut sink = slabdir::SingleFile::new(&out);
            let r = if offset.is_some() || length.is_some() {
                c.get_range(
                    deal,
                    &path,
                    offset.unwrap_or(0),
                    length,
                    &mut sink,
                    &progress,
                )
                .await?
            } else {
                c.get(deal, &path, &mut sink, &progress).await?
            };
            bars.done();
            print(a, serde_json::to_value(&r)?, || {
                format!(
                    "{} ({} bytes) verified in {:.2} s{}",
                    out.display(),
                    r.bytes,
                    r.seconds,
                    if r.fallbacks > 0 {
                        format!(", {} slot fallbacks", r.fallbacks)
                    } else {
                        String::new()
                    }
                )
            });
        }
        NetCmd::Mirror { deal, dir } => {
            let mut sink = slabdir::DirSink::new(&dir)?;
            let r = c.mirror(deal, &mut sink, &progress).await?;
            bars.done();
            print(a, serde_json::to_value(&r)?, || {
                format!(
                    "{} files ({} bytes) verified into {} in {:.2} s",
                    r.files,
                    r.bytes,
                    dir.display(),
                    r.seconds
                )
            });
        }
        NetCmd::Ls { deal } => {
            let l = c.ls(deal).await?;
            print(a, serde_json::to_value(&l)?, || {
                let mut s = format!("deal {} generation {}\n", l.deal, l.generation);
                for f in &l.files {
                    s.push_str(&format!(
                        "{:>14}  {}{}\n",
                        f.size,
                        f.path,
                        if f.encrypted { "" } else { "  (plaintext)" }
                    ));
                }
                s.trim_end().to_string()
            });
        }
        NetCmd::Rm { deal, paths } => {
            let r = c.rm(deal, &paths, &progress).await?;
            bars.done();
            print(a, serde_json::to_value(&r)?, || {
                format!(
                    "deal {} generation {}: deleted {}",
                    r.deal_id,
                    r.generation,
                    r.paths.join(", ")
                )
            });
        }
        NetCmd::Resume => {
            let r = c.resume(&progress).await?;
            bars.done();
            print(a, serde_json::to_value(&r)?, || {
                if r.is_empty() {
                    "nothing to resume".to_string()
                } else {
                    r.iter()
                        .map(|r| {
                            format!("deal {} generation {} committed", r.deal_id, r.generation)
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
        }
        NetCmd::Deal { cmd } => deal(&c, cmd, a).await?,
        NetCmd::Provider { cmd } => provider(&c, cmd, a).await?,
        NetCmd::Delegate {
            deal,
            epochs,
            fund,
            out,
        } => delegate(&c, deal, epochs, fund, &out, a).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn deal(c: &Client, cmd: DealCmd, a: &NetArgs) -> Result<()> {
    match cmd {
        DealCmd::Create {
            k,
            m,
            capacity,
            term,
            escrow,
        } => {
            let mut t = c.default_terms(k, m, capacity, term).await?;
            if let Some(e) = escrow {
                t.escrow = e;
            }
            let id = c.create_deal(&t).await?;
            print(a, json!({ "deal_id": id }), || format!("deal {id} created"));
        }
        DealCmd::Show { deal } => {
            let d = c.deal(deal).await?;
            print(a, serde_json::to_value(&d)?, || {
                serde_json::to_string_pretty(&d).unwrap_or_default()
            });
        }
        DealCmd::Extend { deal, epochs } => {
            c.send(Msg::ExtendDeal { deal, epochs }).await?;
            let d = c.deal(deal).await?;
            print(
                a,
                json!({ "deal_id": deal, "end_epoch": d.end_epoch }),
                || format!("deal {deal} now ends at epoch {}", d.end_epoch),
            );
        }
        DealCmd::Cancel { deal } => {
            c.send(Msg::CancelDeal { deal }).await?;
            let erased = c.forget_deal_key(deal).await?;
            print(a, json!({ "deal_id": deal, "key_erased": erased }), || {
                format!(
                    "deal {deal} cancelled{}",
                    if erased { "; its key is erased" } else { "" }
                )
            });
        }
        DealCmd::Fund { deal, amount } => {
            c.send(Msg::AddCredit { deal, amount }).await?;
            let d = c.deal(deal).await?;
            print(
                a,
                json!({ "deal_id": deal, "escrow": d.escrow.to_string() }),
                || format!("deal {deal} escrow {}", d.escrow),
            );
        }
        DealCmd::ExportKey { deal } => {
            let key = c.export_deal_key(deal).await?;
            print(a, json!({ "deal_id": deal, "key": key }), || key.clone());
        }
        DealCmd::ImportKey { deal, from } => {
            let mut key = String::new();
            match &from {
                Some(f) => {
                    key = std::fs::read_to_string(f)
                        .with_context(|| format!("read {}", f.display()))?;
                }
                None => {
                    use std::io::Read as _;
                    std::io::stdin()
                        .take(4096)
                        .read_to_string(&mut key)
                        .context("read the key from stdin")?;
                }
            }
            c.import_deal_key(deal, &key).await?;
            print(a, json!({ "deal_id": deal, "imported": true }), || {
                format!("deal {deal}: key imported")
            });
        }
    }
    Ok(())
}

async fn provider(c: &Client, cmd: ProviderCmd, a: &NetArgs) -> Result<()> {
    match cmd {
        ProviderCmd::Register {
            peer_id,
            endpoints,
            capacity,
            stake,
        } => {
            c.send(Msg::RegisterProvider {
                stake,
                capacity_mdus: capacity,
                operator: c.address(),
                peer_id,
                endpoints,
            })
            .await?;
            let who = c.address();
            print(a, json!({ "provider": who }), || {
                format!("provider {who} registered")
            });
        }
        ProviderCmd::Status { address } => {
            let who = match address {
                Some(s) => parse_address(&s)?,
                None => c.address(),
            };
            let p = c
                .chain()
                .provider(&who)
                .await?
                .with_context(|| format!("{who} is not a registered provider"))?;
            print(a, serde_json::to_value(&p)?, || {
                serde_json::to_string_pretty(&p).unwrap_or_default()
            });
        }
    }
    Ok(())
}

async fn delegate(
    c: &Client,
    deal: u64,
    epochs: u64,
    fund: u128,
    out: &Path,
    a: &NetArgs,
) -> Result<()> {
    ensure!(
        !out.exists(),
        "{} exists; not overwriting a key",
        out.display()
    );
    let key = loop {
        let b: [u8; 32] = rand::random();
        if let Ok(k) = SecretKey::from_bytes(&b) {
            break k;
        }
    };
    let until = c.chain().epoch().saturating_add(epochs);
    let who = key.address();
    // The delegate's home first, durably: funds and rights go only to a key that is kept
    // (an unwritable --out used to be found out after the transfer, losing the funds).
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let key_file = out.join("account.key");
    chain_light::secret_file::write(&key_file, hex::encode(key.to_bytes()).as_bytes())
        .with_context(|| format!("write {}", key_file.display()))?;
    c.share_deal_key(deal, &nilstore_client::store::DirStore::new(out))
        .await?;
    c.send(Msg::Authorize {
        deal,
        delegate: who,
        until_epoch: until,
    })
    .await
    .with_context(|| {
        format!(
            "authorize {who} (its key is kept in {})",
            key_file.display()
        )
    })?;
    c.send(Msg::Transfer {
        to: who,
        amount: fund,
    })
    .await
    .with_context(|| format!("fund {who} (its key is kept in {})", key_file.display()))?;
    print(
        a,
        json!({ "deal_id": deal, "delegate": who, "until_epoch": until, "home": out, "key_file": key_file }),
        || {
            format!(
                "delegate {who} may commit to deal {deal} until epoch {until}: nilstore --home {} --key-file {} put FILE --deal {deal}",
                out.display(),
                key_file.display()
            )
        },
    );
    Ok(())
}
