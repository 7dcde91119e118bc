//! `/metrics` in Prometheus' text exposition format (version 0.0.4).

use lingqiao_engine::batch::Metrics;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// HTTP responses sent, by status code.
#[derive(Default)]
pub struct HttpCounters {
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl HttpCounters {
    pub fn count(&self, status: u16) {
        let mut m = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(status).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<u16, u64> {
        self.by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Static facts about the server shown beside the engine's counters.
pub struct Info {
    pub n_parallel: usize,
    pub n_ctx: usize,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP lingqiao_{name} {help}");
    let _ = writeln!(out, "# TYPE lingqiao_{name} {kind}");
    let _ = writeln!(out, "lingqiao_{name} {value}");
}

pub fn render(m: &Metrics, http: &BTreeMap<u16, u64>, info: &Info) -> String {
    let mut out = String::new();
    let c = "counter";
    let g = "gauge";
    {
        metric(
            &mut out,
            "requests_total",
            c,
            "Generation requests accepted by the engine.",
            m.requests_total,
        );
        metric(
            &mut out,
            "requests_active",
            g,
            "Requests holding a slot.",
            m.requests_active,
        );
        metric(
            &mut out,
            "requests_waiting",
            g,
            "Requests queued for a slot.",
            m.requests_waiting,
        );
        metric(
            &mut out,
            "prompt_tokens_total",
            c,
            "Prompt tokens of accepted requests.",
            m.prompt_tokens_total,
        );
        metric(
            &mut out,
            "cached_prompt_tokens_total",
            c,
            "Prompt tokens reused from a slot's cache.",
            m.cached_prompt_tokens_total,
        );
        metric(
            &mut out,
            "generated_tokens_total",
            c,
            "Tokens generated.",
            m.generated_tokens_total,
        );
        metric(
            &mut out,
            "forward_passes_total",
            c,
            "Batched forward passes run.",
            m.forward_passes_total,
        );
        metric(
            &mut out,
            "busy_seconds_total",
            c,
            "Seconds the engine spent in forward passes.",
            m.busy_seconds_total,
        );
        metric(
            &mut out,
            "slots",
            g,
            "Sequences decoded together (--parallel).",
            info.n_parallel,
        );
        metric(
            &mut out,
            "context_tokens",
            g,
            "Context of each slot, in tokens (--ctx).",
            info.n_ctx,
        );
    }
    let _ = writeln!(
        out,
        "# HELP lingqiao_http_requests_total HTTP responses sent, by status code."
    );
    let _ = writeln!(out, "# TYPE lingqiao_http_requests_total counter");
    for (status, n) in http {
        let _ = writeln!(
            out,
            "lingqiao_http_requests_total{{status=\"{status}\"}} {n}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_name_value() {
        let http = HttpCounters::default();
        http.count(200);
        http.count(200);
        http.count(404);
        let m = Metrics {
            requests_total: 3,
            busy_seconds_total: 1.5,
            ..Default::default()
        };
        let text = render(
            &m,
            &http.snapshot(),
            &Info {
                n_parallel: 4,
                n_ctx: 4096,
            },
        );
        assert!(text.contains("lingqiao_requests_total 3\n"));
        assert!(text.contains("lingqiao_busy_seconds_total 1.5\n"));
        assert!(text.contains("lingqiao_http_requests_total{status=\"200\"} 2\n"));
        assert!(text.contains("lingqiao_http_requests_total{status=\"404\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("lingqiao_"), "{line}");
            value.parse::<f64>().unwrap();
        }
    }
}
