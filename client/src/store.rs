//! The client's durable state behind one seam: upload jobs and their acknowledgement logs,
//! per-deal keys and receipts. Natively a directory ([`DirStore`]); in the browser the
//! origin private file system (`OpfsStore`, on a page or in a worker).
//!
//! ```text
//!  key                               what                       written
//!  keys/<chain>-deal-<id>.key        a deal's content secret    put (secret) before the
//!                                                               deal is funded or used
//!  uploads/deal-<id>-g<gen>/job.json an upload job              put (atomic)
//!  uploads/deal-<id>-g<gen>/acked.log acknowledgements           append, before counted
//!  receipts.json                     signed cumulative receipts put (atomic)
//! ```
//! Every write is durable when its future completes: `put` replaces a record atomically
//! (readers see the old or the new bytes, never a mix) and `append` adds a record that
//! survives a crash (a torn last record is the reader's to detect: the acknowledgement log
//! checks each).
//!
//! The operations are futures because OPFS hands out files only asynchronously (every
//! handle is a promise, even in a worker); natively they complete at once.

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;

/// A store operation: natively a future that is ready at once (and `Send`, as the client's
/// futures are there); in the browser one that awaits OPFS.
#[cfg(not(target_arch = "wasm32"))]
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;
/// A store operation: natively a future that is ready at once (and `Send`, as the client's
/// futures are there); in the browser one that awaits OPFS.
#[cfg(target_arch = "wasm32")]
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'a>>;

/// A store operation that has completed.
fn done<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}

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
    fn read<'a>(&'a self, key: &'a str, kind: Kind) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Replaces (or creates) the record at `key` atomically and durably.
    fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8], kind: Kind) -> StoreFuture<'a, ()>;
    /// Appends `bytes` to the record at `key` (created if absent), durably.
    fn append<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()>;
    /// Removes the record at `key`; whether there was one.
    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    /// Removes every record under `prefix` (a "directory").
    fn remove_all<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, ()>;
    /// The names directly under `prefix`, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>>;
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

/// Records in memory, on every platform: for tests, pages that keep nothing, and a
/// packed slab while a page uploads it. **Not durable**: what it holds is gone with the
/// process or page, so an upload interrupted there cannot be resumed; everything else
/// behaves as a durable store (atomic `put`, ordered `append`, the same keys refused).
/// Its operations are also there synchronously (`*_now`).
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

impl MemStore {
    /// [`Store::read`], at once.
    pub fn read_now(&self, key: &str, _kind: Kind) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self.records().get(key).cloned())
    }

    /// [`Store::put`], at once.
    pub fn put_now(&self, key: &str, bytes: &[u8], _kind: Kind) -> Result<(), StoreError> {
        check_key(key)?;
        self.records().insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    /// [`Store::append`], at once.
    pub fn append_now(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        self.records()
            .entry(key.to_string())
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }

    /// [`Store::remove`], at once.
    pub fn remove_now(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        Ok(self.records().remove(key).is_some())
    }

    /// [`Store::remove_all`], at once.
    pub fn remove_all_now(&self, prefix: &str) -> Result<(), StoreError> {
        check_key(prefix)?;
        let under = format!("{prefix}/");
        self.records()
            .retain(|k, _| k != prefix && !k.starts_with(&under));
        Ok(())
    }

    /// [`Store::list`], at once.
    pub fn list_now(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
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

/// [`Store`] for a type whose operations complete at once (its `*_now` methods).
macro_rules! store_at_once {
    ($t:ty) => {
        impl Store for $t {
            fn read<'a>(&'a self, key: &'a str, kind: Kind) -> StoreFuture<'a, Option<Vec<u8>>> {
                done(self.read_now(key, kind))
            }

            fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8], kind: Kind) -> StoreFuture<'a, ()> {
                done(self.put_now(key, bytes, kind))
            }

            fn append<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()> {
                done(self.append_now(key, bytes))
            }

            fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
                done(self.remove_now(key))
            }

            fn remove_all<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, ()> {
                done(self.remove_all_now(prefix))
            }

            fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
                done(self.list_now(prefix))
            }
        }
    };
}

store_at_once!(MemStore);

