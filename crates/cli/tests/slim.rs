//! `lingqiao slim` end to end on smollm2 (small context and few chunks, for speed).

mod common;

use common::{assert_ok, lingqiao, stdout};

fn text() -> String {
    format!(
        "{}/../../testdata/perplexity/gpl-3.0.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The table row of `ty`: (size column, KLD).
fn row(out: &str, ty: &str) -> (String, f64) {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(ty))
        .unwrap_or_else(|| panic!("no {ty} row in {out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // type, size value, size unit, bpw, PPL, KLD, top-1
    (format!("{} {}", cols[1], cols[2]), cols[5].parse().unwrap())
}

#[test]
fn tabulates_candidates_and_keeps_the_best_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("small.gguf");
    let out_str = out_path.to_str().unwrap();
    let text = text();
    let base = [
        "slim",
        "smollm2",
        "--to",
        "Q8_0,Q4_0",
        "-f",
        &text,
        "-c",
        "64",
        "--chunks",
        "2",
        "-t",
        "2",
        "-o",
        out_str,
    ];
    // Q8_0 is ~138 MiB and Q4_0 ~88 MiB for this model: 120M admits only Q4_0.
    let mut args = base.to_vec();
    args.extend(["--fit-memory", "120M"]);
    let o = lingqiao(&args);
    assert_ok(&o);
    let out = stdout(&o);
    let (_, kld8) = row(&out, "Q8_0");
    let (size4, kld4) = row(&out, "Q4_0");
    assert!(row(&out, "original").1 == 0.0, "{out}");
    assert!(kld8 < kld4, "8 bits must stay closer than 4: {out}");
    assert!(
        out.contains(&format!(
            "chose Q4_0 (lowest KLD of those within 120.0 MiB): {size4}"
        )),
        "{out}"
    );
    let m = lingqiao_gguf::GgufFile::open(&out_path).expect("the pick is a valid GGUF");
    drop(m);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["small.gguf"], "temporary files left behind");

    let mut args = base.to_vec();
    args.extend(["--fit-memory", "10M"]);
    let o = lingqiao(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no candidate fits 10.0 MiB"), "{err}");
}
