//! `bench`: prompt-processing and generation speed, in the spirit of llama-bench, plus what
//! those speeds cost (CPU time, peak memory, load time) and how close generation comes to
//! the machine's memory bandwidth.
//!
//! Tests, as llama-bench defines them:
//! - `ppP`: P tokens into a fresh KV cache in one forward call, logits for the last token
//!   only. The tokens are BOS (when the model adds one) then fixed pseudo-random ids.
//! - `tgN`: N tokens decoded one at a time from a fresh cache, starting from BOS (token 0
//!   when the model adds none) and feeding each step's greedy token.
//!
//! Each test runs once to warm up (the whole prompt for pp, one token for tg, as
//! llama-bench does), then `-r` timed repetitions; speeds are tokens / wall-clock seconds,
//! mean ± sample standard deviation over the repetitions.
//!
//! Bandwidth: a 1 GiB buffer allocated the way weights are (anonymous map with huge-page
//! advice, see `GgufFile::open_resident`) is read end to end with 1 and with the test's
//! thread count, best of several passes. A decoded token reads every weight of the layers
//! plus the output matrix once, so `bandwidth / bytes per token` bounds generation speed.
//! The bandwidth is measured once at the start (printed under the table), and for the
//! limit of each generation repetition again right before it and after the last one, in a
//! child process: "of limit" is the mean over repetitions of speed / that repetition's
//! limit (see `paired_limits`).

use crate::ModelArgs;
use crate::cost::{ProcessCost, human_bytes, reset_peak_rss};
use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use lingqiao_engine::sampler::argmax;
use lingqiao_model::{Logits, Model};
use lingqiao_pool::profile::{self, Op, span};
use lingqiao_tokenizer::Tokenizer;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    /// Models, comma-separated: GGUF paths or keys such as smollm2,qwen05.
    #[arg(short = 'm', long = "model", default_value = lingqiao_fetch::DEFAULT_MODEL)]
    models: String,
    /// Prompt tokens of the pp test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens of the tg test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Thread counts, comma-separated (default: all cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<String>,
    /// Timed repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Print one JSON object per (model, threads, test) instead of the table.
    #[arg(long)]
    json: bool,
    /// Only measure the memory read bandwidth (with 1 and each -t thread count).
    #[arg(long)]
    bandwidth: bool,
    /// Skip the bandwidth measurement (its 1 GiB buffer would count in the peak RSS of
    /// anyone timing this process from outside).
    #[arg(long, conflicts_with = "bandwidth")]
    no_bandwidth: bool,
    /// Size of the bandwidth test buffer in MiB.
    #[arg(long = "bandwidth-mib", default_value_t = 1024, hide = true)]
    bandwidth_mib: usize,
    /// Use the model file through a memory map instead of reading it into memory.
    #[arg(long)]
    mmap: bool,
}

/// Passes over the bandwidth buffer; the best one counts.
const BANDWIDTH_PASSES: usize = 5;

/// A parsed comma-separated list of counts.
fn parse_list(s: &str, what: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            let x = x.trim();
            let n: usize = x
                .parse()
                .with_context(|| format!("{what}: {x:?} is not a whole number"))?;
            ensure!(n >= 1, "{what} must be at least 1");
            Ok(n)
        })
        .collect()
}

fn default_threads() -> usize {
    lingqiao_pool::default_threads()
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The CPU, described well enough that a table from any machine stands on its own: the
/// name from /proc/cpuinfo (x86's `model name`, which a cloud VM may shorten to "AMD EPYC";
/// on Arm, which has none, the cores by implementer and part), then on x86 the
/// microarchitecture its family and model imply and the numbers themselves, the SIMD the
/// kernels use, and the L2 and L3 sizes from sysfs. For example
/// "AMD EPYC (Zen 3, family 25 model 1 stepping 1; AVX2; L2 512 KiB/core, L3 32 MiB)".
pub(crate) fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu0 = std::path::Path::new("/sys/devices/system/cpu/cpu0");
    let caches = read_caches(&cpu0.join("cache"));
    // SMT siblings of cpu0: a cache they alone share is the core's own.
    let siblings = std::fs::read_to_string(cpu0.join("topology/thread_siblings_list"))
        .ok()
        .and_then(|l| cpu_count(&l))
        .unwrap_or(1);
    describe_cpu(&info, &caches, siblings, lingqiao_kernels::isa())
}

/// [`cpu_model`] from the text of /proc/cpuinfo, cpu0's caches and the kernels' ISA.
fn describe_cpu(info: &str, caches: &[Cache], siblings: usize, isa: &str) -> String {
    let name = cpu_model_from(info).unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let mut parts = Vec::new();
    if let Some(id) = X86Id::from_cpuinfo(info) {
        parts.push(match id.microarchitecture() {
            Some(u) => format!("{u}, {id}"),
            None => id.to_string(),
        });
    }
    parts.push(simd_name(isa, cpuinfo_field(info, "flags").unwrap_or("")));
    let cache = cache_text(caches, siblings);
    if !cache.is_empty() {
        parts.push(cache);
    }
    format!("{name} ({})", parts.join("; "))
}

