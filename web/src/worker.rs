//! The app's worker: `nilstore-client` off the page's main thread. Packing, encryption, KZG
//! commitments, erasure coding, OPFS writes, the light client and the provider traffic all
//! run here, so the page never freezes. The worker's libp2p node dials WebSocket only
//! (`RTCPeerConnection` does not exist in workers); every provider listens on one.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::block::Genesis;
use chain_light::crypto::SecretKey;
use futures::future::{AbortHandle, Abortable};
use js_sys::{Array, Object, Reflect, Uint8Array};
use nilstore_client::network::NetworkInfo;
use nilstore_client::platform::{BrowserClock, Inline};
use nilstore_client::remote::{Client, Event, Network, Parts, PutOptions, Tuning};
use nilstore_client::slabdir::{Input, MemorySink};
use nilstore_client::store::{Kind, OpfsStore, Store};
use nilstore_net::browser::build_worker_swarm;
use nilstore_net::chain::{ChainView, FetchApi};
use nilstore_net::libp2p::identity::Keypair;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, File, FileReaderSync};

use crate::protocol::{
    deal_of_key, DealRow, FileRow, NetworkView, ProviderRow, Reply, Request, Status,
};

/// The OPFS directory of the app's client state (account, deal keys, jobs, acks).
const STORE_DIR: &str = "nilstore-web";
/// The account key's record in the store.
const ACCOUNT_KEY: &str = "account/secp256k1.key";

/// What a connected worker holds.
struct Session {
    client: Client,
    info: NetworkInfo,
    store: Arc<dyn Store>,
}

/// The worker's state: its session once connected, and the puts a person may cancel.
#[derive(Default)]
struct State {
    session: RefCell<Option<Rc<Session>>>,
    running: RefCell<std::collections::BTreeMap<u32, Arc<PutControl>>>,
}

/// A running put, as Cancel sees it.
struct PutControl {
    abort: AbortHandle,
    /// The deal, once the chain created it (`u64::MAX` before).
    created: AtomicU64,
    /// Cancel was asked before the deal existed: stop as soon as it does, so that its key
    /// is kept and the (empty) deal stays in the person's list rather than lost.
    cancel: AtomicBool,
}

impl PutControl {
    fn deal(&self) -> Option<u64> {
        Some(self.created.load(Ordering::Acquire)).filter(|&d| d != u64::MAX)
    }
}

type Shared = Rc<State>;

/// The worker's entry point (called by `worker.js` once the module is instantiated).
#[wasm_bindgen]
pub fn worker_main() {
    console_error_panic_hook();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let session: Shared = Rc::new(State::default());
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let session = session.clone();
            wasm_bindgen_futures::spawn_local(handle(session, ev.data()));
        });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    // Messages sent before the handler existed would be lost: the page waits for this.
    post(&msg(0, "ready", &JsValue::TRUE), None);
}

fn console_error_panic_hook() {
    std::panic::set_hook(Box::new(|p| {
        web_sys::console::error_1(&format!("nilstore worker: {p}").into());
    }));
}

fn msg(id: u32, key: &str, v: &JsValue) -> Object {
    let o = Object::new();
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(&o, &"id".into(), &id.into());
    let _ = Reflect::set(&o, &key.into(), v);
    o
}

fn post(o: &Object, transfer: Option<&JsValue>) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let r = match transfer {
        Some(t) => scope.post_message_with_transfer(o, &Array::of1(t)),
        None => scope.post_message(o),
    };
    if let Err(e) = r {
        web_sys::console::error_2(&"nilstore worker: postMessage failed".into(), &e);
    }
}

async fn handle(session: Shared, data: JsValue) {
    let id = Reflect::get(&data, &"id".into())
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as u32;
    let request = Reflect::get(&data, &"json".into())
        .ok()
        .and_then(|v| v.as_string())
        .ok_or_else(|| anyhow!("a message without a request"))
        .and_then(|j| serde_json::from_str::<Request>(&j).context("a malformed request"));
    let files = Reflect::get(&data, &"files".into()).unwrap_or(JsValue::UNDEFINED);
    let out = match request {
        Ok(r) => run(&session, id, r, files).await,
        Err(e) => Err(e),
    };
    match out {
        Ok((reply, bytes)) => {
            let json = serde_json::to_string(&reply).unwrap_or_default();
            let o = msg(id, "ok", &json.into());
            match bytes {
                Some(b) => {
                    let _ = Reflect::set(&o, &"bytes".into(), &b);
                    post(&o, Some(&b.buffer()));
                }
                None => post(&o, None),
            }
        }
        Err(e) => post(&msg(id, "err", &format!("{e:#}").into()), None),
    }
}

