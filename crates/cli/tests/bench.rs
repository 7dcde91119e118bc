//! `lingqiao bench` end to end on smollm2 with tiny sizes: the JSON lines are complete,
//! positive and consistent with each other and with the model file. No speed assertions.

mod common;

use common::{assert_ok, lingqiao, stdout};
use serde_json::Value;
use std::process::Output;

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The numbers of the array `key`.
fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: not an array in {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Bytes of smollm2's tensors, from the file itself: (all, layers + output matrix).
fn smollm2_bytes() -> (u64, u64) {
    let path = lingqiao_fetch::model_path("smollm2").expect("smollm2 is in the registry");
    let file = lingqiao_gguf::GgufFile::open(path).expect("smollm2 is installed");
    let all = file.tensors().iter().map(|t| t.n_bytes).sum();
    // SmolLM2 ties its output to the token embedding: no output.weight in the file.
    assert!(file.tensor("output.weight").is_none());
    let per_token = file
        .tensors()
        .iter()
        .filter(|t| t.name.starts_with("blk.") || t.name == "token_embd.weight")
        .map(|t| t.n_bytes)
        .sum();
    (all, per_token)
}

#[test]
fn json_lines_are_complete_and_consistent() {
    let (reps, n_prompt, n_gen) = (2u64, 16u64, 4u64);
    let o = lingqiao(&[
        "bench",
        "-m",
        "smollm2",
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "2",
        "-t",
        "1,2",
        "--json",
        "--bandwidth-mib",
        "64",
    ]);
    assert_ok(&o);
    let lines = json_lines(&o);
    // (threads, test) in order: each thread count runs pp then tg.
    let order: Vec<(u64, String)> = lines
        .iter()
        .map(|l| (u(l, "threads"), l["test"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        order,
        [(1, "pp16"), (1, "tg4"), (2, "pp16"), (2, "tg4")]
            .map(|(t, s)| (t, s.to_string()))
            .to_vec()
    );
    let (size, per_token) = smollm2_bytes();
    for l in &lines {
        assert_eq!(l["model"], "smollm2");
        assert_eq!(u(l, "model_size"), size);
        assert_eq!(u(l, "bytes_per_token"), per_token);
        // 134.5 M weights: the model's card says 135M.
        let params = u(l, "n_params");
        assert!((130_000_000..140_000_000).contains(&params), "{params}");
        assert!((f(l, "size_mib") - size as f64 / 1048576.0).abs() < 1e-9);
        assert_eq!(u(l, "reps"), reps);
        let is_tg = l["test"] == "tg4";
        let (tokens, warmup) = if is_tg {
            (n_gen, 1)
        } else {
            (n_prompt, n_prompt)
        };
        assert_eq!(u(l, "n_prompt"), if is_tg { 0 } else { n_prompt });
        assert_eq!(u(l, "n_gen"), if is_tg { n_gen } else { 0 });
        assert_eq!(u(l, "warmup_tokens"), warmup);
        assert_eq!(u(l, "tokens_timed"), reps * tokens);
        let samples: Vec<f64> = floats(l, "samples_ts");
        assert_eq!(samples.len() as u64, reps);
        assert!(samples.iter().all(|&s| s > 0.0 && s.is_finite()));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((f(l, "avg_ts") - mean).abs() <= 1e-9 * mean);
        assert!(f(l, "stddev_ts") >= 0.0);
        assert!(f(l, "cpu_s_per_token") > 0.0);
        assert!(f(l, "load_s") > 0.0);
        // Weights are read into memory, so the process holds at least the model.
        assert!(u(l, "peak_rss_bytes") >= size);
        assert_eq!(l["mmap"], false);
        let bw = f(l, "bandwidth_gbs");
        assert!(bw > 0.0 && f(l, "bandwidth_1t_gbs") > 0.0);
        if is_tg {
            // One bandwidth before each repetition and one after the last; each
            // repetition's limit from the higher of its two, and the fraction is the mean
            // of speed / limit over the repetitions.
            let rep_bw: Vec<f64> = floats(l, "rep_bandwidth_gbs");
            assert_eq!(rep_bw.len() as u64, reps + 1);
            assert!(rep_bw.iter().all(|&g| g > 0.0 && g.is_finite()));
            let limits: Vec<f64> = rep_bw
                .windows(2)
                .map(|w| w[0].max(w[1]) * 1e9 / per_token as f64)
                .collect();
            let reported: Vec<f64> = floats(l, "limits_ts");
            assert_eq!(reported.len(), limits.len());
            for (a, b) in reported.iter().zip(&limits) {
                assert!((a - b).abs() <= 1e-9 * b);
            }
            let mean_limit = limits.iter().sum::<f64>() / limits.len() as f64;
            assert!((f(l, "limit_ts") - mean_limit).abs() <= 1e-9 * mean_limit);
            let frac =
                samples.iter().zip(&limits).map(|(s, l)| s / l).sum::<f64>() / samples.len() as f64;
            assert!((f(l, "frac_of_limit") - frac).abs() <= 1e-9);
            assert!(f(l, "frac_of_limit_std") >= 0.0);
        } else {
            assert!(l["limit_ts"].is_null() && l["frac_of_limit"].is_null());
        }
        assert!(!l["cpu"].as_str().unwrap().is_empty());
        assert!(!l["isa"].as_str().unwrap().is_empty());
        let date = l["date"].as_str().unwrap();
        assert!(date.len() == 20 && date.ends_with('Z'), "{date}");
    }
    // One load per model: every line reports the same load time.
    assert!(lines.iter().all(|l| l["load_s"] == lines[0]["load_s"]));
}

#[test]
fn bandwidth_only() {
    let o = lingqiao(&[
        "bench",
        "--bandwidth",
        "--json",
        "-t",
        "2",
        "--bandwidth-mib",
        "64",
    ]);
    assert_ok(&o);
    let lines = json_lines(&o);
    // One thread is always measured, then each -t count.
    let threads: Vec<u64> = lines.iter().map(|l| u(l, "threads")).collect();
    assert_eq!(threads, [1, 2]);
    for l in &lines {
        assert_eq!(l["test"], "bandwidth");
        assert!(f(l, "bandwidth_gbs") > 0.0);
        assert_eq!(u(l, "buffer_bytes"), 64 << 20);
    }
}

#[test]
fn table_names_the_tests() {
    let o = lingqiao(&[
        "bench",
        "-m",
        "smollm2",
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-t",
        "1",
        "--no-bandwidth",
    ]);
    assert_ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("| model |"), "{out}");
    assert!(out.contains("| smollm2 |") && out.contains("| pp8 |") && out.contains("| tg2 |"));
    assert!(
        !out.contains("read bandwidth"),
        "skipped with --no-bandwidth: {out}"
    );
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for args in [
        &["bench", "-m", "smollm2", "-t", "0", "--no-bandwidth"][..],
        &["bench", "-m", "smollm2", "-t", "1,x", "--no-bandwidth"],
        &["bench", "-m", "smollm2", "-r", "0", "--no-bandwidth"],
        &[
            "bench",
            "-m",
            "smollm2",
            "-p",
            "0",
            "-n",
            "0",
            "--no-bandwidth",
        ],
        &["bench", "-m", "no-such-model", "--no-bandwidth"],
        &["bench", "-m", ",", "--no-bandwidth"],
        &["bench", "--bandwidth", "--bandwidth-mib", "0"],
        // More prompt than smollm2's 8192-token context.
        &[
            "bench",
            "-m",
            "smollm2",
            "-p",
            "9000",
            "-n",
            "0",
            "-r",
            "1",
            "--no-bandwidth",
        ],
    ] {
        let o = lingqiao(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
