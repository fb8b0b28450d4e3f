//! What the page and the worker say to each other, and how the page turns the client's
//! progress events into what a person sees. Plain data, tested natively.
//!
//! ```text
//!  page ──{id, json: Request, files?: [File]}──▶ worker
//!  page ◀──{id, event: Event}─────────────────── worker   (any number, while it works)
//!  page ◀──{id, ok: Reply, bytes?: Uint8Array}── worker   (once; or {id, err: text})
//! ```
//! Requests and replies travel as JSON text; files go as `File` objects (the worker reads
//! them itself, without a copy through the page) and downloaded bytes come back as a
//! transferred buffer.

use nilstore_client::remote::{Event, PendingJob};
use serde::{Deserialize, Serialize};

/// A request from the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Load the network's description, open the account and the store, follow the chain.
    Connect,
    /// Height, account and balance.
    Status,
    /// Ask the devnet's faucet for tokens.
    Faucet,
    /// Store the files sent with the request in a new encrypted deal.
    Put,
    /// Deals this browser holds keys for, with their state on chain and their files.
    Deals,
    /// One file of a deal, verified.
    Get {
        /// Deal.
        deal: u64,
        /// Path in the deal.
        path: String,
    },
    /// The network: validators and providers as the chain records them.
    Network,
    /// A deal's key (hex), to hand to another client (`nilstore deal import-key`).
    ExportKey {
        /// Deal.
        deal: u64,
    },
    /// Uploads an interruption (a closed or reloaded tab) left in the browser's store.
    Pending,
    /// Finish every resumable pending upload (sends only what no provider acknowledged).
    Resume,
    /// Drop a pending upload that cannot be resumed (or that the person cancelled).
    Forget {
        /// Deal.
        deal: u64,
        /// Generation the upload would have committed.
        generation: u64,
    },
    /// Stop the request `id` (a put): what it sent stays sent; its job is dropped.
    Cancel {
        /// The request to stop.
        id: u32,
    },
}

/// The account and the chain as the light client sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Chain id.
    pub chain_id: u64,
    /// Certified height.
    pub height: u64,
    /// Current epoch.
    pub epoch: u64,
    /// The account's address (0x...).
    pub address: String,
    /// Spendable balance (decimal).
    pub balance: String,
    /// Whether the server offers a faucet (devnets).
    pub faucet: bool,
}

/// A stored file as the page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    /// Path in the deal.
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// A deal as the page lists it: read through the light client (proven, not trusted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRow {
    /// Deal id.
    pub id: u64,
    /// Data and parity slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
    /// Committed generation (None: nothing committed yet).
    pub generation: Option<u64>,
    /// Stored bytes (after packing and encryption).
    pub stored_bytes: u64,
    /// First epoch after the term.
    pub end_epoch: u64,
    /// Escrow left (decimal).
    pub escrow: String,
    /// Files (empty when they could not be listed; see `error`).
    pub files: Vec<FileRow>,
    /// Why the files could not be listed.
    pub error: Option<String>,
}

/// A provider as the chain records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRow {
    /// Account (0x...).
    pub account: String,
    /// Peer id.
    pub peer_id: String,
    /// Stake (decimal).
    pub stake: String,
    /// Slots assigned or pending.
    pub slots: u32,
    /// MDUs reserved of the capacity.
    pub used_mdus: u64,
    /// Capacity in MDUs.
    pub capacity_mdus: u64,
    /// Status as the chain says (e.g. "Active").
    pub status: String,
    /// Times slashed.
    pub offences: u32,
}

/// The network page's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Chain id.
    pub chain_id: u64,
    /// Certified height.
    pub height: u64,
    /// Validator API the light client follows.
    pub api: String,
    /// Validators of the devnet (their API addresses).
    pub validators: usize,
    /// Providers.
    pub providers: Vec<ProviderRow>,
    /// Relays (deputies).
    pub relays: usize,
}

