//! `nilstore-provider`: a NilStore storage provider.
//!
//! ```text
//! nilstore-provider start --home DIR [--chain URL] [--genesis FILE] [--profile devnet|testnet|mainnet]
//!                         [--listen-ip IP] [--tcp-port P] [--quic-port P] [--webrtc-port P] [--ws-port P]
//!                         [--wss-cert DER --wss-key DER] [--http ADDR]
//! nilstore-provider register --home DIR [--chain URL] --stake N --capacity MDUS --endpoint MULTIADDR...
//! ```
//! The account key comes from `NILSTORE_PROVIDER_KEY` (hex) or `DIR/account.key` (hex, mode
//! 0600; a fresh home gets a new one). It is never logged.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use chain_light::crypto::SecretKey;
use chain_light::tx::{Msg, Tx};
use clap::{Parser, Subcommand};
use nilstore_net::native::ListenPorts;
use nilstore_provider::daemon::{run, Options, Profile};
use nilstore_provider::service::Limits;

#[derive(Parser)]
#[command(
    name = "nilstore-provider",
    version,
    about = "NilStore storage provider"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve: verified uploads, reads and proofs over libp2p and HTTP.
    Start {
        /// Home directory: store, keys.
        #[arg(long)]
        home: PathBuf,
        /// Validator API to follow.
        #[arg(long, default_value = "http://127.0.0.1:26657")]
        chain: String,
        /// Genesis document (default: DIR/genesis.json).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Deployment profile (testnet and mainnet require secure WebSocket).
        #[arg(long, value_enum, default_value = "devnet")]
        profile: Profile,
        /// p2p listen IP.
        #[arg(long, default_value = "127.0.0.1")]
        listen_ip: IpAddr,
        /// TCP port (0: any).
        #[arg(long, default_value_t = 0)]
        tcp_port: u16,
        /// QUIC port (0: any).
        #[arg(long, default_value_t = 0)]
        quic_port: u16,
        /// WebRTC-direct port (0: any).
        #[arg(long, default_value_t = 0)]
        webrtc_port: u16,
        /// WebSocket port (0: any).
        #[arg(long, default_value_t = 0)]
        ws_port: u16,
        /// Secure WebSocket certificate (DER).
        #[arg(long, requires = "wss_key")]
        wss_cert: Option<PathBuf>,
        /// Secure WebSocket private key (DER, mode 0600).
        #[arg(long, requires = "wss_cert")]
        wss_key: Option<PathBuf>,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        http: SocketAddr,
        /// Seconds an upload the chain has not committed is kept before it is deleted.
        #[arg(long, default_value_t = 86_400)]
        uncommitted_ttl_s: u64,
        /// The reverse proxy in front of the HTTP API: its X-Forwarded-For names the
        /// client for rate limits (anyone else's header is ignored).
        #[arg(long)]
        trusted_proxy: Option<std::net::IpAddr>,
    },
    /// Register this provider on chain (stake, capacity, endpoints).
    Register {
        /// Home directory (keys).
        #[arg(long)]
        home: PathBuf,
        /// Validator API.
        #[arg(long, default_value = "http://127.0.0.1:26657")]
        chain: String,
        /// Stake (base units).
        #[arg(long)]
        stake: u128,
        /// Capacity in MDUs.
        #[arg(long)]
        capacity: u64,
        /// Public multiaddrs (repeat).
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
    },
}

fn account_key(home: &Path) -> Result<SecretKey> {
    nilstore_net::chain::account_key("NILSTORE_PROVIDER_KEY", &home.join("account.key"))
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match main_inner(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Start {
            home,
            chain,
            genesis,
            profile,
            listen_ip,
            tcp_port,
            quic_port,
            webrtc_port,
            ws_port,
            wss_cert,
            wss_key,
            http,
            uncommitted_ttl_s,
            trusted_proxy,
        } => {
            let gpath = genesis.unwrap_or_else(|| home.join("genesis.json"));
            let genesis = nilstore_net::chain::read_genesis(&gpath)?;
            let wss = match (wss_cert, wss_key) {
                (Some(c), Some(k)) => Some((
                    std::fs::read(&c).with_context(|| format!("read {}", c.display()))?,
                    chain_light::secret_file::read(&k).map_err(anyhow::Error::msg)?,
                )),
                _ => None,
            };
            let opts = Options {
                key: account_key(&home)?,
                home,
                chain,
                genesis,
                profile,
                listen_ip,
                ports: ListenPorts {
                    tcp: tcp_port,
                    quic: quic_port,
                    webrtc: webrtc_port,
                    ws: ws_port,
                    wss: false,
                },
                http,
                limits: Limits::default(),
                wss,
                uncommitted_ttl: Duration::from_secs(uncommitted_ttl_s),
                trusted_proxy,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run(opts, nilstore_net::native::stop_signal(), None))
        }
        Cmd::Register {
            home,
            chain,
            stake,
            capacity,
            endpoints,
        } => {
            let key = account_key(&home)?;
            let p2p = nilstore_net::native::load_or_create_keypair(&home.join("p2p.key"))
                .map_err(|e| anyhow!("p2p key: {e}"))?;
            let base = chain.trim_end_matches('/');
            let status: serde_json::Value =
                ureq::get(&format!("{base}/status")).call()?.into_json()?;
            let chain_id = status["chain_id"]
                .as_u64()
                .ok_or_else(|| anyhow!("/status: chain_id"))?;
            let acct: serde_json::Value =
                ureq::get(&format!("{base}/state/account/{}", key.address()))
                    .call()?
                    .into_json()?;
            let nonce = acct["value"]["nonce"].as_u64().unwrap_or(0);
            let genesis: serde_json::Value =
                ureq::get(&format!("{base}/genesis")).call()?.into_json()?;
            let fee: u128 = genesis["params"]["min_fee"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("/genesis: min_fee"))?;
            let tx = Tx {
                chain_id,
                from: key.address(),
                nonce,
                fee,
                msg: Msg::RegisterProvider {
                    stake,
                    capacity_mdus: capacity,
                    operator: key.address(),
                    peer_id: p2p.public().to_peer_id().to_string(),
                    endpoints,
                },
            }
            .sign(&key);
            let r: serde_json::Value = ureq::post(&format!("{base}/tx"))
                .send_json(serde_json::to_value(&tx)?)
                .map_err(|e| match e {
                    ureq::Error::Status(code, r) => {
                        anyhow!(
                            "chain refused ({code}): {}",
                            r.into_string().unwrap_or_default()
                        )
                    }
                    e => anyhow!("{e}"),
                })?
                .into_json()?;
            println!(
                "{}",
                serde_json::json!({ "provider": key.address(), "tx": r["hash"] })
            );
            Ok(())
        }
    }
}
