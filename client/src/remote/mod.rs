//! The user side of the protocol over a live network: a [`Client`] uploads files into
//! deals, reads them back verified, lists and deletes, and manages deals.
//!
//! ```text
//!  put:  pack+encrypt ─► create deal ─► stripe ─► upload shards (every slot in parallel,
//!        retries with backoff, journal) ─► acks ─► CommitContent ─► proven read of the deal
//!  get:  proven deal ─► metadata MDUs (leaves → manifest_root) ─► K shards per MDU, every
//!        blob checked against its leaf ─► RS decode ─► decrypt ─► file; withheld → other
//!        slots, then a deputy; wrong bytes → fraud evidence; receipts to the providers
//! ```
//! The chain is read through the light client (`nilstore_net::chain`): every deal, provider
//! and account record is checked against a verified header.

mod download;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::state::Deal;
use chain_light::tx::Msg;
use nilstore_net::chain::{ChainView, Signer, TxStatus};
use nilstore_net::libp2p::{Multiaddr, PeerId};
use nilstore_net::requester::Requester;
use serde::{Deserialize, Serialize};
use wasm_core::kzg::KzgSettings;

pub use download::{GetReport, Listing};
pub use upload::{PendingJob, PutOptions, PutReport};

use crate::network::NetworkInfo;
use crate::platform::{Api, Clock, Spawner};
use crate::store::{Kind, Store};

/// Environment variable naming the network file (`devnet.json`).
pub const NETWORK_ENV: &str = "NILSTORE_NETWORK";
/// Environment variable holding the account key (hex).
pub const KEY_ENV: &str = "NILSTORE_KEY";
/// Environment variable naming the client's state directory.
pub const HOME_ENV: &str = "NILSTORE_HOME";

/// Something a long operation reports, for progress bars and UIs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Bytes packed, encrypted and committed so far.
    Packing {
        /// Done.
        done: u64,
        /// Total.
        total: u64,
    },
    /// The deal exists.
    DealCreated {
        /// Its id.
        deal: u64,
    },
    /// Shard bytes acknowledged by providers.
    Uploading {
        /// Bytes acknowledged.
        done: u64,
        /// Bytes to send.
        total: u64,
        /// Slots whose every shard is acknowledged.
        slots_acked: usize,
        /// Slots.
        slots: usize,
        /// Throughput so far.
        mb_per_s: f64,
    },
    /// A provider acknowledged one shard (MDU `mdu` of `slot`): durable in the job's log.
    ShardAcked {
        /// Slot.
        slot: u32,
        /// MDU.
        mdu: u32,
    },
    /// A request failed and will be retried.
    Retry {
        /// Slot.
        slot: u32,
        /// MDU.
        mdu: u32,
        /// Attempt that failed (1-based).
        attempt: u32,
        /// Why.
        error: String,
    },
    /// The chain holds the new content.
    Committed {
        /// Deal.
        deal: u64,
        /// Generation.
        generation: u64,
    },
    /// Verified file bytes written.
    Downloading {
        /// Done.
        done: u64,
        /// Total.
        total: u64,
        /// Throughput so far.
        mb_per_s: f64,
    },
    /// A slot could not serve and the read went elsewhere.
    Fallback {
        /// Slot.
        slot: u32,
        /// MDU.
        mdu: u32,
        /// What happened and where the read went.
        why: String,
    },
}

/// Where progress goes.
pub type Progress<'a> = &'a (dyn Fn(&Event) + Sync);

