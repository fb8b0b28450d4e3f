//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chain_light::http_server::Limits;
use chain_light::validator::api::ApiLimits;
use chain_light::validator::daemon::{start, write_genesis, GenesisKeys, StartOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nilstore-validator",
    version,
    about = "NilStore chain validator (commonware simplex)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a validator from a home directory (a fresh one gets a single-validator genesis
    /// with funded dev accounts).
    Start {
        /// Home directory: genesis.json, validator_key.json, chain.redb, consensus/.
        #[arg(long)]
        home: PathBuf,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:26657")]
        api: SocketAddr,
        /// Chain id of a dev genesis written into a fresh home.
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// Minimum milliseconds between blocks.
        #[arg(long, default_value_t = 500)]
        block_ms: u64,
        /// p2p listen address (default: this validator's entry in peers.json).
        #[arg(long)]
        p2p: Option<SocketAddr>,
        /// Transactions per second accepted from one client address (`POST /tx`).
        #[arg(long, default_value_t = 5_000)]
        tx_rate: u32,
        /// HTTP connections served at once (more wait to be accepted).
        #[arg(long, default_value_t = 512)]
        http_max_connections: usize,
        /// Milliseconds a client has to send a request's headers.
        #[arg(long, default_value_t = 10_000)]
        http_header_timeout_ms: u64,
        /// Event-stream (`/events`) subscribers at once.
        #[arg(long, default_value_t = 256)]
        max_event_subscribers: usize,
        /// Derive the keys of a fresh genesis from public seeds (reproducible; anyone can
        /// sign for them: tests and demos only). Default: OS randomness.
        #[arg(long)]
        dev_keys: bool,
    },
    /// Write a genesis for N validators: OUT/genesis.json, OUT/dev-keys.json and one
    /// home per validator (OUT/validator-<i>/ with genesis.json and validator_key.json).
    Genesis {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Chain id.
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// First p2p port on 127.0.0.1 (validator i listens on base + i).
        #[arg(long, default_value_t = 27100)]
        p2p_base_port: u16,
        /// First API port on 127.0.0.1 (validator i serves on base + i).
        #[arg(long, default_value_t = 26657)]
        api_base_port: u16,
        /// Extra nodes with keys, funded accounts and peers.json entries but outside the
        /// genesis set: they follow by sync until a `CreateValidator` elects them.
        #[arg(long, default_value_t = 0)]
        standby: u64,
        /// Derive the keys of a fresh genesis from public seeds (reproducible; anyone can
        /// sign for them: tests and demos only). Default: OS randomness.
        #[arg(long)]
        dev_keys: bool,
    },
}

fn keys(dev: bool) -> GenesisKeys {
    if dev {
        GenesisKeys::Dev
    } else {
        GenesisKeys::Random
    }
}

pub fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Start {
            home,
            api,
            chain_id,
            block_ms,
            p2p,
            tx_rate,
            http_max_connections,
            http_header_timeout_ms,
            max_event_subscribers,
            dev_keys,
        } => start(&StartOptions {
            home,
            api,
            p2p,
            tx_rate,
            chain_id,
            block_interval: Duration::from_millis(block_ms),
            genesis_keys: keys(dev_keys),
            api_limits: ApiLimits {
                http: Limits {
                    max_connections: http_max_connections,
                    header_timeout: Duration::from_millis(http_header_timeout_ms),
                },
                max_subscribers: max_event_subscribers,
            },
        }),
        Cmd::Genesis {
            validators,
            out,
            chain_id,
            p2p_base_port,
            api_base_port,
            standby,
            dev_keys,
        } => write_genesis(
            &out,
            (validators, standby),
            chain_id,
            (p2p_base_port, api_base_port),
            keys(dev_keys),
        )
        .map(|_| ()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
