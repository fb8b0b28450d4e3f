//! The page: a Leptos app over the worker ([`crate::bridge`]). It holds only what a person
//! sees; every byte of work happens in the worker.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use nilstore_client::remote::Event;
use wasm_bindgen::JsCast as _;
use web_sys::{DragEvent, File, FileList, HtmlInputElement};

use crate::bridge;
use crate::protocol::{
    group_digits, human_bytes, DealRow, NetworkView, Reply, Request, Stage, Status, Tracker,
};
use nilstore_client::remote::PendingJob;

/// Mounts the app on the page (called by `index.html`).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn page_main() {
    std::panic::set_hook(Box::new(|p| {
        web_sys::console::error_1(&format!("nilstore page: {p}").into());
    }));
    leptos::mount::mount_to_body(App);
}

/// `0x1234ab…cdef` for an address.
fn short(a: &str) -> String {
    match (a.get(..8), a.get(a.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) if a.len() > 12 => format!("{head}…{tail}"),
        _ => a.to_string(),
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Files,
    Network,
}

/// One upload as the page shows it.
#[derive(Clone, Debug, PartialEq)]
struct Upload {
    names: String,
    bytes: u64,
    tracker: Tracker,
    error: Option<String>,
    /// The worker's request, while it runs (for Cancel).
    request: Option<u32>,
    /// Finishing an upload that an earlier visit of the page left.
    resumed: bool,
}

/// The app's shared signals.
#[derive(Clone, Copy)]
struct Ctx {
    status: RwSignal<Option<Status>>,
    problem: RwSignal<Option<String>>,
    /// Reference-counted, not owned by the Files page: uploads outlive a visit to another
    /// tab (the page's components are disposed then).
    uploads: RwSignal<Vec<(u32, ArcRwSignal<Upload>)>>,
    deals: RwSignal<Option<Vec<DealRow>>>,
    deals_error: RwSignal<Option<String>>,
    /// Interrupted uploads this browser cannot finish (their files are gone).
    stalled: RwSignal<Vec<PendingJob>>,
}

/// The app's signals, from a component (tasks and handlers get them passed: they run
/// outside the component tree, where there is no context).
fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

/// Reloads the status (height, balance).
fn refresh_status(c: Ctx) {
    spawn_local(async move {
        match bridge::call(&Request::Status, Vec::new(), |_| {}).await {
            Ok((Reply::Status(s), _)) => c.status.set(Some(s)),
            Ok(_) => {}
            Err(e) => c.problem.set(Some(e)),
        }
    });
}

/// Reloads the deal list.
fn refresh_deals(c: Ctx) {
    spawn_local(async move {
        match bridge::call(&Request::Deals, Vec::new(), |_| {}).await {
            Ok((Reply::Deals { deals }, _)) => {
                c.deals.set(Some(deals));
                c.deals_error.set(None);
            }
            Ok(_) => {}
            Err(e) => c.deals_error.set(Some(e)),
        }
    });
}

#[component]
fn App() -> impl IntoView {
    let c = Ctx {
        status: RwSignal::new(None),
        problem: RwSignal::new(None),
        uploads: RwSignal::new(Vec::new()),
        deals: RwSignal::new(None),
        deals_error: RwSignal::new(None),
        stalled: RwSignal::new(Vec::new()),
    };
    provide_context(c);
    let tab = RwSignal::new(Tab::Files);
    spawn_local(async move {
        if let Err(e) = bridge::start().await {
            c.problem.set(Some(e));
            return;
        }
        match bridge::call(&Request::Connect, Vec::new(), |_| {}).await {
            Ok((Reply::Status(s), _)) => {
                c.status.set(Some(s));
                refresh_deals(c);
                resume_pending(c);
            }
            Ok(_) => {}
            Err(e) => c
                .problem
                .set(Some(format!("could not connect to the network: {e}"))),
        }
    });
    // The height and balance stay current.
    let _ = set_interval_with_handle(
        move || {
            if c.status.get_untracked().is_some() {
                refresh_status(c);
            }
        },
        Duration::from_secs(5),
    );
    let tab_button = move |t: Tab, label: &'static str| {
        view! {
            <button
                class="tab"
                class:active=move || tab.get() == t
                aria-pressed=move || (tab.get() == t).to_string()
                on:click=move |_| tab.set(t)
            >
                {label}
            </button>
        }
    };
    view! {
        <header>
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"NilStore"</h1>
            </div>
            <nav>{tab_button(Tab::Files, "Files")} {tab_button(Tab::Network, "Network")}</nav>
            <AccountBox />
        </header>
        <Show when=move || c.problem.get().is_some()>
            <div class="problem" role="alert">
                {move || c.problem.get().unwrap_or_default()}
                <button class="link" on:click=move |_| c.problem.set(None)>
                    "dismiss"
                </button>
            </div>
        </Show>
        <main>
            {move || match tab.get() {
                Tab::Files => view! { <FilesPage /> }.into_any(),
                Tab::Network => view! { <NetworkPage /> }.into_any(),
            }}
        </main>
        <footer>
            "Files are encrypted in this browser before they leave it; every byte read back is verified against the chain."
        </footer>
    }
}

