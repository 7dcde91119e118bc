//! Matrix-vector products at the real models' shapes, one thread, dispatched SIMD vs scalar.
//! Throughput is weight bytes per second (the quantity a memory-bound decode step is limited by).
//!
//! Run: `cargo bench -p lingqiao-kernels --bench vec_dot` (add `-- Q4_K` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use lingqiao_kernels::{GgmlType, Kernels, quantize_row, vec_dot_type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

/// (rows, cols): qwen2.5-0.5b attention out (896x896), its FFN up (4864x896), its vocabulary
/// projection (151936x896), and SmolLM2-135M's FFN down (576x1536). 896 is not a multiple of
/// 256, so K-quant types (which llama.cpp only uses where ne0 is) get the FFN down shape
/// 896x4864 instead of 4864x896 and skip the two 896-column shapes.
const SHAPES: [(usize, usize); 4] = [(896, 896), (4864, 896), (151936, 896), (576, 1536)];

fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

fn weights(ty: GgmlType, rows: usize, cols: usize, r: &mut ChaCha8Rng) -> Vec<u8> {
    let n = rows * cols;
    let bytes = ty.row_bytes(n as u64).unwrap() as usize;
    if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        let x: Vec<f32> = (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect();
        let mut out = vec![0u8; bytes];
        quantize_row(ty, &x, &mut out).unwrap();
        return out;
    }
    let mut out: Vec<u8> = (0..bytes).map(|_| r.random()).collect();
    for b in out.chunks_exact_mut(ty.type_size()) {
        for &off in f16_fields(ty) {
            b[off..off + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        }
    }
    out
}

fn matvec(k: &Kernels, ty: GgmlType, cols: usize, w: &[u8], x: &[u8]) -> f32 {
    let f = k.vec_dot_fn(ty);
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    w.chunks_exact(rb).map(|row| f(cols, row, x)).sum()
}

fn bench(c: &mut Criterion) {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let types = [
        GgmlType::Q8_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::F16,
        GgmlType::F32,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q5_K,
    ];
    let tables = [Kernels::get(), Kernels::scalar()];
    for ty in types {
        let mut g = c.benchmark_group(format!("vec_dot/{ty}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800));
        for (rows, cols) in SHAPES {
            // The vocabulary projection is only benchmarked for types it has in real models.
            if rows > 100_000 && !matches!(ty, GgmlType::Q8_0 | GgmlType::F16) {
                continue;
            }
            let (rows, cols) = match (cols % ty.block_size(), rows) {
                (0, _) => (rows, cols),
                (_, 4864) => (cols, rows),
                _ => continue,
            };
            let w = weights(ty, rows, cols, &mut r);
            let xf: Vec<f32> = (0..cols).map(|_| r.random_range(-1.0f32..1.0)).collect();
            let vdt = vec_dot_type(ty);
            let mut x = vec![0u8; vdt.row_bytes(cols as u64).unwrap() as usize];
            quantize_row(vdt, &xf, &mut x).unwrap();
            g.throughput(Throughput::Bytes(w.len() as u64));
            for k in tables {
                g.bench_function(BenchmarkId::new(k.isa, format!("{rows}x{cols}")), |b| {
                    b.iter(|| matvec(k, ty, cols, black_box(&w), black_box(&x)))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
