//! `quantize_file`: the streaming conversion, the temporary file and its rename.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lingqiao_gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo, Value, keys};

use crate::plan::{TensorPlan, plan_detailed};
use crate::{QuantizeError, QuantizeOptions, QuantizeReport};

/// `GGML_QNT_VERSION`: the layout revision of the quantized blocks, written as
/// `general.quantization_version`.
const QUANTIZATION_VERSION: u32 = 2;

/// Elements converted per work item: llama.cpp's chunk (32 * 512), in whole rows.
const CHUNK_ELEMENTS: u64 = 32 * 512;

static CANCEL: AtomicBool = AtomicBool::new(false);

/// Ask every running and later [`quantize_file`] in this process to stop and remove its
/// temporary file. Only an atomic store: safe to call from a signal handler (Ctrl-C).
pub fn cancel() {
    CANCEL.store(true, Ordering::Relaxed);
}

/// Quantize `input` into `output` (see the crate docs). Stops with
/// [`QuantizeError::Interrupted`] once [`cancel`] has been called.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<QuantizeReport, QuantizeError> {
    quantize_file_cancellable(input, output, opts, &CANCEL)
}

/// [`quantize_file`] watching its own cancel flag instead of the process-wide one.
pub fn quantize_file_cancellable(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    cancel: &AtomicBool,
) -> Result<QuantizeReport, QuantizeError> {
    let t0 = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QuantizeError::Io { path, source }
    };
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(QuantizeError::OutputDir(dir));
    }
    let file = GgufFile::open(input).map_err(|source| QuantizeError::Input {
        path: input.to_path_buf(),
        source,
    })?;
    if same_file(input, output, &dir) {
        return Err(QuantizeError::SameFile(output.to_path_buf()));
    }
    let source = Source::map(input)?;

    let plan = plan_detailed(&file, opts)?;
    warn_about(input, &plan);
    let writer = plan_output(&file, &plan, opts)?;

    let tmp = temp_path(output);
    let guard = RemoveOnDrop(Some(tmp.clone()));
    let sink = File::create(&tmp).map_err(io(&tmp))?;
    let write_err = |source| QuantizeError::Write {
        path: tmp.clone(),
        source,
    };
    let mut data = writer
        .start(BufWriter::with_capacity(1 << 20, sink))
        .map_err(write_err)?;

    let bar = progress_bar(opts.progress, &file);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    for (i, p) in plan.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(QuantizeError::Interrupted);
        }
        let t = file
            .tensor(&p.name)
            .expect("planned tensors come from the file");
        bar.set_message(format!("[{}/{}] {}", i + 1, plan.len(), p.name));
        let src = source.tensor(t)?;
        if p.to == p.from {
            data.write_tensor(src).map_err(write_err)?;
            bar.inc(src.len() as u64);
        } else {
            let out = convert(t, src, p.to, threads, cancel, &bar)?;
            data.write_tensor(&out).map_err(write_err)?;
        }
        source.release(t);
    }
    bar.finish_and_clear();
    let sink = data.finish().map_err(write_err)?;
    let sink = sink.into_inner().map_err(|e| QuantizeError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    sink.sync_all().map_err(io(&tmp))?;
    drop(sink);
    std::fs::rename(&tmp, output).map_err(io(output))?;
    guard.disarm();
    // The rename is durable once the directory is synced; a failure here loses nothing.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(report(&file, &plan, t0))
}

/// The input's bytes through a map of our own, so each tensor's pages can be dropped once it
/// is written (as llama.cpp unmaps each weight): without that the whole input stays
/// resident, counted in the process's memory, by the end of the run.
struct Source {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl Source {
    fn map(path: &Path) -> Result<Source, QuantizeError> {
        let io = |source| QuantizeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: a read-only map of a file we do not modify; as for every model file, we
        // accept that it is not rewritten by another process while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        // Advice only: read ahead further, since every byte is read once, in order.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Source {
            path: path.to_path_buf(),
            map,
        })
    }

    fn range(t: &TensorInfo) -> std::ops::Range<usize> {
        t.offset as usize..(t.offset + t.n_bytes) as usize
    }

    /// The tensor's bytes; the header was validated against the file's length at open, so
    /// a shorter map means the file changed since.
    fn tensor(&self, t: &TensorInfo) -> Result<&[u8], QuantizeError> {
        self.map
            .get(Self::range(t))
            .ok_or_else(|| QuantizeError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while being quantized",
                ),
            })
    }

    fn release(&self, t: &TensorInfo) {
        let r = Self::range(t);
        // SAFETY: MADV_DONTNEED on a read-only shared file map only drops the pages: a later
        // read (a neighbouring tensor sharing a page) faults them in again from the file.
        // Advice only: on failure the pages simply stay.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, r.start, r.len())
        };
    }
}

/// Whether `output` names `input` (through links too), so writing would destroy the input.
fn same_file(input: &Path, output: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) {
        return a.dev() == b.dev() && a.ino() == b.ino();
    }
    let out = match (dir.canonicalize(), output.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => return false,
    };
    input.canonicalize().is_ok_and(|i| i == out)
}

fn temp_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    output.with_file_name(name)
}