/// Tuning knobs (defaults suit a devnet on loopback).
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Attempts per request before giving up.
    pub attempts: u32,
    /// First retry delay; doubled each attempt.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Uploads in flight per slot. While packing, freshly packed MDUs go out in groups of
    /// this size (a provider checks a group that arrives together in one batch), two groups
    /// at a time: up to twice this many per slot then.
    pub per_slot: usize,
    /// How long a read waits for a provider before it goes elsewhere.
    pub read_timeout: Duration,
    /// While fewer than K slots have answered, another slot is asked this often.
    pub hedge_after: Duration,
    /// How long to wait for a transaction to be included.
    pub tx_timeout: Duration,
    /// Most deputies asked about one withheld slot (the chain needs several distinct
    /// deputies' attestations before it slashes).
    pub max_deputies: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            attempts: 6,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            per_slot: 4,
            read_timeout: Duration::from_secs(10),
            hedge_after: Duration::from_millis(1500),
            tx_timeout: Duration::from_secs(120),
            max_deputies: 5,
        }
    }
}

/// A network the client talks to: today the devnet's `devnet.json`.
#[derive(Clone, Debug)]
pub struct Network {
    /// The file it came from.
    pub path: PathBuf,
    /// Its contents.
    pub info: NetworkInfo,
}

impl Network {
    /// Reads `path`, or the file named by `NILSTORE_NETWORK`, or `./devnet/devnet.json`.
    pub fn locate(path: Option<&Path>) -> Result<Network> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os(NETWORK_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("devnet/devnet.json")),
        };
        let info = NetworkInfo::read(&path).with_context(|| {
            format!(
                "no network: start one with `nilstore devnet up` or pass --network (tried {})",
                path.display()
            )
        })?;
        Ok(Network { path, info })
    }

    /// The account key: `NILSTORE_KEY`, else `key_file`, else the first dev account the
    /// devnet's daemons do not use.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn account(&self, key_file: Option<&Path>) -> Result<SecretKey> {
        if let Some(path) = key_file {
            ensure!(
                std::env::var_os(KEY_ENV).is_some() || path.is_file(),
                "no key file at {}",
                path.display()
            );
            return nilstore_net::chain::account_key(KEY_ENV, path);
        }
        if std::env::var_os(KEY_ENV).is_some() {
            return nilstore_net::chain::account_key(KEY_ENV, Path::new("/nonexistent"));
        }
        let keys = crate::network::dev_keys(&self.info.dev_keys)?;
        keys.into_iter()
            .enumerate()
            .find(|(i, _)| !self.info.reserved_dev_accounts.contains(i))
            .map(|(_, k)| k)
            .ok_or_else(|| anyhow!("the devnet has no free dev account: pass --key-file"))
    }
}

/// The client's state directory: `NILSTORE_HOME`, else `~/.nilstore`.
pub fn default_home() -> PathBuf {
    std::env::var_os(HOME_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".nilstore")))
        .unwrap_or_else(|| PathBuf::from(".nilstore"))
}

/// The store key of deal `id`'s content secret.
fn deal_key(chain_id: u64, id: u64) -> String {
    format!("keys/{chain_id}-deal-{id}.key")
}

/// One slot's provider, resolved from proven chain state.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub account: Address,
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// A connected client: light client, account, libp2p node. Its operations are futures
/// that need no particular executor; natively they run inside a tokio runtime (the
/// requester's node and the clock's timers live there), in a browser on its event loop.
pub struct Client {
    chain: ChainView<Api>,
    signer: Signer,
    net: Requester,
    network: Network,
    /// Natively, the home directory (upload jobs' packed slabs are files there).
    home: Option<PathBuf>,
    kzg: &'static KzgSettings,
    tuning: Tuning,
    clock: Arc<dyn Clock>,
    /// Where packing runs.
    spawner: Arc<dyn Spawner>,
    /// Jobs, acknowledgements, deal keys, receipts (the home directory natively).
    store: Arc<dyn Store>,
    /// Packed slabs of upload jobs without a home (a page's), while they upload.
    slabs: Arc<crate::store::MemStore>,
    /// Serializes read-modify-write of `receipts.json` (held across the deliveries).
    receipts: futures::lock::Mutex<()>,
}