/// The first value of `key` in /proc/cpuinfo's text (its lines are `key<tabs>: value`).
fn cpuinfo_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    })
}

/// x86 CPUID's identification as /proc/cpuinfo prints it (family and model in decimal, the
/// extended fields already folded in).
#[derive(Debug, PartialEq, Eq)]
struct X86Id {
    vendor: String,
    family: u32,
    model: u32,
    stepping: u32,
}

impl X86Id {
    fn from_cpuinfo(info: &str) -> Option<X86Id> {
        let num = |key| cpuinfo_field(info, key)?.parse().ok();
        Some(X86Id {
            vendor: cpuinfo_field(info, "vendor_id")?.to_string(),
            family: num("cpu family")?,
            model: num("model")?,
            stepping: num("stepping").unwrap_or(0),
        })
    }

    /// The core microarchitecture, for the families and models Linux names: AMD's Zen
    /// generations by the model ranges of `bsp_init_amd` (arch/x86/kernel/cpu/amd.c), which
    /// does not tell Zen from Zen+; Intel's server parts and common client parts by
    /// arch/x86/include/asm/intel-family.h (Skylake-SP, Cascade Lake and Cooper Lake share
    /// model 0x55 and differ in stepping: Cascade Lake 5-7, Cooper Lake 10-11).
    fn microarchitecture(&self) -> Option<&'static str> {
        let m = self.model;
        match (self.vendor.as_str(), self.family) {
            ("AuthenticAMD" | "HygonGenuine", 0x17) => match m {
                0x00..=0x2f | 0x50..=0x5f => Some("Zen/Zen+"),
                0x30..=0x4f | 0x60..=0x7f | 0x90..=0x91 | 0xa0..=0xaf => Some("Zen 2"),
                _ => None,
            },
            ("AuthenticAMD", 0x19) => match m {
                0x00..=0x0f | 0x20..=0x5f => Some("Zen 3"),
                0x10..=0x1f | 0x60..=0xaf => Some("Zen 4"),
                _ => None,
            },
            ("AuthenticAMD", 0x1a) => match m {
                0x00..=0x2f | 0x40..=0x4f | 0x70..=0x7f => Some("Zen 5"),
                _ => None,
            },
            ("GenuineIntel", 6) => Some(match m {
                0x3c | 0x3f | 0x45 | 0x46 => "Haswell",
                0x3d | 0x47 | 0x4f | 0x56 => "Broadwell",
                0x4e | 0x5e => "Skylake",
                0x55 => match self.stepping {
                    5..=7 => "Cascade Lake",
                    10..=11 => "Cooper Lake",
                    _ => "Skylake-SP",
                },
                0x8e | 0x9e => "Kaby Lake/Coffee Lake",
                0xa5 | 0xa6 => "Comet Lake",
                0x6a | 0x6c => "Ice Lake-SP",
                0x7d | 0x7e => "Ice Lake",
                0xa7 => "Rocket Lake",
                0x8c | 0x8d => "Tiger Lake",
                0x8f => "Sapphire Rapids",
                0xcf => "Emerald Rapids",
                0xad | 0xae => "Granite Rapids",
                0xaf => "Sierra Forest",
                0x97 | 0x9a => "Alder Lake",
                0xb7 | 0xba | 0xbf => "Raptor Lake",
                0xaa | 0xac => "Meteor Lake",
                0xb5 | 0xc5 | 0xc6 => "Arrow Lake",
                0xbd => "Lunar Lake",
                _ => return None,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for X86Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "family {} model {} stepping {}",
            self.family, self.model, self.stepping
        )
    }
}

/// The SIMD the kernels run (`isa`, from [`lingqiao_kernels::isa`]), and what the CPU's flags
/// offer beyond it (the probe or `LINGQIAO_ISA` may have chosen less).
fn simd_name(isa: &str, flags: &str) -> String {
    let name = |isa: &str| match isa {
        "avx512" => "AVX-512".to_string(),
        "avx2" => "AVX2".to_string(),
        "neon" => "NEON".to_string(),
        "dotprod" => "NEON dotprod".to_string(),
        "i8mm" => "NEON i8mm".to_string(),
        other => other.to_string(),
    };
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let widest = if flags.contains(&"avx512f") {
        Some("avx512")
    } else if flags.contains(&"avx2") {
        Some("avx2")
    } else {
        None
    };
    match widest {
        Some(w) if w != isa => format!("{} (CPU has {})", name(isa), name(w)),
        _ => name(isa),
    }
}

/// One cache of cpu0, from /sys/devices/system/cpu/cpu0/cache/index*.
#[derive(Debug, PartialEq, Eq)]
struct Cache {
    level: u32,
    /// "Data", "Instruction" or "Unified".
    kind: String,
    bytes: u64,
    /// How many CPUs share it.
    shared_by: usize,
}

impl Cache {
    /// From the sysfs files' contents: `size` as "512K" (or "32M"), `shared_cpu_list` as
    /// "0-1,8".
    fn parse(level: &str, kind: &str, size: &str, shared_cpu_list: &str) -> Option<Cache> {
        let size = size.trim();
        let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
        let unit = match unit {
            "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            _ => return None,
        };
        let shared_by = cpu_count(shared_cpu_list)?;
        Some(Cache {
            level: level.trim().parse().ok()?,
            kind: kind.trim().to_string(),
            bytes: digits.parse::<u64>().ok()? * unit,
            shared_by,
        })
    }
}

/// CPUs in a sysfs CPU list such as "0-1,8".
fn cpu_count(list: &str) -> Option<usize> {
    list.trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                b.checked_sub(a).map(|d| d + 1)
            }
            None => r.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

fn read_caches(dir: &std::path::Path) -> Vec<Cache> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut caches: Vec<Cache> = entries
        .filter_map(|e| {
            let p = e.ok()?.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).ok();
            Cache::parse(
                &read("level")?,
                &read("type")?,
                &read("size")?,
                &read("shared_cpu_list")?,
            )
        })
        .collect();
    caches.sort_by_key(|c| c.level);
    caches
}

