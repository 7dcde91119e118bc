//! Prints a GGUF file's header: `cargo run -p lingqiao-gguf --example gguf_dump -- FILE`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: gguf_dump FILE.gguf");
        std::process::exit(2);
    };
    let t0 = std::time::Instant::now();
    let f = match lingqiao_gguf::GgufFile::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let dt = t0.elapsed();
    println!(
        "version {}  alignment {}  data at {}  {} keys  {} tensors  (parsed in {:.1} ms)",
        f.version(),
        f.alignment(),
        f.data_offset(),
        f.metadata().len(),
        f.tensors().len(),
        dt.as_secs_f64() * 1e3
    );
    for (k, v) in f.metadata().iter() {
        println!("{k:50} {:16} {v}", v.type_name());
    }
    for t in f.tensors() {
        println!(
            "{:40} {:6} {:?} @{} ({} bytes)",
            t.name,
            t.ty.name(),
            t.dims,
            t.offset,
            t.n_bytes
        );
    }
}
