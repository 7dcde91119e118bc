//! Opt-in wall-time accounting of a decode step's operations: with `LINGQIAO_PROFILE=1`,
//! the forward pass and the pool mark what they are doing with [`span`], and
//! [`report`] prints the time per token of each kind of operation. Off (the default),
//! a span is one load of a cached flag and a branch.
//!
//! Times are exclusive and on the calling thread only (the pool's thread 0, which runs its
//! own share of every parallel region and all the serial work): a span opened inside
//! another pauses the outer one, so the rows add up to the step's wall time. The pool's own
//! share of a region counts as the operation that started it; publishing a region and
//! waiting for the other threads to finish it are rows of their own ([`Op::Publish`],
//! [`Op::Wait`]), so the cost of synchronisation per operation is visible.
//!
//! Only spans inside a root ([`Op::Step`], opened by a one-token forward pass, or
//! [`Op::Sample`], by a generation loop) count: prompt passes and loading are left out.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the calling thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A decode step's time in none of the rows below (loop overhead, buffer set-up).
    Step,
    Embed,
    RopeTable,
    /// RMS norms of the residual stream (before attention and FFN, post-norms).
    Norm,
    /// Per-head Q/K RMS norms.
    QkNorm,
    Rope,
    /// Q scaled before attention (architectures that scale the query).
    QScale,
    /// K and V rounded to f16 into the cache.
    KvStore,
    /// Activations quantized to the weights' dot-product type.
    Quantize,
    MatQkv,
    Bias,
    /// Attention over the cache, in parallel (thread 0's share): what the four rows after
    /// this one leave (setting up the items, copying results out).
    Attention,
    /// Attention: the query heads rounded to f16.
    AttnQ16,
    /// Attention: the K dot products.
    AttnScores,
    /// Attention: score scaling, softmax and the probabilities rounded to f16.
    Softmax,
    /// Attention: the probability-weighted V sums.
    AttnValues,
    MatAttnOut,
    Residual,
    MatGateUp,
    Act,
    MatDown,
    /// Output norm and the rows the logits need.
    Head,
    MatLogits,
    Softcap,
    /// The generation loop's choice of the next token.
    Sample,
    /// Publishing a parallel region to the pool's workers.
    Publish,
    /// Thread 0 done with its share, waiting for the other threads.
    Wait,
}

const OPS: [Op; 27] = [
    Op::Step,
    Op::Embed,
    Op::RopeTable,
    Op::Norm,
    Op::QkNorm,
    Op::Rope,
    Op::QScale,
    Op::KvStore,
    Op::Quantize,
    Op::MatQkv,
    Op::Bias,
    Op::Attention,
    Op::AttnQ16,
    Op::AttnScores,
    Op::Softmax,
    Op::AttnValues,
    Op::MatAttnOut,
    Op::Residual,
    Op::MatGateUp,
    Op::Act,
    Op::MatDown,
    Op::Head,
    Op::MatLogits,
    Op::Softcap,
    Op::Sample,
    Op::Publish,
    Op::Wait,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Step => "rest of the step",
            Op::Embed => "embedding row",
            Op::RopeTable => "RoPE tables",
            Op::Norm => "RMS norms",
            Op::QkNorm => "Q/K norms",
            Op::Rope => "RoPE",
            Op::QScale => "Q scaling",
            Op::KvStore => "K/V to f16 cache",
            Op::Quantize => "activation quantization",
            Op::MatQkv => "matmul Q/K/V",
            Op::Bias => "biases",
            Op::Attention => "attention (rest)",
            Op::AttnQ16 => "attention: q to f16",
            Op::AttnScores => "attention: K dots",
            Op::Softmax => "attention: softmax",
            Op::AttnValues => "attention: V sums",
            Op::MatAttnOut => "matmul attn output",
            Op::Residual => "residual adds",
            Op::MatGateUp => "matmul FFN gate+up",
            Op::Act => "activation (GLU)",
            Op::MatDown => "matmul FFN down",
            Op::Head => "output norm",
            Op::MatLogits => "matmul logits",
            Op::Softcap => "logit softcap",
            Op::Sample => "sampling (outside forward)",
            Op::Publish => "pool: publish region",
            Op::Wait => "pool: wait for workers",
        }
    }

    fn index(self) -> usize {
        OPS.iter()
            .position(|&o| o == self)
            .expect("every Op is in OPS")
    }

    fn is_matmul(self) -> bool {
        matches!(
            self,
            Op::MatQkv | Op::MatAttnOut | Op::MatGateUp | Op::MatDown | Op::MatLogits
        )
    }
}

