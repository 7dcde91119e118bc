//! `lingqiao import`: a Hugging Face model directory (config.json, safetensors,
//! tokenizer.json, tokenizer_config.json) written as GGUF that our loader and llama.cpp
//! both read, with the metadata, tensor names and transformations of llama.cpp's
//! convert_hf_to_gguf.py for llama, qwen2, qwen3 and gemma3 (text).
//!
//! Tensors are converted one at a time from the memory-mapped safetensors into the
//! output file, so memory stays at about one tensor. The file is written under a
//! temporary name next to `out` and renamed when complete: a failed import leaves no
//! partial GGUF behind.

mod arch;
mod error;
mod hparams;
mod tensors;
mod vocab;

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use lingqiao_gguf::{GgmlType, GgufWriter, Value, keys};
use serde_json::Value as Json;

pub use error::ImportError;

use arch::ArchMap;
use hparams::HfConfig;
use tensors::{Tensors, permute_rows};
use vocab::Vocab;

/// The type of the 2-D weight matrices; norms and biases always stay F32 (as llama.cpp's
/// converter writes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutType {
    F32,
    /// The default, as llama.cpp's converter (`--outtype f16`): exact for F16
    /// checkpoints, and F16 keeps BF16/F32 weights of small models to ~3 decimal digits.
    #[default]
    F16,
    BF16,
    /// Matrices whose rows are not whole 32-element blocks fall back to F16 (as
    /// llama.cpp's converter does).
    Q8_0,
}

impl OutType {
    fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// `general.file_type` (llama_ftype).
    fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q8_0 => 7,
            OutType::BF16 => 32,
        }
    }
}

/// Called after each tensor with (done, total, GGUF name).
pub type ProgressFn = dyn Fn(usize, usize, &str);