/// A finished request's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Connected, or the status asked for.
    Status(Status),
    /// Files stored.
    Stored {
        /// Deal.
        deal: u64,
        /// Generation committed.
        generation: u64,
    },
    /// Deals.
    Deals {
        /// Rows, newest first.
        deals: Vec<DealRow>,
    },
    /// The file's bytes come with the message.
    File {
        /// Bytes.
        size: u64,
        /// Slots that did not serve and were replaced (deputy fallback).
        fallbacks: u64,
        /// Corrupt slots caught and reported.
        fraud_reports: u64,
    },
    /// The network.
    Network(NetworkView),
    /// Pending uploads.
    Pending {
        /// Jobs, as the client reports them.
        jobs: Vec<PendingJob>,
    },
    /// Resumed uploads, now on chain: (deal, generation).
    Resumed {
        /// What was committed.
        stored: Vec<(u64, u64)>,
    },
    /// Done (forget, cancel).
    Done,
    /// A deal's key.
    Key {
        /// Deal.
        deal: u64,
        /// 64 hex digits.
        key: String,
    },
}

/// Stages of an upload, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Waiting for the worker (reading the files, creating the deal).
    Starting,
    /// Packing, encrypting, committing (KZG) and erasure-coding.
    Packing,
    /// Sending shards to the providers.
    Uploading,
    /// Waiting for the chain to include the commit.
    Confirming,
    /// Stored: the chain holds the new content.
    Done,
    /// Stopped with an error.
    Failed,
}

impl Stage {
    /// The words a person sees.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Starting => "starting",
            Stage::Packing => "packing and committing",
            Stage::Uploading => "uploading to providers",
            Stage::Confirming => "confirming on chain",
            Stage::Done => "stored",
            Stage::Failed => "failed",
        }
    }
}

/// Shares of the overall bar: packing, then uploading, then the chain.
const PACK_SHARE: f64 = 0.45;
const UPLOAD_SHARE: f64 = 0.50;

/// An upload's progress, folded from the client's events.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracker {
    /// Current stage.
    pub stage: Stage,
    /// Packing: bytes done and total.
    pub packed: (u64, u64),
    /// Uploading: bytes acknowledged and total.
    pub sent: (u64, u64),
    /// Slots whose every shard is acknowledged, of all.
    pub slots: (usize, usize),
    /// The deal, once it exists.
    pub deal: Option<u64>,
    /// Retries so far.
    pub retries: u32,
    /// (ms since start, MB/s) samples for the throughput plot.
    pub rate: Vec<(f64, f64)>,
    /// When packing started (ms) and bytes then, for the packing rate.
    started_ms: f64,
}

impl Tracker {
    /// A new upload, started at `now_ms`.
    pub fn new(now_ms: f64) -> Tracker {
        Tracker {
            stage: Stage::Starting,
            packed: (0, 0),
            sent: (0, 0),
            slots: (0, 0),
            deal: None,
            retries: 0,
            rate: Vec::new(),
            started_ms: now_ms,
        }
    }