#[cfg(all(target_arch = "wasm32", feature = "network"))]
pub use opfs::OpfsStore;

#[cfg(all(target_arch = "wasm32", feature = "network"))]
mod opfs {
    use js_sys::{AsyncIterator, Promise, Reflect, Uint8Array};
    use wasm_bindgen::{JsCast as _, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        Blob, FileSystemCreateWritableOptions, FileSystemDirectoryHandle, FileSystemFileHandle,
        FileSystemGetDirectoryOptions, FileSystemGetFileOptions, FileSystemRemoveOptions,
        FileSystemWritableFileStream, StorageManager,
    };

    use super::{check_key, Kind, Store, StoreError, StoreFuture};

    /// The browser's store: records are files of the origin private file system (OPFS)
    /// under a directory of its root, `/` in a key a subdirectory. `put` writes through a
    /// writable stream, which the browser swaps in whole when it closes (readers see the
    /// old or the new record, never a mix); `append` does the same over the kept data.
    /// Works on a page and in a worker. OPFS is private to the origin, so [`Kind::Secret`]
    /// needs nothing more.
    ///
    /// Writes go one at a time: each writable stream works on its own copy of the file, so
    /// two concurrent appends would both start from the same length and the later `close`
    /// would drop the other's record. (Clones share the queue; a second page of the origin
    /// writing the same directory is not coordinated.)
    #[derive(Clone, Debug)]
    pub struct OpfsStore {
        root: String,
        writes: std::sync::Arc<futures::lock::Mutex<()>>,
    }

    /// A JS failure as the store's error, under `key`.
    fn js(key: &str, e: JsValue) -> StoreError {
        let what = Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .or_else(|| e.as_string())
            .unwrap_or_else(|| format!("{e:?}"));
        StoreError::Io {
            key: key.to_string(),
            source: std::io::Error::other(what),
        }
    }