fn event(id: u32, e: &Event) {
    if let Ok(j) = serde_json::to_string(e) {
        post(&msg(id, "event", &j.into()), None);
    }
}

async fn run(
    session: &Shared,
    id: u32,
    r: Request,
    files: JsValue,
) -> Result<(Reply, Option<Uint8Array>)> {
    if r == Request::Connect {
        let existing = session.session.borrow().clone();
        let s = match existing {
            Some(s) => s,
            None => {
                let s = Rc::new(connect().await?);
                *session.session.borrow_mut() = Some(s.clone());
                s
            }
        };
        return Ok((Reply::Status(status(&s).await?), None));
    }
    if let Request::Cancel { id } = r {
        if let Some(c) = session.running.borrow().get(&id) {
            c.cancel.store(true, Ordering::Release);
            if c.deal().is_some() {
                c.abort.abort();
            }
        }
        return Ok((Reply::Done, None));
    }
    let existing = session.session.borrow().clone();
    let s = existing.ok_or_else(|| anyhow!("not connected to the network yet"))?;
    let progress = move |e: &Event| event(id, e);
    Ok(match r {
        Request::Connect | Request::Status => (Reply::Status(status(&s).await?), None),
        Request::Faucet => {
            faucet(&s).await?;
            (Reply::Status(status(&s).await?), None)
        }
        Request::Put => {
            let inputs = inputs(&files)?;
            let opts = PutOptions {
                deal: None,
                k: 4,
                m: 2,
                term_epochs: 1_000,
                escrow: None,
                capacity_mdus: None,
                encrypt: true,
            };
            let (abort, registration) = AbortHandle::new_pair();
            let control = Arc::new(PutControl {
                abort,
                created: AtomicU64::new(u64::MAX),
                cancel: AtomicBool::new(false),
            });
            let watch = {
                let control = control.clone();
                move |e: &Event| {
                    if let Event::DealCreated { deal } = e {
                        control.created.store(*deal, Ordering::Release);
                        if control.cancel.load(Ordering::Acquire) {
                            control.abort.abort();
                        }
                    }
                    progress(e);
                }
            };
            session.running.borrow_mut().insert(id, control.clone());
            let put = Abortable::new(s.client.put(inputs, &opts, &watch), registration).await;
            session.running.borrow_mut().remove(&id);
            if let Some(deal) = control.deal() {
                remember(&s, deal).await?;
            }
            let Ok(put) = put else {
                // Cancelled: the person does not want it stored, so no resume either (a new
                // deal's content is its generation 0).
                return match control.deal() {
                    Some(deal) => {
                        s.client.forget_job(deal, 0).await?;
                        Err(anyhow!(
                            "cancelled: deal {deal} stays on chain, with nothing committed"
                        ))
                    }
                    None => Err(anyhow!("cancelled")),
                };
            };
            let put = put?;
            (
                Reply::Stored {
                    deal: put.deal_id,
                    generation: put.generation,
                },
                None,
            )
        }
        Request::Deals => (
            Reply::Deals {
                deals: deals(&s).await?,
            },
            None,
        ),
        Request::Get { deal, path } => {
            let mut sink = MemorySink::default();
            let got = s.client.get(deal, &path, &mut sink, &progress).await?;
            let bytes = sink
                .files
                .remove(&path)
                .ok_or_else(|| anyhow!("the deal has no file {path:?}"))?;
            (
                Reply::File {
                    size: bytes.len() as u64,
                    fallbacks: got.fallbacks as u64,
                    fraud_reports: got.fraud_reports as u64,
                },
                Some(Uint8Array::from(&bytes[..])),
            )
        }
        Request::Network => (Reply::Network(network(&s).await?), None),
        Request::Pending => (
            Reply::Pending {
                jobs: s.client.pending().await?,
            },
            None,
        ),
        Request::Resume => {
            let reports = s.client.resume(&progress).await?;
            (
                Reply::Resumed {
                    stored: reports.iter().map(|r| (r.deal_id, r.generation)).collect(),
                },
                None,
            )
        }
        Request::Forget { deal, generation } => {
            s.client.forget_job(deal, generation).await?;
            (
                Reply::Pending {
                    jobs: s.client.pending().await?,
                },
                None,
            )
        }
        // Answered above, without a session.
        Request::Cancel { .. } => (Reply::Done, None),
        Request::ExportKey { deal } => (
            Reply::Key {
                deal,
                key: s.client.export_deal_key(deal).await?,
            },
            None,
        ),
    })
}

