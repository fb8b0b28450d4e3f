//! # nilstore-e2e
//!
//! End-to-end scenarios against the real binaries on loopback. A [`Devnet`] is
//! `nilstore devnet up --processes` (validator in that process, every provider and relay
//! its own child process, so a scenario can `kill -9`, pause or corrupt one); users act
//! through the `nilstore` CLI with `--json`. Every step is a typed [`Action`] recorded with
//! its outcome in an [`Evidence`] file, `target/evidence/<scenario>.json`.
//!
//! The binaries come from `NILSTORE_BIN_DIR`, else the directory above the test
//! executable (`target/debug`); `scripts/test.sh` builds them first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use chain_light::state::Deal;
use nilstore_client::network::{NetworkInfo, NodeInfo};
use nilstore_net::chain::HttpChain;
use serde::Serialize;
use serde_json::{json, Value};

/// Where the binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    /// Directory holding `nilstore`, `nilstore-provider`, `nilstore-relay`.
    pub dir: PathBuf,
}

impl Bins {
    /// Finds the binaries (see the crate docs).
    pub fn locate() -> Result<Bins> {
        let dir = match std::env::var_os("NILSTORE_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => std::env::current_exe()?
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .ok_or_else(|| anyhow!("no directory above the test executable"))?,
        };
        for b in [
            "nilstore",
            "nilstore-provider",
            "nilstore-relay",
            "nilstore-validator",
        ] {
            ensure!(
                dir.join(b).is_file(),
                "{} missing: build with `cargo test --workspace --exclude nilstore-e2e --no-run` (or set NILSTORE_BIN_DIR)",
                dir.join(b).display()
            );
        }
        Ok(Bins { dir })
    }
}

/// One step of a scenario.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Start a devnet.
    Up {
        /// Providers.
        providers: usize,
        /// Relays.
        relays: usize,
    },
    /// Run a CLI command.
    Cli {
        /// Its arguments.
        args: Vec<String>,
    },
    /// `kill -9` a provider.
    Kill {
        /// Provider index.
        provider: usize,
    },
    /// Stop a provider's process (SIGSTOP: it answers nothing).
    Pause {
        /// Provider index.
        provider: usize,
    },
    /// Let it run again (SIGCONT).
    Unpause {
        /// Provider index.
        provider: usize,
    },
    /// Change stored bytes on a provider's disk.
    Corrupt {
        /// Provider index.
        provider: usize,
        /// File.
        file: String,
    },
    /// Delete a provider's files of a deal.
    DeleteData {
        /// Provider index.
        provider: usize,
        /// Deal.
        deal: u64,
    },
    /// `kill -9` a validator.
    KillValidator {
        /// Validator index.
        validator: usize,
    },
    /// Start a killed validator again from its home.
    RestartValidator {
        /// Validator index.
        validator: usize,
    },
    /// `kill -9` a CLI command while it runs.
    Interrupt {
        /// What was running.
        what: String,
    },
    /// Wait until a condition holds.
    Wait {
        /// What.
        what: String,
    },
    /// Check a condition.
    Check {
        /// What.
        what: String,
    },
}

#[derive(Serialize)]
struct Step {
    t_ms: u64,
    action: Action,
    outcome: Value,
}

/// The JSON record of a scenario.
pub struct Evidence {
    name: String,
    t0: Instant,
    steps: Vec<Step>,
    summary: serde_json::Map<String, Value>,
}

impl Evidence {
    /// A new record.
    pub fn new(name: &str) -> Evidence {
        Evidence {
            name: name.to_string(),
            t0: Instant::now(),
            steps: Vec::new(),
            summary: serde_json::Map::new(),
        }
    }

    /// Records a step.
    pub fn step(&mut self, action: Action, outcome: Value) {
        self.steps.push(Step {
            t_ms: self.t0.elapsed().as_millis() as u64,
            action,
            outcome,
        });
    }

    /// Sets a summary field.
    pub fn set(&mut self, key: &str, v: Value) {
        self.summary.insert(key.to_string(), v);
    }

