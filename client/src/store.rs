//! The client's durable state behind one seam: upload jobs and their acknowledgement logs,
//! per-deal keys and receipts. Natively a directory ([`DirStore`]); in the browser the
//! origin private file system (OPFS), from the worker that runs the client (its
//! synchronous access handles exist only in workers).
//!
//! ```text
//!  key                               what                       written
//!  keys/<chain>-deal-<id>.key        a deal's content secret    put (secret) before the
//!                                                               deal is funded or used
//!  uploads/deal-<id>-g<gen>/job.json an upload job              put (atomic)
//!  uploads/deal-<id>-g<gen>/acked.log acknowledgements           append, before counted
//!  receipts.json                     signed cumulative receipts put (atomic)
//! ```
//! Every write is durable when it returns: `put` replaces a record atomically (readers see
//! the old or the new bytes, never a mix) and `append` adds a record that survives a crash
//! (a torn last record is the reader's to detect: the acknowledgement log checks each).

use thiserror::Error;

/// Why the store refused or failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A key that is not a relative path of plain names (`a/b.json`).
    #[error("store key {0:?} is not a relative path of plain names")]
    BadKey(String),
    /// A secret readable by others (natively: group or world permissions).
    #[error("{0} must not be readable by group or others (chmod 600)")]
    Exposed(String),
    /// The platform's storage failed.
    #[error("{key}: {source}")]
    Io {
        /// The key (natively, the file).
        key: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Whether a record is a secret (natively: mode 0600, refused when others may read it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anyone with access to the store may read it.
    Plain,
    /// Only the owner may read it.
    Secret,
}

/// Durable keyed records. Keys are relative paths of plain names separated by `/`
/// ([`check_key`]).
pub trait Store: Send + Sync {
    /// The record at `key`; `None` when there is none.
    fn read(&self, key: &str, kind: Kind) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces (or creates) the record at `key` atomically and durably.
    fn put(&self, key: &str, bytes: &[u8], kind: Kind) -> Result<(), StoreError>;
    /// Appends `bytes` to the record at `key` (created if absent), durably.
    fn append(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Removes the record at `key`; whether there was one.
    fn remove(&self, key: &str) -> Result<bool, StoreError>;
    /// Removes every record under `prefix` (a "directory").
    fn remove_all(&self, prefix: &str) -> Result<(), StoreError>;
    /// The names directly under `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// Checks that `key` is a relative path of plain names: non-empty segments of ASCII
/// letters, digits, `.`, `_` and `-`, none of them `.` or `..`, at most 512 bytes.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.to_string()))
    }
}

/// Records in memory, on every platform: for a browser page until the OPFS store exists,
/// and for tests. **Not durable**: what it holds is gone with the process or page, so an
/// upload interrupted there cannot be resumed; everything else behaves as a durable store
/// (atomic `put`, ordered `append`, the same keys refused).
#[derive(Debug, Default)]
pub struct MemStore {
    records: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemStore {
    fn records(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves whole records (every change is one map
        // operation), so a poisoned lock is still consistent.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemStore {
    fn read(&self, key: &str, _kind: Kind) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self.records().get(key).cloned())
    }

    fn put(&self, key: &str, bytes: &[u8], _kind: Kind) -> Result<(), StoreError> {
        check_key(key)?;
        self.records().insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    fn append(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        self.records()
            .entry(key.to_string())
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        Ok(self.records().remove(key).is_some())
    }

    fn remove_all(&self, prefix: &str) -> Result<(), StoreError> {
        check_key(prefix)?;
        let under = format!("{prefix}/");
        self.records()
            .retain(|k, _| k != prefix && !k.starts_with(&under));
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_key(prefix)?;
        let under = format!("{prefix}/");
        let mut names: Vec<String> = self
            .records()
            .range(under.clone()..)
            .take_while(|(k, _)| k.starts_with(&under))
            .filter_map(|(k, _)| k[under.len()..].split('/').next().map(str::to_string))
            .collect();
        names.dedup();
        Ok(names)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use dir::DirStore;

#[cfg(not(target_arch = "wasm32"))]
mod dir {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    use std::path::{Path, PathBuf};

    use super::{check_key, Kind, Store, StoreError};

    /// The native store: one file per key under a root directory (the client's home).
    /// `put` writes a temporary file, fsyncs it, renames it into place and fsyncs the
    /// directory; `append` fsyncs the data (and the directory when it created the file).
    #[derive(Clone, Debug)]
    pub struct DirStore {
        root: PathBuf,
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            key: path.display().to_string(),
            source,
        }
    }

    fn sync_dir(dir: &Path) -> Result<(), StoreError> {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    }

    impl DirStore {
        /// A store rooted at `root` (created on the first write).
        pub fn new(root: impl Into<PathBuf>) -> DirStore {
            DirStore { root: root.into() }
        }

        /// The file of `key`.
        pub fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
            check_key(key)?;
            Ok(key.split('/').fold(self.root.clone(), |p, s| p.join(s)))
        }

        /// Creates the directories above `path`, making each new entry durable.
        fn parent_dirs(&self, path: &Path) -> Result<(), StoreError> {
            let Some(dir) = path.parent() else {
                return Ok(());
            };
            if dir.is_dir() {
                return Ok(());
            }
            // Create from the top so that each new directory's entry can be synced.
            let mut missing = Vec::new();
            let mut d = dir;
            while !d.is_dir() {
                missing.push(d.to_path_buf());
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
            for m in missing.iter().rev() {
                match std::fs::create_dir(m) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(m)(e)),
                }
                if let Some(p) = m.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(p)?;
                }
            }
            Ok(())
        }
    }

    impl Store for DirStore {
        fn read(&self, key: &str, kind: Kind) -> Result<Option<Vec<u8>>, StoreError> {
            let path = self.path(key)?;
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(&path)(e)),
            };
            if kind == Kind::Secret && meta.permissions().mode() & 0o077 != 0 {
                return Err(StoreError::Exposed(path.display().to_string()));
            }
            std::fs::read(&path).map(Some).map_err(io(&path))
        }

        fn put(&self, key: &str, bytes: &[u8], kind: Kind) -> Result<(), StoreError> {
            let path = self.path(key)?;
            self.parent_dirs(&path)?;
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let mode = match kind {
                Kind::Plain => 0o644,
                Kind::Secret => 0o600,
            };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)
                .map_err(io(&tmp))?;
            // An older temporary file keeps its mode: set it.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io(&tmp))?;
            f.write_all(bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            sync_dir(path.parent().unwrap_or(&self.root))
        }

        fn append(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
            let path = self.path(key)?;
            self.parent_dirs(&path)?;
            let existed = path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(bytes).map_err(io(&path))?;
            f.sync_data().map_err(io(&path))?;
            if !existed {
                sync_dir(path.parent().unwrap_or(&self.root))?;
            }
            Ok(())
        }

        fn remove(&self, key: &str) -> Result<bool, StoreError> {
            let path = self.path(key)?;
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    sync_dir(path.parent().unwrap_or(&self.root))?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io(&path)(e)),
            }
        }

        fn remove_all(&self, prefix: &str) -> Result<(), StoreError> {
            let path = self.path(prefix)?;
            match std::fs::remove_dir_all(&path) {
                Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&path)(e)),
            }
        }

        fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            let path = self.path(prefix)?;
            let rd = match std::fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io(&path)(e)),
            };
            let mut names = Vec::new();
            for e in rd {
                let e = e.map_err(io(&path))?;
                if let Some(n) = e.file_name().to_str() {
                    if check_key(n).is_ok() && !n.ends_with(".tmp") {
                        names.push(n.to_string());
                    }
                }
            }
            names.sort();
            Ok(names)
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_relative_paths_of_plain_names() {
        for ok in [
            "a",
            "keys/1-deal-4.key",
            "uploads/deal-1-g0/acked.log",
            "x_y.Z",
        ] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a//b", "a/", "../x", "a/../b", ".", "a/./b", "a b", "a\\b", "é",
        ] {
            assert!(
                matches!(check_key(bad), Err(StoreError::BadKey(_))),
                "{bad:?}"
            );
        }
        assert!(check_key(&"a".repeat(513)).is_err());
    }

    #[test]
    fn dir_store_puts_atomically_appends_lists_and_removes() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStore::new(t.path().join("home"));
        assert_eq!(s.read("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list("uploads").unwrap(), Vec::<String>::new());
        s.put("uploads/j/job.json", b"one", Kind::Plain).unwrap();
        s.put("uploads/j/job.json", b"two", Kind::Plain).unwrap();
        assert_eq!(
            s.read("uploads/j/job.json", Kind::Plain).unwrap(),
            Some(b"two".to_vec())
        );
        // No temporary file is left behind or listed.
        assert_eq!(s.list("uploads/j").unwrap(), vec!["job.json".to_string()]);
        s.append("uploads/j/acked.log", b"a\n").unwrap();
        s.append("uploads/j/acked.log", b"b\n").unwrap();
        assert_eq!(
            s.read("uploads/j/acked.log", Kind::Plain).unwrap(),
            Some(b"a\nb\n".to_vec())
        );
        s.put("uploads/k/job.json", b"x", Kind::Plain).unwrap();
        assert_eq!(
            s.list("uploads").unwrap(),
            vec!["j".to_string(), "k".to_string()]
        );
        assert!(s.remove("uploads/k/job.json").unwrap());
        assert!(!s.remove("uploads/k/job.json").unwrap());
        s.remove_all("uploads/j").unwrap();
        s.remove_all("uploads/j").unwrap();
        assert_eq!(s.read("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list("uploads").unwrap(), vec!["k".to_string()]);
        // Bad keys change nothing.
        assert!(matches!(
            s.put("../escape", b"x", Kind::Plain),
            Err(StoreError::BadKey(_))
        ));
        assert!(!t.path().join("escape").exists());
    }

    #[test]
    fn mem_store_puts_appends_lists_and_removes() {
        let s = MemStore::default();
        assert_eq!(s.read("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list("uploads").unwrap(), Vec::<String>::new());
        s.put("uploads/j/job.json", b"one", Kind::Plain).unwrap();
        s.put("uploads/j/job.json", b"two", Kind::Secret).unwrap();
        assert_eq!(
            s.read("uploads/j/job.json", Kind::Plain).unwrap(),
            Some(b"two".to_vec())
        );
        s.append("uploads/j/acked.log", b"a\n").unwrap();
        s.append("uploads/j/acked.log", b"b\n").unwrap();
        assert_eq!(
            s.read("uploads/j/acked.log", Kind::Plain).unwrap(),
            Some(b"a\nb\n".to_vec())
        );
        s.put("uploads/k/job.json", b"x", Kind::Plain).unwrap();
        // A sibling whose name extends a listed one is not under it.
        s.put("uploads-old/z", b"x", Kind::Plain).unwrap();
        assert_eq!(s.list("uploads").unwrap(), vec!["j", "k"]);
        assert_eq!(s.list("uploads/j").unwrap(), vec!["acked.log", "job.json"]);
        assert!(s.remove("uploads/k/job.json").unwrap());
        assert!(!s.remove("uploads/k/job.json").unwrap());
        s.remove_all("uploads/j").unwrap();
        s.remove_all("uploads/j").unwrap();
        assert_eq!(s.read("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list("uploads").unwrap(), Vec::<String>::new());
        assert_eq!(s.list("uploads-old").unwrap(), vec!["z"]);
        // Bad keys are refused and change nothing.
        for bad in ["../escape", "", "a//b"] {
            assert!(matches!(
                s.put(bad, b"x", Kind::Plain),
                Err(StoreError::BadKey(_))
            ));
        }
        assert_eq!(s.list("uploads-old").unwrap(), vec!["z"]);
    }

    #[test]
    fn secrets_are_private_and_refused_when_exposed() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStore::new(t.path());
        s.put("keys/1-deal-2.key", b"k", Kind::Secret).unwrap();
        let p = s.path("keys/1-deal-2.key").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            s.read("keys/1-deal-2.key", Kind::Secret).unwrap(),
            Some(b"k".to_vec())
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            s.read("keys/1-deal-2.key", Kind::Secret),
            Err(StoreError::Exposed(_))
        ));
        // Rewriting it as a secret makes it private again.
        s.put("keys/1-deal-2.key", b"k2", Kind::Secret).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
