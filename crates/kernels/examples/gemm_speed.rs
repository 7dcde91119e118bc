//! How fast the float32 product ([`lingqiao_kernels::gemm`]) runs at Whisper's shapes, for
//! every kernel table this CPU has and for 1 and 2 threads.
//!
//! Shapes (tokens x rows x cols, i.e. m x n x k; Whisper tiny, d = 384, 6 heads of 64):
//!
//! - 1500 x 384 x 384: an encoder layer's q, k, v and output projections.
//! - 1500 x 1536 x 384: its feed-forward up projection.
//! - 1500 x 384 x 1536: its feed-forward down projection.
//! - 3000 x 384 x 240: the first convolution as a product (80 mel bins x 3 taps).
//! - 1500 x 1500 x 64: one head's attention scores q·kᵀ, through `gemm_f32_nt`.
//! - 1500 x 64 x 1500: that head's weighted values p·v (v transposed), through `gemm_f32_nt`.
//! - 1 x 51864 x 384: the decoder's logits for one token (a stream over 80 MB of weights).
//!
//! Units: GFLOP/s counts 2 flops per multiply-add (2 * m * n * k per product) over the
//! wall-clock time; `flop/cyc` divides that by the threads and the core clock measured at
//! start (a chain of dependent adds, as in `kernel_speed`); Zen 3's peak is 32 flop/cycle
//! per core (2 FMA pipes x 8 lanes). On one thread, `cpu f/cyc` divides by the thread's
//! CPU time instead of the wall-clock time: on a machine shared with other jobs it leaves
//! out the time the thread was switched out. (With more threads the calling thread's CPU
//! time says little: it yields while it waits for the others.) Each figure is the best of
//! the repeats that fit in `--seconds` (at least two, the first also warming the caches
//! and the packing buffers). Packing the weights is not timed for `gemm_f32` (done once at
//! load); packing b is, for `gemm_f32_nt`.
//!
//! Run: `cargo run --release -p lingqiao-kernels --example gemm_speed -- [--isa avx2,scalar]
//! [--threads 1,2] [--seconds 1] [--shapes ffn,logits]` (`--shapes`: name prefixes).

use lingqiao_kernels::gemm::{PackedF32, gemm_f32_nt_with, gemm_f32_with};
use lingqiao_kernels::{Isa, Kernels};
use lingqiao_pool::ThreadPool;
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    /// Through `gemm_f32_nt` (both operands activations) rather than packed weights.
    nt: bool,
}

const SHAPES: [Shape; 7] = [
    Shape {
        name: "attn proj",
        m: 1500,
        n: 384,
        k: 384,
        nt: false,
    },
    Shape {
        name: "ffn up",
        m: 1500,
        n: 1536,
        k: 384,
        nt: false,
    },
    Shape {
        name: "ffn down",
        m: 1500,
        n: 384,
        k: 1536,
        nt: false,
    },
    Shape {
        name: "conv1",
        m: 3000,
        n: 384,
        k: 240,
        nt: false,
    },
    Shape {
        name: "scores (nt)",
        m: 1500,
        n: 1500,
        k: 64,
        nt: true,
    },
    Shape {
        name: "values (nt)",
        m: 1500,
        n: 64,
        k: 1500,
        nt: true,
    },
    Shape {
        name: "logits",
        m: 1,
        n: 51864,
        k: 384,
        nt: false,
    },
];

