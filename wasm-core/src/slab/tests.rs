use super::*;
use crate::constants::PAYLOAD_BYTES_PER_BLOB;

#[derive(Default)]
struct MemSink {
    /// (mdu index, per-slot shards)
    mdus: Vec<(u64, Vec<Vec<u8>>)>,
}

impl ShardSink for MemSink {
    type Error = SlabError;
    fn user_mdu(&mut self, mdu: u64, encoded: &EncodedMdu) -> Result<(), SlabError> {
        self.mdus.push((mdu, encoded.shards.clone()));
        Ok(())
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn build(layout: Layout, files: &[(&str, Vec<u8>)]) -> (SlabOutput, MemSink) {
    let s = KzgSettings::ethereum();
    let mut b = SlabBuilder::new(s, layout);
    let mut sink = MemSink::default();
    for (path, data) in files {
        b.begin_file(path, 1_700_000_000, 0).unwrap();
        for chunk in data.chunks(100_003) {
            b.write(chunk, &mut sink).unwrap();
        }
        b.end_file().unwrap();
    }
    (b.finish(&mut sink).unwrap(), sink)
}

/// Reads every live file back from the shards, with `lost` slots missing.
fn read_back(out: &SlabOutput, sink: &MemSink, lost: &[usize]) -> Vec<(String, Vec<u8>)> {
    let code = Code::new(out.layout.profile);
    let w: Vec<&[u8]> = out.metadata[1..].iter().map(Vec::as_slice).collect();
    let leaves = decode_witness(&out.layout, &w, out.user_mdus()).unwrap();
    let table = decode_file_table(&out.metadata[0]).unwrap();
    let mut payload = Vec::new();
    for (i, (mdu, shards)) in sink.mdus.iter().enumerate() {
        let present: Vec<Option<&[u8]>> = shards
            .iter()
            .enumerate()
            .map(|(s, b)| (!lost.contains(&s)).then_some(b.as_slice()))
            .collect();
        let (data, bad) = decode_user_mdu(&code, *mdu, &leaves[i], &present).unwrap();
        assert!(bad.is_empty());
        packing::unpack_append(&data, PAYLOAD_BYTES_PER_MDU, &mut payload).unwrap();
    }
    table
        .live()
        .map(|r| {
            let lo = r.start as usize;
            (r.path.clone(), payload[lo..lo + r.len as usize].to_vec())
        })
        .collect()
}

#[test]
fn pack_lose_m_slots_and_read_back() {
    let layout = Layout::new(Profile::new(4, 2).unwrap(), 4).unwrap();
    let files = vec![
        ("a.txt", bytes(1000, 1)),
        (
            "dir/b.bin",
            bytes(PAYLOAD_BYTES_PER_MDU + 3 * PAYLOAD_BYTES_PER_BLOB + 7, 2),
        ),
        ("empty", vec![]),
    ];
    let (out, sink) = build(layout, &files);
    assert_eq!(out.user_mdus(), 2);
    assert_eq!(out.total_mdus(), 1 + layout.witness_mdus + 2);
    let expected: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, d)| (p.to_string(), d.clone()))
        .collect();
    for lost in [vec![], vec![0, 1], vec![4, 5], vec![1, 5], vec![2, 3]] {
        assert_eq!(read_back(&out, &sink, &lost), expected, "lost {lost:?}");
    }
    // The manifest commits to every MDU root.
    let s = KzgSettings::ethereum();
    let manifest = Polynomial::from_blob(&out.manifest).unwrap();
    assert_eq!(s.commit_poly(&manifest).to_compressed(), out.manifest_root);
    for (j, r) in out.mdu_roots.iter().enumerate() {
        assert_eq!(manifest.0[j].to_bytes_be(), *r);
    }
    // The readers' one manifest check: the blob's roots rebuild the root; a changed
    // root, a dropped or an extra MDU does not.
    let total = out.total_mdus() as usize;
    let roots = manifest_roots(&manifest, total).unwrap();
    assert_eq!(roots, out.mdu_roots);
    assert_eq!(
        check_manifest(s, &roots, &out.manifest_root).unwrap(),
        manifest
    );
    let mut wrong = roots.clone();
    wrong[total - 1][31] ^= 1;
    assert!(matches!(
        check_manifest(s, &wrong, &out.manifest_root),
        Err(SlabError::ManifestMismatch)
    ));
    assert!(matches!(
        check_manifest(s, &roots[..total - 1], &out.manifest_root),
        Err(SlabError::ManifestMismatch)
    ));
    assert!(matches!(
        manifest_roots(&manifest, total - 1),
        Err(SlabError::Malformed(_))
    ));
    assert!(manifest_roots(&manifest, FIELD_ELEMENTS_PER_BLOB + 1).is_err());
    // Leaves agree with the code's commitments.
    let code = Code::new(layout.profile);
    for (i, leaves) in out.user_leaves.iter().enumerate() {
        let root = out.mdu_roots[layout.first_user_mdu() as usize + i];
        check_user_mdu_leaves(&code, leaves, &root).unwrap();
    }
    // The metadata leaves handed out are those of the metadata MDUs as encoded.
    assert_eq!(out.metadata_leaves.len(), out.metadata.len());
    for (j, m) in out.metadata.iter().enumerate() {
        let (leaves, root) = encode_metadata_mdu(s, m).unwrap();
        assert_eq!(out.metadata_leaves[j], leaves, "metadata MDU {j}");
        assert_eq!(out.mdu_roots[j], root);
    }
}

