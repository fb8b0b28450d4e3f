//! The platform seams the protocol code runs on, injected rather than called directly, so
//! that the same upload and download code runs natively and in the browser (where
//! `std::time::Instant::now()` panics, there are no threads to sleep, and timers are
//! `setTimeout`).
//!
//! ```text
//!  Api       the light client's transport: UreqApi (HTTP) natively, FetchApi in a browser
//!  Clock     wall time (signature expiries), monotonic time (rates, deadlines), sleep
//!            native: TokioClock (tokio timers, std clocks)
//!            browser: BrowserClock (Date.now, performance.now, setTimeout)
//!  Spawner   where CPU-bound work (packing: commitments, erasure coding) runs
//!            native: ThreadSpawner (a thread per job); Inline (on the caller, e.g. a
//!            browser worker that has no threads to spare)
//! ```
//! Protocol code takes time from a [`Clock`] only; [`timeout`] races a future against
//! the clock's sleep. It starts no thread itself: [`run_blocking`] hands a job to the
//! [`Spawner`] and awaits its result.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::future::{select, Either};

/// The light client's transport on this platform: a validator's HTTP API over ureq.
#[cfg(not(target_arch = "wasm32"))]
pub type Api = nilstore_net::chain::UreqApi;
/// The light client's transport on this platform: the browser's `fetch` (page or worker).
#[cfg(target_arch = "wasm32")]
pub type Api = nilstore_net::chain::FetchApi;

/// A timer future: `Send` natively, where futures move between worker threads.
#[cfg(not(target_arch = "wasm32"))]
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A timer future: the browser's single-threaded event loop has no `Send` timers.
#[cfg(target_arch = "wasm32")]
pub type Sleep = Pin<Box<dyn Future<Output = ()>>>;

/// Where protocol code gets time from.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch: for expiries that other parties check.
    fn unix_ms(&self) -> u64;
    /// Monotonic time since an arbitrary origin: for rates and deadlines.
    fn monotonic(&self) -> Duration;
    /// A future that completes `d` from now.
    fn sleep(&self, d: Duration) -> Sleep;
    /// Monotonic time passed since the reading `t0`.
    fn since(&self, t0: Duration) -> Duration {
        self.monotonic().saturating_sub(t0)
    }
}

/// A future did not finish within its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline of {0:?} passed")]
pub struct Elapsed(pub Duration);

/// Runs `f` until it finishes or `d` passes on `clock`, whichever comes first.
pub async fn timeout<F: Future>(
    clock: &dyn Clock,
    d: Duration,
    f: F,
) -> Result<F::Output, Elapsed> {
    let f = std::pin::pin!(f);
    match select(f, clock.sleep(d)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(((), _)) => Err(Elapsed(d)),
    }
}

/// Where CPU-bound work runs, so that it does not stall the event loop that drives the
/// network (natively a thread; in a browser, the worker the client runs in).
pub trait Spawner: Send + Sync {
    /// Runs `job` to completion: at once on the caller, or on another thread.
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>);
}

/// A job handed to a [`Spawner`] stopped without a result (it panicked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a background job stopped without a result")]
pub struct JobLost;

/// Runs `f` through `spawner` and awaits its result. With [`Inline`] it runs during the
/// first poll; with a thread the caller's other futures progress meanwhile.
pub async fn run_blocking<T: Send + 'static>(
    spawner: &dyn Spawner,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobLost> {
    let (tx, rx) = futures::channel::oneshot::channel();
    spawner.spawn_blocking(Box::new(move || {
        // The receiver is gone only when the caller stopped waiting.
        let _ = tx.send(f());
    }));
    rx.await.map_err(|_| JobLost)
}

/// Runs every job on the caller, before `spawn_blocking` returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Spawner for Inline {
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        job()
    }
}

/// One named thread per job (the job runs inline if the OS refuses a thread).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSpawner;

#[cfg(not(target_arch = "wasm32"))]
impl Spawner for ThreadSpawner {
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        // `spawn` hands the job back only by dropping it on failure, so it goes through a
        // slot that the inline fallback can take it from.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(job)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("nilstore-job".into())
            .spawn(move || {
                let job = theirs.lock().ok().and_then(|mut j| j.take());
                if let Some(job) = job {
                    job()
                }
            });
        if spawned.is_err() {
            let job = slot.lock().ok().and_then(|mut j| j.take());
            if let Some(job) = job {
                job()
            }
        }
    }
}

/// The native clock: the system clock, `std::time::Instant`, and tokio's timers (its
/// sleeps may be created anywhere and must be polled inside a tokio runtime).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct TokioClock {
    origin: std::time::Instant,
}

