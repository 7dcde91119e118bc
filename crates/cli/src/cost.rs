//! What a run cost the machine: CPU time (getrusage) and peak resident memory (Linux's
//! /proc; no library exposes a resettable peak portably; elsewhere it reads 0).

use std::fs;

#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessCost {
    /// User + system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes (VmHWM).
    pub peak_rss: u64,
}

impl ProcessCost {
    pub fn now() -> ProcessCost {
        ProcessCost {
            cpu_seconds: cpu_seconds().unwrap_or(0.0),
            peak_rss: peak_rss().unwrap_or(0),
        }
    }
}

/// User + system CPU seconds of this process (all threads), at microsecond resolution.
fn cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage only writes the struct we pass; an all-zero rusage is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// Resets the peak-RSS mark (VmHWM) to the current RSS, so a later [`ProcessCost::now`]
/// reports the peak since this call. Linux only; elsewhere a no-op.
pub fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
