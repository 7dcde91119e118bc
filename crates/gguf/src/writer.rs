//! GGUF writer: the inverse of [`GgufFile`](crate::GgufFile), for `quantize` and `import`.
//!
//! Layout as gguf-py's `GGUFWriter` and llama.cpp's `gguf_write_to_file` produce it (version
//! 3): header, key/values in insertion order, tensor infos in insertion order, zero padding
//! to `general.alignment` (32 when absent), then each tensor's bytes padded to the
//! alignment. The header is complete before any tensor data is written, so tensors can be
//! produced one at a time (quantized in parallel, streamed to disk) without holding the
//! model in memory.

use std::io::Write;

use thiserror::Error;

use crate::value::{Array, Value, ValueType};
use crate::{DEFAULT_ALIGNMENT, GgmlType, MAX_DIMS, Metadata, TensorInfo, keys};

/// What can go wrong while planning or writing a GGUF file.
#[derive(Debug, Error)]
pub enum GgufWriteError {
    #[error("metadata key {key:?} is empty or longer than 65535 bytes")]
    BadKey { key: String },
    #[error("general.alignment must be a non-zero multiple of 8 stored as u32, got {value:?}")]
    BadAlignment { value: Value },
    #[error("tensor {name:?} is added twice")]
    DuplicateTensor { name: String },
    #[error("tensor {name:?}: {n_dims} dimensions (1 to {MAX_DIMS} allowed)")]
    BadDims { name: String, n_dims: usize },
    #[error("tensor {name:?}: a dimension is zero")]
    ZeroDim { name: String },
    #[error("tensor {name:?} of type {ty}: rows of {row} elements are not whole blocks of {block}")]
    PartialBlock {
        name: String,
        ty: GgmlType,
        row: u64,
        block: u64,
    },
    #[error("tensor {name:?}: its size overflows u64")]
    Overflow { name: String },
    #[error("tensor data for {name:?} has {got} bytes, expected {expected}")]
    DataSize {
        name: String,
        expected: u64,
        got: u64,
    },
    #[error("tensor data written for {written} of {total} tensors")]
    Incomplete { written: usize, total: usize },
    #[error("more tensor data than the {total} tensors planned")]
    TooMuchData { total: usize },
    #[error("writing the file: {0}")]
    Io(#[from] std::io::Error),
}

/// A GGUF file being planned: metadata and tensor shapes first, then the data.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer holding every key/value of `md` in its order (no tensors).
    pub fn with_metadata(md: &Metadata) -> Self {
        GgufWriter {
            kv: md.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            tensors: Vec::new(),
        }
    }

    /// Set `key` to `value`; a key set twice keeps its first position and its last value.
    pub fn set(&mut self, key: impl Into<String>, value: Value) -> Result<(), GgufWriteError> {
        let key = key.into();
        if key.is_empty() || key.len() > u16::MAX as usize {
            return Err(GgufWriteError::BadKey { key });
        }
        if key == keys::GENERAL_ALIGNMENT
            && !matches!(value, Value::U32(a) if a > 0 && a.is_multiple_of(8))
        {
            return Err(GgufWriteError::BadAlignment { value });
        }
        match self.kv.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.kv.push((key, value)),
        }
        Ok(())
    }

    /// Remove `key` if present.
    pub fn remove(&mut self, key: &str) {
        self.kv.retain(|(k, _)| k != key);
    }

    /// Key/values in the order they will be written.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kv.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn alignment(&self) -> u64 {
        match self.get(keys::GENERAL_ALIGNMENT) {
            Some(Value::U32(a)) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Plan a tensor of type `ty` with ggml dims (`dims[0]` = row length). Data must later
    /// be written in the order tensors are added.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[u64],
    ) -> Result<(), GgufWriteError> {
        let name = name.into();
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufWriteError::DuplicateTensor { name });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(GgufWriteError::BadDims {
                name,
                n_dims: dims.len(),
            });
        }
        if dims.contains(&0) {
            return Err(GgufWriteError::ZeroDim { name });
        }
        let block = ty.block_size() as u64;
        if !dims[0].is_multiple_of(block) {
            return Err(GgufWriteError::PartialBlock {
                name,
                ty,
                row: dims[0],
                block,
            });
        }
        let n_bytes = ty
            .row_bytes(dims[0])
            .and_then(|row| dims[1..].iter().try_fold(row, |acc, &d| acc.checked_mul(d)));
        let Some(n_bytes) = n_bytes else {
            return Err(GgufWriteError::Overflow { name });
        };
        self.tensors.push(TensorInfo {
            name,
            dims: dims.to_vec(),
            ty,
            offset: 0,
            n_bytes,
        });
        Ok(())
    }

    /// The planned tensors; `offset` is relative to the start of the data section.
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let align = self.alignment();
        let mut offset = 0u64;
        self.tensors
            .iter()
            .map(|t| {
                let info = TensorInfo {
                    offset,
                    ..t.clone()
                };
                offset = (offset + t.n_bytes).next_multiple_of(align);
                info
            })
            .collect()
    }

    /// Total file size once every tensor is written.
    pub fn file_size(&self) -> u64 {
        let align = self.alignment();
        let data: u64 = self
            .tensors
            .iter()
            .map(|t| t.n_bytes.next_multiple_of(align))
            .sum();
        self.header().len() as u64 + data
    }

    /// Header, key/values and tensor infos, padded to the start of the data section.
    fn header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"GGUF");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            put_str(&mut h, k);
            h.extend_from_slice(&(value_type(v) as u32).to_le_bytes());
            put_value(&mut h, v);
        }
        for t in self.tensors() {
            put_str(&mut h, &t.name);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&(t.ty as u32).to_le_bytes());
            h.extend_from_slice(&t.offset.to_le_bytes());
        }
        let padded = (h.len() as u64).next_multiple_of(self.alignment());
        h.resize(padded as usize, 0);
        h
    }

    /// Write the header to `w` and return the writer that takes the tensors' data.
    pub fn start<W: Write>(self, mut w: W) -> Result<TensorDataWriter<W>, GgufWriteError> {
        w.write_all(&self.header())?;
        Ok(TensorDataWriter {
            alignment: self.alignment(),
            tensors: self.tensors,
            next: 0,
            w,
        })
    }
}

