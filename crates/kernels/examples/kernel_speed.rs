//! How fast each decode product kind runs on one core, with its weights in cache and
//! streamed from memory: for every weight type and every kernel table this CPU has (scalar,
//! avx2, avx512 on x86-64; neon, dotprod, i8mm on aarch64), the one-token product (a decode
//! matvec through the loop decoding runs, `ops::decode_rows`: the table's four-row
//! `VecDotR4Fn` over every four rows of a matrix where it has one, else its `VecDotFn` over
//! every row, with decoding's software prefetch of the rows ahead) and the four-token kernel
//! (`(kernels.x4)(ty)` over every row against 4 activation rows), each in two places:
//!
//! - `cache`: a matrix of about 192 KiB (`--cache-kib`), L2-resident (Zen 3 has 512 KiB of L2
//!   per core, Intel server cores 1-2 MiB), multiplied over and over. This is the kernel's
//!   instruction throughput: a kernel whose in-cache speed is not well above the core's DRAM
//!   read bandwidth cannot reach that bandwidth when decoding.
//! - `stream`: a matrix of at least 512 MiB (`--stream-mib`; more than any last-level cache),
//!   one pass front to back per timing. The one-token product prefetches as decoding does
//!   (ggml's `vec_dot` has no software prefetch: its numbers are the hardware's alone); the
//!   four-token kernel prefetches nothing beyond what the hardware does.
//!
//! Shapes: cols = 896 for F32, F16, BF16 and the 32-element types (qwen2.5-0.5b's hidden
//! size, the matrices where those types carry most of its bytes), 1024 for the K-quants
//! (whole 256-element super-blocks; gemma-3's and many models' sizes). Rows are rounded to a
//! multiple of 8 (as ggml's repacked layouts need, so the ggml harness uses the same shapes).
//!
//! Units: `gbps` is weight bytes per second (the four-token kernel reads each weight once for
//! four tokens); `weights_per_cycle` is multiply-adds of one weight with one token per core
//! cycle, so the four-token kernel counts 4 per weight. The core clock is measured at start
//! and at the end (the larger is used, both printed): a chain of dependent register adds
//! (`add r, 1`, one per cycle on every x86-64 and Arm core since long ago) timed against the
//! wall clock, the fastest of 200 short chains; under a hypervisor this is still the core's
//! clock, unlike the TSC.
//!
//! Noise: the machines we measure on run other jobs. Each timing is made of chunks of about
//! a millisecond (in cache: that many passes over the matrix; streamed: 4 MiB of rows), and
//! chunks during which this thread was switched out (`getrusage` counts a context switch)
//! are dropped; every figure is the best of `--repeats` such timings (of one pass each when
//! streamed), and `bench/kernels/run.sh` keeps the best of several runs.
//!
//! Data: random weight bytes with every f16 scale set to 0.01 (random bits could be
//! inf/NaN; the kernels have no data-dependent branches, so the values do not change the
//! speed), float weights of magnitude in [0.5, 1) with random signs; activations are random f32 rows quantized with
//! `quantize_row(vec_dot_type(ty))` as the model does. Memory comes from `mmap` with
//! `MADV_HUGEPAGE`, as the runtime's weights do.
//!
//! Output: a CSV (`cpu,isa,impl,type,kind,residence,cols,rows,gbps,weights_per_cycle,ghz`,
//! `impl` = ours) on stdout or to `--out FILE`, and a readable table on stderr.
//! `bench/kernels/run.sh` runs this and the same measurement of ggml's kernels
//! (`bench/kernels/ggml_speed.c`) and writes `bench/results/DATE-decode-kernels.{csv,md}`.
//!
//! Run: `cargo run --release -p lingqiao-kernels --example kernel_speed -- [--out FILE]
//! [--isa avx2,scalar] [--types Q4_0,Q4_K] [--repeats 5] [--cache-kib 192]
//! [--stream-mib 512] [--cpu NAME]`.

