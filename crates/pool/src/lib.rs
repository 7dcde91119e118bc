//! A thread pool built for one job shape: the forward pass of a small model runs hundreds of
//! short parallel operations per token (a 576x576 matrix product takes ~10 µs), back to back.
//!
//! Why not rayon: a rayon `par_iter` costs a few microseconds to fan out and join (injecting
//! the job, waking sleeping workers, work-stealing deques), which is a large share of an
//! operation this short. Here every worker spins on a shared epoch counter between jobs, so
//! publishing a job is one atomic store that the workers see within ~100 ns, and joining is
//! one counter reaching zero. Workers that find nothing to do for a while (between tokens,
//! while sampling or waiting for input) yield and then park, so an idle pool does not burn a
//! core. This is the design of ggml's CPU thread pool, written here for Rust's ownership.
//!
//! Jobs are SPMD: [`ThreadPool::run`] calls one closure on every thread with `(ith, nth)`;
//! [`ThreadPool::for_each_chunk`] hands out index ranges dynamically, so a core that the
//! (shared, noisy) machine takes away for a moment does not hold the others up.
//!
//! The pool a computation uses is the one [`ThreadPool::install`]ed on the calling thread,
//! or a process-wide default with one thread per fast core ([`current`], [`default_threads`]).

mod cores;
pub mod profile;
pub use cores::{FAST_FRACTION, default_threads, fast_cores_in};

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it starts yielding, and then before it parks.
/// Between the operations of one token the gap is microseconds; between tokens it can be a
/// sampling step (~0.1-1 ms); anything longer is idleness.
const SPIN: Duration = Duration::from_micros(200);
const YIELD: Duration = Duration::from_millis(2);

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    n_threads: usize,
    /// Incremented once per job; workers run a job when they see it change.
    epoch: AtomicU64,
    /// The current job, valid while `pending > 0` for the epoch it was published with.
    job: Mutex<Option<JobPtr>>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// First panic payload of a worker in the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    shutdown: AtomicBool,
    /// Per worker: true while it is parked (or about to park).
    sleeping: Vec<AtomicBool>,
    threads: OnceLock<Vec<Thread>>,
}