/// "L2 512 KiB/core, L3 32 MiB": the unified caches of level 2 and up, "/core" when one
/// core (its `siblings` SMT threads) has it alone, "per N CPUs" for a cluster's.
fn cache_text(caches: &[Cache], siblings: usize) -> String {
    caches
        .iter()
        .filter(|c| c.level >= 2 && c.kind == "Unified")
        .map(|c| {
            let size = if c.bytes >= 1 << 20 && c.bytes.is_multiple_of(1 << 20) {
                format!("{} MiB", c.bytes >> 20)
            } else {
                format!("{} KiB", c.bytes >> 10)
            };
            let per = if c.shared_by <= siblings.max(1) {
                "/core".to_string()
            } else if c.level == 2 {
                format!(" per {} CPUs", c.shared_by)
            } else {
                String::new()
            };
            format!("L{} {size}{per}", c.level)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cpu_model_from(info: &str) -> Option<String> {
    let field = |l: &str, key: &str| {
        l.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(name) = info.lines().find_map(|l| field(l, "model name")) {
        return Some(name);
    }
    // Arm: one "CPU implementer" / "CPU part" pair per core, in core order.
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut implementer = String::new();
    for l in info.lines() {
        if let Some(v) = field(l, "CPU implementer") {
            implementer = v;
        } else if let Some(part) = field(l, "CPU part") {
            let name = arm_core_name(&implementer, &part);
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
    }
    (!counts.is_empty()).then(|| {
        counts
            .iter()
            .map(|(n, c)| format!("{c}x {n}"))
            .collect::<Vec<_>>()
            .join(" + ")
    })
}

/// The name of an Arm core from its MIDR implementer and part numbers (as /proc/cpuinfo
/// prints them, "0x41" and "0xd0b"): Arm's own cores by name, others by number.
fn arm_core_name(implementer: &str, part: &str) -> String {
    let num = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let arm = [
        (0xd03, "Cortex-A53"),
        (0xd04, "Cortex-A35"),
        (0xd05, "Cortex-A55"),
        (0xd07, "Cortex-A57"),
        (0xd08, "Cortex-A72"),
        (0xd09, "Cortex-A73"),
        (0xd0a, "Cortex-A75"),
        (0xd0b, "Cortex-A76"),
        (0xd0c, "Neoverse-N1"),
        (0xd0d, "Cortex-A77"),
        (0xd40, "Neoverse-V1"),
        (0xd41, "Cortex-A78"),
        (0xd44, "Cortex-X1"),
        (0xd46, "Cortex-A510"),
        (0xd47, "Cortex-A710"),
        (0xd48, "Cortex-X2"),
        (0xd49, "Neoverse-N2"),
        (0xd4d, "Cortex-A715"),
        (0xd4e, "Cortex-X3"),
        (0xd4f, "Neoverse-V2"),
        (0xd80, "Cortex-A520"),
        (0xd81, "Cortex-A720"),
        (0xd82, "Cortex-X4"),
    ];
    match (num(implementer), num(part)) {
        (Some(0x41), Some(p)) => arm
            .iter()
            .find(|(id, _)| *id == p)
            .map_or_else(|| format!("Arm core {part}"), |(_, n)| n.to_string()),
        _ => format!("core {implementer}/{part}"),
    }
}

/// Now as an ISO 8601 UTC timestamp.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    utc_iso(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, Howard
/// Hinnant's algorithm).
fn utc_iso(secs: i64) -> String {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Read bandwidth in GB/s (1e9 bytes/s) of `buf` streamed by `threads` threads, each over
/// its own contiguous share, best of [`BANDWIDTH_PASSES`].
///
/// A pass lasts from the first thread's start to the last one's end, each read by the
/// workers themselves: a clock started by the spawning thread after the barrier starts late
/// whenever that thread is scheduled after the workers (with two workers on two cores it
/// often is), and with a 64 MiB buffer that once gave 36 TB/s for two threads.
fn read_bandwidth(buf: &[u8], threads: usize) -> f64 {
    let words: &[u64] = as_words(buf);
    let share = words.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..BANDWIDTH_PASSES {
        let barrier = std::sync::Barrier::new(threads);
        let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
            let handles: Vec<_> = words
                .chunks(share.max(1))
                .map(|part| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let t0 = Instant::now();
                        std::hint::black_box(sum_words(part));
                        (t0, Instant::now())
                    })
                })
                .collect();
            // Threads beyond the number of shares (tiny buffers) still meet the barrier.
            for _ in handles.len()..threads {
                s.spawn(|| barrier.wait());
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("a bandwidth thread panicked"))
                .collect()
        });
        let start = spans.iter().map(|s| s.0).min();
        let end = spans.iter().map(|s| s.1).max();
        if let (Some(start), Some(end)) = (start, end) {
            best = best.min((end - start).as_secs_f64());
        }
    }
    buf.len() as f64 / best / 1e9
}

/// `buf` as u64 words (the map is page-aligned, so nothing is lost in front).
fn as_words(buf: &[u8]) -> &[u64] {
    // SAFETY: any bit pattern is a valid u64; align_to puts only whole, aligned words in
    // the middle slice.
    let (_, mid, _) = unsafe { buf.align_to::<u64>() };
    mid
}

/// A sum over every word with eight independent accumulators, so the loop is limited by
/// loads rather than by one add chain (and vectorizes).
fn sum_words(w: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = w.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*x);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, x| a.wrapping_add(*x));
    acc.iter().fold(tail, |a, x| a.wrapping_add(*x))
}