/// Whether `LINGQIAO_PROFILE` is set to something other than `0` or empty.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("LINGQIAO_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

#[derive(Default)]
struct State {
    /// Per op: total time and how many spans.
    time: [Duration; OPS.len()],
    count: [u64; OPS.len()],
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    /// The op whose time runs now (an index into OPS), and since when; None outside roots.
    static CURRENT: Cell<Option<(usize, Instant)>> = const { Cell::new(None) };
}

/// Time on this thread counts as `op` until the returned guard drops (then as before).
#[inline]
#[must_use = "the span ends when this guard drops"]
pub fn span(op: Op) -> Span {
    if !enabled() {
        return Span {
            prev: None,
            on: false,
        };
    }
    span_slow(op)
}

#[cold]
fn span_slow(op: Op) -> Span {
    let cur = CURRENT.with(Cell::get);
    if cur.is_none() && !matches!(op, Op::Step | Op::Sample) {
        return Span {
            prev: None,
            on: false,
        };
    }
    let now = Instant::now();
    if let Some((i, since)) = cur {
        STATE.with(|s| s.borrow_mut().time[i] += now - since);
    }
    let i = op.index();
    STATE.with(|s| s.borrow_mut().count[i] += 1);
    CURRENT.with(|c| c.set(Some((i, now))));
    Span {
        prev: Some(cur.map(|(p, _)| p)),
        on: true,
    }
}

/// An open [`span`].
pub struct Span {
    /// The op to return to (None: outside any root); None when this span records nothing.
    prev: Option<Option<usize>>,
    on: bool,
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if self.on {
            self.end();
        }
    }
}

impl Span {
    #[cold]
    fn end(&mut self) {
        let now = Instant::now();
        if let Some((i, since)) = CURRENT.with(Cell::get) {
            STATE.with(|s| s.borrow_mut().time[i] += now - since);
        }
        let prev = self.prev.flatten();
        CURRENT.with(|c| c.set(prev.map(|p| (p, now))));
    }
}

/// Forget what this thread has recorded.
pub fn reset() {
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// This thread's record as a table, per decode step (one [`Op::Step`] per token), or None
/// when profiling is off or no step ran.
pub fn report() -> Option<String> {
    if !enabled() {
        return None;
    }
    STATE.with(|s| {
        let s = s.borrow();
        let steps = s.count[Op::Step.index()];
        if steps == 0 {
            return None;
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / steps as f64;
        let total: Duration = s.time.iter().sum();
        let mut out = format!(
            "per decoded token ({steps} tokens, thread 0's wall time; µs, calls per token, share):\n"
        );
        let mut products = Duration::ZERO;
        for op in OPS {
            let i = op.index();
            if s.count[i] == 0 {
                continue;
            }
            if op.is_matmul() {
                products += s.time[i];
            }
            out.push_str(&format!(
                "  {:28} {:9.1} µs {:7.1} {:5.1}%\n",
                op.name(),
                per(s.time[i]),
                s.count[i] as f64 / steps as f64,
                100.0 * s.time[i].as_secs_f64() / total.as_secs_f64()
            ));
        }
        let fixed = total - products;
        out.push_str(&format!(
            "  {:28} {:9.1} µs ({:.1} tok/s)\n  {:28} {:9.1} µs ({:.1}%; the products alone: {:.1} tok/s)\n",
            "total",
            per(total),
            steps as f64 / total.as_secs_f64(),
            "all but the products' shares",
            per(fixed),
            100.0 * fixed.as_secs_f64() / total.as_secs_f64(),
            steps as f64 / products.as_secs_f64()
        ));
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_table_is_complete_and_names_are_distinct() {
        let names: std::collections::HashSet<_> = OPS.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), OPS.len());
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
    }
}