/// What a [`Client`] is made of: the platform's implementation of every seam.
pub struct Parts {
    /// The light client, synced or not (operations sync it).
    pub chain: ChainView<Api>,
    /// The account's key.
    pub key: SecretKey,
    /// Requests to providers and deputies (natively an ephemeral libp2p node; in a browser
    /// the page's node, reached through a `Requester`).
    pub net: Requester,
    /// The network description (its relays are the deputies).
    pub network: Network,
    /// The home directory natively: upload jobs' packed slabs are files there (as the
    /// store's records they would be synced one by one). `None`: they are kept in memory
    /// while they upload.
    pub home: Option<PathBuf>,
    /// Jobs, acknowledgements, deal keys, receipts.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Where packing runs.
    pub spawner: Arc<dyn Spawner>,
    /// Tuning knobs.
    pub tuning: Tuning,
}

/// Addresses a native node dials: TCP, or QUIC when a peer has no TCP endpoint. (A dead
/// peer refuses TCP at once, while a QUIC dial waits for its handshake timeout; libp2p
/// reports a dial failure only when every address failed.)
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn dialable(endpoints: &[String]) -> Vec<Multiaddr> {
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<Multiaddr> {
        endpoints
            .iter()
            .filter(|e| f(e))
            .filter_map(|e| e.parse().ok())
            .collect()
    };
    let tcp = pick(&|e| e.contains("/tcp/") && !e.contains("/ws") && !e.contains("/webrtc"));
    if tcp.is_empty() {
        pick(&|e| e.contains("/quic-v1"))
    } else {
        tcp
    }
}

/// Addresses a browser node dials: WebRTC-direct (`/certhash`) and WebSocket, direct or
/// through a relay's circuit; nothing else has a browser transport.
#[cfg(target_arch = "wasm32")]
pub(crate) fn dialable(endpoints: &[String]) -> Vec<Multiaddr> {
    endpoints
        .iter()
        .filter(|e| e.contains("/webrtc-direct/") || e.contains("/ws"))
        .filter_map(|e| e.parse().ok())
        .collect()
}

impl Client {
    /// A client over the given seams (the browser builds its parts; natively
    /// [`Client::connect`] does).
    pub fn new(parts: Parts) -> Client {
        Client {
            chain: parts.chain,
            signer: Signer::new(parts.key),
            net: parts.net,
            network: parts.network,
            home: parts.home,
            kzg: KzgSettings::ethereum(),
            tuning: parts.tuning,
            clock: parts.clock,
            spawner: parts.spawner,
            store: parts.store,
            slabs: Arc::default(),
            receipts: futures::lock::Mutex::new(()),
        }
    }

    /// Connects: verifies the chain from genesis and starts a libp2p node (a task of the
    /// current tokio runtime, which must be a multi-threaded one).
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn connect(
        network: Network,
        key: SecretKey,
        home: PathBuf,
        tuning: Tuning,
    ) -> Result<Client> {
        let genesis = nilstore_net::chain::read_genesis(&network.info.genesis)?;
        let chain = ChainView::new(Api::new(&network.info.api), &genesis)?;
        chain.sync().await.context("sync the light client")?;
        let net =
            Requester::ephemeral(Duration::from_secs(60)).map_err(|e| anyhow!("libp2p: {e}"))?;
        std::fs::create_dir_all(&home).with_context(|| format!("create {}", home.display()))?;
        Ok(Client::new(Parts {
            chain,
            key,
            net,
            network,
            store: Arc::new(crate::store::DirStore::new(&home)),
            home: Some(home),
            clock: Arc::new(crate::platform::TokioClock::new()),
            spawner: Arc::new(crate::platform::ThreadSpawner),
            tuning,
        }))
    }

    /// The account's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The light client.
    pub fn chain(&self) -> &ChainView<Api> {
        &self.chain
    }

    /// The network description.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Copies deal `id`'s key (created now if the deal holds nothing yet) into another
    /// client's store (natively its home), so a delegate's upload job encrypts under the
    /// owner's key. Returns the key's name in that store.
    pub async fn share_deal_key(&self, id: u64, other: &dyn Store) -> Result<String> {
        let empty = self.deal(id).await?.manifest_root.is_none();
        let key = self.deal_secret(id, empty).await?;
        let name = deal_key(self.chain.chain_id(), id);
        other
            .put(&name, hex::encode(key).as_bytes(), Kind::Secret)
            .await?;
        Ok(name)
    }