    fn frac((done, total): (u64, u64)) -> f64 {
        if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        }
    }

    /// Folds one event in, at `now_ms`.
    pub fn apply(&mut self, e: &Event, now_ms: f64) {
        let t = (now_ms - self.started_ms).max(0.0);
        match e {
            Event::Packing { done, total } => {
                self.packed = (*done, *total);
                if self.stage < Stage::Packing {
                    self.stage = Stage::Packing;
                }
                if t > 0.0 {
                    self.sample(t, *done as f64 / 1e6 / (t / 1e3));
                }
            }
            Event::DealCreated { deal } => self.deal = Some(*deal),
            Event::Uploading {
                done,
                total,
                slots_acked,
                slots,
                mb_per_s,
            } => {
                self.sent = (*done, *total);
                self.slots = (*slots_acked, *slots);
                // Early sends overlap packing: the stage moves on once packing is done.
                if self.stage < Stage::Uploading && self.packing_done() {
                    self.stage = Stage::Uploading;
                }
                if done == total && *total > 0 && self.packing_done() {
                    self.stage = self.stage.max(Stage::Confirming);
                }
                self.sample(t, *mb_per_s);
            }
            Event::Retry { .. } => self.retries = self.retries.saturating_add(1),
            Event::Committed { deal, .. } => {
                self.deal = Some(*deal);
                self.stage = Stage::Done;
            }
            Event::ShardAcked { .. } | Event::Downloading { .. } | Event::Fallback { .. } => {}
        }
    }

    fn packing_done(&self) -> bool {
        self.packed.1 > 0 && self.packed.0 >= self.packed.1
    }

    fn sample(&mut self, t: f64, mb_s: f64) {
        if !mb_s.is_finite() {
            return;
        }
        // One sample per 250 ms is enough for a plot.
        match self.rate.last_mut() {
            Some(last) if t - last.0 < 250.0 => last.1 = mb_s,
            _ => self.rate.push((t, mb_s)),
        }
    }

    /// An upload an interruption left packed, being finished at `now_ms`: only sending
    /// and the commit are left.
    pub fn resumed(now_ms: f64) -> Tracker {
        let mut t = Tracker::new(now_ms);
        t.packed = (1, 1);
        t.stage = Stage::Uploading;
        t
    }

    /// The request finished: the content is on chain.
    pub fn finish(&mut self, deal: u64) {
        self.deal = Some(deal);
        self.stage = Stage::Done;
    }

    /// The request failed.
    pub fn fail(&mut self) {
        self.stage = Stage::Failed;
    }

    /// Overall progress in percent (100 only once stored).
    pub fn percent(&self) -> f64 {
        match self.stage {
            Stage::Done => 100.0,
            _ => {
                let p = PACK_SHARE * Self::frac(self.packed) + UPLOAD_SHARE * Self::frac(self.sent);
                // Never show 100 before the chain has it.
                (p * 100.0).min(99.0)
            }
        }
    }

    /// The latest throughput (MB/s).
    pub fn mb_per_s(&self) -> f64 {
        self.rate.last().map_or(0.0, |r| r.1)
    }

    /// Seconds left at the current rate, when there is one.
    pub fn eta_s(&self) -> Option<f64> {
        let rate = self.mb_per_s() * 1e6;
        if rate <= 0.0 {
            return None;
        }
        let left = match self.stage {
            Stage::Starting | Stage::Packing => {
                // Packing, then the upload of what packing made.
                self.packed.1.saturating_sub(self.packed.0) as f64
                    + self.sent.1.saturating_sub(self.sent.0) as f64
            }
            Stage::Uploading => self.sent.1.saturating_sub(self.sent.0) as f64,
            _ => return None,
        };
        Some(left / rate)
    }
}

/// `n` with thousands separators (amounts are decimal strings of up to 39 digits).
pub fn group_digits(n: &str) -> String {
    let digits: Vec<char> = n.chars().collect();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*c);
    }
    out
}