    /// Writes `target/evidence/<name>.json` (repository root) and returns its path.
    pub fn write(&self, ok: bool) -> Result<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("evidence");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.name));
        let doc = json!({
            "scenario": self.name,
            "ok": ok,
            "seconds": self.t0.elapsed().as_secs_f64(),
            "summary": self.summary,
            "steps": self.steps,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
        Ok(path)
    }
}

/// A running `nilstore devnet up --processes`, stopped on drop.
pub struct Devnet {
    child: Option<Child>,
    /// Validators the harness restarted itself (stopped on drop).
    restarted: Vec<Child>,
    block_ms: u64,
    bins: Bins,
    /// Its directory.
    pub dir: PathBuf,
    /// `devnet.json`.
    pub info: NetworkInfo,
    /// The CLI's state directory.
    pub home: PathBuf,
    /// The harness's light client, kept so each look at the chain syncs from where the
    /// last one stopped.
    view: std::sync::Mutex<Option<Arc<HttpChain>>>,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop_all();
        // Devnets hold hundreds of MiB; E2E_KEEP=1 keeps them for a look.
        if std::env::var_os("E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Devnet {
    fn stop_all(&mut self) {
        for p in &self.info.providers {
            if let Some(pid) = p.pid {
                signal(pid, "CONT"); // a paused provider must be able to stop
            }
        }
        for mut c in self.restarted.drain(..) {
            signal(c.id(), "TERM");
            let _ = c.wait();
        }
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if !matches!(c.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
            for p in self
                .info
                .providers
                .iter()
                .chain(&self.info.relays)
                .chain(&self.info.validators)
            {
                if let Some(pid) = p.pid {
                    signal(pid, "KILL");
                }
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Sends `sig` (`KILL`, `STOP`, `CONT`, `TERM`) to a process.
pub fn send_signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()?;
    ensure!(st.success(), "kill -{sig} {pid} failed");
    Ok(())
}

impl Devnet {
    /// Starts a devnet (one validator) under a fresh directory in the system temp dir.
    pub fn up(
        bins: &Bins,
        name: &str,
        providers: usize,
        relays: usize,
        block_ms: u64,
    ) -> Result<Devnet> {
        Devnet::up_with(bins, name, providers, relays, block_ms, 1)
    }

    /// Starts a devnet with `validators` validators (each its own process when > 1).
    pub fn up_with(
        bins: &Bins,
        name: &str,
        providers: usize,
        relays: usize,
        block_ms: u64,
        validators: usize,
    ) -> Result<Devnet> {
        Devnet::up_params(bins, name, (providers, relays, validators), block_ms, None)
    }

    /// Starts a devnet of (providers, relays, validators) whose genesis takes `params`
    /// (merged into the devnet defaults).
    pub fn up_params(
        bins: &Bins,
        name: &str,
        (providers, relays, validators): (usize, usize, usize),
        block_ms: u64,
        params: Option<&Value>,
    ) -> Result<Devnet> {
        let dir = std::env::temp_dir().join(format!(
            "nilstore-e2e-{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("devnet.log"))?;
        let mut cmd = Command::new(bins.dir.join("nilstore"));
        cmd.args(["devnet", "up"]);
        if let Some(p) = params {
            cmd.args(["--params", &p.to_string()]);
        }
        let child = cmd
            .args(["--processes", "--api", "127.0.0.1:0", "--port-base", "0"])
            .arg("--dir")
            .arg(dir.join("net"))
            .args(["--providers", &providers.to_string()])
            .args(["--relays", &relays.to_string()])
            .args(["--block-ms", &block_ms.to_string()])
            .args(["--validators", &validators.to_string()])
            .env(
                "RUST_LOG",
                "warn,nilstore_provider=info,nilstore_relay=info",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start nilstore devnet up")?;
        let mut d = Devnet {
            child: Some(child),
            restarted: Vec::new(),
            block_ms,
            bins: bins.clone(),
            home: dir.join("client"),
            view: std::sync::Mutex::new(None),
            info: NetworkInfo {
                chain_id: 0,
                api: String::new(),
                genesis: PathBuf::new(),
                dev_keys: PathBuf::new(),
                reserved_dev_accounts: Vec::new(),
                providers: Vec::new(),
                relays: Vec::new(),
                validators: Vec::new(),
                web: None,
            },
            dir,
        };
        let file = d.dir.join("net").join("devnet.json");
        let t0 = Instant::now();
        loop {
            if let Ok(info) = NetworkInfo::read(&file) {
                d.info = info;
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    let log = std::fs::read_to_string(d.dir.join("devnet.log")).unwrap_or_default();
                    bail!("devnet exited with {st}: {}", tail(&log, 10));
                }
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(180),
                "devnet not up within 180 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The network file.
    pub fn network_file(&self) -> PathBuf {
        self.dir.join("net").join("devnet.json")
    }

    /// A CLI command line (not started) with this devnet's network and home.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_as(&self.home, None, args)
    }

    /// A CLI command line acting from another client `home` (and account key file).
    pub fn command_as(&self, home: &Path, key_file: Option<&Path>, args: &[&str]) -> Command {
        let mut c = Command::new(self.bins.dir.join("nilstore"));
        if let Some(k) = key_file {
            c.arg("--key-file").arg(k);
        }
        c.arg("--network")
            .arg(self.network_file())
            .arg("--home")
            .arg(home)
            .arg("--json")
            .args(args)
            .env_remove("NILSTORE_KEY")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null());
        c
    }

    /// Runs a CLI command; returns its JSON output (records the step).
    pub fn cli(&self, ev: &mut Evidence, args: &[&str]) -> Result<Value> {
        self.run_cli(ev, self.command(args), args)
    }

    /// [`Devnet::cli`] from another client home and key (a delegate's job).
    pub fn cli_as(
        &self,
        ev: &mut Evidence,
        home: &Path,
        key_file: &Path,
        args: &[&str],
    ) -> Result<Value> {
        self.run_cli(ev, self.command_as(home, Some(key_file), args), args)
    }

    fn run_cli(&self, ev: &mut Evidence, mut cmd: Command, args: &[&str]) -> Result<Value> {
        let t0 = Instant::now();
        let out = cmd.output().context("run nilstore")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let action = Action::Cli {
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        if !out.status.success() {
            ev.step(action, json!({ "ok": false, "stderr": tail(&stderr, 20) }));
            bail!("nilstore {}: {}", args.join(" "), tail(&stderr, 20));
        }
        let v: Value = serde_json::from_str(stdout.trim())
            .with_context(|| format!("nilstore {}: not JSON: {stdout}", args.join(" ")))?;
        ev.step(
            action,
            json!({ "ok": true, "seconds": t0.elapsed().as_secs_f64(), "output": v }),
        );
        Ok(v)
    }

    /// The harness's light client of the devnet's chain, synced to the newest certified
    /// header (a new one after an error, e.g. while the API's validator restarts).
    pub fn chain(&self) -> Result<Arc<HttpChain>> {
        let mut view = self
            .view
            .lock()
            .map_err(|_| anyhow!("chain view poisoned"))?;
        let c = match view.take() {
            Some(c) => c,
            None => {
                let genesis = nilstore_net::chain::read_genesis(&self.info.genesis)?;
                Arc::new(HttpChain::new(&self.info.api, &genesis)?)
            }
        };
        c.sync()?;
        *view = Some(c.clone());
        Ok(c)
    }

    /// A deal at the latest verified height.
    pub fn deal(&self, id: u64) -> Result<Deal> {
        let c = self.chain()?;
        c.deal(id)?.ok_or_else(|| anyhow!("deal {id} is gone"))
    }

    /// The provider with index `i`.
    pub fn provider(&self, i: usize) -> &NodeInfo {
        &self.info.providers[i]
    }

    /// Index of the provider holding `slot` of `deal`.
    pub fn provider_of(&self, deal: &Deal, slot: usize) -> Result<usize> {
        let a = deal.slots[slot].provider;
        self.info
            .providers
            .iter()
            .position(|p| p.account == a)
            .ok_or_else(|| anyhow!("slot {slot}'s provider {a} is not a devnet provider"))
    }

    /// A state record of the validator API at `height` (`path` like `/state/work/1/0`), as
    /// the harness observes it (no light-client proof: the harness watches its own devnet).
    pub fn state_at<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        height: u64,
    ) -> Result<Option<T>> {
        let v: Value = serde_json::from_str(&ureq_get(&format!(
            "{}{path}?height={height}",
            self.info.api
        ))?)?;
        Ok(serde_json::from_value(v["value"].clone())?)
    }

    /// GET a validator API path as JSON.
    pub fn validator_get(&self, i: usize, path: &str) -> Result<Value> {
        let url = format!("http://{}{path}", self.info.validators[i].http);
        Ok(serde_json::from_str(&ureq_get(&url)?)?)
    }

    /// A validator's finalized height (0 when it does not answer).
    pub fn validator_height(&self, i: usize) -> u64 {
        self.validator_get(i, "/status")
            .ok()
            .and_then(|v| v["height"].as_u64())
            .unwrap_or(0)
    }

    /// `kill -9` validator `i`.
    pub fn kill_validator(&self, ev: &mut Evidence, i: usize) -> Result<()> {
        let pid = self.info.validators[i]
            .pid
            .ok_or_else(|| anyhow!("validator {i} has no pid"))?;
        send_signal(pid, "KILL")?;
        ev.step(
            Action::KillValidator { validator: i },
            json!({ "pid": pid }),
        );
        Ok(())
    }

    /// Starts validator `i` again from its home (`nilstore-validator start`).
    pub fn restart_validator(&mut self, ev: &mut Evidence, i: usize) -> Result<()> {
        let v = &self.info.validators[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("validator-{i}-restart.log")))?;
        let child = Command::new(self.bins.dir.join("nilstore-validator"))
            .arg("start")
            .arg("--home")
            .arg(&v.home)
            .args(["--api", &v.http])
            .args(["--block-ms", &self.block_ms.to_string()])
            .args(["--chain-id", &self.info.chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("restart nilstore-validator")?;
        ev.step(
            Action::RestartValidator { validator: i },
            json!({ "pid": child.id() }),
        );
        self.restarted.push(child);
        Ok(())
    }

    /// `kill -9` provider `i`.
    pub fn kill(&self, ev: &mut Evidence, i: usize) -> Result<()> {
        let pid = self
            .provider(i)
            .pid
            .ok_or_else(|| anyhow!("provider {i} has no pid"))?;
        send_signal(pid, "KILL")?;
        ev.step(Action::Kill { provider: i }, json!({ "pid": pid }));
        Ok(())
    }

    /// Pauses provider `i` (SIGSTOP).
    pub fn pause(&self, ev: &mut Evidence, i: usize) -> Result<()> {
        let pid = self
            .provider(i)
            .pid
            .ok_or_else(|| anyhow!("provider {i} has no pid"))?;
        send_signal(pid, "STOP")?;
        ev.step(Action::Pause { provider: i }, json!({ "pid": pid }));
        Ok(())
    }

    /// Resumes provider `i` (SIGCONT).
    pub fn unpause(&self, ev: &mut Evidence, i: usize) -> Result<()> {
        let pid = self
            .provider(i)
            .pid
            .ok_or_else(|| anyhow!("provider {i} has no pid"))?;
        send_signal(pid, "CONT")?;
        ev.step(Action::Unpause { provider: i }, json!({ "pid": pid }));
        Ok(())
    }

    /// Shard files of `deal` (slot, MDU) on provider `i`'s disk.
    pub fn shard_files(&self, i: usize, deal: u64) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![self.provider(i).home.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "shard")
                    && p.parent()
                        .is_some_and(|d| d.ends_with(Path::new("shards").join(deal.to_string())))
                {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Polls `ok` every 500 ms until it returns `Some` (records the wait).
    pub fn wait<T>(
        &self,
        ev: &mut Evidence,
        what: &str,
        limit: Duration,
        mut ok: impl FnMut(&Devnet) -> Result<Option<T>>,
    ) -> Result<T> {
        let t0 = Instant::now();
        loop {
            match ok(self) {
                Ok(Some(v)) => {
                    ev.step(
                        Action::Wait {
                            what: what.to_string(),
                        },
                        json!({ "ok": true, "seconds": t0.elapsed().as_secs_f64() }),
                    );
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => eprintln!("wait {what}: {e:#}"),
            }
            if t0.elapsed() > limit {
                ev.step(
                    Action::Wait {
                        what: what.to_string(),
                    },
                    json!({ "ok": false, "seconds": t0.elapsed().as_secs_f64() }),
                );
                bail!("timed out after {limit:?}: {what}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A daemon's Prometheus metric (0 when absent or unreachable).
    pub fn metric(node: &NodeInfo, name: &str) -> u64 {
        let url = format!("http://{}/metrics", node.http);
        let Ok(body) = ureq_get(&url) else { return 0 };
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

fn ureq_get(url: &str) -> Result<String> {
    Ok(ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()?
        .into_string()?)
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A file of `len` pseudo-random bytes (seeded, as `nilstore bench ingest` writes them),
/// and its BLAKE3.
pub fn random_file(path: &Path, len: usize, seed: u64) -> Result<String> {
    nilstore_devnet::random_file(path, len, seed)?;
    file_hash(path)
}

/// BLAKE3 of a file.
pub fn file_hash(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Runs scenario `name`, writing its evidence whether it passes or fails.
pub fn scenario(name: &str, f: impl FnOnce(&mut Evidence) -> Result<()>) -> Result<()> {
    let mut ev = Evidence::new(name);
    let r = f(&mut ev);
    if let Err(e) = &r {
        ev.set("error", json!(format!("{e:#}")));
    }
    let path = ev.write(r.is_ok())?;
    eprintln!("evidence: {}", path.display());
    r
}

/// Scenario size: `E2E_FULL=1` runs the full forms (slow); CI runs the small ones.
pub fn full() -> bool {
    std::env::var("E2E_FULL").is_ok_and(|v| v == "1")
}

impl Devnet {
    /// [`Devnet::up`] with the binaries located and the step recorded.
    pub fn start(
        ev: &mut Evidence,
        name: &str,
        providers: usize,
        relays: usize,
        block_ms: u64,
    ) -> Result<Devnet> {
        Devnet::start_params(ev, name, (providers, relays, 1), block_ms, None)
    }

    /// [`Devnet::up_params`] with the binaries located and the step recorded.
    pub fn start_params(
        ev: &mut Evidence,
        name: &str,
        (providers, relays, validators): (usize, usize, usize),
        block_ms: u64,
        params: Option<&Value>,
    ) -> Result<Devnet> {
        let nodes = (providers, relays, validators);
        let d = Devnet::up_params(&Bins::locate()?, name, nodes, block_ms, params)?;
        ev.step(
            Action::Up { providers, relays },
            json!({ "api": d.info.api, "params": params }),
        );
        Ok(d)
    }

    /// Writes `len` seeded random bytes to `DIR/<name>` and puts them in a new deal with
    /// the CLI's defaults; returns the deal and the file's BLAKE3.
    pub fn put_random(
        &self,
        ev: &mut Evidence,
        name: &str,
        len: usize,
        seed: u64,
    ) -> Result<(u64, String)> {
        let f = self.dir.join(name);
        let h = random_file(&f, len, seed)?;
        let path = f.to_str().context("path")?;
        let put = self.cli(ev, &["put", path])?;
        Ok((put["deal_id"].as_u64().context("no deal_id")?, h))
    }

    /// Reads `path` of `deal` with the CLI (extra arguments appended) and checks its
    /// BLAKE3; returns the CLI's report.
    pub fn get_check(
        &self,
        ev: &mut Evidence,
        deal: u64,
        path: &str,
        hash: &str,
        extra: &[&str],
    ) -> Result<Value> {
        let out = self.dir.join(format!("{path}.out"));
        let (d, o) = (deal.to_string(), out.to_str().context("path")?.to_string());
        let mut args = vec!["get", &d, path, "--out", &o];
        args.extend_from_slice(extra);
        let r = self.cli(ev, &args)?;
        ensure!(
            file_hash(&out)? == hash,
            "{path} of deal {deal} came back different"
        );
        Ok(r)
    }
}
