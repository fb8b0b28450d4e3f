//! MDU #0: the file table (docs/spec.md §4.1).
//!
//! ```text
//!  header (16 B): "NILF" | version u16 | record size u16 | record count u32 | flags u32
//!  record (320 B): start u64 | length u64 | flags u16 | path length u16 | mtime i64 |
//!                  blake3 [32] | path [256, UTF-8, zero padded] | reserved [4]
//! ```
//! All integers big-endian. The table is packed payload of MDU #0 like any other bytes.

use crate::constants::PAYLOAD_BYTES_PER_MDU;

/// Table magic.
pub const TABLE_MAGIC: &[u8; 4] = b"NILF";
/// Table format version.
pub const TABLE_VERSION: u16 = 1;
/// Header bytes.
pub const HEADER_LEN: usize = 16;
/// Longest path in bytes (SPEC asks for at least 200).
pub const MAX_PATH_BYTES: usize = 256;
/// Bytes of one record.
pub const RECORD_LEN: usize = 8 + 8 + 2 + 2 + 8 + 32 + MAX_PATH_BYTES + 4;
/// Most records MDU #0 can hold.
pub const MAX_RECORDS: usize = (PAYLOAD_BYTES_PER_MDU - HEADER_LEN) / RECORD_LEN;

const _: () = assert!(RECORD_LEN == 320);
/// Offset of the BLAKE3 hash within a record.
const BLAKE3_AT: usize = 8 + 8 + 2 + 2 + 8;
/// Offset of the path within a record.
const PATH_AT: usize = BLAKE3_AT + 32;

/// Record flag: the stored bytes are AEAD ciphertext (docs/spec.md §10).
pub const FLAG_ENCRYPTED: u16 = 1 << 0;
/// Record flag: hidden from listings.
pub const FLAG_HIDDEN: u16 = 1 << 1;
/// Record flag: compressed before encryption (reserved; v1 writers never set it).
pub const FLAG_COMPRESSED: u16 = 1 << 2;
/// Record flag: deleted; the record slot may be reused.
pub const FLAG_TOMBSTONE: u16 = 1 << 15;
const KNOWN_FLAGS: u16 = FLAG_ENCRYPTED | FLAG_HIDDEN | FLAG_COMPRESSED | FLAG_TOMBSTONE;

/// Errors of the file table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The path breaks a rule.
    #[error("invalid path {path:?}: {why}")]
    BadPath {
        /// The path (lossy).
        path: String,
        /// Which rule.
        why: &'static str,
    },
    /// A live file already has this path.
    #[error("a file named {0:?} already exists")]
    Exists(String),
    /// No live file has this path.
    #[error("no file named {0:?}")]
    NotFound(String),
    /// The table is full.
    #[error("file table full ({MAX_RECORDS} records)")]
    Full,
    /// The bytes are not a file table.
    #[error("malformed file table: {0}")]
    Malformed(&'static str),
}

/// One file's record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileRecord {
    /// Offset of the stored bytes in the user payload space.
    pub start: u64,
    /// Stored length in bytes (ciphertext length when encrypted).
    pub len: u64,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Modification time, seconds since the Unix epoch (caller-supplied).
    pub mtime: i64,
    /// BLAKE3 of the stored bytes.
    pub blake3: [u8; 32],
    /// Relative `/`-separated UTF-8 path.
    pub path: String,
}

impl FileRecord {
    /// Whether the record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }
    /// Whether the stored bytes are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }
}

