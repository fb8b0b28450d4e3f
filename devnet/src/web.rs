//! `devnet up --web DIR`: serves the built web app (`scripts/build-web.sh`) on loopback,
//! with what the app needs from the server that serves it:
//!
//! ```text
//!  GET  /devnet.json    the network (validator API, providers, relays)
//!  GET  /genesis.json   the genesis document the app's light client starts from
//!  POST /faucet         {"address": "0x.."}: tokens from a free dev account (devnets only)
//!  GET  /*              the app's files
//! ```
//! Every response carries the cross-origin-isolation headers (COOP/COEP) that a threaded
//! Wasm build needs; the validator API answers CORS, so the app may call it from here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::tx::Msg;
use chain_light::Amount;
use nilstore_net::chain::{HttpChain, Signer};

/// Tokens per faucet payment: a thousandth of a dev account, plenty for many deals.
pub const FAUCET_AMOUNT: Amount = 1_000_000_000_000_000_000;

/// Where the app is and where to serve it.
#[derive(Clone, Debug)]
pub struct Web {
    /// The built app (index.html, worker.js, the Wasm module).
    pub dir: PathBuf,
    /// Address to serve on (port 0: any).
    pub addr: SocketAddr,
}

struct AppState {
    dir: PathBuf,
    devnet_json: Vec<u8>,
    genesis_json: Vec<u8>,
    faucet: Option<Faucet>,
}

struct Faucet {
    key: SecretKey,
    chain: Arc<HttpChain>,
    /// One payment at a time: each takes the next nonce of the same account.
    busy: tokio::sync::Mutex<()>,
}

/// The bound listener, before serving (its address goes into `devnet.json`).
pub async fn bind(web: &Web) -> Result<tokio::net::TcpListener> {
    if !web.dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: build the app first (scripts/build-web.sh)",
            web.dir.display()
        );
    }
    tokio::net::TcpListener::bind(web.addr)
        .await
        .with_context(|| format!("bind the web app's address {}", web.addr))
}

/// The router over `dir`, answering `devnet_json` and `genesis` and paying from `faucet`.
pub fn router(
    dir: &Path,
    devnet_json: Vec<u8>,
    genesis_json: Vec<u8>,
    faucet: Option<(SecretKey, Arc<HttpChain>)>,
) -> Router {
    let state = Arc::new(AppState {
        dir: dir.to_path_buf(),
        devnet_json,
        genesis_json,
        faucet: faucet.map(|(key, chain)| Faucet {
            key,
            chain,
            busy: tokio::sync::Mutex::new(()),
        }),
    });
    Router::new()
        .route(
            "/devnet.json",
            get(|State(s): State<Arc<AppState>>| async move { json(s.devnet_json.clone()) }),
        )
        .route(
            "/genesis.json",
            get(|State(s): State<Arc<AppState>>| async move { json(s.genesis_json.clone()) }),
        )
        .route("/faucet", post(pay))
        .fallback(get(file))
        .layer(DefaultBodyLimit::max(1024))
        .layer(axum::middleware::map_response(isolate))
        .with_state(state)
}

/// Cross-origin isolation (threaded Wasm needs `SharedArrayBuffer`).
async fn isolate(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    r
}

fn json(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The content type of an app file.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The file of the app under `dir` that `uri` names, if it is one: plain names only (no
/// `..`, no hidden files, no absolute paths).
pub fn resolve(dir: &Path, uri_path: &str) -> Option<PathBuf> {
    let rel = uri_path.strip_prefix('/').unwrap_or(uri_path);
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let plain = rel.split('/').all(|c| {
        !c.is_empty()
            && !c.starts_with('.')
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    plain.then(|| dir.join(rel))
}

async fn file(State(s): State<Arc<AppState>>, uri: Uri) -> Response {
    let Some(path) = resolve(&s.dir, uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, content_type(&path.to_string_lossy())),
                // A rebuilt app is seen on the next load.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct PayRequest {
    address: String,
}

async fn pay(State(s): State<Arc<AppState>>, Json(req): Json<PayRequest>) -> Response {
    let Some(f) = &s.faucet else {
        return (StatusCode::NOT_FOUND, "this network has no faucet").into_response();
    };
    let to = match Address::from_hex(req.address.trim()) {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{:?} is not an account address: {e}", req.address),
            )
                .into_response()
        }
    };
    let _one = f.busy.lock().await;
    let (key, chain) = (f.key.clone(), f.chain.clone());
    let paid = tokio::task::spawn_blocking(move || -> Result<Result<Amount, String>> {
        chain.sync()?;
        let have = chain.account(&to)?.balance;
        if have >= FAUCET_AMOUNT {
            return Ok(Err(format!(
                "the account already holds {have} tokens; the faucet pays accounts with less than {FAUCET_AMOUNT}"
            )));
        }
        let hash = Signer::new(key).send(
            &chain,
            Msg::Transfer {
                to,
                amount: FAUCET_AMOUNT,
            },
        )?;
        crate::await_included(&chain, &[hash])?;
        Ok(Ok(chain.account(&to)?.balance))
    })
    .await;
    match paid {
        Ok(Ok(Ok(balance))) => {
            tracing::info!(%to, "faucet paid");
            Json(serde_json::json!({ "paid": FAUCET_AMOUNT.to_string(), "balance": balance.to_string() }))
                .into_response()
        }
        Ok(Ok(Err(why))) => (StatusCode::CONFLICT, why).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            format!("the chain did not take the payment: {e:#}"),
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the faucet failed").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_under_the_app_directory_are_served() {
        let d = Path::new("/srv/app");
        assert_eq!(resolve(d, "/"), Some(d.join("index.html")));
        assert_eq!(resolve(d, "/worker.js"), Some(d.join("worker.js")));
        assert_eq!(resolve(d, "/a/b.css"), Some(d.join("a/b.css")));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/.git/config",
            "//etc/passwd",
            "/a//b",
            "/%2e%2e/x",
            "/a\\b",
        ] {
            assert_eq!(resolve(d, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_module_is_served_as_wasm() {
        assert_eq!(content_type("/nilstore_web_bg.wasm"), "application/wasm");
        assert!(content_type("/worker.js").starts_with("text/javascript"));
        let index = resolve(Path::new("app"), "/").unwrap();
        assert!(content_type(&index.to_string_lossy()).starts_with("text/html"));
        assert!(content_type("/x.bin").starts_with("application/octet"));
    }
}