    /// The random secret a deal's files are encrypted under (`keys/` in the store,
    /// secret), created when `create` and durable before it is returned (so before any
    /// content is encrypted under it). Forgetting it ([`Client::forget_deal_key`]) erases
    /// the deal's content for good: crypto-erasure.
    pub(crate) async fn deal_secret(&self, id: u64, create: bool) -> Result<[u8; 32]> {
        let name = deal_key(self.chain.chain_id(), id);
        let raw = match self.store.read(&name, Kind::Secret).await? {
            Some(raw) => raw,
            None => {
                ensure!(
                    create,
                    "no key for deal {id} ({name}{}): its encrypted files cannot be read here",
                    self.home
                        .as_ref()
                        .map(|h| format!(" in {}", h.display()))
                        .unwrap_or_default()
                );
                let mut b = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
                let hex = hex::encode(b);
                self.store.put(&name, hex.as_bytes(), Kind::Secret).await?;
                hex.into_bytes()
            }
        };
        hex::decode(String::from_utf8_lossy(&raw).trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| anyhow!("{name}: not a 32-byte hex key"))
    }

    /// Deal `id`'s key as 64 hex digits, to hand to another device or person
    /// ([`Client::import_deal_key`] there): whoever holds it can read the deal's files.
    pub async fn export_deal_key(&self, id: u64) -> Result<String> {
        Ok(hex::encode(self.deal_secret(id, false).await?))
    }

    /// Stores a deal key handed over from elsewhere (64 hex digits), durable before it
    /// returns. A key that is not 32 bytes of hex is refused, and so is one that differs
    /// from a key this store already holds for the deal: replacing it would lose the
    /// deal's content. Importing the same key again is a no-op.
    pub async fn import_deal_key(&self, id: u64, key_hex: &str) -> Result<()> {
        let key_hex = key_hex.trim().trim_start_matches("0x");
        let key: [u8; 32] = hex::decode(key_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("a deal key is 64 hex digits (32 bytes)"))?;
        let name = deal_key(self.chain.chain_id(), id);
        if self.store.read(&name, Kind::Secret).await?.is_some() {
            let held = self.deal_secret(id, false).await?;
            ensure!(
                held == key,
                "deal {id} already has a different key here ({name}); not replaced"
            );
            return Ok(());
        }
        self.store
            .put(&name, hex::encode(key).as_bytes(), Kind::Secret)
            .await?;
        Ok(())
    }

    /// Deletes a deal's key (after a cancel): what providers still hold is noise.
    pub async fn forget_deal_key(&self, id: u64) -> Result<bool> {
        Ok(self
            .store
            .remove(&deal_key(self.chain.chain_id(), id))
            .await?)
    }

    /// Submits `msg` and waits until it is included; returns the result's events.
    pub async fn send(&self, msg: Msg) -> Result<serde_json::Value> {
        let name = msg.name();
        let hash = self.signer.send_via(&self.chain, msg).await?;
        let t0 = self.clock.monotonic();
        loop {
            match self.chain.tx_status(&hash).await? {
                TxStatus::Included(h, Ok(())) => {
                    let v = self.chain.tx_result(&hash).await?;
                    tracing::debug!(tx = %hash, height = h, "{name} included");
                    return Ok(v);
                }
                TxStatus::Included(_, Err(e)) => bail!("{name} failed on chain: {e}"),
                TxStatus::Pending => {}
            }
            if self.clock.since(t0) > self.tuning.tx_timeout {
                bail!(
                    "{name} ({hash}) not included within {:?}",
                    self.tuning.tx_timeout
                );
            }
            self.clock.sleep(Duration::from_millis(100)).await;
        }
    }