    /// Whether `e` says the entry does not exist (or a file stands where a directory was
    /// expected, which for a read is the same: no such record).
    fn not_found(e: &JsValue) -> bool {
        let name = Reflect::get(e, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        matches!(name.as_str(), "NotFoundError" | "TypeMismatchError")
    }

    async fn wait(key: &str, p: Result<Promise, JsValue>) -> Result<JsValue, StoreError> {
        JsFuture::from(p.map_err(|e| js(key, e))?)
            .await
            .map_err(|e| js(key, e))
    }

    /// `navigator.storage` of this page or worker.
    fn storage(key: &str) -> Result<StorageManager, StoreError> {
        let navigator =
            Reflect::get(&js_sys::global(), &"navigator".into()).map_err(|e| js(key, e))?;
        let storage = Reflect::get(&navigator, &"storage".into()).map_err(|e| js(key, e))?;
        if storage.is_undefined() {
            return Err(js(
                key,
                "this browser has no navigator.storage (OPFS)".into(),
            ));
        }
        Ok(storage.unchecked_into())
    }

    impl OpfsStore {
        /// The store in directory `root` of the origin's OPFS (created now: this fails at
        /// once where OPFS is unavailable, e.g. a private window of some browsers).
        pub async fn open(root: &str) -> Result<OpfsStore, StoreError> {
            check_key(root)?;
            let s = OpfsStore {
                root: root.to_string(),
                writes: Default::default(),
            };
            s.dir(&[], true).await?;
            Ok(s)
        }

        /// The directory of `segments` under the root; `None` when a part is missing and
        /// `create` is false.
        async fn dir(
            &self,
            segments: &[&str],
            create: bool,
        ) -> Result<Option<FileSystemDirectoryHandle>, StoreError> {
            let key = &self.root;
            let origin: FileSystemDirectoryHandle = wait(key, Ok(storage(key)?.get_directory()))
                .await?
                .unchecked_into();
            let opts = FileSystemGetDirectoryOptions::new();
            opts.set_create(true);
            let mut d: FileSystemDirectoryHandle = wait(
                key,
                Ok(origin.get_directory_handle_with_options(&self.root, &opts)),
            )
            .await?
            .unchecked_into();
            opts.set_create(create);
            for seg in segments {
                let p = d.get_directory_handle_with_options(seg, &opts);
                match JsFuture::from(p).await {
                    Ok(h) => d = h.unchecked_into(),
                    Err(e) if !create && not_found(&e) => return Ok(None),
                    Err(e) => return Err(js(key, e)),
                }
            }
            Ok(Some(d))
        }

        /// The parent directory of `key` and its last name.
        async fn parent<'k>(
            &self,
            key: &'k str,
            create: bool,
        ) -> Result<(Option<FileSystemDirectoryHandle>, &'k str), StoreError> {
            check_key(key)?;
            let mut segs: Vec<&str> = key.split('/').collect();
            let name = segs.pop().unwrap_or(key);
            Ok((self.dir(&segs, create).await?, name))
        }

        async fn file(
            &self,
            key: &str,
            create: bool,
        ) -> Result<Option<FileSystemFileHandle>, StoreError> {
            let (Some(dir), name) = self.parent(key, create).await? else {
                return Ok(None);
            };
            let opts = FileSystemGetFileOptions::new();
            opts.set_create(create);
            match JsFuture::from(dir.get_file_handle_with_options(name, &opts)).await {
                Ok(h) => Ok(Some(h.unchecked_into())),
                Err(e) if !create && not_found(&e) => Ok(None),
                Err(e) => Err(js(key, e)),
            }
        }

        async fn read_file(key: &str, h: &FileSystemFileHandle) -> Result<Vec<u8>, StoreError> {
            let file: Blob = wait(key, Ok(h.get_file())).await?.unchecked_into();
            let buf = wait(key, Ok(file.array_buffer())).await?;
            Ok(Uint8Array::new(&buf).to_vec())
        }

        /// `put` (`keep` false) or `append` (`keep` true), one write at a time.
        async fn write_record(
            &self,
            key: &str,
            bytes: &[u8],
            keep: bool,
        ) -> Result<(), StoreError> {
            let _one = self.writes.lock().await;
            let h = self
                .file(key, true)
                .await?
                .ok_or_else(|| js(key, "no file".into()))?;
            OpfsStore::write(key, &h, bytes, keep).await
        }

        /// Writes `bytes` at the end of the file (`keep`: over its current data, else
        /// replacing it) through a writable stream that takes effect whole on `close`.
        async fn write(
            key: &str,
            h: &FileSystemFileHandle,
            bytes: &[u8],
            keep: bool,
        ) -> Result<(), StoreError> {
            let opts = FileSystemCreateWritableOptions::new();
            opts.set_keep_existing_data(keep);
            let w: FileSystemWritableFileStream =
                wait(key, Ok(h.create_writable_with_options(&opts)))
                    .await?
                    .unchecked_into();
            let body = async {
                if keep {
                    let file: Blob = wait(key, Ok(h.get_file())).await?.unchecked_into();
                    wait(key, w.seek_with_f64(file.size())).await?;
                }
                wait(key, w.write_with_u8_array(bytes)).await?;
                wait(key, Ok(w.close())).await
            };
            match body.await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Nothing of an aborted stream takes effect.
                    let _ = JsFuture::from(w.abort()).await;
                    Err(e)
                }
            }
        }
    }

    impl Store for OpfsStore {
        fn read<'a>(&'a self, key: &'a str, _kind: Kind) -> StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(async move {
                match self.file(key, false).await? {
                    Some(h) => Ok(Some(OpfsStore::read_file(key, &h).await?)),
                    None => Ok(None),
                }
            })
        }

        fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8], _kind: Kind) -> StoreFuture<'a, ()> {
            Box::pin(self.write_record(key, bytes, false))
        }

        fn append<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()> {
            Box::pin(self.write_record(key, bytes, true))
        }

        fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let _one = self.writes.lock().await;
                let (Some(dir), name) = self.parent(key, false).await? else {
                    return Ok(false);
                };
                match JsFuture::from(dir.remove_entry(name)).await {
                    Ok(_) => Ok(true),
                    Err(e) if not_found(&e) => Ok(false),
                    Err(e) => Err(js(key, e)),
                }
            })
        }

        fn remove_all<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                let _one = self.writes.lock().await;
                let (Some(dir), name) = self.parent(prefix, false).await? else {
                    return Ok(());
                };
                let opts = FileSystemRemoveOptions::new();
                opts.set_recursive(true);
                match JsFuture::from(dir.remove_entry_with_options(name, &opts)).await {
                    Ok(_) => Ok(()),
                    Err(e) if not_found(&e) => Ok(()),
                    Err(e) => Err(js(prefix, e)),
                }
            })
        }

        fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
            Box::pin(async move {
                check_key(prefix)?;
                let segs: Vec<&str> = prefix.split('/').collect();
                let Some(dir) = self.dir(&segs, false).await? else {
                    return Ok(Vec::new());
                };
                let it: AsyncIterator = dir.keys();
                let mut names = Vec::new();
                loop {
                    let step = wait(prefix, it.next()).await?;
                    let done = Reflect::get(&step, &"done".into())
                        .map_err(|e| js(prefix, e))?
                        .is_truthy();
                    if done {
                        break;
                    }
                    let name = Reflect::get(&step, &"value".into())
                        .map_err(|e| js(prefix, e))?
                        .as_string();
                    // Chromium's swap files of open writable streams end in `.crswap`.
                    if let Some(n) =
                        name.filter(|n| check_key(n).is_ok() && !n.ends_with(".crswap"))
                    {
                        names.push(n);
                    }
                }
                names.sort();
                Ok(names)
            })
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use dir::DirStore;

