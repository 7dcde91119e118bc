//! How many threads to compute with by default: the fast cores only.
//!
//! Phones and many boards mix big and little cores (Arm's big.LITTLE and DynamIQ: for
//! example one Cortex-X prime core, three Cortex-A7xx and four Cortex-A5xx). A forward pass
//! is split evenly over its threads and every operation waits for the slowest share, so a
//! thread on a little core, at a third of a big core's speed, holds every operation up:
//! llama.cpp users on phones are told to set `-t` to the number of big cores for this reason.
//! The default here is the count of the fast cluster, read from sysfs:
//!
//! - `cpuN/cpu_capacity` (arm64 kernels since 4.x: the scheduler's relative capacity, 1024
//!   for the fastest), or else `cpuN/cpufreq/cpuinfo_max_freq`;
//! - the fast cluster is every online core within [`FAST_FRACTION`] of the fastest one: the
//!   prime and big cores of a 1+3+4 phone (A7xx cores rate 85-95% of an X core), not the
//!   little ones (30-45%);
//! - where sysfs has neither (x86 servers, containers without /sys), or every core rates the
//!   same, all online cores: the answer is then `available_parallelism`.
//!
//! Never more than `available_parallelism`, which also counts CPU affinity and cgroup quotas.

use std::path::Path;

/// A core belongs to the fast cluster when its capacity is at least this fraction of the
/// fastest core's.
pub const FAST_FRACTION: f64 = 0.8;

/// The CPUs of a list such as sysfs's `online` ("0-3,6,8-9"), or `None` if it does not parse.
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                // A hostile or broken file must not make us allocate without bound.
                if b < a || b - a > 4096 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The number of online cores in the fast cluster under `sysfs_cpu` (normally
/// `/sys/devices/system/cpu`), or `None` when sysfs does not say how fast the cores are.
pub fn fast_cores_in(sysfs_cpu: &Path) -> Option<usize> {
    let online = parse_cpu_list(&std::fs::read_to_string(sysfs_cpu.join("online")).ok()?)?;
    if online.is_empty() {
        return None;
    }
    let rate = |file: &str| -> Option<Vec<u64>> {
        online
            .iter()
            .map(|c| read_number(&sysfs_cpu.join(format!("cpu{c}")).join(file)))
            .collect()
    };
    let rates = rate("cpu_capacity").or_else(|| rate("cpufreq/cpuinfo_max_freq"))?;
    let max = *rates.iter().max()?;
    if max == 0 {
        return None;
    }
    let fast = rates
        .iter()
        .filter(|&&r| r as f64 >= FAST_FRACTION * max as f64)
        .count();
    Some(fast)
}

/// The default thread count: `LINGQIAO_THREADS` if set (a positive number), else the fast
/// cores (see the module docs), at most `available_parallelism`.
pub fn default_threads() -> usize {
    if let Some(n) = std::env::var("LINGQIAO_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
    {
        return n;
    }
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    fast_cores_in(Path::new("/sys/devices/system/cpu")).map_or(all, |fast| fast.clamp(1, all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake `/sys/devices/system/cpu` with `online` and, per core, the given files.
    fn sysfs(online: &str, cores: &[(usize, &[(&str, &str)])]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("lingqiao-sysfs-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("online"), online).unwrap();
        for (cpu, files) in cores {
            for (name, value) in *files {
                let p = root.join(format!("cpu{cpu}")).join(name);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, value).unwrap();
            }
        }
        root
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3\n"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-99999999"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn a_phone_with_prime_big_and_little_cores_uses_prime_and_big() {
        // Snapdragon 8 Gen 1-like: 4 x A510 (capacity 325), 3 x A710 (870), 1 x X2 (1024).
        let caps = ["325", "325", "325", "325", "870", "870", "870", "1024"];
        let cores: Vec<(usize, &[(&str, &str)])> = caps
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v: &[(&str, &str)] = match *c {
                    "325" => &[("cpu_capacity", "325")],
                    "870" => &[("cpu_capacity", "870")],
                    _ => &[("cpu_capacity", "1024")],
                };
                (i, v)
            })
            .collect();
        assert_eq!(fast_cores_in(&sysfs("0-7\n", &cores)), Some(4));
    }

    #[test]
    fn big_little_without_capacity_falls_back_to_max_frequency() {
        // 4 x A55 at 1.8 GHz and 4 x A76 at 2.4 GHz (RK3588-like), no cpu_capacity files.
        let little: &[(&str, &str)] = &[("cpufreq/cpuinfo_max_freq", "1800000")];
        let big: &[(&str, &str)] = &[("cpufreq/cpuinfo_max_freq", "2400000")];
        let cores: Vec<_> = (0..8)
            .map(|i| (i, if i < 4 { little } else { big }))
            .collect();
        assert_eq!(fast_cores_in(&sysfs("0-7", &cores)), Some(4));
    }

    #[test]
    fn offline_cores_do_not_count() {
        let big: &[(&str, &str)] = &[("cpu_capacity", "1024")];
        let little: &[(&str, &str)] = &[("cpu_capacity", "400")];
        let cores = [(0, little), (1, little), (4, big), (5, big), (6, big)];
        // cpu6 is offline: only 4 and 5 are fast and online.
        assert_eq!(fast_cores_in(&sysfs("0-1,4-5", &cores)), Some(2));
    }

    #[test]
    fn equal_cores_all_count_and_missing_sysfs_says_nothing() {
        let same: &[(&str, &str)] = &[("cpu_capacity", "1024")];
        let cores: Vec<_> = (0..6).map(|i| (i, same)).collect();
        assert_eq!(fast_cores_in(&sysfs("0-5", &cores)), Some(6));
        // No rate files (an x86 VM's sysfs has neither): no opinion.
        assert_eq!(fast_cores_in(&sysfs("0-1", &[])), None);
        // One core without a rate file: no opinion either (never half a picture).
        let partial = [(0, same)];
        assert_eq!(fast_cores_in(&sysfs("0-1", &partial)), None);
        assert_eq!(fast_cores_in(Path::new("/nonexistent/lingqiao")), None);
    }

    #[test]
    fn garbage_in_sysfs_is_no_opinion_not_a_panic() {
        let bad: &[(&str, &str)] = &[("cpu_capacity", "fast")];
        assert_eq!(fast_cores_in(&sysfs("0", &[(0, bad)])), None);
        let zero: &[(&str, &str)] = &[("cpu_capacity", "0")];
        assert_eq!(fast_cores_in(&sysfs("0", &[(0, zero)])), None);
        assert_eq!(fast_cores_in(&sysfs("", &[])), None);
    }
}
