//! A corrupt or hostile model file must give an error, never a panic, at load and at run:
//! the GGUF reader already refuses malformed structure; this covers files that parse but
//! carry wrong hyperparameters, shapes or types (tiny qwen3 fixture, mutated).

use lingqiao_gguf::GgufFile;
use lingqiao_model::{Logits, Model};
use std::path::PathBuf;

fn fixture() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/qwen3-tiny/model.gguf"),
    )
    .unwrap()
}

/// splitmix64: a fixed, dependency-free sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn mutated_headers_load_or_fail_cleanly() {
    let original = fixture();
    let header_len = GgufFile::from_bytes(original.clone())
        .unwrap()
        .data_offset() as usize;
    let mut rng = Rng(2026);
    let (mut loaded, mut refused) = (0, 0);
    for i in 0..2000 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % header_len;
            bytes[at] = match rng.next() % 3 {
                0 => bytes[at] ^ (1 << (rng.next() % 8)),
                1 => 0,
                _ => 0xff,
            };
        }
        let result = std::panic::catch_unwind(|| {
            let Ok(file) = GgufFile::from_bytes(bytes) else {
                return false;
            };
            let Ok(model) = Model::from_gguf(file) else {
                return false;
            };
            let mut cache = model.new_cache(16);
            // Runs or refuses the tokens; either way it must return.
            let _ = model.forward(&mut cache, &[1, 2, 3], Logits::All);
            true
        });
        match result {
            Ok(true) => loaded += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("mutation {i} panicked"),
        }
    }
    eprintln!("2000 header mutations: {loaded} loaded and ran, {refused} refused");
    assert!(
        refused > 0 && loaded > 0,
        "the mutations should exercise both outcomes"
    );
}
