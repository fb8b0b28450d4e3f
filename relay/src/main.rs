//! `nilstore-relay`: a NilStore relay and deputy.
//!
//! ```text
//! nilstore-relay start --home DIR [--chain URL] [--genesis FILE] [--profile devnet|testnet|mainnet]
//!                      [--listen-ip IP] [--tcp-port P] [--quic-port P] [--webrtc-port P] [--ws-port P]
//!                      [--wss-cert DER --wss-key DER] [--http ADDR]
//!                      [--max-circuit-bytes N] [--max-circuit-secs S] [--max-circuits N]
//!                      [--deputy-timeout-ms MS]
//! nilstore-relay register --home DIR [--chain URL] [--genesis FILE] --stake N --endpoint MULTIADDR...
//! ```
//! The deputy account key comes from `NILSTORE_RELAY_KEY` (hex) or `DIR/account.key` (hex,
//! mode 0600; a fresh home gets a new one). It is never logged.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use chain_light::crypto::SecretKey;
use chain_light::tx::Msg;
use clap::{Parser, Subcommand};
use nilstore_net::chain::{read_genesis, HttpChain, Signer};
use nilstore_net::native::{ListenPorts, RelayLimits};
use nilstore_relay::daemon::{run, Options, Profile};
use nilstore_relay::deputy::DeputyLimits;

#[derive(Parser)]
#[command(name = "nilstore-relay", version, about = "NilStore relay and deputy")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve: circuit relay, browser listeners, deal lookup, deputy fetches.
    Start {
        /// Home directory: keys.
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
        #[arg(long, default_value = "127.0.0.1:26800")]
        http: SocketAddr,
        /// Bytes one relayed circuit may carry.
        #[arg(long, default_value_t = RelayLimits::default().max_circuit_bytes)]
        max_circuit_bytes: u64,
        /// Longest relayed circuit, seconds.
        #[arg(long, default_value_t = RelayLimits::default().max_circuit_duration.as_secs())]
        max_circuit_secs: u64,
        /// Circuits at once.
        #[arg(long, default_value_t = RelayLimits::default().max_circuits)]
        max_circuits: usize,
        /// How long a deputy waits for a provider before attesting, ms.
        #[arg(long, default_value_t = 10_000)]
        deputy_timeout_ms: u64,
    },
    /// Register this relay as a deputy on chain (stake, endpoints).
    Register {
        /// Home directory (keys).
        #[arg(long)]
        home: PathBuf,
        /// Validator API.
        #[arg(long, default_value = "http://127.0.0.1:26657")]
        chain: String,
        /// Genesis document (default: DIR/genesis.json).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Stake (base units).
        #[arg(long)]
        stake: u128,
        /// Public multiaddrs (repeat).
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
    },
}

fn account_key(home: &Path) -> Result<SecretKey> {
    nilstore_net::chain::account_key("NILSTORE_RELAY_KEY", &home.join("account.key"))
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
            max_circuit_bytes,
            max_circuit_secs,
            max_circuits,
            deputy_timeout_ms,
        } => {
            let genesis = read_genesis(&genesis.unwrap_or_else(|| home.join("genesis.json")))?;
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
                relay: RelayLimits {
                    max_circuit_bytes,
                    max_circuit_duration: Duration::from_secs(max_circuit_secs),
                    max_circuits,
                    ..RelayLimits::default()
                },
                deputy: DeputyLimits::default(),
                deputy_timeout: Duration::from_millis(deputy_timeout_ms),
                wss,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run(opts, nilstore_net::native::stop_signal(), None))
        }
        Cmd::Register {
            home,
            chain,
            genesis,
            stake,
            endpoints,
        } => {
            let genesis = read_genesis(&genesis.unwrap_or_else(|| home.join("genesis.json")))?;
            let key = account_key(&home)?;
            let p2p = nilstore_net::native::load_or_create_keypair(&home.join("p2p.key"))
                .map_err(|e| anyhow!("p2p key: {e}"))?;
            let view = HttpChain::new(&chain, &genesis)?;
            view.sync()?;
            let signer = Signer::new(key);
            let hash = signer.send(
                &view,
                Msg::RegisterDeputy {
                    stake,
                    peer_id: p2p.public().to_peer_id().to_string(),
                    endpoints,
                },
            )?;
            println!(
                "{}",
                serde_json::json!({ "deputy": signer.address(), "tx": hash })
            );
            Ok(())
        }
    }
}