/// Threads that read the "all cores" bandwidth: one per CPU this process may run on.
fn all_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Bandwidth in GB/s for each thread count, on a fresh buffer: 1 and all CPUs
/// ([`all_threads`]) are always measured, so every table shows both ends.
fn measure_bandwidth(mib: usize, threads: &[usize]) -> Result<Vec<(usize, f64)>> {
    ensure!(mib >= 1, "--bandwidth-mib must be at least 1");
    let len = mib << 20;
    let mut buf = memmap2::MmapOptions::new()
        .len(len)
        .map_anon()
        .context("allocating the bandwidth buffer")?;
    #[cfg(target_os = "linux")]
    {
        let _ = buf.advise(memmap2::Advice::HugePage);
    }
    // Touch every page (a distinct value per word, so nothing is shared or zero-mapped).
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i as u64).to_le_bytes());
    }
    let mut counts = vec![1, all_threads()];
    counts.extend(threads.iter().copied());
    counts.sort_unstable();
    counts.dedup();
    Ok(counts
        .into_iter()
        .map(|t| (t, read_bandwidth(&buf, t)))
        .collect())
}

/// What one model is and what a token of it reads.
struct ModelFacts {
    name: String,
    path: String,
    /// Bytes of all tensors (llama-bench's model_size).
    size: u64,
    /// Elements of all tensors (llama-bench's model_n_params).
    n_params: u64,
    /// Bytes read per decoded token: every tensor of the layers, plus the output matrix
    /// (which is the token embedding when the model ties them). The embedding of an untied
    /// model is not counted: a token reads one row of it. KV-cache reads are not counted.
    bytes_per_token: u64,
    /// Seconds to read the weights and build the tokenizer (as `lingqiao run` reports it).
    load_s: f64,
}

fn model_facts(name: &str, path: &std::path::Path, model: &Model, load_s: f64) -> ModelFacts {
    let tensors = model.file.tensors();
    let output = if model.file.tensor("output.weight").is_some() {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    let bytes_per_token = tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.") || t.name == output)
        .map(|t| t.n_bytes)
        .sum();
    ModelFacts {
        name: name.to_string(),
        path: path.display().to_string(),
        size: tensors.iter().map(|t| t.n_bytes).sum(),
        n_params: tensors.iter().map(|t| t.n_elements()).sum(),
        bytes_per_token,
        load_s,
    }
}

/// Which test: prompt processing or token generation, with its token count.
#[derive(Clone, Copy)]
enum Test {
    Prompt(usize),
    Gen(usize),
}

impl Test {
    fn name(self) -> String {
        match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Gen(n) => format!("tg{n}"),
        }
    }

    fn tokens(self) -> usize {
        match self {
            Test::Prompt(n) | Test::Gen(n) => n,
        }
    }

    /// Tokens of the untimed warm-up run (llama-bench's: the whole prompt, one generated).
    fn warmup_tokens(self) -> usize {
        match self {
            Test::Prompt(n) => n,
            Test::Gen(_) => 1,
        }
    }
}

/// The pp prompt: BOS when the model adds one, then ids from a fixed splitmix64 stream.
fn prompt_tokens(n: usize, n_vocab: usize, bos: Option<u32>) -> Vec<u32> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|i| match bos {
            Some(b) if i == 0 => b,
            _ => (next() % n_vocab as u64) as u32,
        })
        .collect()
}

/// One run of a test from a fresh cache; returns the tokens it processed.
fn run_once(
    model: &Model,
    cache: &mut lingqiao_model::KvCache,
    test: Test,
    n_tokens: usize,
    prompt: &[u32],
    first: u32,
) -> Result<usize> {
    cache.clear();
    match test {
        Test::Prompt(_) => {
            model.forward(cache, &prompt[..n_tokens], Logits::Last)?;
        }
        Test::Gen(_) => {
            let mut tok = first;
            // One logits buffer for the whole run, as a generation loop keeps it.
            let mut logits = Vec::new();
            for _ in 0..n_tokens {
                model.forward_into(cache, &[tok], Logits::Last, &mut logits)?;
                let _sp = span(Op::Sample);
                tok = argmax(&logits);
            }
        }
    }
    Ok(n_tokens)
}

