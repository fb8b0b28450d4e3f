//! The page's side of the worker: starts it, sends requests, routes its events and
//! answers back to whoever asked (see [`crate::protocol`] for the messages).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Array, Object, Reflect, Uint8Array};
use nilstore_client::remote::Event;
use wasm_bindgen::prelude::*;
use web_sys::{File, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{Reply, Request};

/// An answer: the reply and, for a file, its bytes.
pub type Answer = Result<(Reply, Option<Uint8Array>), String>;

struct Pending {
    on_event: Box<dyn Fn(Event)>,
    done: oneshot::Sender<Answer>,
}

struct Inner {
    worker: Worker,
    next: Cell<u32>,
    pending: RefCell<BTreeMap<u32, Pending>>,
    ready: RefCell<Option<oneshot::Sender<()>>>,
}

thread_local! {
    static BRIDGE: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// Starts the worker (`worker.js`, next to the page) and waits until it listens.
pub async fn start() -> Result<(), String> {
    let opts = WorkerOptions::new();
    opts.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("./worker.js", &opts)
        .map_err(|e| format!("the browser refused to start the app's worker: {e:?}"))?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let inner = Rc::new(Inner {
        worker,
        next: Cell::new(1),
        pending: RefCell::new(BTreeMap::new()),
        ready: RefCell::new(Some(ready_tx)),
    });
    let weak = Rc::downgrade(&inner);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(inner) = weak.upgrade() {
            dispatch(&inner, ev.data());
        }
    });
    inner
        .worker
        .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(|ev: web_sys::ErrorEvent| {
        web_sys::console::error_1(&format!("the app's worker failed: {}", ev.message()).into());
    });
    inner
        .worker
        .set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    BRIDGE.with(|b| *b.borrow_mut() = Some(inner));
    ready_rx
        .await
        .map_err(|_| "the app's worker stopped while starting".to_string())
}

fn field(data: &JsValue, k: &str) -> Option<JsValue> {
    Reflect::get(data, &k.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

fn dispatch(inner: &Inner, data: JsValue) {
    if field(&data, "ready").is_some() {
        if let Some(tx) = inner.ready.borrow_mut().take() {
            let _ = tx.send(());
        }
        return;
    }
    let Some(id) = field(&data, "id").and_then(|v| v.as_f64()) else {
        return;
    };
    let id = id as u32;
    if let Some(e) = field(&data, "event").and_then(|v| v.as_string()) {
        if let Ok(e) = serde_json::from_str::<Event>(&e) {
            if let Some(p) = inner.pending.borrow().get(&id) {
                (p.on_event)(e);
            }
        }
        return;
    }
    let Some(p) = inner.pending.borrow_mut().remove(&id) else {
        return;
    };
    let answer = if let Some(ok) = field(&data, "ok").and_then(|v| v.as_string()) {
        serde_json::from_str::<Reply>(&ok)
            .map(|r| {
                (
                    r,
                    field(&data, "bytes").and_then(|b| b.dyn_into::<Uint8Array>().ok()),
                )
            })
            .map_err(|e| format!("the worker answered something unexpected: {e}"))
    } else {
        Err(field(&data, "err")
            .and_then(|v| v.as_string())
            .unwrap_or_else(|| "the worker failed without saying why".into()))
    };
    let _ = p.done.send(answer);
}

/// Sends `r` (with `files`, for a put) and waits for the answer; `on_event` sees the
/// progress events meanwhile.
pub async fn call(r: &Request, files: Vec<File>, on_event: impl Fn(Event) + 'static) -> Answer {
    let (_, answer) = send(r, files, on_event)?;
    answer.await
}

/// Sends `r` and returns its id (for [`Request::Cancel`]) and the answer to come.
pub fn send(
    r: &Request,
    files: Vec<File>,
    on_event: impl Fn(Event) + 'static,
) -> Result<(u32, impl std::future::Future<Output = Answer>), String> {
    let inner = BRIDGE
        .with(|b| b.borrow().clone())
        .ok_or_else(|| "the app's worker is not running".to_string())?;
    let id = inner.next.get();
    inner.next.set(id.wrapping_add(1).max(1));
    let (tx, rx) = oneshot::channel();
    inner.pending.borrow_mut().insert(
        id,
        Pending {
            on_event: Box::new(on_event),
            done: tx,
        },
    );
    let o = Object::new();
    let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
    let _ = Reflect::set(&o, &"id".into(), &id.into());
    let _ = Reflect::set(&o, &"json".into(), &json.into());
    if !files.is_empty() {
        let a = Array::new();
        for f in files {
            a.push(&f);
        }
        let _ = Reflect::set(&o, &"files".into(), &a);
    }
    if let Err(e) = inner.worker.post_message(&o) {
        inner.pending.borrow_mut().remove(&id);
        return Err(format!("could not reach the app's worker: {e:?}"));
    }
    Ok((id, async move {
        rx.await
            .map_err(|_| "the app's worker stopped before answering".to_string())?
    }))
}