/// Checks a path: relative, `/`-separated, UTF-8, no empty, `.` or `..` components, no
/// control characters, no backslashes, at most [`MAX_PATH_BYTES`] bytes.
pub fn validate_path(path: &str) -> Result<(), TableError> {
    let bad = |why| {
        Err(TableError::BadPath {
            path: path.chars().take(80).collect(),
            why,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than 256 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    if path.chars().any(|c| c.is_control()) {
        return bad("control character");
    }
    if path.contains('\\') {
        return bad("backslash");
    }
    for part in path.split('/') {
        match part {
            "" => return bad("empty component"),
            "." | ".." => return bad("dot component"),
            _ => {}
        }
    }
    Ok(())
}

/// The file table: records in slot order (tombstones keep their slots).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FileTable {
    records: Vec<FileRecord>,
}

impl FileTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// All records, tombstones included, in slot order.
    pub fn records(&self) -> &[FileRecord] {
        &self.records
    }

    /// Live records.
    pub fn live(&self) -> impl Iterator<Item = &FileRecord> {
        self.records.iter().filter(|r| !r.is_tombstone())
    }

    /// Finds a live file by path.
    pub fn get(&self, path: &str) -> Option<&FileRecord> {
        self.live().find(|r| r.path == path)
    }

    /// Adds a record, reusing the first tombstone slot if any; returns its slot.
    pub fn add(&mut self, record: FileRecord) -> Result<usize, TableError> {
        validate_path(&record.path)?;
        if self.get(&record.path).is_some() {
            return Err(TableError::Exists(record.path));
        }
        if record.flags & !KNOWN_FLAGS != 0 || record.is_tombstone() {
            return Err(TableError::Malformed("bad flags on new record"));
        }
        if let Some(i) = self.records.iter().position(FileRecord::is_tombstone) {
            self.records[i] = record;
            return Ok(i);
        }
        if self.records.len() >= MAX_RECORDS {
            return Err(TableError::Full);
        }
        self.records.push(record);
        Ok(self.records.len() - 1)
    }

    /// Deletes a live file: its record becomes a tombstone (bytes stay until compaction).
    pub fn delete(&mut self, path: &str) -> Result<(), TableError> {
        let r = self
            .records
            .iter_mut()
            .find(|r| !r.is_tombstone() && r.path == path)
            .ok_or_else(|| TableError::NotFound(path.to_string()))?;
        r.flags |= FLAG_TOMBSTONE;
        Ok(())
    }

    /// Encodes header and records (the payload of MDU #0).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + RECORD_LEN * self.records.len());
        out.extend_from_slice(TABLE_MAGIC);
        out.extend_from_slice(&TABLE_VERSION.to_be_bytes());
        out.extend_from_slice(&(RECORD_LEN as u16).to_be_bytes());
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        for r in &self.records {
            out.extend_from_slice(&r.start.to_be_bytes());
            out.extend_from_slice(&r.len.to_be_bytes());
            out.extend_from_slice(&r.flags.to_be_bytes());
            out.extend_from_slice(&(r.path.len() as u16).to_be_bytes());
            out.extend_from_slice(&r.mtime.to_be_bytes());
            out.extend_from_slice(&r.blake3);
            let mut path = [0u8; MAX_PATH_BYTES];
            path[..r.path.len()].copy_from_slice(r.path.as_bytes());
            out.extend_from_slice(&path);
            out.extend_from_slice(&[0u8; 4]);
        }
        out
    }

    /// Decodes a table from the payload of MDU #0. Exactly one encoding is accepted per
    /// table: header flags, reserved record bytes and everything after the last record
    /// must be zero.
    pub fn decode(bytes: &[u8]) -> Result<FileTable, TableError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(TableError::Malformed("short header"))?;
        if &header[..4] != TABLE_MAGIC {
            return Err(TableError::Malformed("bad magic"));
        }
        let u16_at = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let u32_at =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |b: &[u8], at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        if u16_at(header, 4) != TABLE_VERSION {
            return Err(TableError::Malformed("unsupported version"));
        }
        if u16_at(header, 6) as usize != RECORD_LEN {
            return Err(TableError::Malformed("unexpected record size"));
        }
        if u32_at(header, 12) != 0 {
            return Err(TableError::Malformed("unknown table flags"));
        }
        let count = u32_at(header, 8) as usize;
        if count > MAX_RECORDS {
            return Err(TableError::Malformed("too many records"));
        }
        let end = HEADER_LEN + count * RECORD_LEN;
        let body = bytes
            .get(HEADER_LEN..end)
            .ok_or(TableError::Malformed("truncated records"))?;
        // One encoding per table: reserved bytes and the padding after the records are zero.
        if bytes[end..].iter().any(|&b| b != 0) {
            return Err(TableError::Malformed("non-zero bytes after the records"));
        }
        let mut table = FileTable::new();
        for rec in body.chunks_exact(RECORD_LEN) {
            if rec[PATH_AT + MAX_PATH_BYTES..].iter().any(|&b| b != 0) {
                return Err(TableError::Malformed("reserved record bytes"));
            }
            let flags = u16_at(rec, 16);
            if flags & !KNOWN_FLAGS != 0 {
                return Err(TableError::Malformed("unknown flags"));
            }
            let path_len = u16_at(rec, 18) as usize;
            if path_len > MAX_PATH_BYTES {
                return Err(TableError::Malformed("path length"));
            }
            let path_bytes = &rec[PATH_AT..PATH_AT + path_len];
            if rec[PATH_AT + path_len..PATH_AT + MAX_PATH_BYTES]
                .iter()
                .any(|&b| b != 0)
            {
                return Err(TableError::Malformed("path padding"));
            }
            let path = core::str::from_utf8(path_bytes)
                .map_err(|_| TableError::Malformed("path not UTF-8"))?
                .to_string();
            validate_path(&path)?;
            let mut blake3 = [0u8; 32];
            blake3.copy_from_slice(&rec[BLAKE3_AT..PATH_AT]);
            let (start, len) = (u64_at(rec, 0), u64_at(rec, 8));
            if start.checked_add(len).is_none() {
                return Err(TableError::Malformed("range overflows"));
            }
            let record = FileRecord {
                start,
                len,
                flags,
                mtime: u64_at(rec, 20) as i64,
                blake3,
                path,
            };
            if !record.is_tombstone() && table.get(&record.path).is_some() {
                return Err(TableError::Malformed("duplicate path"));
            }
            table.records.push(record);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(path: &str, start: u64) -> FileRecord {
        FileRecord {
            start,
            len: 10,
            flags: 0,
            mtime: 1_700_000_000,
            blake3: [3; 32],
            path: path.into(),
        }
    }

    #[test]
    fn paths() {
        for ok in ["a", "a/b.txt", "ü/日本", &"x".repeat(256)] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a//b",
            "a/../b",
            "./a",
            "a/",
            "a\nb",
            "a\\b",
            &"x".repeat(257),
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tombstones_are_reused() {
        let mut t = FileTable::new();
        assert_eq!(t.add(rec("a", 0)), Ok(0));
        assert_eq!(t.add(rec("b", 10)), Ok(1));
        assert_eq!(t.add(rec("a", 20)), Err(TableError::Exists("a".into())));
        t.delete("a").unwrap();
        assert!(t.get("a").is_none());
        assert_eq!(t.delete("a"), Err(TableError::NotFound("a".into())));
        assert_eq!(t.add(rec("c", 20)), Ok(0));
        assert_eq!(t.live().count(), 2);
    }

    proptest! {
        #[test]
        fn roundtrip(names in proptest::collection::btree_set("[a-z]{1,12}(/[a-z0-9._-]{1,12}){0,3}", 0..20),
                     dead in any::<u32>()) {
            let mut t = FileTable::new();
            for (i, n) in names.iter().enumerate() {
                prop_assume!(validate_path(n).is_ok());
                t.add(rec(n, i as u64 * 100)).unwrap();
            }
            for (i, n) in names.iter().enumerate() {
                if dead >> (i % 32) & 1 == 1 { t.delete(n).unwrap(); }
            }
            let mut enc = t.encode();
            enc.resize(enc.len() + 100, 0);
            prop_assert_eq!(FileTable::decode(&enc).unwrap(), t);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = FileTable::decode(&bytes);
        }
    }

    #[test]
    fn decode_is_canonical() {
        let mut t = FileTable::new();
        t.add(rec("a", 0)).unwrap();
        let enc = t.encode();
        for at in [12, HEADER_LEN + RECORD_LEN - 1, enc.len()] {
            let mut bad = enc.clone();
            bad.resize(enc.len() + 8, 0);
            bad[at] = 1;
            assert!(
                matches!(FileTable::decode(&bad), Err(TableError::Malformed(_))),
                "{at}"
            );
        }
    }

    #[test]
    fn decode_rejects_traversal() {
        let mut t = FileTable::new();
        t.add(rec("safe", 0)).unwrap();
        let mut enc = t.encode();
        enc[HEADER_LEN + PATH_AT..HEADER_LEN + PATH_AT + 4].copy_from_slice(b"../x");
        assert!(matches!(
            FileTable::decode(&enc),
            Err(TableError::BadPath { .. })
        ));
    }
}
