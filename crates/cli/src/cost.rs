//! What a run cost the machine: CPU time and peak resident memory of this process, read
//! from Linux's /proc (no library exposes both portably; on other systems they read 0).

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

fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(ticks / 100.0)
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