/// How to import.
#[derive(Default)]
pub struct ImportOptions<'a> {
    pub out_type: OutType,
    pub progress: Option<&'a ProgressFn>,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// `general.architecture`.
    pub arch: String,
    pub n_tensors: usize,
    pub n_params: u64,
    pub file_size: u64,
    /// No `output.weight`: the output projection is the token embedding.
    pub tied_output: bool,
    pub n_vocab: usize,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre`.
    pub tokenizer: String,
    pub pre: Option<String>,
}

pub(crate) fn read_json(path: &Path) -> Result<Json, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ImportError::MissingFile {
            path: path.to_path_buf(),
            what: "a file the model directory needs",
        },
        _ => ImportError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ImportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One output tensor: where it comes from and what is done to it.
struct Planned {
    /// Empty for a tensor computed from config.json (`generated`).
    hf: String,
    generated: Option<Vec<f32>>,
    gguf: String,
    /// torch shape after trimming (ggml dims are the reverse).
    shape: Vec<usize>,
    ty: GgmlType,
    /// Q/K rows to reorder for this many heads.
    permute_heads: Option<usize>,
    shift: f32,
}

/// Import the model in `dir` to the GGUF file `out`.
pub fn import_hf(
    dir: &Path,
    out: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(ImportError::MissingFile {
            path: config_path,
            what: "config.json",
        });
    }
    let config = read_json(&config_path)?;
    let class = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Json::as_str)
        .ok_or_else(|| error::bad_config("architectures", "missing or empty"))?;
    let arch = arch::by_hf_class(class).ok_or_else(|| ImportError::UnsupportedArch {
        found: class.to_string(),
        supported: arch::supported(),
    })?;
    let mut hp = HfConfig::parse(&config, arch)?;
    let tensors = Tensors::open(dir)?;
    let mut vocab = Vocab::load(dir, &config)?;

    let plan = plan(arch, &mut hp, &tensors, &mut vocab, opts.out_type)?;

    let mut w = GgufWriter::new();
    w.set(keys::GENERAL_ARCHITECTURE, Value::String(arch.gguf.into()))?;
    w.set(keys::GENERAL_TYPE, Value::String("model".into()))?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| arch.gguf.to_string());
    w.set(keys::GENERAL_NAME, Value::String(name))?;
    hp.write(arch, &mut w)?;
    w.set(
        keys::GENERAL_FILE_TYPE,
        Value::U32(opts.out_type.file_type()),
    )?;
    w.set(keys::GENERAL_QUANTIZATION_VERSION, Value::U32(2))?;
    vocab.write(&mut w)?;
    let mut n_params = 0u64;
    for p in &plan {
        let dims: Vec<u64> = p.shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor(p.gguf.clone(), p.ty, &dims)?;
        n_params += p.shape.iter().product::<usize>() as u64;
    }
    let file_size = w.file_size();

    let tmp = temp_name(out);
    let result = write_tensors(w, &tmp, &plan, &tensors, opts)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(|source| io(out, source)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(ImportReport {
        arch: arch.gguf.to_string(),
        n_tensors: plan.len(),
        n_params,
        file_size,
        tied_output: !plan.iter().any(|p| p.gguf == arch::OUTPUT.1),
        n_vocab: vocab.tokens.len(),
        tokenizer: vocab.model.to_string(),
        pre: vocab.pre.map(str::to_string),
    })
}

fn io(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn temp_name(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".import-{}.tmp", std::process::id()));
    out.with_file_name(name)
}

/// Decide every output tensor, check shapes, and reconcile the vocabulary with the
/// embedding's rows.
fn plan(
    arch: &ArchMap,
    hp: &mut HfConfig,
    tensors: &Tensors,
    vocab: &mut Vocab,
    out_type: OutType,
) -> Result<Vec<Planned>, ImportError> {
    let embd = tensors.need(arch::TOKEN_EMBD.0)?;
    let rows = match embd.shape {
        [rows, cols] if *cols == hp.n_embd => *rows,
        s => {
            return Err(ImportError::BadShape {
                name: arch::TOKEN_EMBD.0.into(),
                found: s.to_vec(),
                expected: vec![hp.n_vocab, hp.n_embd],
            });
        }
    };
    let n_vocab = if vocab.tokens.len() > rows {
        return Err(ImportError::Tokenizer(format!(
            "{} tokens but the embedding has {rows} rows",
            vocab.tokens.len()
        )));
    } else if arch.trim_vocab {
        vocab.tokens.len()
    } else {
        vocab.pad_to(rows);
        rows
    };
    vocab.truncate(n_vocab);
    hp.n_vocab = n_vocab;

    let matrix = |cols: usize| {
        let ty = out_type.ggml();
        if !cols.is_multiple_of(ty.block_size()) {
            GgmlType::F16
        } else {
            ty
        }
    };
    let mut plan = Vec::new();
    let mut add = |hf: &str, gguf: String, expected: Vec<usize>, permute: Option<usize>| {
        let t = tensors.need(hf)?;
        t.check_dtype(hf)?;
        if t.shape != expected.as_slice() && hf != arch::TOKEN_EMBD.0 {
            return Err(ImportError::BadShape {
                name: hf.to_string(),
                found: t.shape.to_vec(),
                expected,
            });
        }
        let ty = if expected.len() == 1 || hf.ends_with("norm.weight") {
            GgmlType::F32
        } else {
            matrix(expected[expected.len() - 1])
        };
        plan.push(Planned {
            hf: hf.to_string(),
            generated: None,
            gguf,
            shape: expected,
            ty,
            permute_heads: permute,
            shift: if hf.ends_with("norm.weight") {
                arch.norm_shift
            } else {
                0.0
            },
        });
        Ok(())
    };

    let (e, hd) = (hp.n_embd, hp.head_dim);
    add(
        arch::TOKEN_EMBD.0,
        arch::TOKEN_EMBD.1.into(),
        vec![n_vocab, e],
        None,
    )?;
    for il in 0..hp.n_layer {
        for &(hf_sub, gguf_sub) in arch.layer {
            let (rows, cols) = match gguf_sub {
                "attn_q" => (hp.n_head * hd, e),
                "attn_k" | "attn_v" => (hp.n_head_kv * hd, e),
                "attn_output" => (e, hp.n_head * hd),
                "ffn_gate" | "ffn_up" => (hp.n_ff, e),
                "ffn_down" => (e, hp.n_ff),
                "attn_q_norm" | "attn_k_norm" => (hd, 0),
                _ => (e, 0), // the per-layer norms
            };
            let permute = match gguf_sub {
                "attn_q" if arch.permute_qk => Some(hp.n_head),
                "attn_k" if arch.permute_qk => Some(hp.n_head_kv),
                _ => None,
            };
            let hf = |suffix: &str| format!("model.layers.{il}.{hf_sub}.{suffix}");
            let gguf = |suffix: &str| format!("blk.{il}.{gguf_sub}.{suffix}");
            let shape = if cols == 0 {
                vec![rows]
            } else {
                vec![rows, cols]
            };
            add(&hf("weight"), gguf("weight"), shape, permute)?;
            if tensors.get(&hf("bias")).is_some() {
                add(&hf("bias"), gguf("bias"), vec![rows], permute)?;
            }
        }
    }
    add(
        arch::OUTPUT_NORM.0,
        arch::OUTPUT_NORM.1.into(),
        vec![e],
        None,
    )?;
    // A missing lm_head means tied, as llama.cpp's loader treats a missing output.weight.
    if !hp.tied && tensors.get(arch::OUTPUT.0).is_some() {
        add(
            arch::OUTPUT.0,
            arch::OUTPUT.1.into(),
            vec![n_vocab, e],
            None,
        )?;
    }
    if let Some(freqs) = hp.llama3_rope_freqs() {
        plan.push(Planned {
            hf: String::new(),
            gguf: "rope_freqs.weight".into(),
            shape: vec![freqs.len()],
            ty: GgmlType::F32,
            generated: Some(freqs),
            permute_heads: None,
            shift: 0.0,
        });
    }
    hp.tied = !plan.iter().any(|p| p.gguf == arch::OUTPUT.1);

    // Refuse what would silently be dropped (llama.cpp's converter does too).
    for name in tensors.names() {
        let used = plan.iter().any(|p| p.hf == name)
            || arch::ignored(name)
            || (hp.tied && name == arch::OUTPUT.0);
        if !used {
            return Err(ImportError::UnexpectedTensor {
                name: name.to_string(),
            });
        }
    }
    Ok(plan)
}

/// `data` as rows of the planned type.
fn encode(p: &Planned, data: &[f32]) -> Result<Vec<u8>, ImportError> {
    let row_len = p.shape[p.shape.len() - 1];
    let row_bytes = lingqiao_kernels::row_bytes(p.ty, row_len)?;
    let mut bytes = vec![0u8; row_bytes * (data.len() / row_len)];
    for (src, dst) in data
        .chunks_exact(row_len)
        .zip(bytes.chunks_exact_mut(row_bytes))
    {
        lingqiao_kernels::quantize_row_ref(p.ty, src, dst)?;
    }
    Ok(bytes)
}

/// The planned tensor's bytes in the output file.
fn tensor_bytes<'a>(p: &Planned, tensors: &'a Tensors) -> Result<Cow<'a, [u8]>, ImportError> {
    if let Some(values) = &p.generated {
        return Ok(Cow::Owned(encode(p, values)?));
    }
    // the embedding may be trimmed to the vocabulary (gemma3)
    let t = tensors
        .need(&p.hf)?
        .first(p.shape.iter().product(), &p.hf)?;
    if p.permute_heads.is_none() && p.shift == 0.0 && t.ggml_type(&p.hf)? == p.ty {
        // Already the output type and values untouched: no round trip through f32.
        return Ok(Cow::Borrowed(t.data));
    }
    let mut data = t.to_f32(&p.hf)?;
    if let Some(n_head) = p.permute_heads {
        let cols = if p.shape.len() == 2 { p.shape[1] } else { 1 };
        data = permute_rows(&data, n_head, cols);
    }
    if p.shift != 0.0 {
        data.iter_mut().for_each(|x| *x += p.shift);
    }
    Ok(Cow::Owned(encode(p, &data)?))
}

fn write_tensors(
    w: GgufWriter,
    tmp: &Path,
    plan: &[Planned],
    tensors: &Tensors,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    let file = File::create(tmp).map_err(|source| io(tmp, source))?;
    let mut dw = w.start(BufWriter::with_capacity(1 << 20, file))?;
    for (i, p) in plan.iter().enumerate() {
        dw.write_tensor(&tensor_bytes(p, tensors)?)?;
        if let Some(f) = opts.progress {
            f(i + 1, plan.len(), &p.gguf);
        }
    }
    let mut buf = dw.finish()?;
    use std::io::Write;
    buf.flush().map_err(|source| io(tmp, source))?;
    buf.into_inner()
        .map_err(|e| io(tmp, e.into_error()))?
        .sync_all()
        .map_err(|source| io(tmp, source))
}