use lingqiao_kernels::ops::{DecodeKernels, decode_rows};
use lingqiao_kernels::{GgmlType, Isa, Kernels, WEIGHT_TYPES, vec_dot_type};
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::time::Instant;

struct Args {
    out: Option<String>,
    isas: Option<Vec<String>>,
    types: Option<Vec<String>>,
    repeats: usize,
    cache_kib: usize,
    stream_mib: usize,
    cpu: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        out: None,
        isas: None,
        types: None,
        repeats: 5,
        cache_kib: 192,
        stream_mib: 512,
        cpu: None,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: String| -> Vec<String> { s.split(',').map(|t| t.trim().to_string()).collect() };
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = Some(val()),
            "--isa" => a.isas = Some(list(val())),
            "--types" => a.types = Some(list(val())),
            "--repeats" => a.repeats = val().parse().expect("--repeats N"),
            "--cache-kib" => a.cache_kib = val().parse().expect("--cache-kib N"),
            "--stream-mib" => a.stream_mib = val().parse().expect("--stream-mib N"),
            "--cpu" => a.cpu = Some(val()),
            _ => panic!(
                "unknown flag {flag}; usage: kernel_speed [--out FILE] [--isa a,b] [--types T,..] \
                 [--repeats N] [--cache-kib N] [--stream-mib N] [--cpu NAME]"
            ),
        }
    }
    a.repeats = a.repeats.max(1);
    a
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

/// `n` dependent register adds; one per cycle, so their time is `n` core cycles.
#[inline(never)]
fn add_chain(n: u64) -> u64 {
    let mut x = 0u64;
    let mut i = n / 16;
    #[cfg(target_arch = "x86_64")]
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
            i = inout(reg) i,
            options(nomem, nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
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
            i = inout(reg) i,
            options(nomem, nostack),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        x = n;
        i = 0;
    }
    x + i
}

/// Context switches of this thread so far (voluntary and not): a timing during which this
/// changes was shared with another process and is dropped.
fn switches() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u.ru_nvcsw + u.ru_nivcsw
    }
}

/// The core clock in GHz (see the module comment): the best of 200 chains of 2^20 adds
/// (0.3-0.5 ms each, shorter than a scheduler time slice) that ran without a context switch.
fn core_ghz() -> f64 {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return f64::NAN;
    }
    let n = 1u64 << 20;
    add_chain(n * 64); // wake the core up
    let mut best = 0f64;
    for _ in 0..200 {
        let s = switches();
        let t = Instant::now();
        black_box(add_chain(black_box(n)));
        let ghz = n as f64 / t.elapsed().as_secs_f64() / 1e9;
        if switches() == s {
            best = best.max(ghz);
        }
    }
    best
}

