//! The chain view's checkpoint in the provider's home (`chain-checkpoint.json`): the
//! header and validator set the light client last trusted. A restarted provider follows
//! the chain from there instead of genesis, so an API that lags or lies after the restart
//! cannot show it a chain older than what it already acted on (issue 17 item 11: garbage
//! collection judges deals against the trusted view).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chain_light::block::Genesis;
use nilstore_net::chain::{Checkpoint, HttpChain};

/// The file in `home`.
pub fn path(home: &Path) -> PathBuf {
    home.join("chain-checkpoint.json")
}

/// The chain view for a node whose home is `home`: from its checkpoint when there is a
/// usable one, else from genesis (a checkpoint of another chain, or an unreadable one, is
/// reported and left for the next save to replace).
pub fn open_view(home: &Path, api: &str, genesis: &Genesis) -> Result<HttpChain> {
    let file = path(home);
    let cp = match std::fs::read(&file) {
        Ok(raw) => match serde_json::from_slice::<Checkpoint>(&raw) {
            Ok(cp) => Some(cp),
            Err(e) => {
                tracing::warn!(file = %file.display(), %e, "unreadable chain checkpoint; following from genesis");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    };
    if let Some(cp) = cp {
        match HttpChain::resume(api, genesis, &cp) {
            Ok(view) => {
                tracing::info!(
                    height = cp.header.height,
                    "chain view resumes from its checkpoint"
                );
                return Ok(view);
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %format!("{e:#}"), "chain checkpoint not used; following from genesis");
            }
        }
    }
    HttpChain::new(api, genesis)
}

/// Saves the view's checkpoint now and then: when the trusted height moved and `every`
/// passed since the last save (each save is a small file written and synced, then
/// renamed into place).
pub struct Saver {
    file: PathBuf,
    genesis: Genesis,
    every: Duration,
    last: Option<(Instant, u64)>,
}

impl Saver {
    /// A saver for the node whose home is `home`.
    pub fn new(home: &Path, genesis: Genesis, every: Duration) -> Saver {
        Saver {
            file: path(home),
            genesis,
            every,
            last: None,
        }
    }

    /// Saves `view`'s checkpoint if it is due; returns whether it saved.
    pub fn tick(&mut self, view: &HttpChain, now: Instant) -> Result<bool> {
        let height = view.trusted()?.height;
        let due = match self.last {
            None => height > 0,
            Some((t, h)) => height > h && now.duration_since(t) >= self.every,
        };
        if !due {
            return Ok(false);
        }
        save(&self.file, &view.checkpoint(&self.genesis)?)?;
        self.last = Some((now, height));
        Ok(true)
    }
}

/// Writes `cp` to `file` atomically and durably.
pub fn save(file: &Path, cp: &Checkpoint) -> Result<()> {
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cp)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("rename {}", file.display()))?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
