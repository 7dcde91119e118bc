//! Prompt processing at the real models' shapes, one thread: `ops::matmul` over a batch of
//! tokens, with the table's tile kernels (`tile/...`) and with its four-token kernels only
//! (`x4/...`, the same table with `tile: None`), for every table this CPU has with tiles.
//! Throughput is multiply-accumulates per second (rows x cols x tokens), so the two paths and
//! the shapes compare directly; the unpacking of the weights into tiles is included.
//!
//! Run: `cargo bench -p lingqiao-kernels --bench prompt` (add `-- Q4_K` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use lingqiao_kernels::ops::{WeightView, matmul_with};
use lingqiao_kernels::{GgmlType, Kernels};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

/// (type, rows, cols) of prompt-heavy products: smollm2's FFN up (Q4_1), gemma3's FFN up
/// (Q5_0) and V (Q8_0), qwen05's FFN up (Q5_0) and down (Q6_K), qwen15's FFN up (Q4_K) and
/// down (Q6_K).
const CASES: [(GgmlType, usize, usize); 7] = [
    (GgmlType::Q4_1, 1536, 576),
    (GgmlType::Q5_0, 2048, 640),
    (GgmlType::Q8_0, 256, 640),
    (GgmlType::Q5_0, 4864, 896),
    (GgmlType::Q6_K, 896, 4864),
    (GgmlType::Q4_K, 8960, 1536),
    (GgmlType::Q6_K, 1536, 8960),
];

fn weights(ty: GgmlType, rows: usize, cols: usize, r: &mut ChaCha8Rng) -> Vec<u8> {
    let bytes = ty.row_bytes((rows * cols) as u64).unwrap() as usize;
    let mut out: Vec<u8> = (0..bytes).map(|_| r.random()).collect();
    for b in out.chunks_exact_mut(ty.type_size()) {
        for &off in lingqiao_kernels::f16_scale_offsets(ty) {
            b[off..off + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let tables: Vec<&Kernels> = [Kernels::avx2(), Kernels::avx512()]
        .into_iter()
        .flatten()
        .filter(|k| k.tile.is_some())
        .collect();
    let pool = lingqiao_pool::ThreadPool::new(1);
    for (ty, rows, cols) in CASES {
        let data = weights(ty, rows, cols, &mut r);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        for n in [64, 512] {
            let x: Vec<f32> = (0..n * cols)
                .map(|_| r.random_range(-1.0f32..1.0))
                .collect();
            let mut out = vec![0f32; n * rows];
            let mut g = c.benchmark_group(format!("prompt/{ty}/{rows}x{cols}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_millis(1500))
                .throughput(Throughput::Elements((rows * cols * n) as u64));
            for &k in &tables {
                let x4 = Kernels { tile: None, ..*k };
                for (path, table) in [("tile", *k), ("x4", x4)] {
                    g.bench_function(BenchmarkId::new(format!("{}/{path}", k.isa), n), |b| {
                        pool.install(|| {
                            b.iter(|| matmul_with(&table, &w, black_box(&x), n, &mut out))
                        })
                    });
                }
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
