//! The validator's HTTP/JSON API (axum): status, headers with finalization certificates,
//! blocks, transaction submission and lookup, state with proofs, an SSE feed of committed
//! blocks, and Prometheus metrics. Errors are `{"error": {"code", "message"}}` with the
//! matching status code.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::StateProof;
use crate::bytes::{Address, H256};
use crate::state::{state_key, tag};
use crate::tx::SignedTx;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt as _;

use super::node::{Node, SubmitError};

/// An API error.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Per-client token buckets for `POST /tx` (the only write; reads are cheap and bounded).
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimit {
    /// `per_sec` sustained, bursts of twice that.
    pub fn new(per_sec: u32) -> RateLimit {
        RateLimit {
            per_sec: per_sec.max(1) as f64,
            burst: 2.0 * per_sec.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        if b.len() > 100_000 {
            b.clear(); // bounded memory; forgetting buckets only forgives clients
        }
        let (tokens, last) = b.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Api {
    node: Node,
    limit: Arc<RateLimit>,
    subscribers: Subscribers,
}

/// Limits of the validator's API.
#[derive(Clone, Copy, Debug)]
pub struct ApiLimits {
    /// The server's connection cap and header timeout.
    pub http: crate::http_server::Limits,
    /// Event-stream (`/events`) subscribers at once: each costs a serialization of every
    /// block's events; one more is refused with 503.
    pub max_subscribers: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            http: crate::http_server::Limits::default(),
            max_subscribers: 256,
        }
    }
}

/// The free `/events` subscriptions.
#[derive(Clone)]
struct Subscribers(Arc<tokio::sync::Semaphore>, usize);

impl axum::extract::FromRef<Api> for Subscribers {
    fn from_ref(a: &Api) -> Subscribers {
        a.subscribers.clone()
    }
}

impl axum::extract::FromRef<Api> for Node {
    fn from_ref(a: &Api) -> Node {
        a.node.clone()
    }
}

/// The API router; `POST /tx` is limited to `tx_rate` per second per client address, and
/// `/events` to `max_subscribers` streams at once.
///
/// Any origin may call it (CORS): the API is public, carries no credentials, and a browser
/// light client checks every answer against certified headers.
pub fn router(node: Node, tx_rate: u32, max_subscribers: usize) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    let api = Api {
        node,
        limit: Arc::new(RateLimit::new(tx_rate)),
        subscribers: Subscribers(
            Arc::new(tokio::sync::Semaphore::new(max_subscribers)),
            max_subscribers,
        ),
    };
    Router::new()
        .route("/status", get(status))
        .route("/genesis", get(genesis))
        .route("/headers/{height}", get(header_at))
        .route("/blocks/{height}", get(block_at))
        .route("/tx", post(submit))
        .route("/tx/{hash}", get(tx_status))
        .route("/state/account/{addr}", get(account))
        .route("/state/provider/{addr}", get(provider))
        .route("/state/deputy/{addr}", get(deputy))
        .route("/state/deal/{id}", get(deal))
        .route("/state/validator/{addr}", get(validator))
        .route("/state/globals", get(globals))
        .route("/state/work/{deal}/{slot}", get(work))
        .route("/state/receipt/{deal}/{provider}", get(receipt))
        .route(
            "/state/attestations/{deal}/{slot}/{epoch}",
            get(attestations),
        )
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(2 << 20))
        .layer(cors)
        .with_state(api)
}

async fn status(State(node): State<Node>) -> ApiResult {
    let s = node.lock();
    let c = &s.chain;
    Ok(Json(json!({
        "chain_id": c.state.g.chain_id,
        "height": c.tip.height,
        "hash": c.tip.hash(),
        "state_root": c.tip.state_root,
        "time_ms": c.tip.time_ms,
        "epoch": c.state.g.epoch,
        "beacon": c.state.g.beacon,
        "genesis_hash": c.genesis_hash,
        "validators": c.state.g.validators,
        "consensus_epoch": c.state.g.set_epoch,
        "mempool": s.mempool.len(),
    })))
}

async fn genesis(State(node): State<Node>) -> ApiResult {
    let s = node.lock();
    Ok(Json(
        json!({ "genesis_hash": s.chain.genesis_hash, "params": s.chain.state.g.params }),
    ))
}

async fn header_at(State(node): State<Node>, Path(height): Path<u64>) -> ApiResult {
    let block = node
        .store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no finalized block at height {height}")))?;
    let cert = node.store.cert(height).map_err(ApiError::internal)?;
    let h = &block.header;
    Ok(Json(json!({
        "height": h.height,
        "hash": h.hash(),
        "state_root": h.state_root,
        "header": h,
        "finalization": cert.map(|c| format!("0x{}", hex::encode(c))),
    })))
}

async fn block_at(State(node): State<Node>, Path(height): Path<u64>) -> ApiResult {
    let block = node
        .store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no finalized block at height {height}")))?;
    Ok(Json(json!(block)))
}