    /// A deal at the latest verified height.
    pub async fn deal(&self, id: u64) -> Result<Deal> {
        self.chain.sync().await?;
        self.chain
            .deal(id)
            .await?
            .ok_or_else(|| anyhow!("deal {id} does not exist (or has ended)"))
    }

    /// Where to reach the provider of every slot of `deal` (the pending one while a slot is
    /// repairing counts only once it is active).
    pub(crate) async fn endpoints(&self, deal: &Deal) -> Result<Vec<Endpoint>> {
        let mut out = Vec::with_capacity(deal.slots.len());
        for s in &deal.slots {
            let p = self
                .chain
                .provider(&s.provider)
                .await?
                .ok_or_else(|| anyhow!("provider {} is not registered", s.provider))?;
            out.push(Endpoint {
                account: s.provider,
                peer: p
                    .peer_id
                    .parse()
                    .map_err(|e| anyhow!("provider {} peer id: {e}", s.provider))?,
                addrs: dialable(&p.endpoints),
            });
        }
        Ok(out)
    }

    /// The devnet's deputies (relays), from their proven registrations.
    pub(crate) async fn deputies(&self) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for r in &self.network.info.relays {
            if let Some(d) = self.chain.deputy(&r.account).await? {
                if let Ok(peer) = d.peer_id.parse() {
                    if out.len() >= self.tuning.max_deputies {
                        break;
                    }
                    out.push(Endpoint {
                        account: r.account,
                        peer,
                        addrs: dialable(&d.endpoints),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Creates a deal; returns its id.
    pub async fn create_deal(&self, d: &DealTerms) -> Result<u64> {
        let v = self
            .send(Msg::CreateDeal {
                k: d.k,
                m: d.m,
                capacity_mdus: d.capacity_mdus,
                term_epochs: d.term_epochs,
                escrow: d.escrow,
                spend_cap: d.spend_cap,
            })
            .await?;
        v["events"]
            .as_array()
            .and_then(|evs| evs.iter().find_map(|e| e["deal"].as_u64()))
            .ok_or_else(|| anyhow!("CreateDeal result names no deal: {v}"))
    }

    /// Default terms for `user_mdus` of capacity at RS(`k`, `m`): the escrow covers rent for
    /// the whole term plus a read budget.
    pub async fn default_terms(
        &self,
        k: u32,
        m: u32,
        capacity_mdus: u64,
        term_epochs: u64,
    ) -> Result<DealTerms> {
        let p = self.chain.globals().await?.params;
        let profile = wasm_core::rs::Profile::new(k as usize, m as usize)?;
        let layout = wasm_core::slab::Layout::new(profile, capacity_mdus)?;
        let total = 1 + layout.witness_mdus + capacity_mdus;
        let rent = p
            .rent_per_mdu_epoch
            .saturating_mul(total as u128)
            .saturating_mul(term_epochs as u128);
        let reads = p.price_per_blob.saturating_mul(1 << 20);
        Ok(DealTerms {
            k,
            m,
            capacity_mdus,
            term_epochs,
            escrow: rent.saturating_add(reads),
            spend_cap: reads,
        })
    }
}

/// What a new deal asks for.
#[derive(Clone, Debug)]
pub struct DealTerms {
    /// Data slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
    /// User MDUs of capacity.
    pub capacity_mdus: u64,
    /// Term.
    pub term_epochs: u64,
    /// Escrow.
    pub escrow: chain_light::Amount,
    /// Most the deal may spend on reads per epoch.
    pub spend_cap: chain_light::Amount,
}

/// The wire form of an MDU's leaves.
pub(crate) fn proto_leaves(l: &[wasm_core::merkle::Leaf]) -> Vec<nilstore_net::proto::Leaf> {
    l.iter().map(|&l| l.into()).collect()
}

/// Retry delay before attempt `n` (1-based): exponential with jitter, capped.
pub(crate) fn backoff(t: &Tuning, n: u32) -> Duration {
    let base = t.backoff.saturating_mul(1 << n.min(16).saturating_sub(1));
    let capped = base.min(t.max_backoff);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    capped.mul_f64(jitter)
}