#[cfg(not(target_arch = "wasm32"))]
impl TokioClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> TokioClock {
        TokioClock {
            origin: std::time::Instant::now(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Clock for TokioClock {
    fn unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        // tokio registers a timer when it is created, which needs a runtime: create it on
        // the first poll, so a sleep may be made anywhere and awaited in a runtime.
        Box::pin(async move { tokio::time::sleep(d).await })
    }
}

#[cfg(target_arch = "wasm32")]
pub use browser::BrowserClock;

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::time::Duration;

    use wasm_bindgen::{JsCast as _, JsValue};

    use super::{Clock, Sleep};

    /// The browser's clock, on a page or in a worker: `Date.now()` for wall time,
    /// `performance.now()` for monotonic time, `setTimeout` for sleeps.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct BrowserClock;

    /// A function-valued property of the global object (`window` or the worker's `self`).
    fn global_fn(name: &str) -> Option<(JsValue, js_sys::Function)> {
        let g: JsValue = js_sys::global().into();
        let f = js_sys::Reflect::get(&g, &name.into()).ok()?;
        Some((g, f.dyn_into().ok()?))
    }

    fn performance_now_ms() -> Option<f64> {
        let p = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok()?;
        let now: js_sys::Function = js_sys::Reflect::get(&p, &"now".into())
            .ok()?
            .dyn_into()
            .ok()?;
        now.call0(&p).ok()?.as_f64()
    }

    impl Clock for BrowserClock {
        fn unix_ms(&self) -> u64 {
            js_sys::Date::now().max(0.0) as u64
        }

        fn monotonic(&self) -> Duration {
            let ms = performance_now_ms().unwrap_or_else(js_sys::Date::now);
            Duration::try_from_secs_f64(ms.max(0.0) / 1e3).unwrap_or_default()
        }

        fn sleep(&self, d: Duration) -> Sleep {
            let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
            let done =
                js_sys::Promise::new(&mut |resolve, _reject| match global_fn("setTimeout") {
                    Some((g, set_timeout)) => {
                        let _ = set_timeout.call2(&g, &resolve, &JsValue::from(ms));
                    }
                    // No timers at all (not a browser): resolve at once rather than hang.
                    None => {
                        let _ = resolve.call0(&JsValue::UNDEFINED);
                    }
                });
            Box::pin(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(done).await;
            })
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A clock whose time moves only when a sleep is polled: every sleep completes at
    /// once and advances the clock by its duration (deterministic time for tests).
    #[derive(Default)]
    struct Manual {
        now_ms: Arc<AtomicU64>,
    }

    impl Clock for Manual {
        fn unix_ms(&self) -> u64 {
            1_700_000_000_000 + self.now_ms.load(Ordering::SeqCst)
        }
        fn monotonic(&self) -> Duration {
            Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
        }
        fn sleep(&self, d: Duration) -> Sleep {
            let now = self.now_ms.clone();
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            Box::pin(async move {
                now.fetch_add(ms, Ordering::SeqCst);
            })
        }
    }

    #[test]
    fn timeout_passes_the_output_through_or_reports_the_deadline() {
        let clock = Manual::default();
        let d = Duration::from_millis(250);
        let ready = futures::executor::block_on(timeout(&clock, d, async { 7 }));
        assert_eq!(ready, Ok(7));
        // The finished future wins without the clock moving.
        assert_eq!(clock.monotonic(), Duration::ZERO);
        let never =
            futures::executor::block_on(timeout(&clock, d, futures::future::pending::<u8>()));
        assert_eq!(never, Err(Elapsed(d)));
        assert_eq!(clock.since(Duration::ZERO), d);
        assert_eq!(clock.since(Duration::from_secs(1)), Duration::ZERO);
    }

    /// A job's result comes back from a thread and inline; a job that panics is reported
    /// as lost instead of hanging its caller.
    #[test]
    fn spawned_jobs_return_their_result_or_report_loss() {
        let on_thread = futures::executor::block_on(run_blocking(&ThreadSpawner, || {
            std::thread::current().name().map(str::to_string)
        }));
        assert_eq!(on_thread, Ok(Some("nilstore-job".to_string())));
        let here = std::thread::current().id();
        let inline = futures::executor::block_on(run_blocking(&Inline, move || {
            std::thread::current().id() == here
        }));
        assert_eq!(inline, Ok(true));
        let lost = futures::executor::block_on(run_blocking(&ThreadSpawner, || -> u8 {
            panic!("job fails")
        }));
        assert_eq!(lost, Err(JobLost));
    }

    #[test]
    fn tokio_clock_sleeps_and_moves_forward() {
        let clock = TokioClock::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let t0 = clock.monotonic();
        let wall0 = clock.unix_ms();
        rt.block_on(clock.sleep(Duration::from_millis(20)));
        assert!(clock.since(t0) >= Duration::from_millis(20));
        assert!(clock.unix_ms() >= wall0);
        let late = rt.block_on(timeout(
            &clock,
            Duration::from_millis(10),
            clock.sleep(Duration::from_secs(60)),
        ));
        assert_eq!(late, Err(Elapsed(Duration::from_millis(10))));
    }
}