async fn submit(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !api.limit.allow(peer.ip()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many transactions from this address; slow down",
        ));
    }
    let node = api.node;
    let tx: SignedTx = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a signed transaction: {e}")))?;
    match node.submit(tx) {
        Ok(hash) => Ok((StatusCode::ACCEPTED, Json(json!({"hash": hash}))).into_response()),
        Err(SubmitError::Duplicate) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate",
            "transaction already known",
        )),
        Err(SubmitError::Full) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "mempool_full",
            "mempool full; retry later",
        )),
        Err(e @ SubmitError::SenderFull) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "sender_full",
            e.to_string(),
        )),
        Err(e @ SubmitError::Underpriced { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "underpriced",
            e.to_string(),
        )),
        Err(SubmitError::Tx(e)) => {
            let (status, code) = match &e {
                crate::TxError::Nonce { .. } => (StatusCode::CONFLICT, "nonce"),
                crate::TxError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                crate::TxError::Signature(_) => (StatusCode::FORBIDDEN, "signature"),
                _ => (StatusCode::BAD_REQUEST, "invalid"),
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}

async fn tx_status(State(node): State<Node>, Path(hash): Path<String>) -> ApiResult {
    let h = H256::from_hex(&hash).map_err(|e| ApiError::bad_request(format!("hash: {e}")))?;
    {
        let s = node.lock();
        if let Some((height, r)) = s.recent.get(&h) {
            return Ok(Json(
                json!({"status": "included", "height": height, "result": r}),
            ));
        }
        if s.mempool.iter().any(|t| t.hash() == h) {
            return Ok(Json(json!({"status": "pending"})));
        }
    }
    match node.store.tx_location(&h.0).map_err(ApiError::internal)? {
        Some((height, index)) => Ok(Json(
            json!({"status": "included", "height": height, "index": index}),
        )),
        None => Err(ApiError::not_found("unknown transaction")),
    }
}

#[derive(Deserialize)]
struct AtHeight {
    height: Option<u64>,
}

/// A record with its proof at a height (default: the tip).
fn proven<T: serde::Serialize + serde::de::DeserializeOwned>(
    node: &Node,
    key: Vec<u8>,
    height: Option<u64>,
) -> ApiResult {
    let s = node.lock();
    let height = height.unwrap_or(s.chain.tip.height);
    if height > s.chain.tip.height {
        return Err(ApiError::not_found(format!(
            "height {height} is not finalized yet"
        )));
    }
    let root = s
        .chain
        .auth
        .root(height)
        .ok_or_else(|| ApiError::not_found(format!("no state at height {height}")))?;
    let p: StateProof = s.chain.prove(&key, height).map_err(ApiError::internal)?;
    let value: Option<T> = match &p.value {
        Some(v) => Some(crate::codec::decode(v, 16 << 20).map_err(ApiError::internal)?),
        None => None,
    };
    Ok(Json(json!({
        "height": height,
        "state_root": root,
        "value": value,
        "proof": {
            "key": format!("0x{}", hex::encode(&p.key)),
            "value": p.value.as_ref().map(|v| format!("0x{}", hex::encode(v))),
            "proof": format!("0x{}", hex::encode(&p.proof)),
        },
    })))
}

fn address(s: &str) -> Result<Address, ApiError> {
    Address::from_hex(s).map_err(|e| ApiError::bad_request(format!("address: {e}")))
}

async fn account(
    State(n): State<Node>,
    Path(a): Path<String>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::Account>(&n, state_key(tag::ACCOUNT, &address(&a)?), q.height)
}

async fn provider(
    State(n): State<Node>,
    Path(a): Path<String>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::Provider>(&n, state_key(tag::PROVIDER, &address(&a)?), q.height)
}

async fn deputy(
    State(n): State<Node>,
    Path(a): Path<String>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::Deputy>(&n, state_key(tag::DEPUTY, &address(&a)?), q.height)
}

async fn validator(
    State(n): State<Node>,
    Path(a): Path<String>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::Validator>(&n, state_key(tag::VALIDATOR, &address(&a)?), q.height)
}

async fn deal(State(n): State<Node>, Path(id): Path<u64>, Query(q): Query<AtHeight>) -> ApiResult {
    proven::<crate::state::Deal>(&n, state_key(tag::DEAL, &id), q.height)
}

async fn work(
    State(n): State<Node>,
    Path((deal, slot)): Path<(u64, u32)>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::Work>(&n, state_key(tag::WORK, &(deal, slot)), q.height)
}

async fn receipt(
    State(n): State<Node>,
    Path((deal, provider)): Path<(u64, String)>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<crate::state::ReceiptState>(
        &n,
        state_key(tag::RECEIPT, &(deal, address(&provider)?)),
        q.height,
    )
}

async fn attestations(
    State(n): State<Node>,
    Path((deal, slot, epoch)): Path<(u64, u32, u64)>,
    Query(q): Query<AtHeight>,
) -> ApiResult {
    proven::<Vec<crate::bytes::Address>>(&n, state_key(tag::ATTEST, &(deal, slot, epoch)), q.height)
}

async fn globals(State(n): State<Node>, Query(q): Query<AtHeight>) -> ApiResult {
    proven::<crate::state::Globals>(&n, vec![tag::GLOBALS], q.height)
}

async fn events(State(node): State<Node>, State(slots): State<Subscribers>) -> Response {
    let Ok(slot) = slots.0.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("at most {} event subscribers at once", slots.1) })),
        )
            .into_response();
    };
    let rx = node.feed.subscribe();
    let stream = BroadcastStream::new(rx).filter_map(move |item| {
        // The subscription's slot is freed with the stream, when the client goes.
        let _slot = &slot;
        let item = item.ok()?;
        let data = serde_json::to_string(&*item).ok()?;
        Some(Ok::<_, Infallible>(
            SseEvent::default().event("block").data(data),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn metrics(State(node): State<Node>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}
