//! Aggregate generation speed of N concurrent requests through the batching engine,
//! against one request alone (same prompt style, same length), and whether each
//! concurrent request gave exactly its solo tokens.
//!
//! `cargo run --release -p lingqiao-engine --example batch_throughput -- MODEL.gguf [N] [TOKENS] [THREADS]`

use lingqiao_engine::SamplerConfig;
use lingqiao_engine::batch::{Engine, EngineConfig, Event, Request};
use lingqiao_model::Model;
use lingqiao_tokenizer::Tokenizer;
use std::ops::ControlFlow;
use std::sync::{Arc, mpsc};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("MODEL.gguf");
    let n: usize = args.get(2).map_or(8, |s| s.parse().unwrap());
    let tokens: usize = args.get(3).map_or(128, |s| s.parse().unwrap());
    let threads: usize = args.get(4).map_or(2, |s| s.parse().unwrap());
    let model = Model::load(path).unwrap();
    let tok = Tokenizer::from_gguf(model.file.metadata()).unwrap();
    let e = Engine::start(
        Arc::new(model),
        Arc::new(tok),
        EngineConfig {
            n_parallel: n,
            n_ctx: 1024,
            queue: 64,
            threads,
        },
    );
    let topics = [
        "the sea",
        "mountains",
        "a city at night",
        "rain",
        "an old library",
        "spring",
        "the desert",
        "a train journey",
    ];
    let req = |i: usize| Request {
        prompt: e.tokenizer().encode(
            &format!("Write a long story about {}.", topics[i % topics.len()]),
            true,
            false,
        ),
        max_tokens: tokens,
        sampler: SamplerConfig::greedy(),
        stop: Vec::new(),
        logprobs: None,
        constraint: None,
    };
    let run = |ids: &[usize]| -> (f64, Vec<Vec<u32>>) {
        let t0 = Instant::now();
        let rxs: Vec<_> = ids
            .iter()
            .map(|&i| {
                let (tx, rx) = mpsc::channel();
                e.submit(
                    req(i),
                    Box::new(move |ev| {
                        if tx.send(ev).is_ok() {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    }),
                )
                .unwrap();
                rx
            })
            .collect();
        let outs: Vec<Vec<u32>> = rxs
            .into_iter()
            .map(|rx| {
                rx.iter()
                    .filter_map(|ev| match ev {
                        Event::Token { id, .. } => Some(id),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        (t0.elapsed().as_secs_f64(), outs)
    };
    // Solo runs (also the reference tokens); the first one warms up.
    let _ = run(&[0]);
    let mut solo = Vec::new();
    let mut solo_time = 0.0;
    let mut solo_tokens = 0;
    for i in 0..n {
        let (t, o) = run(&[i]);
        solo_time += t;
        solo_tokens += o[0].len();
        solo.push(o.into_iter().next().unwrap());
    }
    let ids: Vec<usize> = (0..n).collect();
    let (t, outs) = run(&ids);
    let together: usize = outs.iter().map(|o| o.len()).sum();
    let same = outs.iter().zip(&solo).filter(|(a, b)| a == b).count();
    let solo_tps = solo_tokens as f64 / solo_time;
    let tps = together as f64 / t;
    println!(
        "threads={threads} n={n} solo {solo_tps:.1} tok/s, {n} concurrent {tps:.1} tok/s total ({:.2}x), identical to solo: {same}/{n}",
        tps / solo_tps
    );
}