/// Bytes in words a person reads (KiB/MiB/GiB, one decimal).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The deal id in a client store's key name (`<chain>-deal-<id>.key`), for this chain.
pub fn deal_of_key(name: &str, chain_id: u64) -> Option<u64> {
    let rest = name.strip_prefix(&format!("{chain_id}-deal-"))?;
    rest.strip_suffix(".key")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_json() {
        let reqs = [
            Request::Connect,
            Request::Put,
            Request::Resume,
            Request::Forget {
                deal: 3,
                generation: 1,
            },
            Request::Cancel { id: 9 },
            Request::Get {
                deal: 7,
                path: "a/b.bin".into(),
            },
        ];
        for r in reqs {
            let j = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r, "{j}");
        }
        assert_eq!(
            serde_json::to_string(&Request::Get {
                deal: 7,
                path: "x".into()
            })
            .unwrap(),
            r#"{"op":"get","deal":7,"path":"x"}"#
        );
        let reply = Reply::Stored {
            deal: 3,
            generation: 1,
        };
        let j = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&j).unwrap(), reply);
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn client_events_cross_as_json() {
        let e = Event::Uploading {
            done: 5,
            total: 10,
            slots_acked: 1,
            slots: 6,
            mb_per_s: 2.5,
        };
        let j = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&j).unwrap();
        assert_eq!(format!("{back:?}"), format!("{e:?}"));
    }

    #[test]
    fn the_bar_moves_through_the_stages_and_reaches_100_only_when_stored() {
        let mut t = Tracker::new(1_000.0);
        assert_eq!((t.stage, t.percent()), (Stage::Starting, 0.0));
        t.apply(&Event::DealCreated { deal: 9 }, 1_100.0);
        t.apply(
            &Event::Packing {
                done: 50,
                total: 100,
            },
            2_000.0,
        );
        assert_eq!(t.stage, Stage::Packing);
        assert!((t.percent() - 22.5).abs() < 1e-9, "{}", t.percent());
        // An early send while packing goes on does not move the stage.
        let up = |done| Event::Uploading {
            done,
            total: 200,
            slots_acked: 0,
            slots: 6,
            mb_per_s: 4.0,
        };
        t.apply(&up(20), 2_100.0);
        assert_eq!(t.stage, Stage::Packing);
        t.apply(
            &Event::Packing {
                done: 100,
                total: 100,
            },
            3_000.0,
        );
        t.apply(&up(100), 3_500.0);
        assert_eq!(t.stage, Stage::Uploading);
        assert!((t.percent() - 70.0).abs() < 1e-9, "{}", t.percent());
        assert_eq!(t.eta_s(), Some(100.0 / 4e6));
        t.apply(&up(200), 4_000.0);
        assert_eq!(t.stage, Stage::Confirming);
        assert!((t.percent() - 95.0).abs() < 1e-9, "{}", t.percent());
        assert_eq!(t.eta_s(), None);
        t.apply(
            &Event::Committed {
                deal: 9,
                generation: 0,
            },
            4_500.0,
        );
        assert_eq!(
            (t.stage, t.percent(), t.deal),
            (Stage::Done, 100.0, Some(9))
        );
        assert!(t.rate.len() >= 3, "{:?}", t.rate);
    }

    #[test]
    fn the_bar_never_shows_100_before_the_chain_has_the_content() {
        let mut t = Tracker::new(0.0);
        t.apply(
            &Event::Packing {
                done: 10,
                total: 10,
            },
            1.0,
        );
        t.apply(
            &Event::Uploading {
                done: 10,
                total: 10,
                slots_acked: 6,
                slots: 6,
                mb_per_s: 1.0,
            },
            2.0,
        );
        assert!(t.percent() < 100.0);
        t.fail();
        assert_eq!(t.stage, Stage::Failed);
        assert!(t.percent() < 100.0);
        let mut t = Tracker::new(0.0);
        t.finish(4);
        assert_eq!((t.percent(), t.deal), (100.0, Some(4)));
    }

    #[test]
    fn a_resumed_upload_starts_past_packing() {
        let mut t = Tracker::resumed(0.0);
        assert_eq!(t.stage, Stage::Uploading);
        assert!((t.percent() - 45.0).abs() < 1e-9, "{}", t.percent());
        t.apply(
            &Event::Uploading {
                done: 10,
                total: 10,
                slots_acked: 6,
                slots: 6,
                mb_per_s: 3.0,
            },
            10.0,
        );
        assert_eq!(t.stage, Stage::Confirming);
        t.finish(2);
        assert_eq!(t.percent(), 100.0);
    }

    #[test]
    fn throughput_samples_are_thinned_and_bad_rates_dropped() {
        let mut t = Tracker::new(0.0);
        for i in 0..100 {
            t.apply(
                &Event::Packing {
                    done: i * 1_000_000,
                    total: 100_000_000,
                },
                (i * 10) as f64 + 1.0,
            );
        }
        // 1 s of events, one sample per 250 ms at most.
        assert!(t.rate.len() <= 5, "{}", t.rate.len());
        assert!(t.rate.iter().all(|r| r.1.is_finite()));
    }

    #[test]
    fn numbers_read_like_words() {
        assert_eq!(
            group_digits("1000000000000000000000"),
            "1,000,000,000,000,000,000,000"
        );
        assert_eq!(group_digits("999"), "999");
        assert_eq!(group_digits("1000"), "1,000");
        assert_eq!(group_digits("0"), "0");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(32 << 20), "32.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn deal_ids_come_from_key_names_of_this_chain_only() {
        assert_eq!(deal_of_key("7-deal-12.key", 7), Some(12));
        assert_eq!(deal_of_key("8-deal-12.key", 7), None);
        assert_eq!(deal_of_key("7-deal-x.key", 7), None);
        assert_eq!(deal_of_key("7-deal-12.key.tmp", 7), None);
    }
}
