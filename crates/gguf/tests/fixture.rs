//! Our reader against gguf-py on testdata/gguf/small.gguf (made by
//! tools/reference/gen_gguf_fixture.py with gguf.GGUFWriter from real model data).

mod common;

use lingqiao_gguf::{GgmlType, GgufFile, keys};
use sha2::{Digest, Sha256};

fn open_small() -> GgufFile {
    GgufFile::open(common::testdata("small.gguf")).expect("open small.gguf")
}

#[test]
fn small_matches_gguf_py() {
    let want = common::load_json("small.json");
    let f = open_small();
    common::assert_matches_reference(&f, &want, true);
    for (t, w) in f.tensors().iter().zip(want["tensors"].as_array().unwrap()) {
        let digest: String = Sha256::digest(f.tensor_data(t))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, w["sha256"].as_str().unwrap(), "{} bytes", t.name);
    }
}

#[test]
fn small_typed_access() {
    let f = open_small();
    let md = f.metadata();
    let arch = md.get_str(keys::GENERAL_ARCHITECTURE).unwrap();
    assert_eq!(arch, "llama");
    assert_eq!(
        md.get_u32(&keys::arch(arch, keys::BLOCK_COUNT)).unwrap(),
        30
    );
    assert_eq!(
        md.get_u32(&keys::arch(arch, keys::EMBEDDING_LENGTH))
            .unwrap(),
        576
    );
    assert_eq!(
        md.get_u32(&keys::arch(arch, keys::ATTENTION_HEAD_COUNT_KV))
            .unwrap(),
        3
    );
    assert_eq!(
        md.get_f32(&keys::arch(arch, keys::ATTENTION_LAYERNORM_RMS_EPS))
            .unwrap(),
        1e-5
    );
    assert_eq!(
        md.get_f32(&keys::arch(arch, keys::ROPE_FREQ_BASE)).unwrap(),
        100000.0
    );
    assert_eq!(md.get_str_array(keys::TOKENIZER_TOKENS).unwrap().len(), 200);
    assert_eq!(
        md.get_str_array(keys::TOKENIZER_TOKENS).unwrap()[1],
        "<|im_start|>"
    );
    assert_eq!(
        md.get_i32_array(keys::TOKENIZER_TOKEN_TYPE).unwrap().len(),
        200
    );
    assert_eq!(md.get_f32_array(keys::TOKENIZER_SCORES).unwrap().len(), 200);
    assert_eq!(md.get_str_array(keys::TOKENIZER_MERGES).unwrap()[0], "Ġ t");
    assert!(
        md.get_str(keys::TOKENIZER_CHAT_TEMPLATE)
            .unwrap()
            .contains("<|im_start|>")
    );
    assert_eq!(md.opt_bool(keys::TOKENIZER_ADD_BOS).unwrap(), Some(false));
    assert_eq!(
        md.get_u32_or_i32_array("test.u32s").unwrap(),
        vec![12, 12, 16]
    );
    assert_eq!(md.get_u64("test.u64").unwrap(), (1 << 63) + 12345);
    assert_eq!(md.get_i64("test.i64").unwrap(), -(1 << 62));
    assert_eq!(md.get_str("test.unicode").unwrap(), "lingqiao 灵巧 ✓ é");
    assert_eq!(md.get_str("test.empty_string").unwrap(), "");

    assert_eq!(f.alignment(), 64);
    let q6 = f.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(
        (q6.ty, q6.ne(0), q6.n_rows(), q6.n_bytes),
        (GgmlType::Q6_K, 4864, 1, 3990)
    );
    let t3 = f.tensor("test.f32_3d").unwrap();
    assert_eq!(
        (t3.n_elements(), t3.n_rows(), t3.ne(2), t3.ne(3)),
        (48, 6, 2, 1)
    );
    for t in f.tensors() {
        assert_eq!(t.offset % f.alignment(), 0, "{}", t.name);
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
    }
    // The F32 tensor holds the norm weights as little-endian floats.
    let norm = f.tensor_data(f.tensor("output_norm.weight").unwrap());
    let w0 = f32::from_le_bytes(norm[..4].try_into().unwrap());
    assert!(w0.is_finite() && w0 != 0.0);
}

#[test]
fn mmap_and_owned_agree() {
    let mapped = open_small();
    let owned =
        GgufFile::from_bytes(std::fs::read(common::testdata("small.gguf")).unwrap()).unwrap();
    assert_eq!(mapped.bytes(), owned.bytes());
    assert_eq!(mapped.tensors(), owned.tensors());
    for t in mapped.tensors() {
        assert_eq!(mapped.tensor_data(t), owned.tensor_data(t));
        // The mapped file is not copied: tensor data points into the map.
        let base = mapped.bytes().as_ptr() as usize;
        assert_eq!(
            mapped.tensor_data(t).as_ptr() as usize - base,
            t.offset as usize
        );
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let e = GgufFile::open("/nonexistent/x.gguf").unwrap_err();
    assert!(matches!(e, lingqiao_gguf::GgufError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/x.gguf"));
}

#[test]
fn resident_open_reads_the_same_bytes() {
    // 19,904 bytes: not a whole number of 4 KiB blocks, so the direct read and the tail
    // read both run.
    let path = common::testdata("small.gguf");
    let on_disk = std::fs::read(&path).unwrap();
    assert_ne!(on_disk.len() % 4096, 0);
    let mapped = GgufFile::open(&path).unwrap();
    let resident = GgufFile::open_resident(&path).unwrap();
    assert_eq!(resident.bytes(), &on_disk[..]);
    assert_eq!(resident.tensors().len(), mapped.tensors().len());
    for t in mapped.tensors() {
        assert_eq!(resident.tensor_data(t), mapped.tensor_data(t), "{}", t.name);
    }
    // Each path says what it took; whether huge pages or direct I/O were granted depends on
    // the kernel and the filesystem, so only the kind is fixed.
    use lingqiao_gguf::Residency;
    assert_eq!(mapped.residency(), Residency::Mapped);
    assert!(matches!(resident.residency(), Residency::Resident { .. }));
    assert!(
        resident
            .residency()
            .to_string()
            .starts_with("read into memory (")
    );
    let owned = GgufFile::from_bytes(on_disk.clone()).unwrap();
    assert_eq!(owned.residency(), Residency::Owned);
    let e = GgufFile::open_resident("/nonexistent/x.gguf").unwrap_err();
    assert!(matches!(e, lingqiao_gguf::GgufError::Io { .. }));
    // An empty file is a parse error, not an I/O one or a panic.
    let empty = std::env::temp_dir().join(format!("lq-empty-{}.gguf", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    assert!(GgufFile::open_resident(&empty).is_err());
    std::fs::remove_file(&empty).unwrap();
}
