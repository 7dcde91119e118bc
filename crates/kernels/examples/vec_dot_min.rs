//! One-token (and four-token) kernel throughput as the minimum over many timed passes, for
//! A/B comparisons on a shared, noisy machine where criterion's means move by tens of
//! percent with the neighbours' load: the fastest of a few hundred short passes is the run
//! nobody interrupted, and it repeats to a few percent.
//!
//! Each pass is the dispatched table's kernel over every row of a random matrix small enough
//! to stay in L2 (so this measures the kernel, not memory), at qwen15's row lengths (1536 and
//! 8960 columns). Throughput is weight bytes per second; ns/block is per weight block.
//!
//! Run: `cargo run --release -p lingqiao-kernels --example vec_dot_min [passes]` (300 by
//! default; `LINGQIAO_ISA=avx2` for another table).

use half::f16;
use lingqiao_kernels::{GgmlType, Kernels, quantize_row, vec_dot_type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let k = Kernels::get();
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let passes: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("passes: a number"))
        .unwrap_or(300)
        .max(4);
    for (ty, rows, cols) in [
        (GgmlType::Q4_K, 512, 1536),
        (GgmlType::Q4_K, 128, 8960),
        (GgmlType::Q6_K, 512, 1536),
        (GgmlType::Q6_K, 128, 8960),
    ] {
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let mut w: Vec<u8> = (0..rows * rb).map(|_| r.random()).collect();
        for b in w.chunks_exact_mut(ty.type_size()) {
            for &off in lingqiao_kernels::f16_scale_offsets(ty) {
                b[off..off + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
            }
        }
        let vdt = vec_dot_type(ty);
        let xb = vdt.row_bytes(cols as u64).unwrap() as usize;
        let mut x = vec![0u8; 4 * xb];
        for row in x.chunks_exact_mut(xb) {
            let xf: Vec<f32> = (0..cols).map(|_| r.random_range(-1.0f32..1.0)).collect();
            quantize_row(vdt, &xf, row).unwrap();
        }
        let one = k.vec_dot_fn(ty);
        let four = k.vec_dot_x4_fn(ty);
        for tokens in [1, 4] {
            if tokens == 4 && four.is_none() {
                continue;
            }
            let mut times = Vec::with_capacity(passes);
            for _ in 0..passes {
                let t = Instant::now();
                let mut s = 0f32;
                for row in w.chunks_exact(rb) {
                    if let (4, Some(f)) = (tokens, four) {
                        let mut o = [0f32; 4];
                        f(cols, black_box(row), black_box(&x), &mut o);
                        s += o[0];
                    } else {
                        s += one(cols, black_box(row), black_box(&x[..xb]));
                    }
                }
                black_box(s);
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let gbs = |t: f64| w.len() as f64 / t / 1e9;
            println!(
                "{} {ty} {rows}x{cols} x{tokens}: min {:.2} GB/s (quartile {:.2}), {:.2} ns/block",
                k.isa,
                gbs(times[0]),
                gbs(times[passes / 4]),
                times[0] * 1e9 / (w.len() / ty.type_size()) as f64
            );
        }
    }
}