fn main() {
    let mut isas: Option<Vec<String>> = None;
    let mut threads = vec![1, 2];
    let mut seconds = 1.0f64;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--isa" => isas = Some(value().split(',').map(str::to_string).collect()),
            "--threads" => {
                threads = value()
                    .split(',')
                    .map(|t| t.parse().expect("threads"))
                    .collect()
            }
            "--seconds" => seconds = value().parse().expect("seconds"),
            "--shapes" => only = Some(value().split(',').map(str::to_string).collect()),
            _ => panic!("unknown argument {a}"),
        }
    }
    let mut tables: Vec<&Kernels> = Kernels::simd_tables();
    tables.push(Kernels::scalar());
    if let Some(names) = &isas {
        tables.retain(|t| {
            names
                .iter()
                .any(|n| Isa::parse(n).is_some_and(|i| i.name() == t.isa))
        });
    }
    let ghz = core_ghz();
    println!("cpu: {}; core clock {ghz:.2} GHz", cpu_name());
    println!(
        "{:<7} {:>2} {:<12} {:>17} {:>9} {:>8} {:>9} {:>9}",
        "isa", "th", "shape", "m x n x k", "ms", "GFLOP/s", "flop/cyc", "cpu f/cyc"
    );
    let mut rnd = 0x2545_F491u32;
    let mut uniform = move || {
        rnd = rnd.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (rnd >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let wanted = |s: &Shape| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|n| s.name.starts_with(n.as_str())))
    };
    for s in SHAPES.iter().filter(|s| wanted(s)) {
        let x: Vec<f32> = (0..s.m * s.k).map(|_| uniform()).collect();
        let w: Vec<f32> = (0..s.n * s.k).map(|_| uniform()).collect();
        let packed = PackedF32::pack(&w, s.n, s.k);
        let mut out = vec![0f32; s.m * s.n];
        for table in &tables {
            for &nt in &threads {
                let pool = ThreadPool::new(nt);
                let (wall, cpu) = pool.install(|| {
                    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
                    let start = Instant::now();
                    let mut reps = 0;
                    while reps < 2
                        || (start.elapsed() < Duration::from_secs_f64(seconds) && reps < 50)
                    {
                        let (t, c) = (Instant::now(), cpu_seconds());
                        if s.nt {
                            gemm_f32_nt_with(table, &x, s.m, &w, s.n, s.k, &mut out);
                        } else {
                            gemm_f32_with(table, &packed, &x, s.m, &mut out);
                        }
                        black_box(&mut out);
                        wall = wall.min(t.elapsed().as_secs_f64());
                        cpu = cpu.min(cpu_seconds() - c);
                        reps += 1;
                    }
                    (wall, cpu)
                });
                let flops = 2.0 * (s.m * s.n * s.k) as f64;
                let gflops = flops / wall / 1e9;
                println!(
                    "{:<7} {:>2} {:<12} {:>17} {:>9.3} {:>8.1} {:>9.1} {:>9}",
                    table.isa,
                    nt,
                    s.name,
                    format!("{}x{}x{}", s.m, s.n, s.k),
                    wall * 1e3,
                    gflops,
                    gflops / ghz / nt as f64,
                    if nt == 1 {
                        format!("{:.1}", flops / cpu / 1e9 / ghz)
                    } else {
                        "-".into()
                    },
                );
            }
        }
    }
}

/// CPU time of the calling thread so far (user and system), in seconds. (The process's
/// clock would add the pool's other threads, but Linux brings their running time up to
/// date only at scheduler ticks, too coarse for a product of a few milliseconds.)
fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the struct it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }
    #[cfg(not(unix))]
    {
        f64::NAN
    }
}

/// "model name (family F model M)" from /proc/cpuinfo, or the architecture's name.
fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|n| n.trim() == k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(n), Some(f), Some(m)) => format!("{n} (family {f} model {m})"),
        (Some(n), _, _) => n,
        _ => std::env::consts::ARCH.to_string(),
    }
}

/// The core clock in GHz: the fastest of 200 chains of 2^20 dependent adds (one per cycle).
fn core_ghz() -> f64 {
    let n = 1u64 << 20;
    black_box(add_chain(black_box(n * 64)));
    let mut best = 0f64;
    for _ in 0..200 {
        let t = Instant::now();
        black_box(add_chain(black_box(n)));
        best = best.max(n as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// `n` dependent register adds, rounded down to a multiple of 16.
#[inline(never)]
fn add_chain(n: u64) -> u64 {
    let mut x = 0u64;
    #[cfg(target_arch = "x86_64")]
    {
        let i = n / 16;
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "dec {i}",
                "jnz 2b",
                x = inout(reg) x,
                i = inout(reg) i => _,
                options(nomem, nostack),
            );
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let i = n / 16;
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
                "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
                "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
                "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
                "subs {i}, {i}, 1",
                "b.ne 2b",
                x = inout(reg) x,
                i = inout(reg) i => _,
                options(nomem, nostack),
            );
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        x = n;
    }
    x
}
