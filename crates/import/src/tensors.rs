//! Reading safetensors (one file or shards named by model.safetensors.index.json) and
//! turning each HF tensor into the f32 values llama.cpp's converter would write.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use lingqiao_gguf::GgmlType;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};
use serde_json::Value as Json;

use crate::ImportError;

struct Shard {
    map: Option<Mmap>,
    header_len: usize,
    meta: Metadata,
}

impl Shard {
    fn open(path: PathBuf) -> Result<Shard, ImportError> {
        let io = |source| ImportError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // An empty file cannot be mapped; it is reported as a too-small header below.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the file is opened read-only and only read through this map; as with
            // any memory map, truncating it from another process while we run would fault,
            // which the user controls (we never write to the input directory).
            Some(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        // read_metadata checks every tensor's extent against the file's length.
        let (header_len, meta) =
            SafeTensors::read_metadata(bytes).map_err(|source| ImportError::Safetensors {
                path: path.clone(),
                source,
            })?;
        Ok(Shard {
            map,
            header_len,
            meta,
        })
    }
}

/// The tensors of a model directory.
pub(crate) struct Tensors {
    shards: Vec<Shard>,
    /// name -> shard index
    index: HashMap<String, usize>,
}

/// One HF tensor, borrowed from its file.
pub(crate) struct TensorRef<'a> {
    pub dtype: Dtype,
    /// torch order (row-major, last dimension contiguous).
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl Tensors {
    pub(crate) fn open(dir: &Path) -> Result<Tensors, ImportError> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.is_file() {
            let index = crate::read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| crate::error::bad_config("weight_map", "missing in the index"))?;
            let mut files: Vec<PathBuf> = Vec::new();
            for f in map.values() {
                let name = f.as_str().filter(|s| !s.contains('/') && !s.contains(".."));
                let Some(name) = name else {
                    return Err(crate::error::bad_config(
                        "weight_map",
                        format!("{f} is not a file name in the model directory"),
                    ));
                };
                let p = dir.join(name);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(ImportError::MissingFile {
                path: single,
                what: "the weights: model.safetensors or model.safetensors.index.json",
            });
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for path in files {
            if !path.is_file() {
                return Err(ImportError::MissingFile {
                    path,
                    what: "a shard named by model.safetensors.index.json",
                });
            }
            let shard = Shard::open(path)?;
            for name in shard.meta.tensors().keys() {
                index.insert(name.clone(), shards.len());
            }
            shards.push(shard);
        }
        Ok(Tensors { shards, index })
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let shard = &self.shards[*self.index.get(name)?];
        let info = shard.meta.info(name)?;
        let base = 8 + shard.header_len;
        let (a, b) = info.data_offsets;
        let bytes: &[u8] = shard.map.as_deref().unwrap_or(&[]);
        Some(TensorRef {
            dtype: info.dtype,
            shape: &info.shape,
            data: bytes.get(base + a..base + b)?,
        })
    }

    pub(crate) fn need(&self, name: &str) -> Result<TensorRef<'_>, ImportError> {
        self.get(name).ok_or_else(|| ImportError::MissingTensor {
            name: name.to_string(),
        })
    }
}

impl TensorRef<'_> {
    /// The GGUF type holding the same values: the dtypes we read, all exact in f32.
    pub(crate) fn ggml_type(&self, name: &str) -> Result<GgmlType, ImportError> {
        match self.dtype {
            Dtype::F32 => Ok(GgmlType::F32),
            Dtype::F16 => Ok(GgmlType::F16),
            Dtype::BF16 => Ok(GgmlType::BF16),
            other => Err(ImportError::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }

    pub(crate) fn check_dtype(&self, name: &str) -> Result<(), ImportError> {
        self.ggml_type(name).map(|_| ())
    }

    /// The bytes of the first `n` elements (`shape` still describes the whole tensor).
    pub(crate) fn first(self, n: usize, name: &str) -> Result<Self, ImportError> {
        let end = n.saturating_mul(self.ggml_type(name)?.type_size());
        Ok(TensorRef {
            data: &self.data[..end.min(self.data.len())],
            ..self
        })
    }

    /// The values of `data` as f32 (exact for every accepted dtype).
    pub(crate) fn to_f32(&self, name: &str) -> Result<Vec<f32>, ImportError> {
        let ty = self.ggml_type(name)?;
        let mut v = vec![0.0f32; self.data.len() / ty.type_size()];
        lingqiao_kernels::dequantize_row(ty, self.data, &mut v)?;
        Ok(v)
    }
}

/// `LlamaModel.permute` in llama.cpp's converter: within each head, HF orders Q/K rows as
/// two halves (rotate_half RoPE); ggml's NORM RoPE rotates adjacent pairs, so row
/// `s * hd/2 + j` of a head moves to `2j + s`. `data` is (n_head * hd, cols).
pub(crate) fn permute_rows(data: &[f32], n_head: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols;
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0.0f32; data.len()];
    for h in 0..n_head {
        for j in 0..half {
            for s in 0..2 {
                let src = (h * hd + s * half + j) * cols;
                let dst = (h * hd + 2 * j + s) * cols;
                out[dst..dst + cols].copy_from_slice(&data[src..src + cols]);
            }
        }
    }
    out
}
