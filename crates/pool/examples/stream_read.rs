//! Read bandwidth of one buffer streamed by the pool's threads, per scheduler: the
//! measurement behind [`lingqiao_pool::ThreadPool::for_each_split`]'s choice for decoding.
//!
//! The buffer (1 GiB, huge pages where the kernel gives them) is read in 9 MiB regions, one
//! parallel job each (about a decode step's gate and up products together), every cache line
//! touched once with a prefetch 2 KiB ahead, as the decode matmul does. Schedulers:
//! - `chunk`: [`lingqiao_pool::ThreadPool::for_each_chunk`], units taken alternately;
//! - `split`: [`lingqiao_pool::ThreadPool::for_each_split`], a contiguous share per thread;
//! - `halves`: each thread one fixed contiguous share, no balancing (the reference).
//!
//! Each scheduler runs 5 passes, alternated, and the best pass counts.
//!
//! Run: `cargo run --release -p lingqiao-pool --example stream_read [threads] [unit KiB]`
//! (2 threads and 32 KiB units by default).

use lingqiao_pool::ThreadPool;
use std::time::Instant;

const LEN: usize = 1 << 30;
const REGION: usize = 9 << 20;
/// Software prefetch distance (x86-64 only: this experiment's prefetch is `_mm_prefetch`).
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 2048;

/// One byte of every cache line of `buf[range]`, prefetching `PREFETCH_AHEAD` ahead.
fn touch(buf: &[u8], range: std::ops::Range<usize>) -> u64 {
    let mut acc = 0u64;
    for at in range.step_by(64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(b) = buf.get(at + PREFETCH_AHEAD) {
            // SAFETY: prefetch is a hint; the address is inside `buf`.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    std::ptr::from_ref(b).cast(),
                )
            };
        }
        acc = acc.wrapping_add(u64::from(std::hint::black_box(buf[at])));
    }
    acc
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |a| a.parse().expect("threads"));
    let unit = args
        .next()
        .map_or(32, |a| a.parse::<usize>().expect("unit KiB"))
        << 10;
    let mut map = memmap2::MmapOptions::new()
        .len(LEN)
        .map_anon()
        .expect("1 GiB anonymous map");
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    for (i, b) in map.iter_mut().enumerate().step_by(4096) {
        *b = i as u8;
    }
    let buf: &[u8] = &map;
    let pool = ThreadPool::new(threads);
    let units = REGION.div_ceil(unit);
    let pass = |scheduler: &str| -> f64 {
        let t0 = Instant::now();
        for r0 in (0..LEN - REGION + 1).step_by(REGION) {
            let run = |_: usize, units_r: std::ops::Range<usize>| {
                let bytes = r0 + units_r.start * unit..r0 + (units_r.end * unit).min(REGION);
                std::hint::black_box(touch(buf, bytes));
            };
            match scheduler {
                "chunk" => pool.for_each_chunk(units, 1, run),
                "split" => pool.for_each_split(units, 1, run),
                _ => pool.run(|ith, nth| run(ith, units * ith / nth..units * (ith + 1) / nth)),
            }
        }
        (LEN / REGION * REGION) as f64 / t0.elapsed().as_secs_f64() / 1e9
    };
    let names = ["chunk", "split", "halves"];
    let mut best = [0f64; 3];
    for _ in 0..5 {
        for (b, name) in best.iter_mut().zip(names) {
            *b = b.max(pass(name));
        }
    }
    println!(
        "{threads} threads, {} KiB units, 9 MiB regions, best of 5:",
        unit >> 10
    );
    for (b, name) in best.iter().zip(names) {
        println!("  {name:7} {b:5.1} GB/s");
    }
}