/// A job reference with its lifetime erased. `run` does not return before every worker has
/// finished with it, which is what makes the erasure sound.
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync`, and it outlives every use (see `JobPtr`).
unsafe impl Send for JobPtr {}

/// A fixed set of threads (the caller plus `n - 1` workers) that run jobs together.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One job at a time: callers from different threads queue here.
    entry: Mutex<()>,
}

thread_local! {
    /// The pool installed on this thread, if any.
    static INSTALLED: Cell<*const ThreadPool> = const { Cell::new(std::ptr::null()) };
    /// True on a pool's worker while it runs a job, and on the caller inside `run`: nested
    /// parallel calls then run inline instead of deadlocking on the pool.
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

impl ThreadPool {
    /// A pool of `n_threads` threads including the caller (`n_threads - 1` are spawned).
    /// Zero is treated as one.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads: n,
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            pending: AtomicUsize::new(0),
            panic: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            threads: OnceLock::new(),
        });
        let workers: Vec<JoinHandle<()>> = (1..n)
            .map(|ith| {
                let s = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("lingqiao-{ith}"))
                    .spawn(move || worker(s, ith))
                    .expect("spawning a pool thread")
            })
            .collect();
        let _ = shared
            .threads
            .set(workers.iter().map(|h| h.thread().clone()).collect());
        ThreadPool {
            shared,
            workers,
            entry: Mutex::new(()),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Make this pool the one [`current`] returns on this thread while `f` runs.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const ThreadPool);
        impl Drop for Restore {
            fn drop(&mut self) {
                INSTALLED.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(INSTALLED.with(|c| c.replace(self)));
        f()
    }

    /// Call `f(ith, nth)` on every thread of the pool (the caller is `ith == 0`) and return
    /// when all have finished. A panic in any of them is re-raised here. Called from inside
    /// a job, it runs `f(0, 1)` inline.
    pub fn run(&self, f: impl Fn(usize, usize) + Sync) {
        let n = self.shared.n_threads;
        if n == 1 || IN_JOB.with(Cell::get) {
            f(0, 1);
            return;
        }
        let publish = profile::span(profile::Op::Publish);
        let _entry = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let job: &(dyn Fn(usize, usize) + Sync + '_) = &f;
        // SAFETY (lifetime erasure): workers only dereference the pointer for this epoch, and
        // this function waits for `pending == 0` (every worker done) before `f` goes away,
        // including when `f` panics on this thread (the wait happens before resuming).
        let ptr = JobPtr(unsafe {
            std::mem::transmute::<&(dyn Fn(usize, usize) + Sync + '_), &'static Job>(job)
        });
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(ptr);
        s.pending.store(n - 1, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        if let Some(threads) = s.threads.get() {
            for (i, t) in threads.iter().enumerate() {
                if s.sleeping[i + 1].load(Ordering::Acquire) {
                    t.unpark();
                }
            }
        }
        drop(publish);
        IN_JOB.with(|c| c.set(true));
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        IN_JOB.with(|c| c.set(false));
        let wait = profile::span(profile::Op::Wait);
        wait_until(|| s.pending.load(Ordering::Acquire) == 0);
        drop(wait);
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resume_unwind(p);
        }
    }

    /// Split `0..n_items` into ranges of `chunk` items (the last may be shorter) and call
    /// `f(ith, range)` for each, ranges handed out to whichever thread is free next. Which
    /// thread runs a range varies from run to run; results must not depend on it.
    pub fn for_each_chunk(
        &self,
        n_items: usize,
        chunk: usize,
        f: impl Fn(usize, Range<usize>) + Sync,
    ) {
        let chunk = chunk.max(1);
        let n_chunks = n_items.div_ceil(chunk);
        if n_chunks == 0 {
            return;
        }
        let next = AtomicUsize::new(0);
        let body = |ith: usize, _nth: usize| {
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= n_chunks {
                    break;
                }
                f(ith, chunk_range(c, chunk, n_items));
            }
        };
        if n_chunks == 1 {
            body(0, 1);
        } else {
            self.run(body);
        }
    }

    /// Split `0..n_items` into one contiguous share per thread and call `f(ith, range)` on
    /// ranges of at most `chunk` items: each thread walks its own share front to back, and a
    /// thread done with its share takes ranges from the back of the others' shares, so a core
    /// the machine takes away for a moment does not hold the others up. Which thread runs a
    /// range varies from run to run; results must not depend on it.
    ///
    /// Why not [`ThreadPool::for_each_chunk`] for streaming work (a decode step's matrix
    /// products, which read every weight once): there the threads take alternate chunks, so
    /// every chunk boundary restarts a thread's memory stream, and the prefetches it issued
    /// past its chunk's end fetch bytes the other thread reads. On the 2-core VM this project
    /// is measured on, two threads streaming 1 GiB in 9 MiB jobs of 32 KiB units read 23.0 GB/s
    /// taken alternately and 32.3-32.5 GB/s taken this way, the same as two fixed halves with
    /// no balancing at all (`cargo run --release -p lingqiao-pool --example stream_read`).
    pub fn for_each_split(
        &self,
        n_items: usize,
        chunk: usize,
        f: impl Fn(usize, Range<usize>) + Sync,
    ) {
        let chunk = chunk.max(1);
        let n_chunks = n_items.div_ceil(chunk);
        let n = self.shared.n_threads.min(n_chunks);
        if n <= 1 || IN_JOB.with(Cell::get) {
            for c in 0..n_chunks {
                f(0, chunk_range(c, chunk, n_items));
            }
            return;
        }
        // Share t is chunks [front, back), packed into one word so the owner (taking the
        // front) and a thief (taking the back) agree through one compare-and-swap.
        let pack = |front: usize, back: usize| front as u64 | (back as u64) << 32;
        let Ok(total) = u32::try_from(n_chunks) else {
            // Beyond 2^32 chunks the packing does not hold; dynamic chunks are as correct.
            return self.for_each_chunk(n_items, chunk, f);
        };
        let total = total as usize;
        let shares: Vec<Padded> = (0..n)
            .map(|t| Padded(AtomicU64::new(pack(total * t / n, total * (t + 1) / n))))
            .collect();
        // Take one chunk from share `t`, from its front or its back.
        let take = |t: usize, front: bool| -> Option<usize> {
            let a = &shares[t].0;
            let mut v = a.load(Ordering::Relaxed);
            loop {
                let (lo, hi) = ((v & 0xFFFF_FFFF) as usize, (v >> 32) as usize);
                if lo >= hi {
                    return None;
                }
                let (next, c) = if front {
                    (pack(lo + 1, hi), lo)
                } else {
                    (pack(lo, hi - 1), hi - 1)
                };
                match a.compare_exchange_weak(v, next, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return Some(c),
                    Err(now) => v = now,
                }
            }
        };
        self.run(|ith, _| {
            if ith < n {
                while let Some(c) = take(ith, true) {
                    f(ith, chunk_range(c, chunk, n_items));
                }
            }
            // Then help the others, nearest share first.
            for k in 1..n {
                let t = (ith + k) % n;
                while let Some(c) = take(t, false) {
                    f(ith, chunk_range(c, chunk, n_items));
                }
            }
        });
    }
}

/// Items of chunk `c` when `0..n_items` is cut into chunks of `chunk`.
fn chunk_range(c: usize, chunk: usize, n_items: usize) -> Range<usize> {
    c * chunk..((c + 1) * chunk).min(n_items)
}

/// One share's counters on a cache line pair of its own: the owner updates it once per
/// chunk, and on one line with another share's it would bounce between the cores.
#[repr(align(128))]
struct Padded(AtomicU64);

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.epoch.fetch_add(1, Ordering::Release);
        for h in &self.workers {
            h.thread().unpark();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Spin, then yield, until `done()`; used by the caller waiting for workers, whose wait is
/// as short as the slowest worker's share of one operation.
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !done() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(256) && start.elapsed() > SPIN {
            thread::yield_now();
        }
    }
}

fn worker(s: Arc<Shared>, ith: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new epoch: spin, then yield, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                let idle = start.elapsed();
                if idle > YIELD {
                    s.sleeping[ith].store(true, Ordering::SeqCst);
                    // Re-check after announcing sleep: `run` bumps the epoch before it looks
                    // at `sleeping`, so either we see the new epoch here or it unparks us
                    // (an unpark before park makes park return at once).
                    if s.epoch.load(Ordering::SeqCst) == seen {
                        thread::park_timeout(Duration::from_millis(100));
                    }
                    s.sleeping[ith].store(false, Ordering::Relaxed);
                } else if idle > SPIN {
                    thread::yield_now();
                }
            }
        };
        seen = epoch;
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(f)) = job {
            IN_JOB.with(|c| c.set(true));
            // SAFETY: see `JobPtr`; `run` is blocked until `pending` reaches zero.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*f)(ith, s.n_threads) }));
            IN_JOB.with(|c| c.set(false));
            if let Err(p) = r {
                s.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(p);
            }
            s.pending.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The pool installed on this thread ([`ThreadPool::install`]), or the process-wide default.
pub fn with_current<R>(f: impl FnOnce(&ThreadPool) -> R) -> R {
    let p = INSTALLED.with(Cell::get);
    if p.is_null() {
        static DEFAULT: OnceLock<ThreadPool> = OnceLock::new();
        f(DEFAULT.get_or_init(|| ThreadPool::new(default_threads())))
    } else {
        // SAFETY: `install` keeps the pool borrowed for as long as the pointer is set.
        f(unsafe { &*p })
    }
}

/// Threads of the current pool (see [`with_current`]).
pub fn current_num_threads() -> usize {
    if IN_JOB.with(Cell::get) {
        return 1;
    }
    with_current(ThreadPool::n_threads)
}

/// [`ThreadPool::run`] on the current pool.
pub fn run(f: impl Fn(usize, usize) + Sync) {
    with_current(|p| p.run(f))
}

/// [`ThreadPool::for_each_chunk`] on the current pool.
pub fn for_each_chunk(n_items: usize, chunk: usize, f: impl Fn(usize, Range<usize>) + Sync) {
    with_current(|p| p.for_each_chunk(n_items, chunk, f))
}

/// [`ThreadPool::for_each_split`] on the current pool.
pub fn for_each_split(n_items: usize, chunk: usize, f: impl Fn(usize, Range<usize>) + Sync) {
    with_current(|p| p.for_each_split(n_items, chunk, f))
}

/// A raw pointer to a mutable slice that threads of one job write disjoint parts of.
///
/// Exists because the natural Rust split (`chunks_mut`) needs the partition up front, while
/// dynamic scheduling hands ranges out at run time. Every use must write each element from
/// at most one thread per job.
#[derive(Clone, Copy)]
pub struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: access goes through the unsafe `slice`, whose contract is disjointness.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(s: &mut [T]) -> SharedMut<T> {
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write element `i`.
    ///
    /// # Safety
    /// No other thread may access element `i` during this job, and the slice `new` was made
    /// from must outlive the call.
    #[inline]
    pub unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len, "SharedMut index out of bounds");
        // SAFETY: in bounds (checked); exclusivity is the caller's contract.
        unsafe { self.ptr.add(i).write(v) }
    }

    /// The elements `r` of the slice.
    ///
    /// # Safety
    /// No other thread may access any element of `r` while the returned slice lives, and the
    /// slice `new` was made from must outlive it (true inside the job that received `self`).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, r: Range<usize>) -> &mut [T] {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "SharedMut range out of bounds"
        );
        // SAFETY: in bounds (checked); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_visits_every_thread_once() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n);
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..1000 {
                pool.run(|ith, nth| {
                    assert_eq!(nth, n);
                    hits[ith].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1000));
        }
    }

    #[test]
    fn for_each_chunk_covers_each_index_once() {
        let pool = ThreadPool::new(3);
        for (n, chunk) in [(0, 4), (1, 4), (10, 3), (1000, 7), (1000, 1000), (999, 1)] {
            let mut out = vec![0u32; n];
            let o = SharedMut::new(&mut out);
            pool.for_each_chunk(n, chunk, |_, r| {
                // SAFETY: ranges are disjoint.
                unsafe { o.slice(r.clone()) }
                    .iter_mut()
                    .for_each(|v| *v += 1);
            });
            assert!(out.iter().all(|&v| v == 1), "n={n} chunk={chunk}");
        }
    }

    #[test]
    fn for_each_split_covers_each_index_once() {
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            for (n, chunk) in [
                (0, 4),
                (1, 4),
                (2, 1),
                (10, 3),
                (1000, 7),
                (1000, 1000),
                (999, 1),
            ] {
                let mut out = vec![0u32; n];
                let o = SharedMut::new(&mut out);
                pool.for_each_split(n, chunk, |ith, r| {
                    assert!(ith < threads);
                    assert!(r.len() <= chunk && !r.is_empty());
                    // SAFETY: ranges are disjoint.
                    unsafe { o.slice(r.clone()) }
                        .iter_mut()
                        .for_each(|v| *v += 1);
                });
                assert!(
                    out.iter().all(|&v| v == 1),
                    "threads={threads} n={n} chunk={chunk}"
                );
            }
        }
    }

    #[test]
    fn for_each_split_rebalances_a_stalled_thread() {
        // Thread 1's share is taken over by thread 0 while thread 1 is held up in its first
        // chunk: every index is still visited once, and thread 0 ran chunks of share 1.
        let pool = ThreadPool::new(2);
        let n = 64;
        let mut out = vec![0u32; n];
        let o = SharedMut::new(&mut out);
        let stolen = AtomicUsize::new(0);
        let release = AtomicBool::new(false);
        pool.for_each_split(n, 1, |ith, r| {
            if ith == 1 && r.start == n / 2 {
                // Hold thread 1 until thread 0 has stolen, with a time limit so a pool that
                // never steals fails the assertion below instead of hanging.
                let t0 = Instant::now();
                while !release.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(5) {
                    std::hint::spin_loop();
                }
            }
            if ith == 0 && r.start > n / 2 {
                stolen.fetch_add(1, Ordering::Relaxed);
                release.store(true, Ordering::Release);
            }
            // SAFETY: ranges are disjoint.
            unsafe { o.slice(r) }.iter_mut().for_each(|v| *v += 1);
        });
        assert!(out.iter().all(|&v| v == 1));
        assert!(
            stolen.load(Ordering::Relaxed) > 0,
            "thread 0 never took from share 1"
        );
    }

    #[test]
    fn nested_calls_run_inline() {
        let pool = ThreadPool::new(2);
        let total = AtomicUsize::new(0);
        pool.install(|| {
            run(|_, _| {
                // Inside a job the current pool reports one thread and runs inline.
                assert_eq!(current_num_threads(), 1);
                run(|ith, nth| {
                    assert_eq!((ith, nth), (0, 1));
                    total.fetch_add(1, Ordering::Relaxed);
                });
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn panics_propagate_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|ith, _| {
                if ith == 1 {
                    panic!("worker panic");
                }
            })
        }));
        assert!(r.is_err());
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|ith, _| {
                if ith == 0 {
                    panic!("caller panic");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn concurrent_callers_are_serialised() {
        let pool = ThreadPool::new(2);
        let sum = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.run(|_, _| {
                            sum.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(sum.load(Ordering::Relaxed), 4 * 200 * 2);
    }

    #[test]
    fn idle_workers_park_and_wake() {
        let pool = ThreadPool::new(2);
        thread::sleep(YIELD * 3);
        let count = AtomicUsize::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