#[component]
fn AccountBox() -> impl IntoView {
    let c = ctx();
    let asking = RwSignal::new(false);
    let faucet = move |_| {
        asking.set(true);
        spawn_local(async move {
            match bridge::call(&Request::Faucet, Vec::new(), |_| {}).await {
                Ok((Reply::Status(s), _)) => c.status.set(Some(s)),
                Ok(_) => {}
                Err(e) => c.problem.set(Some(format!("the faucet did not pay: {e}"))),
            }
            asking.set(false);
        });
    };
    view! {
        <div class="account">
            {move || match c.status.get() {
                None => view! { <span class="muted" id="connecting">"connecting…"</span> }.into_any(),
                Some(s) => {
                    let short = short(&s.address);
                    view! {
                        <span class="chain">"chain " {s.chain_id} " · height " <span id="height">{s.height}</span></span>
                        <span class="address" title=s.address.clone() id="address">{short}</span>
                        <span class="balance" id="balance">{group_digits(&s.balance)}</span>
                        <Show when=move || c.status.get().is_some_and(|s| s.faucet)>
                            <button id="faucet" on:click=faucet disabled=move || asking.get()>
                                {move || if asking.get() { "funding…" } else { "Faucet" }}
                            </button>
                        </Show>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

fn files_of(list: Option<FileList>) -> Vec<File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// Finishes what an earlier visit left (a closed or reloaded tab): uploads whose packing
/// was done resume where the providers' acknowledgements stopped; the others are listed
/// for the person to store again.
fn resume_pending(c: Ctx) {
    spawn_local(async move {
        let jobs = match bridge::call(&Request::Pending, Vec::new(), |_| {}).await {
            Ok((Reply::Pending { jobs }, _)) => jobs,
            Ok(_) => return,
            Err(e) => {
                c.problem
                    .set(Some(format!("could not read the unfinished uploads: {e}")));
                return;
            }
        };
        let (ready, stalled): (Vec<PendingJob>, Vec<PendingJob>) =
            jobs.into_iter().partition(|j| j.resumable);
        c.stalled.set(stalled);
        let Some(first) = ready.first().map(|j| j.deal) else {
            return;
        };
        let up = ArcRwSignal::new(Upload {
            names: ready
                .iter()
                .flat_map(|j| j.names.clone())
                .collect::<Vec<_>>()
                .join(", "),
            bytes: ready.iter().map(|j| j.bytes).sum(),
            tracker: Tracker::resumed(now_ms()),
            error: None,
            request: None,
            resumed: true,
        });
        let id = c.uploads.with_untracked(|v| v.len() as u32);
        c.uploads.update(|v| v.insert(0, (id, up.clone())));
        let events = up.clone();
        let answer = bridge::call(&Request::Resume, Vec::new(), move |e: Event| {
            events.update(|u| u.tracker.apply(&e, now_ms()));
        })
        .await;
        match answer {
            Ok((Reply::Resumed { stored }, _)) => {
                let deal = stored.last().map_or(first, |(d, _)| *d);
                up.update(|u| u.tracker.finish(deal));
                refresh_deals(c);
            }
            Ok(_) => {}
            Err(e) => up.update(|u| {
                u.tracker.fail();
                u.error = Some(e);
            }),
        }
    });
}

fn start_upload(c: Ctx, files: Vec<File>) {
    if files.is_empty() {
        return;
    }
    let names = files
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ");
    let bytes = files.iter().map(|f| f.size() as u64).sum();
    let up = ArcRwSignal::new(Upload {
        names,
        bytes,
        tracker: Tracker::new(now_ms()),
        error: None,
        request: None,
        resumed: false,
    });
    let id = c.uploads.with_untracked(|v| v.len() as u32);
    c.uploads.update(|v| v.insert(0, (id, up.clone())));
    let events = up.clone();
    let sent = bridge::send(&Request::Put, files, move |e: Event| {
        events.update(|u| u.tracker.apply(&e, now_ms()));
    });
    spawn_local(async move {
        let answer = match sent {
            Ok((request, answer)) => {
                up.update(|u| u.request = Some(request));
                answer.await
            }
            Err(e) => Err(e),
        };
        up.update(|u| u.request = None);
        match answer {
            Ok((Reply::Stored { deal, .. }, _)) => {
                up.update(|u| u.tracker.finish(deal));
                refresh_deals(c);
                refresh_status(c);
            }
            Ok(_) => {}
            Err(e) => {
                up.update(|u| {
                    u.tracker.fail();
                    u.error = Some(e);
                });
                // A deal may exist even so (a cancel after it was created).
                refresh_deals(c);
            }
        }
    });
}

#[component]
fn FilesPage() -> impl IntoView {
    let c = ctx();
    let over = RwSignal::new(false);
    let on_drop = move |ev: DragEvent| {
        ev.prevent_default();
        over.set(false);
        start_upload(c, files_of(ev.data_transfer().and_then(|d| d.files())));
    };
    let on_pick = move |ev: web_sys::Event| {
        let input: HtmlInputElement = event_target(&ev);
        start_upload(c, files_of(input.files()));
        // The same file may be chosen again.
        input.set_value("");
    };
    view! {
        <section class="card">
            <h2>"Store files"</h2>
            <label
                class="drop"
                class:over=move || over.get()
                on:dragover=move |ev: DragEvent| {
                    ev.prevent_default();
                    over.set(true);
                }
                on:dragleave=move |_| over.set(false)
                on:drop=on_drop
            >
                <input id="file-input" type="file" multiple on:change=on_pick />
                <span class="drop-title">"Drop files here, or choose them"</span>
                <span class="muted">
                    "Each upload becomes a new deal: RS(4, 2) over six providers, encrypted with a key that stays in this browser."
                </span>
            </label>
            <For
                each=move || c.stalled.get()
                key=|j| (j.deal, j.generation)
                children=move |j| view! { <StalledJob c=c job=j /> }
            />
            <Show when=move || c.status.get().is_some_and(|s| s.balance == "0")>
                <p class="hint">"Your new account has no tokens yet: press Faucet (top right) before storing."</p>
            </Show>
            <ul class="uploads">
                <For
                    each=move || c.uploads.get()
                    key=|(id, _)| *id
                    children=move |(_, up)| view! { <UploadCard up=up /> }
                />
            </ul>
        </section>
        <section class="card">
            <div class="card-head">
                <h2>"Your deals"</h2>
                <button class="link" on:click=move |_| refresh_deals(c)>"refresh"</button>
            </div>
            <Show when=move || c.deals_error.get().is_some()>
                <p class="error">{move || c.deals_error.get().unwrap_or_default()}</p>
            </Show>
            {move || match c.deals.get() {
                None => view! { <p class="muted">"loading…"</p> }.into_any(),
                Some(d) if d.is_empty() => {
                    view! { <p class="muted" id="no-deals">"No deals yet: store a file above."</p> }.into_any()
                }
                Some(d) => {
                    view! {
                        <table class="deals" id="deals">
                            <thead>
                                <tr>
                                    <th>"Deal"</th>
                                    <th>"Files"</th>
                                    <th>"Stored"</th>
                                    <th>"Slots"</th>
                                    <th>"Ends at epoch"</th>
                                    <th>"Escrow left"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {d.into_iter().map(|row| view! { <DealRowView row=row /> }).collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

fn plot_points(rate: &[(f64, f64)]) -> String {
    let t_max = rate.last().map_or(1.0, |r| r.0.max(1.0));
    let v_max = rate.iter().map(|r| r.1).fold(0.1, f64::max);
    rate.iter()
        .map(|(t, v)| format!("{:.1},{:.1}", t / t_max * 200.0, 40.0 - v / v_max * 38.0))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An upload an earlier visit left while packing: its files must be chosen again.
#[component]
fn StalledJob(c: Ctx, job: PendingJob) -> impl IntoView {
    let (deal, generation) = (job.deal, job.generation);
    let forget = move |_| {
        spawn_local(async move {
            match bridge::call(&Request::Forget { deal, generation }, Vec::new(), |_| {}).await {
                Ok((Reply::Pending { jobs }, _)) => c
                    .stalled
                    .set(jobs.into_iter().filter(|j| !j.resumable).collect()),
                Ok(_) => {}
                Err(e) => c.problem.set(Some(format!("could not forget it: {e}"))),
            }
        });
    };
    view! {
        <div class="hint stalled" role="status">
            {format!(
                "The upload of {} ({}, deal {deal}) stopped while it was being packed, when the page closed. This browser cannot read those files again: store them again, then forget this one.",
                job.names.join(", "),
                human_bytes(job.bytes),
            )}
            <button class="link" on:click=forget>"Forget it"</button>
        </div>
    }
}

#[component]
fn UploadCard(up: ArcRwSignal<Upload>) -> impl IntoView {
    let up: RwSignal<Upload> = up.into();
    let pct = move || up.with(|u| u.tracker.percent());
    let stage = move || up.with(|u| u.tracker.stage);
    let cancel = move |_| {
        if let Some(id) = up.with_untracked(|u| u.request) {
            spawn_local(async move {
                let _ = bridge::call(&Request::Cancel { id }, Vec::new(), |_| {}).await;
            });
        }
    };
    view! {
        <li
            class="upload"
            data-stage=move || format!("{:?}", stage()).to_lowercase()
            data-resumed=move || up.with(|u| u.resumed).to_string()
        >
            <div class="row">
                <span class="name">{move || up.with(|u| u.names.clone())}</span>
                <span class="muted">{move || up.with(|u| human_bytes(u.bytes))}</span>
                <Show when=move || up.with(|u| u.resumed)>
                    <span class="badge">"resumed after the page closed"</span>
                </Show>
                <Show when=move || up.with(|u| u.request.is_some() && u.tracker.stage < Stage::Done)>
                    <button class="link cancel" on:click=cancel>"Cancel"</button>
                </Show>
            </div>
            <div
                class="bar"
                role="progressbar"
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=move || format!("{:.0}", pct())
            >
                <div
                    class="fill"
                    class:failed=move || stage() == Stage::Failed
                    style:width=move || format!("{:.1}%", pct())
                ></div>
            </div>
            <div class="row meta">
                <span class="stage">{move || stage().label()}</span>
                <span class="pct">{move || format!("{:.0} %", pct())}</span>
                <span>
                    {move || {
                        up.with(|u| {
                            let r = u.tracker.mb_per_s();
                            if r > 0.0 && u.tracker.stage < Stage::Done {
                                format!("{r:.2} MB/s")
                            } else {
                                String::new()
                            }
                        })
                    }}
                </span>
                <span>
                    {move || {
                        up.with(|u| u.tracker.eta_s().map(|s| format!("{s:.0} s left")).unwrap_or_default())
                    }}
                </span>
                <span class="deal">
                    {move || up.with(|u| u.tracker.deal.map(|d| format!("deal {d}")).unwrap_or_default())}
                </span>
            </div>
            <svg class="plot" viewBox="0 0 200 40" preserveAspectRatio="none" aria-label="throughput">
                <polyline points=move || up.with(|u| plot_points(&u.tracker.rate)) />
            </svg>
            <Show when=move || up.with(|u| u.error.is_some())>
                <p class="error">{move || up.with(|u| u.error.clone().unwrap_or_default())}</p>
            </Show>
        </li>
    }
}

#[component]
fn DealRowView(row: DealRow) -> impl IntoView {
    let id = row.id;
    let files = row.files.clone();
    let key = RwSignal::new(None::<Result<String, String>>);
    let show_key = move |_| {
        spawn_local(async move {
            key.set(Some(
                match bridge::call(&Request::ExportKey { deal: id }, Vec::new(), |_| {}).await {
                    Ok((Reply::Key { key, .. }, _)) => Ok(key),
                    Ok(_) => Err("the worker answered something unexpected".into()),
                    Err(e) => Err(e),
                },
            ))
        });
    };
    view! {
        <tr class="deal" data-deal=id.to_string()>
            <td data-label="Deal">
                {id}
                <button class="link key-button" on:click=show_key title="the key that decrypts this deal">
                    "key"
                </button>
            </td>
            <td data-label="Files">
                {row.error.clone().map(|e| view! { <span class="error">{e}</span> })}
                {if row.generation.is_none() {
                    Some(view! { <span class="muted">"nothing committed yet"</span> })
                } else {
                    None
                }}
                {move || match key.get() {
                    None => None,
                    Some(Ok(k)) => Some(view! {
                        <div class="deal-key">
                            <span class="muted">"Deal key (anyone holding it can read this deal): "</span>
                            <input class="key" readonly value=k aria-label="deal key" />
                            <span class="muted">
                                {format!("CLI: nilstore deal import-key {id}, then nilstore get {id} PATH")}
                            </span>
                        </div>
                    }.into_any()),
                    Some(Err(e)) => Some(view! { <span class="error">{e}</span> }.into_any()),
                }}
                <ul class="files">
                    {files
                        .into_iter()
                        .map(|f| view! { <FileItem deal=id path=f.path size=f.size /> })
                        .collect_view()}
                </ul>
            </td>
            <td data-label="Stored">{human_bytes(row.stored_bytes)}</td>
            <td data-label="Slots">{format!("{} + {}", row.k, row.m)}</td>
            <td data-label="Ends at epoch">{row.end_epoch}</td>
            <td data-label="Escrow left">{group_digits(&row.escrow)}</td>
        </tr>
    }
}

/// Hands `bytes` to the browser as a download named `name`.
fn save(name: &str, bytes: &js_sys::Uint8Array) -> Result<(), String> {
    let parts = js_sys::Array::of1(bytes);
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name.rsplit('/').next().unwrap_or(name));
    a.click();
    // The download has its own reference; the URL can go once it started.
    let _ = set_timeout_with_handle(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        Duration::from_secs(60),
    );
    Ok(())
}

#[component]
fn FileItem(deal: u64, path: String, size: u64) -> impl IntoView {
    let state = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let name = path.clone();
    let download = move |_| {
        let path = name.clone();
        busy.set(true);
        state.set("fetching…".into());
        spawn_local(async move {
            let r = bridge::call(
                &Request::Get {
                    deal,
                    path: path.clone(),
                },
                Vec::new(),
                move |e: Event| {
                    if let Event::Downloading {
                        done,
                        total,
                        mb_per_s,
                    } = e
                    {
                        let p = if total == 0 {
                            0.0
                        } else {
                            done as f64 * 100.0 / total as f64
                        };
                        state.set(format!("verifying {p:.0} % · {mb_per_s:.1} MB/s"));
                    }
                },
            )
            .await;
            match r {
                Ok((
                    Reply::File {
                        fallbacks,
                        fraud_reports,
                        ..
                    },
                    Some(bytes),
                )) => {
                    let mut words = "verified ✓".to_string();
                    if fallbacks > 0 {
                        words.push_str(&format!(
                            " · {fallbacks} slot(s) did not serve, read elsewhere"
                        ));
                    }
                    if fraud_reports > 0 {
                        words.push_str(&format!(" · {fraud_reports} corrupt slot(s) reported"));
                    }
                    state.set(match save(&path, &bytes) {
                        Ok(()) => words,
                        Err(e) => format!("verified, but the browser refused the download: {e}"),
                    });
                }
                Ok(_) => state.set("the worker answered something unexpected".into()),
                Err(e) => state.set(format!("could not read it: {e}")),
            }
            busy.set(false);
        });
    };
    view! {
        <li class="file">
            <span class="name">{path.clone()}</span>
            <span class="muted">{human_bytes(size)}</span>
            <button class="download" on:click=download disabled=move || busy.get()>
                "Download"
            </button>
            <span class="state">{move || state.get()}</span>
        </li>
    }
}

#[component]
fn NetworkPage() -> impl IntoView {
    let view_ = RwSignal::new(None::<NetworkView>);
    let error = RwSignal::new(None::<String>);
    spawn_local(async move {
        match bridge::call(&Request::Network, Vec::new(), |_| {}).await {
            Ok((Reply::Network(n), _)) => view_.set(Some(n)),
            Ok(_) => {}
            Err(e) => error.set(Some(e)),
        }
    });
    view! {
        <section class="card">
            <h2>"Network"</h2>
            <Show when=move || error.get().is_some()>
                <p class="error">{move || error.get().unwrap_or_default()}</p>
            </Show>
            {move || match view_.get() {
                None => view! { <p class="muted">"reading the chain…"</p> }.into_any(),
                Some(n) => {
                    view! {
                        <dl class="facts" id="network">
                            <dt>"Chain"</dt>
                            <dd>{n.chain_id}</dd>
                            <dt>"Certified height"</dt>
                            <dd>{n.height}</dd>
                            <dt>"Validators"</dt>
                            <dd>{n.validators}</dd>
                            <dt>"Relays (deputies)"</dt>
                            <dd>{n.relays}</dd>
                            <dt>"Validator API"</dt>
                            <dd>{n.api.clone()}</dd>
                        </dl>
                        <table class="providers" id="providers">
                            <thead>
                                <tr>
                                    <th>"Provider"</th>
                                    <th>"Status"</th>
                                    <th>"Stake"</th>
                                    <th>"Slots"</th>
                                    <th>"Used / capacity (MDUs)"</th>
                                    <th>"Offences"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {n
                                    .providers
                                    .into_iter()
                                    .map(|p| {
                                        let short = short(&p.account);
                                        view! {
                                            <tr>
                                                <td data-label="Provider" title=p.account.clone()>{short}</td>
                                                <td data-label="Status">{p.status}</td>
                                                <td data-label="Stake">{group_digits(&p.stake)}</td>
                                                <td data-label="Slots">{p.slots}</td>
                                                <td data-label="Used / capacity">
                                                    {format!("{} / {}", p.used_mdus, p.capacity_mdus)}
                                                </td>
                                                <td data-label="Offences">{p.offences}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