/// The measurements of one (model, threads, test).
struct Row {
    threads: usize,
    test: Test,
    samples: Vec<f64>,
    cpu_s_per_token: f64,
    peak_rss: u64,
    /// Generation only, unless bandwidth is skipped: read bandwidth (GB/s) with this row's
    /// thread count measured before each timed repetition and after the last (see
    /// [`paired_limits`]).
    rep_bandwidth: Vec<f64>,
}

/// Each timed repetition's generation limit (tokens/s): the higher read bandwidth of the two
/// measured around it, over the bytes a token reads. This machine's bandwidth drifts by
/// 10-20% over minutes, as much as the speeds do: in the 2026-11-30 comparison run
/// (`bench/compare.py`, which pairs its limits per round the same way) one measurement at
/// the start would have put qwen15 at 96-97% of the limit instead of 83-84%. The higher of
/// the two is the stricter limit.
fn paired_limits(rep_bandwidth: &[f64], bytes_per_token: u64) -> Vec<f64> {
    rep_bandwidth
        .windows(2)
        .map(|w| w[0].max(w[1]) * 1e9 / bytes_per_token as f64)
        .collect()
}

/// (mean limit, mean and sample std of speed / limit) over the repetitions, if paired.
fn limit_and_fraction(r: &Row, bytes_per_token: u64) -> Option<(f64, f64, f64)> {
    let limits = paired_limits(&r.rep_bandwidth, bytes_per_token);
    if limits.is_empty() || limits.len() != r.samples.len() {
        return None;
    }
    let fracs: Vec<f64> = r.samples.iter().zip(&limits).map(|(s, l)| s / l).collect();
    let (frac, frac_std) = mean_std(&fracs);
    Some((mean_std(&limits).0, frac, frac_std))
}

/// Read bandwidth with `threads` threads, best of [`BANDWIDTH_PASSES`] over a `mib` buffer,
/// measured by a child `lingqiao bench --bandwidth`: in this process its buffer would count
/// in the peak memory of the run being timed.
fn bandwidth_now(mib: usize, threads: usize) -> Result<f64> {
    let exe = std::env::current_exe().context("finding the lingqiao executable")?;
    let out = std::process::Command::new(exe)
        .args(["bench", "--bandwidth", "--json", "-t"])
        .arg(threads.to_string())
        .arg("--bandwidth-mib")
        .arg(mib.to_string())
        .output()
        .context("running the bandwidth measurement")?;
    ensure!(
        out.status.success(),
        "the bandwidth measurement failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["threads"].as_u64() == Some(threads as u64))
        .and_then(|v| v["bandwidth_gbs"].as_f64())
        .context("the bandwidth measurement printed no figure for this thread count")
}

/// Warm up, then time `reps` runs of `test` on the current thread pool.
fn run_test(
    model: &Model,
    tok: &Tokenizer,
    test: Test,
    reps: usize,
    paired_bandwidth: Option<(usize, usize)>,
) -> Result<Row> {
    let n = test.tokens();
    let bos = tok.add_bos().then(|| tok.bos()).flatten();
    let prompt = match test {
        Test::Prompt(_) => prompt_tokens(n, model.hp.n_vocab, bos),
        Test::Gen(_) => Vec::new(),
    };
    let first = bos.unwrap_or(0);
    // Each row's peak is the model plus this test's cache and buffers: not the load's, the
    // bandwidth buffer's or an earlier test's.
    reset_peak_rss();
    let mut cache = model.new_cache(n);
    ensure!(
        cache.n_ctx >= n,
        "{} needs {n} positions; the model's context is {}",
        test.name(),
        cache.n_ctx
    );
    run_once(
        model,
        &mut cache,
        test,
        test.warmup_tokens(),
        &prompt,
        first,
    )?;
    // (buffer MiB, threads) of the bandwidth measured around each generation repetition.
    let paired = paired_bandwidth.filter(|_| matches!(test, Test::Gen(_)));
    let mut rep_bandwidth = Vec::new();
    let mut cpu = 0.0;
    let mut samples = Vec::with_capacity(reps);
    profile::reset();
    for _ in 0..reps {
        if let Some((mib, t)) = paired {
            rep_bandwidth.push(bandwidth_now(mib, t)?);
        }
        let cpu0 = ProcessCost::now().cpu_seconds;
        let t0 = Instant::now();
        let done = run_once(model, &mut cache, test, n, &prompt, first)?;
        samples.push(done as f64 / t0.elapsed().as_secs_f64());
        cpu += ProcessCost::now().cpu_seconds - cpu0;
    }
    if let Some((mib, t)) = paired {
        rep_bandwidth.push(bandwidth_now(mib, t)?);
    }
    if let Some(table) = profile::report() {
        let threads = lingqiao_pool::current_num_threads();
        eprintln!("LINGQIAO_PROFILE {} t={threads}, {}", test.name(), table);
    }
    Ok(Row {
        threads: 0,
        test,
        samples,
        cpu_s_per_token: cpu / (reps * n) as f64,
        peak_rss: ProcessCost::now().peak_rss,
        rep_bandwidth,
    })
}

/// Fields every JSON line carries about the machine and the run.
struct RunInfo {
    cpu: String,
    isa: &'static str,
    date: String,
    /// (threads, GB/s)
    bandwidth: Vec<(usize, f64)>,
}

impl RunInfo {
    fn bw(&self, threads: usize) -> Option<f64> {
        self.bandwidth
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|x| x.1)
    }
}

