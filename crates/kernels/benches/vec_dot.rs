//! Matrix-vector products at the real models' shapes, one thread, for every kernel table this
//! CPU has (scalar, avx2, avx512). Throughput is weight bytes per second: the quantity a
//! memory-bound decode step is limited by, and for matrices that fit in L2 a measure of the
//! kernel's instruction count.
//!
//! - `matvec/<type>`: one token, the table's `vec_dot` over every row.
//! - `x4/<type>`: four tokens, the table's four-token kernel over every row (weight bytes per
//!   second as well; tokens per second are 4 x that / the matrix size).
//!
//! Run: `cargo bench -p lingqiao-kernels --bench vec_dot` (add `-- Q4_K` to filter,
//! `-- 'avx512/896x896'` for one shape and table).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use lingqiao_kernels::{GgmlType, Kernels, quantize_row, vec_dot_type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

/// (rows, cols) of the linear layers of the three models (rows = output features, cols = the
/// dot-product length): SmolLM2-135M (attention 576x576, FFN up/gate 1536x576, down
/// 576x1536), gemma-3-270m (q 1024x640, FFN up/gate 2048x640, down 640x2048), qwen2.5-0.5b
/// (attention 896x896, FFN up/gate 4864x896, down 896x4864). A type is benchmarked at the
/// shapes whose cols are whole blocks of it (K-quants: multiples of 256).
const SHAPES: [(usize, usize); 9] = [
    (576, 576),
    (1536, 576),
    (576, 1536),
    (1024, 640),
    (2048, 640),
    (640, 2048),
    (896, 896),
    (4864, 896),
    (896, 4864),
];

/// The vocabulary projections (Q8_0 in all three models): far larger than any cache.
const VOCAB: [(usize, usize); 3] = [(49152, 576), (262144, 640), (151936, 896)];

/// The types the models use, at every shape.
const HOT: [GgmlType; 8] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

/// The rest, at two shapes only.
const COLD: [GgmlType; 5] = [
    GgmlType::F32,
    GgmlType::BF16,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
];

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
        for &off in lingqiao_kernels::f16_scale_offsets(ty) {
            b[off..off + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        }
    }
    out
}

/// `tokens` activation rows of `cols` elements in `vec_dot_type(ty)`, back to back.
fn activations(ty: GgmlType, cols: usize, tokens: usize, r: &mut ChaCha8Rng) -> Vec<u8> {
    let vdt = vec_dot_type(ty);
    let rb = vdt.row_bytes(cols as u64).unwrap() as usize;
    let mut x = vec![0u8; tokens * rb];
    for row in x.chunks_exact_mut(rb) {
        let xf: Vec<f32> = (0..cols).map(|_| r.random_range(-1.0f32..1.0)).collect();
        quantize_row(vdt, &xf, row).unwrap();
    }
    x
}

fn matvec(k: &Kernels, ty: GgmlType, cols: usize, w: &[u8], x: &[u8]) -> f32 {
    let f = k.vec_dot_fn(ty);
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    w.chunks_exact(rb).map(|row| f(cols, row, x)).sum()
}

fn matvec_x4(k: &Kernels, ty: GgmlType, cols: usize, w: &[u8], x: &[u8]) -> f32 {
    let f = k.vec_dot_x4_fn(ty).expect("table has a four-token kernel");
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let mut out = [0f32; 4];
    let mut sum = 0f32;
    for row in w.chunks_exact(rb) {
        f(cols, row, x, &mut out);
        sum += out.iter().sum::<f32>();
    }
    sum
}

fn tables() -> Vec<&'static Kernels> {
    let mut t = vec![Kernels::scalar()];
    t.extend(Kernels::avx2());
    t.extend(Kernels::avx512());
    t
}

fn run(c: &mut Criterion, ty: GgmlType, shapes: &[(usize, usize)], r: &mut ChaCha8Rng) {
    let tables = tables();
    for &(rows, cols) in shapes {
        if cols % ty.block_size() != 0 {
            continue;
        }
        let w = weights(ty, rows, cols, r);
        let x = activations(ty, cols, 4, r);
        let x1 = &x[..x.len() / 4];
        let shape = format!("{rows}x{cols}");
        // Big matrices take long per iteration; fewer samples keep the run short.
        let big = w.len() > 64 << 20;
        for (group, four) in [("matvec", false), ("x4", true)] {
            let mut g = c.benchmark_group(format!("{group}/{ty}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(if big { 300 } else { 200 }))
                .measurement_time(Duration::from_millis(if big { 2000 } else { 800 }))
                .throughput(Throughput::Bytes(w.len() as u64));
            for &k in &tables {
                if !four {
                    g.bench_function(BenchmarkId::new(k.isa, &shape), |b| {
                        b.iter(|| matvec(k, ty, cols, black_box(&w), black_box(x1)))
                    });
                } else if k.vec_dot_x4_fn(ty).is_some() {
                    g.bench_function(BenchmarkId::new(k.isa, &shape), |b| {
                        b.iter(|| matvec_x4(k, ty, cols, black_box(&w), black_box(&x)))
                    });
                }
            }
            g.finish();
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    for ty in HOT {
        run(c, ty, &SHAPES, &mut r);
    }
    run(c, GgmlType::Q8_0, &VOCAB, &mut r);
    for ty in COLD {
        run(c, ty, &[(896, 896), (896, 4864)], &mut r);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