/// `path` of the server that serves the app (relative to the worker's script).
async fn fetch_text(path: &str, post_body: Option<String>) -> Result<String> {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let init = web_sys::RequestInit::new();
    if let Some(body) = &post_body {
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
        let headers = Object::new();
        let _ = Reflect::set(&headers, &"content-type".into(), &"application/json".into());
        init.set_headers(&headers);
    }
    let resp = JsFuture::from(scope.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|e| anyhow!("{path}: the app's server did not answer ({e:?})"))?;
    let resp: web_sys::Response = resp.unchecked_into();
    let text = JsFuture::from(resp.text().map_err(|e| anyhow!("{path}: {e:?}"))?)
        .await
        .map_err(|e| anyhow!("{path}: {e:?}"))?
        .as_string()
        .unwrap_or_default();
    if !resp.ok() {
        bail!("{path}: {} {}", resp.status(), text.trim());
    }
    Ok(text)
}

/// The account: a key made in this browser on first use, kept in the origin's store.
async fn account(store: &dyn Store) -> Result<SecretKey> {
    if let Some(b) = store.read(ACCOUNT_KEY, Kind::Secret).await? {
        let b: [u8; 32] = hex::decode(String::from_utf8_lossy(&b).trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("the stored account key is damaged"))?;
        return SecretKey::from_bytes(&b).map_err(|e| anyhow!("the stored account key: {e}"));
    }
    let key = loop {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        if let Ok(k) = SecretKey::from_bytes(&b) {
            break k;
        }
    };
    store
        .put(
            ACCOUNT_KEY,
            hex::encode(key.to_bytes()).as_bytes(),
            Kind::Secret,
        )
        .await?;
    Ok(key)
}

async fn connect() -> Result<Session> {
    let info: NetworkInfo = serde_json::from_str(&fetch_text("devnet.json", None).await?)
        .context("the network description (devnet.json)")?;
    let genesis: Genesis = serde_json::from_str(&fetch_text("genesis.json", None).await?)
        .context("the genesis document")?;
    let store: Arc<dyn Store> = Arc::new(
        OpfsStore::open(STORE_DIR)
            .await
            .map_err(|e| anyhow!("browser storage (OPFS): {e}"))?,
    );
    let key = account(&*store).await?;
    let chain = ChainView::new(FetchApi::new(&info.api), &genesis)?;
    chain
        .sync()
        .await
        .with_context(|| format!("follow the chain at {}", info.api))?;
    let node = build_worker_swarm(Keypair::generate_ed25519(), Duration::from_secs(120))
        .map_err(|e| anyhow!("the browser's libp2p node: {e}"))?;
    let client = Client::new(Parts {
        chain,
        key,
        net: nilstore_net::browser::requester(node),
        network: Network {
            path: "devnet.json".into(),
            info: info.clone(),
        },
        home: None,
        store: store.clone(),
        clock: Arc::new(BrowserClock),
        // The worker is the place for CPU-bound work: it has no threads to spare.
        spawner: Arc::new(Inline),
        tuning: Tuning {
            read_timeout: Duration::from_secs(30),
            hedge_after: Duration::from_secs(5),
            per_slot: 2,
            ..Tuning::default()
        },
    });
    Ok(Session {
        client,
        info,
        store,
    })
}

async fn status(s: &Session) -> Result<Status> {
    let chain = s.client.chain();
    let height = chain.sync().await?;
    let account = chain.account(&s.client.address()).await?;
    Ok(Status {
        chain_id: chain.chain_id(),
        height,
        epoch: chain.epoch(),
        address: s.client.address().to_hex(),
        balance: account.balance.to_string(),
        faucet: true,
    })
}

async fn faucet(s: &Session) -> Result<()> {
    let body = serde_json::json!({ "address": s.client.address().to_hex() }).to_string();
    fetch_text("faucet", Some(body)).await?;
    Ok(())
}

/// Where the deals this browser created are listed (`<chain>-deal-<id>.key`, empty): a
/// deal whose upload was cancelled before its key existed is still the person's.
const DEALS_DIR: &str = "web/deals";

async fn remember(s: &Session, deal: u64) -> Result<()> {
    let name = format!(
        "{DEALS_DIR}/{}-deal-{deal}.key",
        s.client.chain().chain_id()
    );
    s.store.put(&name, b"", Kind::Plain).await?;
    Ok(())
}