#[cfg(not(target_arch = "wasm32"))]
mod dir {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    use std::path::{Path, PathBuf};

    use super::{check_key, done, Kind, Store, StoreError, StoreFuture};

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

    impl DirStore {
        /// [`Store::read`], at once.
        pub fn read_now(&self, key: &str, kind: Kind) -> Result<Option<Vec<u8>>, StoreError> {
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

        /// [`Store::put`], at once.
        pub fn put_now(&self, key: &str, bytes: &[u8], kind: Kind) -> Result<(), StoreError> {
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

        /// [`Store::append`], at once.
        pub fn append_now(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
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

        /// [`Store::remove`], at once.
        pub fn remove_now(&self, key: &str) -> Result<bool, StoreError> {
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

        /// [`Store::remove_all`], at once.
        pub fn remove_all_now(&self, prefix: &str) -> Result<(), StoreError> {
            let path = self.path(prefix)?;
            match std::fs::remove_dir_all(&path) {
                Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&path)(e)),
            }
        }

        /// [`Store::list`], at once.
        pub fn list_now(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
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

    store_at_once!(DirStore);
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
        assert_eq!(s.read_now("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list_now("uploads").unwrap(), Vec::<String>::new());
        s.put_now("uploads/j/job.json", b"one", Kind::Plain)
            .unwrap();
        s.put_now("uploads/j/job.json", b"two", Kind::Plain)
            .unwrap();
        assert_eq!(
            s.read_now("uploads/j/job.json", Kind::Plain).unwrap(),
            Some(b"two".to_vec())
        );
        // No temporary file is left behind or listed.
        assert_eq!(
            s.list_now("uploads/j").unwrap(),
            vec!["job.json".to_string()]
        );
        s.append_now("uploads/j/acked.log", b"a\n").unwrap();
        s.append_now("uploads/j/acked.log", b"b\n").unwrap();
        assert_eq!(
            s.read_now("uploads/j/acked.log", Kind::Plain).unwrap(),
            Some(b"a\nb\n".to_vec())
        );
        s.put_now("uploads/k/job.json", b"x", Kind::Plain).unwrap();
        assert_eq!(
            s.list_now("uploads").unwrap(),
            vec!["j".to_string(), "k".to_string()]
        );
        assert!(s.remove_now("uploads/k/job.json").unwrap());
        assert!(!s.remove_now("uploads/k/job.json").unwrap());
        s.remove_all_now("uploads/j").unwrap();
        s.remove_all_now("uploads/j").unwrap();
        assert_eq!(s.read_now("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list_now("uploads").unwrap(), vec!["k".to_string()]);
        // Bad keys change nothing.
        assert!(matches!(
            s.put_now("../escape", b"x", Kind::Plain),
            Err(StoreError::BadKey(_))
        ));
        assert!(!t.path().join("escape").exists());
    }

    #[test]
    fn mem_store_puts_appends_lists_and_removes() {
        let s = MemStore::default();
        assert_eq!(s.read_now("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list_now("uploads").unwrap(), Vec::<String>::new());
        s.put_now("uploads/j/job.json", b"one", Kind::Plain)
            .unwrap();
        s.put_now("uploads/j/job.json", b"two", Kind::Secret)
            .unwrap();
        assert_eq!(
            s.read_now("uploads/j/job.json", Kind::Plain).unwrap(),
            Some(b"two".to_vec())
        );
        s.append_now("uploads/j/acked.log", b"a\n").unwrap();
        s.append_now("uploads/j/acked.log", b"b\n").unwrap();
        assert_eq!(
            s.read_now("uploads/j/acked.log", Kind::Plain).unwrap(),
            Some(b"a\nb\n".to_vec())
        );
        s.put_now("uploads/k/job.json", b"x", Kind::Plain).unwrap();
        // A sibling whose name extends a listed one is not under it.
        s.put_now("uploads-old/z", b"x", Kind::Plain).unwrap();
        assert_eq!(s.list_now("uploads").unwrap(), vec!["j", "k"]);
        assert_eq!(
            s.list_now("uploads/j").unwrap(),
            vec!["acked.log", "job.json"]
        );
        assert!(s.remove_now("uploads/k/job.json").unwrap());
        assert!(!s.remove_now("uploads/k/job.json").unwrap());
        s.remove_all_now("uploads/j").unwrap();
        s.remove_all_now("uploads/j").unwrap();
        assert_eq!(s.read_now("uploads/j/job.json", Kind::Plain).unwrap(), None);
        assert_eq!(s.list_now("uploads").unwrap(), Vec::<String>::new());
        assert_eq!(s.list_now("uploads-old").unwrap(), vec!["z"]);
        // Bad keys are refused and change nothing.
        for bad in ["../escape", "", "a//b"] {
            assert!(matches!(
                s.put_now(bad, b"x", Kind::Plain),
                Err(StoreError::BadKey(_))
            ));
        }
        assert_eq!(s.list_now("uploads-old").unwrap(), vec!["z"]);
    }

    /// Runs a store operation that natively completes at once.
    fn now<T>(mut f: StoreFuture<'_, T>) -> Result<T, StoreError> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => panic!("a native store operation did not complete"),
        }
    }

    #[test]
    fn the_trait_reaches_the_same_records_at_once() {
        let t = tempfile::tempdir().unwrap();
        let stores: [Box<dyn Store>; 2] = [
            Box::new(DirStore::new(t.path())),
            Box::new(MemStore::default()),
        ];
        for s in &stores {
            now(s.put("a/b", b"1", Kind::Secret)).unwrap();
            now(s.append("a/c", b"2")).unwrap();
            now(s.append("a/c", b"3")).unwrap();
            assert_eq!(
                now(s.read("a/b", Kind::Secret)).unwrap(),
                Some(b"1".to_vec())
            );
            assert_eq!(
                now(s.read("a/c", Kind::Plain)).unwrap(),
                Some(b"23".to_vec())
            );
            assert_eq!(now(s.list("a")).unwrap(), vec!["b", "c"]);
            assert!(now(s.remove("a/b")).unwrap());
            now(s.remove_all("a")).unwrap();
            assert_eq!(now(s.list("a")).unwrap(), Vec::<String>::new());
            assert!(matches!(
                now(s.put("../x", b"", Kind::Plain)),
                Err(StoreError::BadKey(_))
            ));
        }
    }

    #[test]
    fn secrets_are_private_and_refused_when_exposed() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStore::new(t.path());
        s.put_now("keys/1-deal-2.key", b"k", Kind::Secret).unwrap();
        let p = s.path("keys/1-deal-2.key").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            s.read_now("keys/1-deal-2.key", Kind::Secret).unwrap(),
            Some(b"k".to_vec())
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            s.read_now("keys/1-deal-2.key", Kind::Secret),
            Err(StoreError::Exposed(_))
        ));
        // Rewriting it as a secret makes it private again.
        s.put_now("keys/1-deal-2.key", b"k2", Kind::Secret).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
