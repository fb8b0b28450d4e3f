//! The browser transport of the light client: the validator's HTTP API over `fetch`
//! (works in a window and in a worker; the validator answers CORS requests).

use std::future::Future;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{ChainApi, MAX_RESPONSE};

/// Longest a request may take before it is aborted.
const TIMEOUT_MS: u32 = 10_000;

/// A validator's HTTP API over the browser's `fetch`.
#[derive(Clone, Debug)]
pub struct FetchApi {
    base: String,
}

impl FetchApi {
    /// The API at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str) -> FetchApi {
        FetchApi {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }
}

fn js(what: &str, e: JsValue) -> anyhow::Error {
    anyhow!(
        "{what}: {}",
        e.as_string().unwrap_or_else(|| format!("{e:?}"))
    )
}

/// One request: the status and the body (at most [`MAX_RESPONSE`] bytes).
async fn fetch(what: &str, url: &str, body: Option<String>) -> Result<(u16, String)> {
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS)));
    if let Some(body) = body {
        init.set_method("POST");
        let headers = web_sys::Headers::new().map_err(|e| js(what, e))?;
        headers
            .set("content-type", "application/json")
            .map_err(|e| js(what, e))?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&body));
    } else {
        init.set_method("GET");
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| js(what, e))?;
    let global = js_sys::global();
    let promise = if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.fetch_with_request(&request)
    } else if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.fetch_with_request(&request)
    } else {
        bail!("{what}: no fetch in this context");
    };
    let response: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| js(what, e))?
        .dyn_into()
        .map_err(|e| js(what, e))?;
    let length = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|l| l.parse::<usize>().ok());
    if length.is_some_and(|l| l > MAX_RESPONSE) {
        bail!("{what}: answer larger than {MAX_RESPONSE} bytes");
    }
    let text = read_bounded(what, &response).await?;
    Ok((response.status(), text))
}

/// The body as text, read chunk by chunk and abandoned past [`MAX_RESPONSE`] bytes (an API
/// that streams without end costs at most that much memory, not the tab).
async fn read_bounded(what: &str, response: &web_sys::Response) -> Result<String> {
    let Some(body) = response.body() else {
        return Ok(String::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|e| js(what, e.into()))?;
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| js(what, e))?;
        let done =
            js_sys::Reflect::get(&chunk, &JsValue::from_str("done")).map_err(|e| js(what, e))?;
        if done.as_bool().unwrap_or(true) {
            break;
        }
        let value: js_sys::Uint8Array = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|e| js(what, e))?
            .dyn_into()
            .map_err(|e| js(what, e))?;
        if bytes.len() + value.length() as usize > MAX_RESPONSE {
            // Stop the download; the answer is refused whatever the cancel says.
            let _ = reader.cancel();
            bail!("{what}: answer larger than {MAX_RESPONSE} bytes");
        }
        let at = bytes.len();
        bytes.resize(at + value.length() as usize, 0);
        value.copy_to(&mut bytes[at..]);
    }
    String::from_utf8(bytes).map_err(|_| anyhow!("{what}: the body is not UTF-8"))
}

impl ChainApi for FetchApi {
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<Value>>> {
        let what = format!("GET {path}");
        let url = format!("{}{path}", self.base);
        async move {
            match fetch(&what, &url, None).await? {
                (404, _) => Ok(None),
                (200..=299, text) => Ok(Some(
                    serde_json::from_str(&text).with_context(|| format!("{what}: JSON"))?,
                )),
                (code, why) => bail!("{what}: {code}: {}", truncate(&why)),
            }
        }
    }

    fn post(&self, path: &str, body: Value) -> impl Future<Output = Result<Value>> {
        let what = format!("POST {path}");
        let url = format!("{}{path}", self.base);
        async move {
            match fetch(&what, &url, Some(body.to_string())).await? {
                (200..=299, text) => {
                    serde_json::from_str(&text).with_context(|| format!("{what}: JSON"))
                }
                (code, why) => bail!("{what}: {code}: {}", truncate(&why)),
            }
        }
    }
}

/// The start of an error body (an API's explanation, not a page).
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(4096);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
