//! How long a mask takes over qwen05's 151,936-token vocabulary: it is computed once per
//! generated token of every constrained sequence, on the engine thread.
//!
//! `cargo test --release -p lingqiao-constrain --test mask_time -- --nocapture` prints
//! the distribution. The bound asserted is loose (the machine is shared with other
//! builds); what matters is the printed numbers.

mod common;

use std::time::Duration;

use common::{Status, setup, walk};
use lingqiao_constrain::{ToolChoice, json_schema, tool_calls};
use serde_json::{Value, json};

fn report(what: &str, mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    let n = times.len();
    let mean = times.iter().sum::<Duration>() / n as u32;
    let at = |q: f64| times[((n - 1) as f64 * q) as usize];
    eprintln!(
        "{what}: {n} masks, mean {:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        mean.as_secs_f64() * 1e6,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
    );
    mean
}

#[test]
fn mask_time_per_token() {
    let s = setup();
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city"]
            },
            "score": {"type": "number"}
        },
        "required": ["name", "age", "tags", "address"]
    });
    let v = jsonschema::validator_for(&schema).unwrap();
    let status = |t: &str| match serde_json::from_str::<Value>(t) {
        Ok(x) if v.is_valid(&x) => Status::Complete,
        _ => Status::Incomplete,
    };
    let t0 = std::time::Instant::now();
    drop(json_schema(&s.vocab, &schema).unwrap());
    eprintln!(
        "json_schema: compiled in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut times = Vec::new();
    for seed in 0..20 {
        let mut c = json_schema(&s.vocab, &schema).unwrap();
        times.extend(walk(c.as_mut(), seed, 3000, &[], &status).mask_times);
    }
    let schema_mean = report("json_schema", times);

    let tools = vec![
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}},
            "required": ["city", "days"]
        }}}),
    ];
    let t0 = std::time::Instant::now();
    drop(tool_calls(&s.vocab, &tools, &ToolChoice::Required, true).unwrap());
    eprintln!(
        "tool_calls: compiled in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut times = Vec::new();
    for seed in 0..20 {
        let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Required, true).unwrap();
        times.extend(walk_unchecked(c.as_mut(), seed));
    }
    let tools_mean = report("tool_calls", times);
    assert!(schema_mean < Duration::from_millis(5), "{schema_mean:?}");
    assert!(tools_mean < Duration::from_millis(5), "{tools_mean:?}");
}

/// A uniform random walk (at most 400 tokens) that only times the masks; `tools.rs`
/// checks what tool-call walks produce.
fn walk_unchecked(c: &mut dyn lingqiao_engine::batch::Constraint, seed: u64) -> Vec<Duration> {
    use rand::{Rng, SeedableRng};
    let s = setup();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut mask = vec![0u32; s.tok.n_vocab().div_ceil(32)];
    let mut times = Vec::new();
    for _ in 0..400 {
        if c.is_finished() {
            break;
        }
        mask.fill(0);
        let t0 = std::time::Instant::now();
        c.allowed(&mut mask).unwrap();
        times.push(t0.elapsed());
        let ids = common::allowed_ids(&mask);
        let t = ids[rng.random_range(0..ids.len())];
        if s.tok.is_eog(t) {
            break;
        }
        c.accept(t).unwrap();
    }
    times
}
