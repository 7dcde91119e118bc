//! Every truncation of small.gguf is rejected, and seeded random corruptions parse or fail
//! quickly without panicking or allocating more than a small multiple of the file.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lingqiao_gguf::GgufFile;

/// Records the largest single allocation, to catch a hostile count turning into a huge
/// `Vec::with_capacity`.
struct MaxAlloc;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only records sizes.
unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: MaxAlloc = MaxAlloc;

/// No parse of a 20 KB file may allocate more than this at once (the largest honest
/// allocation is a few KB; a hostile count is bounded by the bytes that remain).
const ALLOC_CAP: usize = 1 << 20;
/// Parsing 20 KB takes microseconds; this only catches runaway loops.
const TIME_CAP: Duration = Duration::from_secs(1);

fn small() -> Vec<u8> {
    std::fs::read(common::testdata("small.gguf")).unwrap()
}

/// Parses `bytes`, checking time and allocation bounds; true if it parsed.
fn parse_bounded(bytes: Vec<u8>, what: &str) -> bool {
    let t0 = Instant::now();
    let ok = match GgufFile::from_bytes(bytes) {
        Ok(f) => {
            // Touch every tensor: extents were validated, so this must not panic.
            f.tensors()
                .iter()
                .map(|t| f.tensor_data(t).len())
                .sum::<usize>()
                > 0
                || f.tensors().is_empty()
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    };
    let dt = t0.elapsed();
    assert!(dt < TIME_CAP, "{what}: parse took {dt:?}");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOC_CAP,
        "{what}: allocated {largest} bytes at once"
    );
    ok
}

#[test]
fn every_truncation_fails() {
    let full = small();
    assert!(GgufFile::from_bytes(full.clone()).is_ok());
    for len in 0..full.len() {
        let ok = parse_bounded(full[..len].to_vec(), &format!("truncated to {len}"));
        assert!(!ok, "truncated to {len} bytes parsed");
    }
}

/// splitmix64: a tiny deterministic PRNG, so failures reproduce from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let full = small();
    let want = common::load_json("small.json");
    let header_len = want["data_offset"].as_u64().unwrap() as usize;
    // Offsets of length fields: the counts and every key's length. Overwriting these with
    // extreme values is the likeliest way to provoke a huge allocation.
    let mut length_fields = vec![8usize, 16];
    for k in want["metadata"].as_array().unwrap() {
        length_fields.push(k["offset"].as_u64().unwrap() as usize);
    }
    const EXTREMES: [u64; 8] = [
        0,
        1,
        0xff,
        1 << 31,
        u32::MAX as u64,
        1 << 40,
        i64::MAX as u64,
        u64::MAX,
    ];

    let mut rng = Rng(0x6c69_6e67_7169_616f);
    let (mut n_ok, mut n_err) = (0, 0);
    for i in 0..5000 {
        let mut bytes = full.clone();
        match rng.below(4) {
            // Flip bits in 1-8 bytes, mostly in the header where the structure is.
            0 | 1 => {
                for _ in 0..1 + rng.below(8) {
                    let at = if rng.below(8) > 0 {
                        rng.below(header_len)
                    } else {
                        rng.below(bytes.len())
                    };
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            // Overwrite 1-8 consecutive bytes with random values.
            2 => {
                let n = 1 + rng.below(8);
                let at = rng.below(header_len - n);
                for b in &mut bytes[at..at + n] {
                    *b = rng.next() as u8;
                }
            }
            // Put an extreme value in a length field.
            _ => {
                let at = length_fields[rng.below(length_fields.len())];
                let v = EXTREMES[rng.below(EXTREMES.len())];
                bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        if parse_bounded(bytes, &format!("mutation {i}")) {
            n_ok += 1;
        } else {
            n_err += 1;
        }
    }
    eprintln!(
        "mutations: {n_ok} parsed, {n_err} rejected; largest allocation {} bytes",
        LARGEST.load(Ordering::Relaxed)
    );
    // Both outcomes occur: the mutations reach the structure, and not everything is fatal
    // (a flipped bit in tensor data or a string is harmless).
    assert!(n_err > 1000 && n_ok > 100, "ok {n_ok}, err {n_err}");
}