/// Removes the temporary file unless the run completed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn warn_about(input: &Path, plan: &[TensorPlan]) {
    let requant: BTreeMap<&str, usize> =
        plan.iter()
            .filter(|p| p.requantizes())
            .fold(BTreeMap::new(), |mut m, p| {
                *m.entry(p.from.name()).or_default() += 1;
                m
            });
    if !requant.is_empty() {
        let list: Vec<String> = requant.iter().map(|(t, n)| format!("{n} {t}")).collect();
        eprintln!(
            "warning: {} is already quantized ({} tensors): they are dequantized and quantized \
             again, which loses more quality than quantizing the original F16/BF16/F32 model",
            input.display(),
            list.join(", ")
        );
    }
    // One line per kind of fallback, not per tensor: a model whose width is not a multiple
    // of 256 (smollm2, qwen05, gemma3) falls back in most of its matrices.
    let mut fallbacks: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for p in plan {
        if let Some(wanted) = p.fallback_from {
            fallbacks
                .entry((wanted.name(), p.to.name()))
                .or_default()
                .push(&p.name);
        }
    }
    for ((wanted, used), names) in fallbacks {
        eprintln!(
            "note: {} tensors ({}{}) have rows that are not whole {wanted} blocks: {used} \
             instead, as llama.cpp does",
            names.len(),
            names[0],
            if names.len() > 1 { ", ..." } else { "" },
        );
    }
}

/// The output's header: the input's metadata with llama-quantize's two keys moved to the end
/// (as its `gguf_set_val_u32` re-adds them), and the tensors in plan order.
fn plan_output(
    file: &GgufFile,
    plan: &[TensorPlan],
    opts: &QuantizeOptions,
) -> Result<GgufWriter, QuantizeError> {
    let bad = |e: lingqiao_gguf::GgufWriteError| QuantizeError::Plan(e.to_string());
    let mut w = GgufWriter::with_metadata(file.metadata());
    for key in [
        keys::GENERAL_QUANTIZATION_VERSION,
        keys::GENERAL_FILE_TYPE,
        "split.no",
        "split.count",
        "split.tensors.count",
    ] {
        w.remove(key);
    }
    w.set(
        keys::GENERAL_QUANTIZATION_VERSION,
        Value::U32(QUANTIZATION_VERSION),
    )
    .map_err(bad)?;
    w.set(keys::GENERAL_FILE_TYPE, Value::U32(opts.target.ftype()))
        .map_err(bad)?;
    for p in plan {
        let t = file.tensor(&p.name).expect("planned from the file");
        w.add_tensor(&p.name, p.to, &t.dims).map_err(bad)?;
    }
    Ok(w)
}

fn progress_bar(show: bool, file: &GgufFile) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let total = file.tensors().iter().map(|t| t.n_bytes).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} ({eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// One tensor converted to `to`: rows dequantized to f32 and quantized, in chunks of whole
/// rows shared out to `threads` workers.
fn convert(
    t: &TensorInfo,
    src: &[u8],
    to: GgmlType,
    threads: usize,
    cancel: &AtomicBool,
    bar: &ProgressBar,
) -> Result<Vec<u8>, QuantizeError> {
    let kernel = |source| QuantizeError::Kernel {
        name: t.name.clone(),
        source,
    };
    let ncols = t.ne(0) as usize;
    let src_row = t.row_bytes() as usize;
    let dst_row = lingqiao_kernels::row_bytes(to, ncols).map_err(kernel)?;
    let rows_per_chunk = (CHUNK_ELEMENTS as usize / ncols).max(1);
    let mut dst = vec![0u8; dst_row * t.n_rows() as usize];
    let n_chunks = t.n_rows().div_ceil(rows_per_chunk as u64) as usize;
    let work = Mutex::new(dst.chunks_mut(rows_per_chunk * dst_row).enumerate());
    let failure: Mutex<Option<QuantizeError>> = Mutex::new(None);
    let worker = || {
        let mut f32s = vec![0f32; rows_per_chunk * ncols];
        loop {
            if cancel.load(Ordering::Relaxed) || failure.lock().unwrap().is_some() {
                return;
            }
            let Some((i, out)) = work.lock().unwrap().next() else {
                return;
            };
            let rows = out.len() / dst_row;
            let first = i * rows_per_chunk;
            let input = &src[first * src_row..(first + rows) * src_row];
            let result = input
                .chunks_exact(src_row)
                .zip(f32s.chunks_exact_mut(ncols))
                .try_for_each(|(s, d)| lingqiao_kernels::dequantize_row(t.ty, s, d))
                .and_then(|()| lingqiao_kernels::quantize_weights(to, &f32s[..rows * ncols], out));
            if let Err(e) = result {
                failure.lock().unwrap().get_or_insert(kernel(e));
                return;
            }
            bar.inc(input.len() as u64);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(n_chunks) {
            s.spawn(worker);
        }
        worker();
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(QuantizeError::Interrupted);
    }
    Ok(dst)
}

fn report(file: &GgufFile, plan: &[TensorPlan], t0: Instant) -> QuantizeReport {
    let mut r = QuantizeReport {
        n_params: 0,
        bytes_in: 0,
        bytes_out: 0,
        bpw: 0.0,
        requantized: plan.iter().any(TensorPlan::requantizes),
        types: BTreeMap::new(),
        seconds: 0.0,
    };
    for p in plan {
        let t = file.tensor(&p.name).expect("planned from the file");
        let n = t.n_elements();
        r.n_params += n;
        r.bytes_in += t.n_bytes;
        r.bytes_out += p.to.row_bytes(t.ne(0)).unwrap_or(0) * (n / t.ne(0));
        *r.types.entry(p.to.name().to_string()).or_default() += 1;
    }
    if r.n_params > 0 {
        r.bpw = r.bytes_out as f64 * 8.0 / r.n_params as f64;
    }
    r.seconds = t0.elapsed().as_secs_f64();
    r
}