/// Anonymous memory on 2 MiB pages where the kernel grants them, as the runtime's weights.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn new(len: usize) -> Region {
        const HUGE: usize = 2 << 20;
        let len = len.div_ceil(HUGE) * HUGE;
        // SAFETY: a fresh private anonymous mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap of {len} bytes failed");
        // SAFETY: advice on the mapping just made; refusal is harmless.
        unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
        Region {
            ptr: ptr.cast(),
            len,
        }
    }

    fn bytes(&mut self, n: usize) -> &mut [u8] {
        assert!(n <= self.len);
        // SAFETY: within the mapping, which lives as long as self and is only lent out here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, n) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer borrowed.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast enough to fill 512 MiB in a fraction of a second.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random weights of `ty` in `w` (whole blocks): finite floats in [-1, 1) for the float
/// types, random bytes with f16 scales of 0.01 for the quantized ones.
fn fill_weights(ty: GgmlType, w: &mut [u8], r: &mut Rng) {
    for c in w.chunks_exact_mut(8) {
        let mut v = r.next();
        // Float types: keep sign and mantissa, put the exponent in [0.5, 1).
        v = match ty {
            GgmlType::F32 => (v & 0x807f_ffff_807f_ffff) | 0x3f00_0000_3f00_0000,
            GgmlType::F16 => (v & 0x83ff_83ff_83ff_83ff) | 0x3800_3800_3800_3800,
            GgmlType::BF16 => (v & 0x807f_807f_807f_807f) | 0x3f00_3f00_3f00_3f00,
            _ => v,
        };
        c.copy_from_slice(&v.to_le_bytes());
    }
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    let offs = lingqiao_kernels::f16_scale_offsets(ty);
    if !offs.is_empty() {
        for b in w.chunks_exact_mut(ty.type_size()) {
            for &o in offs {
                b[o..o + 2].copy_from_slice(&scale);
            }
        }
    }
}

/// `tokens` activation rows of `cols` elements in `vec_dot_type(ty)`, back to back.
fn activations(k: &Kernels, ty: GgmlType, cols: usize, tokens: usize, r: &mut Rng) -> Vec<u8> {
    let vdt = vec_dot_type(ty);
    let rb = vdt.row_bytes(cols as u64).unwrap() as usize;
    let mut x = vec![0u8; tokens * rb];
    for row in x.chunks_exact_mut(rb) {
        let xf: Vec<f32> = (0..cols).map(|_| r.f32()).collect();
        lingqiao_kernels::quantize_row_with(k, vdt, &xf, row).unwrap();
    }
    x
}

fn cols_for(ty: GgmlType) -> usize {
    if ty.block_size() == 256 { 1024 } else { 896 }
}

/// Rows of `row_bytes` closest to `bytes`, a multiple of 8 (at least 8).
fn rows_for(bytes: usize, row_bytes: usize, round_up: bool) -> usize {
    let rows = if round_up {
        bytes.div_ceil(row_bytes).div_ceil(8) * 8
    } else {
        ((bytes as f64 / row_bytes as f64 / 8.0).round() as usize) * 8
    };
    rows.max(8)
}

/// One pass of the one-token product over every row of `w`, through the loop decoding runs
/// (`lingqiao_kernels::ops::decode_rows`): the table's four-row kernel where it has one
/// (`VecDotR4Fn`), else its one-row kernel, with decoding's software prefetch of the rows
/// ahead (within `w`).
fn pass_1tok(
    f: &DecodeKernels,
    cols: usize,
    rb: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32],
) -> f32 {
    let rows = w.len() / rb;
    decode_rows(f, cols, w, rb, 0..rows, x, out);
    out[0] + out[rows - 1]
}

/// One pass of the four-token kernel over every row of `w` (`x`: four activation rows).
fn pass_4tok(f: lingqiao_kernels::VecDotX4Fn, cols: usize, rb: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut out = [0f32; 4];
    let mut s = 0f32;
    for row in w.chunks_exact(rb) {
        f(cols, row, x, &mut out);
        s += out[0] + out[3];
    }
    s
}

/// Seconds per byte of weights, best of `repeats`: each repeat runs `chunks` timed chunks
/// (`chunk(i)` processes `bytes` weight bytes, about a millisecond's worth, shorter than a
/// scheduler time slice) and is rated by its chunks that ran without a context switch, so
/// a timing shared with the machine's other jobs does not count. One warm-up round first;
/// a slow kernel stops after two repeats once the timings pass 3 s.
fn best_secs_per_byte(
    repeats: usize,
    chunks: usize,
    bytes: usize,
    mut chunk: impl FnMut(usize) -> f32,
) -> f64 {
    for i in 0..chunks.min(4) {
        black_box(chunk(i));
    }
    let mut best = f64::INFINITY;
    let start = Instant::now();
    for r in 0..repeats {
        // A slow kernel (scalar, streamed) stops after two repeats once past 3 s.
        if r >= 2 && start.elapsed().as_secs_f64() > 3.0 {
            break;
        }
        let (mut clean, mut all) = ((0f64, 0usize), (0f64, 0usize));
        for i in 0..chunks {
            let s = switches();
            let t = Instant::now();
            black_box(chunk(i));
            let dt = t.elapsed().as_secs_f64();
            if switches() == s {
                clean = (clean.0 + dt, clean.1 + bytes);
            }
            all = (all.0 + dt, all.1 + bytes);
        }
        // Every chunk interrupted (only a very slow kernel): the whole repeat counts.
        let (t, b) = if clean.1 > 0 { clean } else { all };
        best = best.min(t / b as f64);
    }
    best
}