fn json_line(info: &RunInfo, m: &ModelFacts, r: &Row, reps: usize, mmap: bool) -> String {
    let (avg, std) = mean_std(&r.samples);
    let bw = info.bw(r.threads);
    let bw1 = info.bw(1);
    let is_gen = matches!(r.test, Test::Gen(_));
    let paired = limit_and_fraction(r, m.bytes_per_token);
    let n = r.test.tokens();
    let (n_prompt, n_gen) = if is_gen { (0, n) } else { (n, 0) };
    json!({
        "model": m.name,
        "model_path": m.path,
        "model_size": m.size,
        "size_mib": m.size as f64 / (1u64 << 20) as f64,
        "n_params": m.n_params,
        "threads": r.threads,
        "test": r.test.name(),
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "reps": reps,
        "warmup_tokens": r.test.warmup_tokens(),
        "tokens_timed": reps * n,
        "avg_ts": avg,
        "stddev_ts": std,
        "samples_ts": r.samples,
        "cpu_s_per_token": r.cpu_s_per_token,
        "peak_rss_bytes": r.peak_rss,
        "load_s": m.load_s,
        "mmap": mmap,
        "bytes_per_token": m.bytes_per_token,
        "bandwidth_1t_gbs": bw1,
        "bandwidth_gbs": bw,
        "bandwidth_all_threads": all_threads(),
        "bandwidth_all_gbs": info.bw(all_threads()),
        "limit_ts": paired.map(|p| p.0),
        "frac_of_limit": paired.map(|p| p.1),
        "frac_of_limit_std": paired.map(|p| p.2),
        "rep_bandwidth_gbs": if is_gen && paired.is_some() { Some(&r.rep_bandwidth) } else { None },
        "limits_ts": paired.map(|_| paired_limits(&r.rep_bandwidth, m.bytes_per_token)),
        "cpu": info.cpu,
        "isa": info.isa,
        "date": info.date,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}

fn table(info: &RunInfo, results: &[(ModelFacts, Vec<Row>)]) -> String {
    let mut out = String::new();
    out.push_str(
        "| model | size | params | threads | test | t/s | peak RSS | CPU-s/tok | load s | limit t/s | of limit |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (m, rows) in results {
        for r in rows {
            let (avg, std) = mean_std(&r.samples);
            let (limit, frac) = match limit_and_fraction(r, m.bytes_per_token) {
                Some((l, f, f_std)) => (
                    format!("{l:.1}"),
                    format!("{:.0}% ± {:.0}", 100.0 * f, 100.0 * f_std),
                ),
                None => ("".into(), "".into()),
            };
            out.push_str(&format!(
                "| {} | {:.1} MiB | {:.1} M | {} | {} | {avg:.2} ± {std:.2} | {} | {:.4} | {:.2} | {limit} | {frac} |\n",
                m.name,
                m.size as f64 / (1u64 << 20) as f64,
                m.n_params as f64 / 1e6,
                r.threads,
                r.test.name(),
                human_bytes(r.peak_rss),
                r.cpu_s_per_token,
                m.load_s,
            ));
        }
    }
    out.push('\n');
    out.push_str(&bandwidth_text(info));
    out.push_str(&format!("cpu: {}, kernels: {}\n", info.cpu, info.isa));
    out
}

fn bandwidth_text(info: &RunInfo) -> String {
    let list: Vec<String> = info
        .bandwidth
        .iter()
        .map(|(t, g)| {
            let all = if *t == all_threads() && *t > 1 {
                " (all CPUs)"
            } else {
                ""
            };
            format!(
                "{t} thread{}{all}: {g:.1} GB/s",
                if *t == 1 { "" } else { "s" }
            )
        })
        .collect();
    if list.is_empty() {
        return String::new();
    }
    format!(
        "read bandwidth (best of {BANDWIDTH_PASSES}): {}\n",
        list.join(", ")
    )
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let threads = match &args.threads {
        Some(s) => parse_list(s, "--threads")?,
        None => vec![default_threads()],
    };
    ensure!(args.reps >= 1, "--repetitions must be at least 1");
    if !args.bandwidth && args.n_prompt == 0 && args.n_gen == 0 {
        bail!("nothing to measure: -p and -n are both 0");
    }
    // Names and paths first: a bad model name fails before seconds of bandwidth passes.
    let models = args
        .models
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let margs = ModelArgs {
                model: name.to_string(),
                threads: None,
                mmap: args.mmap,
            };
            let path = margs.resolve()?;
            Ok((name, margs, path))
        })
        .collect::<Result<Vec<_>>>()?;
    if models.is_empty() && !args.bandwidth {
        bail!("no model given");
    }
    let mut info = RunInfo {
        cpu: cpu_model(),
        isa: lingqiao_kernels::isa(),
        date: utc_now(),
        bandwidth: if args.no_bandwidth {
            Vec::new()
        } else {
            measure_bandwidth(args.bandwidth_mib, &threads)?
        },
    };
    if args.bandwidth {
        if args.json {
            for (t, g) in &info.bandwidth {
                let line = json!({
                    "test": "bandwidth", "threads": t, "bandwidth_gbs": g,
                    "buffer_bytes": args.bandwidth_mib << 20, "passes": BANDWIDTH_PASSES,
                    "cpu": info.cpu, "isa": info.isa, "date": info.date,
                });
                crate::write_stdout(&format!("{line}\n"))?;
            }
            return Ok(());
        }
        return crate::write_stdout(&bandwidth_text(&info));
    }
    let mut tests = Vec::new();
    if args.n_prompt > 0 {
        tests.push(Test::Prompt(args.n_prompt));
    }
    if args.n_gen > 0 {
        tests.push(Test::Gen(args.n_gen));
    }
    let mut results = Vec::new();
    for (name, margs, path) in models {
        let crate::run::Loaded {
            model,
            tokenizer: tok,
            load_secs,
        } = crate::run::load_path(&margs, &path)?;
        let facts = model_facts(name, &path, &model, load_secs);
        let mut rows = Vec::new();
        for &t in &threads {
            let margs = ModelArgs {
                threads: Some(t),
                ..margs.clone()
            };
            let pool = margs.pool()?;
            let paired = (!args.no_bandwidth).then_some((args.bandwidth_mib, t));
            for &test in &tests {
                let mut row = pool
                    .install(|| run_test(&model, &tok, test, args.reps, paired))
                    .with_context(|| format!("{name}: {} with {t} threads", test.name()))?;
                row.threads = t;
                if args.json {
                    crate::write_stdout(&format!(
                        "{}\n",
                        json_line(&info, &facts, &row, args.reps, args.mmap)
                    ))?;
                } else {
                    let (avg, std) = mean_std(&row.samples);
                    eprintln!("{name} t={t} {}: {avg:.2} ± {std:.2} t/s", test.name());
                }
                rows.push(row);
            }
        }
        results.push((facts, rows));
    }
    if !args.json {
        info.date.truncate(10);
        crate::write_stdout(&table(&info, &results))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names_from_x86_and_arm_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model_from(x86).as_deref(), Some("AMD EPYC 7B13"));
        // An RK3588-like board: four Cortex-A55 then four Cortex-A76 (Linux's arm64 format).
        let mut arm = String::new();
        for (i, part) in ["0xd05"; 4].iter().chain(&["0xd0b"; 4]).enumerate() {
            arm.push_str(&format!(
                "processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd asimddp\n\
                 CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x2\n\
                 CPU part\t: {part}\nCPU revision\t: 0\n\n"
            ));
        }
        assert_eq!(
            cpu_model_from(&arm).as_deref(),
            Some("4x Cortex-A55 + 4x Cortex-A76")
        );
        let apple = "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x022\n";
        assert_eq!(cpu_model_from(apple).as_deref(), Some("1x core 0x61/0x022"));
        assert_eq!(cpu_model_from(""), None);
    }

    /// This machine's /proc/cpuinfo (a KVM guest on an EPYC 7B13-class host), shortened.
    const EPYC_VM: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
        model\t\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 1\nmicrocode\t: 0x1000065\n\
        flags\t\t: fpu sse sse2 avx f16c fma bmi2 avx2 vaes hypervisor\n\n\
        processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n";

    fn epyc_caches() -> Vec<Cache> {
        vec![
            Cache::parse("1", "Data", "32K", "0").unwrap(),
            Cache::parse("1", "Instruction", "32K", "0").unwrap(),
            Cache::parse("2", "Unified", "512K", "0").unwrap(),
            Cache::parse("3", "Unified", "32768K", "0-1").unwrap(),
        ]
    }

    #[test]
    fn cpu_description_names_the_microarchitecture_simd_and_caches() {
        assert_eq!(
            describe_cpu(EPYC_VM, &epyc_caches(), 1, "avx2"),
            "AMD EPYC (Zen 3, family 25 model 1 stepping 1; AVX2; L2 512 KiB/core, L3 32 MiB)"
        );
        // Capped by LINGQIAO_ISA: the text says what runs and what the CPU has.
        assert_eq!(
            describe_cpu(EPYC_VM, &[], 1, "scalar"),
            "AMD EPYC (Zen 3, family 25 model 1 stepping 1; scalar (CPU has AVX2))"
        );
        let spr = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n\
            model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\nstepping\t: 8\n\
            flags\t\t: avx2 avx512f avx512_vnni amx_tile\n";
        let l2 = Cache::parse("2", "Unified", "2048K", "0-1").unwrap();
        let l3 = Cache::parse("3", "Unified", "107520K", "0-43").unwrap();
        assert_eq!(
            describe_cpu(spr, &[l2, l3], 2, "avx512"),
            "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (Sapphire Rapids, family 6 model 143 \
             stepping 8; AVX-512; L2 2 MiB/core, L3 105 MiB)"
        );
        // Arm: no x86 identification, the cores by name.
        let arm = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(
            describe_cpu(arm, &[], 1, "dotprod"),
            "1x Neoverse-N1 (NEON dotprod)"
        );
    }

    #[test]
    fn x86_microarchitectures_by_family_and_model() {
        let id = |vendor: &str, family, model, stepping| X86Id {
            vendor: vendor.to_string(),
            family,
            model,
            stepping,
        };
        let amd = |family, model| id("AuthenticAMD", family, model, 0).microarchitecture();
        let intel = |model, stepping| id("GenuineIntel", 6, model, stepping).microarchitecture();
        assert_eq!(amd(0x17, 0x01), Some("Zen/Zen+")); // Naples
        assert_eq!(amd(0x17, 0x31), Some("Zen 2")); // Rome
        assert_eq!(amd(0x19, 0x01), Some("Zen 3")); // Milan
        assert_eq!(amd(0x19, 0x21), Some("Zen 3")); // Vermeer
        assert_eq!(amd(0x19, 0x11), Some("Zen 4")); // Genoa
        assert_eq!(amd(0x19, 0x61), Some("Zen 4")); // Raphael
        assert_eq!(amd(0x19, 0xa0), Some("Zen 4")); // Bergamo
        assert_eq!(amd(0x1a, 0x02), Some("Zen 5")); // Turin
        assert_eq!(amd(0x19, 0xf0), None);
        assert_eq!(intel(0x55, 4), Some("Skylake-SP"));
        assert_eq!(intel(0x55, 7), Some("Cascade Lake"));
        assert_eq!(intel(0x55, 11), Some("Cooper Lake"));
        assert_eq!(intel(0x6a, 6), Some("Ice Lake-SP"));
        assert_eq!(intel(0x8f, 8), Some("Sapphire Rapids"));
        assert_eq!(intel(0xcf, 2), Some("Emerald Rapids"));
        assert_eq!(intel(0xad, 1), Some("Granite Rapids"));
        assert_eq!(intel(0x9e, 10), Some("Kaby Lake/Coffee Lake"));
        assert_eq!(intel(0x01, 0), None);
        assert_eq!(
            X86Id::from_cpuinfo(EPYC_VM),
            Some(id("AuthenticAMD", 25, 1, 1))
        );
    }

    #[test]
    fn caches_parse_sysfs_sizes_and_cpu_lists() {
        let c = Cache::parse("3\n", "Unified\n", "32768K\n", "0-1\n").unwrap();
        assert_eq!((c.level, c.bytes, c.shared_by), (3, 32 << 20, 2));
        let c = Cache::parse("2", "Unified", "1M", "0,8").unwrap();
        assert_eq!((c.bytes, c.shared_by), (1 << 20, 2));
        assert_eq!(Cache::parse("2", "Unified", "big", "0"), None);
        assert_eq!(cache_text(&epyc_caches(), 1), "L2 512 KiB/core, L3 32 MiB");
        // Four cores without SMT sharing an L2 (a cluster).
        let cluster = [Cache::parse("2", "Unified", "4096K", "0-3").unwrap()];
        assert_eq!(cache_text(&cluster, 1), "L2 4 MiB per 4 CPUs");
        assert_eq!(cpu_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_count("3-1"), None);
        // Read from this machine's sysfs, where there is one: no panic, sorted by level.
        let real = read_caches(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache"));
        assert!(real.windows(2).all(|w| w[0].level <= w[1].level));
    }

    #[test]
    fn lists_parse_and_reject_bad_counts() {
        assert_eq!(parse_list("1,2, 4", "-t").unwrap(), vec![1, 2, 4]);
        assert!(parse_list("0", "-t").is_err());
        assert!(parse_list("2,x", "-t").is_err());
        assert!(parse_list("", "-t").is_err());
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        // Sample variance: 32 / 7.
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    }

    #[test]
    fn argmax_takes_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, f32::NAN]), 1);
    }

    #[test]
    fn prompt_starts_with_bos_and_stays_in_vocab() {
        let p = prompt_tokens(300, 17, Some(5));
        assert_eq!(p.len(), 300);
        assert_eq!(p[0], 5);
        assert!(p.iter().all(|&t| t < 17));
        assert_eq!(p, prompt_tokens(300, 17, Some(5)), "deterministic");
        // Without BOS every id comes from the stream; the stream is not constant.
        let q = prompt_tokens(300, 17, None);
        assert!(q.iter().any(|&t| t != q[0]));
    }

    #[test]
    fn word_sum_matches_plain_sum() {
        let w: Vec<u64> = (0..1003).map(|i| i * 7919).collect();
        assert_eq!(sum_words(&w), w.iter().sum::<u64>());
    }

    #[test]
    fn dates_are_iso_utc() {
        // Expected values from Python: datetime.fromtimestamp(s, timezone.utc).
        assert_eq!(utc_iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_iso(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(utc_iso(1_803_994_245), "2027-03-02T13:30:45Z");
        assert_eq!(utc_now().len(), 20);
    }
}
