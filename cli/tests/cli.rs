//! The `nilstore` CLI end to end, through the real binary: the exact command forms external
//! checks use (`kzg commit`, `kzg vector`, `slab pack|verify|unpack|inspect`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn nilstore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nilstore"))
        .args(args)
        .output()
        .expect("the nilstore binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn kzg_commit_prints_one_line_per_blob_and_rejects_non_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let blob = wasm_core::packing::pack_blob(b"hello nilstore").unwrap();
    let mut two = blob.clone();
    two.extend(vec![0u8; 131_072]);
    let path = dir.path().join("blobs.bin");
    fs::write(&path, &two).unwrap();
    let o = nilstore(&["kzg", "commit", "--in", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = wasm_core::kzg::KzgSettings::ethereum();
    let want = format!(
        "0x{}\n0x{}\n",
        hex::encode(s.blob_to_kzg_commitment(&blob).unwrap()),
        hex::encode(s.blob_to_kzg_commitment(&[0u8; 131_072]).unwrap())
    );
    assert_eq!(stdout(&o), want);

    two[131_072] = 0xff; // element 0 of blob 1 is now >= r
    fs::write(&path, &two).unwrap();
    let o = nilstore(&["kzg", "commit", "--in", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not canonical"));

    fs::write(&path, [0u8; 100]).unwrap();
    let o = nilstore(&["kzg", "commit", "--in", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a multiple"));
}

#[test]
fn kzg_vector_prints_the_output_in_the_vector_format() {
    // Vendored cases (tests/data/eip4844/README.md: provenance).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eip4844");
    let cases = [
        (
            "verify_kzg_proof",
            "verify_kzg_proof_case_correct_proof_2_0",
            "true",
        ),
        (
            "verify_kzg_proof",
            "verify_kzg_proof_case_invalid_y_0",
            "null",
        ),
        (
            "blob_to_kzg_commitment",
            "blob_to_kzg_commitment_case_invalid_blob_0",
            "null",
        ),
    ];
    for (f, case, want) in cases {
        let p = root
            .join(f)
            .join("kzg-mainnet")
            .join(case)
            .join("data.yaml");
        let o = nilstore(&["kzg", "vector", f, p.to_str().unwrap()]);
        assert!(o.status.success());
        assert_eq!(stdout(&o).trim(), want, "{case}");
    }
    let p =
        root.join("compute_kzg_proof/kzg-mainnet/compute_kzg_proof_case_valid_blob_1_0/data.yaml");
    let o = nilstore(&["kzg", "vector", "compute_kzg_proof", p.to_str().unwrap()]);
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(got, serde_json::to_value(&doc["output"]).unwrap());
    let o = nilstore(&["kzg", "vector", "no_such_function", p.to_str().unwrap()]);
    assert!(!o.status.success());
}

#[test]
fn slab_pack_verify_tamper_lose_m_and_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a: Vec<u8> = (0..9_000_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
    fs::write(d.join("a.bin"), &a).unwrap();
    fs::write(d.join("b.txt"), b"small file").unwrap();
    fs::write(d.join("empty"), b"").unwrap();
    let key = d.join("root.key");
    fs::write(&key, "11".repeat(32)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = d.join("slab");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = nilstore(&[
        "slab",
        "pack",
        &s(&d.join("a.bin")),
        &s(&d.join("b.txt")),
        &s(&d.join("empty")),
        "--out",
        &s(&out),
        "--k",
        "4",
        "--m",
        "2",
        "--key-file",
        &s(&key),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = stdout(&o).lines().next().unwrap().to_string();
    assert!(root.starts_with("manifest_root 0x") && root.len() == 16 + 96);
    for s in 0..6 {
        assert!(out.join(format!("slot-{s}/slab.json")).exists());
    }

    let o = nilstore(&["slab", "verify", &s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = nilstore(&["slab", "inspect", &s(&out)]);
    assert!(stdout(&o).contains(&root));
    assert!(stdout(&o).contains("\"a.bin\""));

    // One flipped byte in one shard: verify must fail.
    let shard = fs::read_dir(out.join("slot-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("shard-")
        })
        .unwrap();
    let mut bytes = fs::read(&shard).unwrap();
    bytes[12_345] ^= 0x01;
    fs::write(&shard, &bytes).unwrap();
    let o = nilstore(&["slab", "verify", &s(&out)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("MISMATCH"));

    // Lose M = 2 other slots entirely: unpack still restores every file exactly, and
    // reports the tampered slot as fraud evidence.
    fs::remove_dir_all(out.join("slot-0")).unwrap();
    fs::remove_dir_all(out.join("slot-5")).unwrap();
    let restored = d.join("restored");
    let unpack = || {
        nilstore(&[
            "slab",
            "unpack",
            &s(&out),
            "--out",
            &s(&restored),
            "--key-file",
            &s(&key),
        ])
    };
    let o = unpack();
    assert!(
        !o.status.success(),
        "three of six slots bad or missing with K = 4 must fail"
    );
    // Put the untampered byte back: slots 1..=4 are K = 4 good slots.
    bytes[12_345] ^= 0x01;
    fs::write(&shard, &bytes).unwrap();
    let o = unpack();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(restored.join("a.bin")).unwrap(), a);
    assert_eq!(fs::read(restored.join("b.txt")).unwrap(), b"small file");
    assert_eq!(fs::read(restored.join("empty")).unwrap(), b"");

    // Without the key, encrypted files are refused rather than written as ciphertext.
    let o = nilstore(&["slab", "unpack", &s(&out), "--out", &s(&d.join("nokey"))]);
    assert!(!o.status.success());
}