struct Row {
    isa: &'static str,
    ty: GgmlType,
    four: bool,
    stream: bool,
    cols: usize,
    rows: usize,
    secs: f64,
}

fn main() {
    let args = parse_args();
    let cpu = args.cpu.clone().unwrap_or_else(cpu_name);
    let tables: Vec<&'static Kernels> = Isa::LEVELS
        .iter()
        .map(|&l| Kernels::best_up_to(l))
        .filter(|k| {
            args.isas
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == k.isa))
        })
        .fold(Vec::new(), |mut v, k| {
            if !v.iter().any(|t: &&Kernels| t.isa == k.isa) {
                v.push(k);
            }
            v
        });
    let types: Vec<GgmlType> = WEIGHT_TYPES
        .iter()
        .copied()
        .filter(|t| {
            args.types.as_ref().is_none_or(|names| {
                names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&format!("{t:?}")))
            })
        })
        .collect();
    let ghz_start = core_ghz();
    eprintln!(
        "cpu: {cpu}; core clock {ghz_start:.3} GHz (dependent adds); tables: {}",
        tables.iter().map(|k| k.isa).collect::<Vec<_>>().join(", ")
    );

    let stream_bytes = args.stream_mib << 20;
    let cache_bytes = args.cache_kib << 10;
    let max_rb = types
        .iter()
        .map(|&t| t.row_bytes(cols_for(t) as u64).unwrap() as usize)
        .max()
        .unwrap_or(1);
    let mut region = Region::new(rows_for(stream_bytes, max_rb, true).max(1) * max_rb + (8 << 20));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rows_out: Vec<Row> = Vec::new();

    for &ty in &types {
        let cols = cols_for(ty);
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let stream_rows = rows_for(stream_bytes, rb, true);
        let cache_rows = rows_for(cache_bytes, rb, false);
        let t0 = Instant::now();
        let all = region.bytes(stream_rows * rb);
        fill_weights(ty, all, &mut rng);
        eprintln!(
            "{ty:?}: cols {cols}, {rb} B/row; cache {cache_rows} rows ({} KiB), stream {stream_rows} rows ({} MiB); filled in {:.2} s",
            (cache_rows * rb) >> 10,
            (stream_rows * rb) >> 20,
            t0.elapsed().as_secs_f64()
        );
        // The cached matrix is a separate copy, so it is not a part of the streamed one that
        // a previous pass may have left in cache.
        let cached: Vec<u8> = all[..cache_rows * rb].to_vec();
        let all: &[u8] = all;
        for &k in &tables {
            let x = activations(k, ty, cols, 4, &mut rng);
            let x1 = &x[..x.len() / 4];
            let one = DecodeKernels::of(k, ty, rb);
            let mut out1 = vec![0f32; stream_rows.max(cache_rows)];
            let four = k.vec_dot_x4_fn(ty);
            for stream in [false, true] {
                let (w, rows): (&[u8], usize) = if stream {
                    (all, stream_rows)
                } else {
                    (&cached, cache_rows)
                };
                // In cache, a chunk is enough passes over the matrix for about 1 ms of the
                // one-token kernel, 16 chunks per repeat; streamed, 4 MiB of rows a chunk,
                // one pass over the whole matrix per repeat.
                let (chunk_rows, chunks, passes) = if stream {
                    let r = ((4usize << 20) / rb).max(1);
                    (r, rows / r, 1)
                } else {
                    black_box(pass_1tok(&one, cols, rb, w, x1, &mut out1));
                    let t = Instant::now();
                    black_box(pass_1tok(&one, cols, rb, w, x1, &mut out1));
                    let once = t.elapsed().as_secs_f64();
                    (rows, 16, ((1e-3 / once) as usize).clamp(1, 100_000))
                };
                let chunk_bytes = chunk_rows * rb * passes;
                let part = |i: usize| &w[i * chunk_rows * rb..(i + 1) * chunk_rows * rb];
                let secs = rows as f64
                    * rb as f64
                    * best_secs_per_byte(args.repeats, chunks, chunk_bytes, |i| {
                        let p = part(if stream { i } else { 0 });
                        let mut s = 0f32;
                        for _ in 0..passes {
                            s += pass_1tok(&one, cols, rb, black_box(p), black_box(x1), &mut out1);
                        }
                        s
                    });
                rows_out.push(Row {
                    isa: k.isa,
                    ty,
                    four: false,
                    stream,
                    cols,
                    rows,
                    secs,
                });
                if let Some(f4) = four {
                    let secs = rows as f64
                        * rb as f64
                        * best_secs_per_byte(args.repeats, chunks, chunk_bytes, |i| {
                            let p = part(if stream { i } else { 0 });
                            let mut s = 0f32;
                            for _ in 0..passes {
                                s += pass_4tok(f4, cols, rb, black_box(p), black_box(&x));
                            }
                            s
                        });
                    rows_out.push(Row {
                        isa: k.isa,
                        ty,
                        four: true,
                        stream,
                        cols,
                        rows,
                        secs,
                    });
                }
            }
        }
    }
    let ghz_end = core_ghz();
    let ghz = ghz_start.max(ghz_end);
    eprintln!("core clock at the end {ghz_end:.3} GHz; using {ghz:.3}");

    let mut csv =
        String::from("cpu,isa,impl,type,kind,residence,cols,rows,gbps,weights_per_cycle,ghz\n");
    eprintln!(
        "{:<7} {:<6} {:<5} {:>10} {:>10} {:>10} {:>10}",
        "isa", "type", "kind", "cache GB/s", "w/cycle", "strm GB/s", "w/cycle"
    );
    let metrics = |r: &Row| {
        let bytes = (r.rows * r.ty.row_bytes(r.cols as u64).unwrap() as usize) as f64;
        let weights = (r.rows * r.cols * if r.four { 4 } else { 1 }) as f64;
        (bytes / r.secs / 1e9, weights / (r.secs * ghz * 1e9))
    };
    for r in &rows_out {
        let (gbps, wpc) = metrics(r);
        let _ = writeln!(
            csv,
            "\"{cpu}\",{},ours,{:?},{},{},{},{},{gbps:.3},{wpc:.3},{ghz:.3}",
            r.isa,
            r.ty,
            if r.four { "4tok" } else { "1tok" },
            if r.stream { "stream" } else { "cache" },
            r.cols,
            r.rows,
        );
        if r.stream {
            continue;
        }
        let s = rows_out
            .iter()
            .find(|s| s.stream && s.isa == r.isa && s.ty == r.ty && s.four == r.four);
        let (sg, sw) = s.map(metrics).unwrap_or((f64::NAN, f64::NAN));
        eprintln!(
            "{:<7} {:<6} {:<5} {gbps:>10.2} {wpc:>10.2} {sg:>10.2} {sw:>10.2}",
            r.isa,
            format!("{:?}", r.ty),
            if r.four { "4tok" } else { "1tok" },
        );
    }
    match &args.out {
        Some(p) => std::fs::write(p, csv).expect("writing --out"),
        None => std::io::stdout().write_all(csv.as_bytes()).unwrap(),
    }
}