async fn deals(s: &Session) -> Result<Vec<DealRow>> {
    let chain_id = s.client.chain().chain_id();
    let mut names = s.store.list("keys").await?;
    names.extend(s.store.list(DEALS_DIR).await?);
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| deal_of_key(n, chain_id))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let d = match s.client.deal(id).await {
            Ok(d) => d,
            // A key for a deal the chain does not show (yet): say so rather than hide it.
            Err(e) => {
                rows.push(DealRow {
                    id,
                    k: 0,
                    m: 0,
                    generation: None,
                    stored_bytes: 0,
                    end_epoch: 0,
                    escrow: "0".into(),
                    files: Vec::new(),
                    error: Some(format!("{e:#}")),
                });
                continue;
            }
        };
        let (files, error) = if d.manifest_root.is_some() {
            match s.client.ls(id).await {
                Ok(l) => (
                    l.files
                        .into_iter()
                        .map(|f| FileRow {
                            path: f.path,
                            size: f.size,
                        })
                        .collect(),
                    None,
                ),
                Err(e) => (Vec::new(), Some(format!("{e:#}"))),
            }
        } else {
            (Vec::new(), None)
        };
        rows.push(DealRow {
            id,
            k: d.k,
            m: d.m,
            generation: d.manifest_root.map(|_| d.generation),
            stored_bytes: d.size_bytes,
            end_epoch: d.end_epoch,
            escrow: d.escrow.to_string(),
            files,
            error,
        });
    }
    Ok(rows)
}

async fn network(s: &Session) -> Result<NetworkView> {
    let chain = s.client.chain();
    let height = chain.sync().await?;
    let mut providers = Vec::new();
    for n in &s.info.providers {
        if let Some(p) = chain.provider(&n.account).await? {
            providers.push(ProviderRow {
                account: n.account.to_hex(),
                peer_id: p.peer_id,
                stake: p.stake.to_string(),
                slots: p.slots,
                used_mdus: p.used_mdus,
                capacity_mdus: p.capacity_mdus,
                status: format!("{:?}", p.status),
                offences: p.offences,
            });
        }
    }
    Ok(NetworkView {
        chain_id: chain.chain_id(),
        height,
        api: s.info.api.clone(),
        validators: s.info.validators.len().max(1),
        providers,
        relays: s.info.relays.len(),
    })
}

/// The files of a put, read from disk as packing asks for bytes (never whole in memory).
fn inputs(files: &JsValue) -> Result<Vec<Input>> {
    let files: Array = files
        .clone()
        .dyn_into()
        .map_err(|_| anyhow!("no files came with the request"))?;
    if files.length() == 0 {
        bail!("choose at least one file");
    }
    let mut out = Vec::new();
    for f in files.iter() {
        let file: File = f
            .dyn_into()
            .map_err(|_| anyhow!("the request carried something other than a file"))?;
        let reader = FileReaderSync::new().map_err(|e| anyhow!("FileReaderSync: {e:?}"))?;
        let len = file.size() as u64;
        out.push(Input {
            name: file.name(),
            len,
            mtime: (file.last_modified() / 1e3) as i64,
            reader: Box::new(std::io::BufReader::with_capacity(
                1 << 20,
                BlobReader {
                    file,
                    reader,
                    pos: 0,
                    len,
                },
            )),
            origin: None,
        });
    }
    Ok(out)
}

/// Reads a `File` in slices through `FileReaderSync` (workers only).
struct BlobReader {
    file: File,
    reader: FileReaderSync,
    pos: u64,
    len: u64,
}

// SAFETY: `Input` asks for `Send` because native packing runs on another thread. This
// module exists only on wasm32 built without atomics, where there is one thread: the
// reader is created, used and dropped on the worker's thread, and never crosses to
// another (the worker's spawner is `Inline`).
#[cfg(not(target_feature = "atomics"))]
unsafe impl Send for BlobReader {}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos));
        if n == 0 {
            return Ok(0);
        }
        let io = |e: JsValue| std::io::Error::other(format!("reading {}: {e:?}", self.file.name()));
        let slice = self
            .file
            .slice_with_f64_and_f64(self.pos as f64, (self.pos + n) as f64)
            .map_err(io)?;
        let ab = self.reader.read_as_array_buffer(&slice).map_err(io)?;
        let got = Uint8Array::new(&ab);
        let got_n = got.length() as usize;
        if got_n as u64 != n {
            return Err(std::io::Error::other(format!(
                "{} changed while being read",
                self.file.name()
            )));
        }
        got.copy_to(&mut buf[..got_n]);
        self.pos += n;
        Ok(got_n)
    }
}