/// Takes each planned tensor's bytes in order, padding between them.
pub struct TensorDataWriter<W: Write> {
    alignment: u64,
    tensors: Vec<TensorInfo>,
    next: usize,
    w: W,
}

impl<W: Write> TensorDataWriter<W> {
    /// The tensor whose data is expected next, if any.
    pub fn next_tensor(&self) -> Option<&TensorInfo> {
        self.tensors.get(self.next)
    }

    /// Write the next tensor's data (exactly its planned size).
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<(), GgufWriteError> {
        let Some(t) = self.tensors.get(self.next) else {
            return Err(GgufWriteError::TooMuchData {
                total: self.tensors.len(),
            });
        };
        if data.len() as u64 != t.n_bytes {
            return Err(GgufWriteError::DataSize {
                name: t.name.clone(),
                expected: t.n_bytes,
                got: data.len() as u64,
            });
        }
        self.w.write_all(data)?;
        let pad = t.n_bytes.next_multiple_of(self.alignment) - t.n_bytes;
        self.w.write_all(&vec![0u8; pad as usize])?;
        self.next += 1;
        Ok(())
    }

    /// Check every tensor was written, flush, and give the sink back.
    pub fn finish(mut self) -> Result<W, GgufWriteError> {
        if self.next != self.tensors.len() {
            return Err(GgufWriteError::Incomplete {
                written: self.next,
                total: self.tensors.len(),
            });
        }
        self.w.flush()?;
        Ok(self.w)
    }
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> ValueType {
    match v {
        Value::U8(_) => ValueType::U8,
        Value::I8(_) => ValueType::I8,
        Value::U16(_) => ValueType::U16,
        Value::I16(_) => ValueType::I16,
        Value::U32(_) => ValueType::U32,
        Value::I32(_) => ValueType::I32,
        Value::U64(_) => ValueType::U64,
        Value::I64(_) => ValueType::I64,
        Value::F32(_) => ValueType::F32,
        Value::F64(_) => ValueType::F64,
        Value::Bool(_) => ValueType::Bool,
        Value::String(_) => ValueType::String,
        Value::Array(_) => ValueType::Array,
    }
}

fn array_type(a: &Array) -> ValueType {
    match a {
        Array::U8(_) => ValueType::U8,
        Array::I8(_) => ValueType::I8,
        Array::U16(_) => ValueType::U16,
        Array::I16(_) => ValueType::I16,
        Array::U32(_) => ValueType::U32,
        Array::I32(_) => ValueType::I32,
        Array::U64(_) => ValueType::U64,
        Array::I64(_) => ValueType::I64,
        Array::F32(_) => ValueType::F32,
        Array::F64(_) => ValueType::F64,
        Array::Bool(_) => ValueType::Bool,
        Array::String(_) => ValueType::String,
        Array::Array(_) => ValueType::Array,
    }
}

fn put_value(h: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => h.push(*x),
        Value::I8(x) => h.push(*x as u8),
        Value::U16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => h.push(u8::from(*x)),
        Value::String(s) => put_str(h, s),
        Value::Array(a) => put_array(h, a),
    }
}

fn put_array(h: &mut Vec<u8>, a: &Array) {
    h.extend_from_slice(&(array_type(a) as u32).to_le_bytes());
    fn each<T>(h: &mut Vec<u8>, xs: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
        h.extend_from_slice(&(xs.len() as u64).to_le_bytes());
        for x in xs {
            f(h, x);
        }
    }
    match a {
        Array::U8(xs) => each(h, xs, |h, x| h.push(*x)),
        Array::I8(xs) => each(h, xs, |h, x| h.push(*x as u8)),
        Array::U16(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::I16(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::U32(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::I32(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::U64(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::I64(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::F32(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::F64(xs) => each(h, xs, |h, x| h.extend_from_slice(&x.to_le_bytes())),
        Array::Bool(xs) => each(h, xs, |h, x| h.push(u8::from(*x))),
        Array::String(xs) => each(h, xs, |h, s| put_str(h, s)),
        Array::Array(xs) => each(h, xs, put_array),
    }
}