#[test]
fn tampered_and_missing_slots() {
    let layout = Layout::new(Profile::new(2, 1).unwrap(), 2).unwrap();
    let (out, mut sink) = build(layout, &[("f", bytes(50_000, 9))]);
    let code = Code::new(layout.profile);
    sink.mdus[0].1[0][10] ^= 1;
    let leaves = &out.user_leaves[0];
    let shards: Vec<Option<&[u8]>> = sink.mdus[0].1.iter().map(|b| Some(b.as_slice())).collect();
    let (_, bad) = decode_user_mdu(&code, 3, leaves, &shards).unwrap();
    assert_eq!(bad, vec![0]);
    let shards = vec![
        Some(sink.mdus[0].1[0].as_slice()),
        None,
        Some(sink.mdus[0].1[2].as_slice()),
    ];
    assert!(matches!(
        decode_user_mdu(&code, 3, leaves, &shards),
        Err(SlabError::Unrecoverable {
            got: 1,
            needed: 2,
            ..
        })
    ));
}

#[test]
fn append_keeps_earlier_roots() {
    let s = KzgSettings::ethereum();
    let layout = Layout::new(Profile::new(4, 2).unwrap(), 8).unwrap();
    let (first, _) = build(layout, &[("one", bytes(10_000, 3))]);
    let state = SlabState {
        layout,
        generation: first.generation,
        table: first.table.clone(),
        user_leaves: first.user_leaves.clone(),
    };
    let mut b = SlabBuilder::append(s, state);
    let mut sink = MemSink::default();
    b.delete("one").unwrap();
    b.begin_file("two", 5, 0).unwrap();
    b.write(&bytes(20_000, 4), &mut sink).unwrap();
    let rec = b.end_file().unwrap().clone();
    assert_eq!(
        rec.start, PAYLOAD_BYTES_PER_MDU as u64,
        "new files start on a fresh MDU"
    );
    let second = b.finish(&mut sink).unwrap();
    assert_eq!(second.generation, 1);
    let user0 = layout.first_user_mdu() as usize;
    assert_eq!(second.mdu_roots[user0], first.mdu_roots[user0]);
    assert_eq!(second.total_mdus(), first.total_mdus() + 1);
    assert_ne!(second.manifest_root, first.manifest_root);
    // The tombstone's record slot was reused.
    assert_eq!(second.table.records().len(), 1);
    assert_eq!(second.table.records()[0].path, "two");
}

#[test]
fn capacity_is_enforced() {
    assert!(Layout::new(Profile::DEFAULT, 5000).is_err());
    // Capacities from outside (a CreateDeal transaction) never overflow the sizing.
    for huge in [u64::MAX, u64::MAX / 2, 1 << 60] {
        assert!(matches!(
            Layout::new(Profile::DEFAULT, huge),
            Err(SlabError::Capacity { .. })
        ));
    }
    let layout = Layout::new(Profile::new(1, 0).unwrap(), 1).unwrap();
    assert!(layout.user_capacity() >= 1);
    let s = KzgSettings::ethereum();
    let tiny = Layout {
        profile: Profile::new(1, 0).unwrap(),
        witness_mdus: 0,
    };
    let mut b = SlabBuilder::new(s, tiny);
    let mut sink = MemSink::default();
    b.begin_file("x", 0, 0).unwrap();
    assert!(matches!(
        b.write(b"hi", &mut sink),
        Err(SlabError::Full { .. })
    ));
}

#[test]
fn builder_rejects_misuse_and_bad_paths() {
    let s = KzgSettings::ethereum();
    let layout = Layout::new(Profile::new(1, 1).unwrap(), 1).unwrap();
    let mut b = SlabBuilder::new(s, layout);
    let mut sink = MemSink::default();
    assert!(matches!(
        b.write(b"x", &mut sink),
        Err(SlabError::Misuse(_))
    ));
    assert!(b.begin_file("../etc/passwd", 0, 0).is_err());
    b.begin_file("ok", 0, 0).unwrap();
    assert!(b.begin_file("again", 0, 0).is_err());
}
