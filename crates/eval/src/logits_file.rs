//! The saved-logits file: a base model's scored log-probabilities, so a quantized copy can
//! be compared with it later without loading both.
//!
//! Layout, all little-endian:
//!
//! | field      | type            | meaning                                             |
//! |------------|-----------------|-----------------------------------------------------|
//! | magic      | 8 bytes         | `LQLOGITS`                                          |
//! | version    | u32             | 1                                                   |
//! | n_vocab    | u32             | width of every logits row                           |
//! | n_ctx      | u32             | chunk length                                        |
//! | n_chunk    | u32             | chunks evaluated                                    |
//! | first      | u32             | first scored position of a chunk (`n_ctx / 2`)      |
//! | bos        | u32             | token put at the start of each chunk, or u32::MAX   |
//! | tokens     | u32 x n_chunk*n_ctx | the evaluated text, before BOS replacement      |
//! | records    | n_chunk x (n_ctx-1-first) records | see [`crate::row`]: per scored position, scale, floor, exact NLL, top token, u16 log-probs |
//!
//! Keeping the tokens lets a comparison prove it scores the same text the same way; the
//! file length is checked against the header so a cut-off file is refused up front.
//! qwen2.5's vocabulary of 151,936 makes a record 297 KiB: 8 chunks of 512 cost 620 MB.

use crate::error::EvalError;
use crate::row::record_bytes;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LQLOGITS";
const VERSION: u32 = 1;
/// magic + six u32 fields.
const FIXED_HEADER: usize = 8 + 6 * 4;

/// What a logits file says about the run that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogitsHeader {
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub n_chunk: usize,
    pub first: usize,
    pub bos: Option<u32>,
    /// `n_chunk * n_ctx` tokens.
    pub tokens: Vec<u32>,
}

impl LogitsHeader {
    /// Scored positions per chunk.
    pub fn rows_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.first
    }

    /// Bytes of one chunk's records.
    pub fn chunk_bytes(&self) -> usize {
        self.rows_per_chunk() * record_bytes(self.n_vocab)
    }

    fn file_bytes(&self) -> u64 {
        (FIXED_HEADER + 4 * self.tokens.len()) as u64
            + self.n_chunk as u64 * self.chunk_bytes() as u64
    }
}

/// Writes a logits file while [`crate::perplexity`] runs.
pub struct LogitsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl LogitsWriter {
    pub fn create(path: impl AsRef<Path>) -> Result<LogitsWriter, EvalError> {
        let path = path.as_ref().to_path_buf();
        let f = File::create(&path).map_err(|e| EvalError::io(&path, e))?;
        Ok(LogitsWriter {
            path,
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), EvalError> {
        self.out
            .write_all(bytes)
            .map_err(|e| EvalError::io(&self.path, e))
    }

    pub(crate) fn header(&mut self, h: &LogitsHeader) -> Result<(), EvalError> {
        let mut b = Vec::with_capacity(FIXED_HEADER + 4 * h.tokens.len());
        b.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            h.n_vocab as u32,
            h.n_ctx as u32,
            h.n_chunk as u32,
            h.first as u32,
            h.bos.unwrap_or(u32::MAX),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for t in &h.tokens {
            b.extend_from_slice(&t.to_le_bytes());
        }
        self.write(&b)
    }

    pub(crate) fn chunk(&mut self, records: &[u8]) -> Result<(), EvalError> {
        self.write(records)
    }

    pub(crate) fn finish(&mut self) -> Result<(), EvalError> {
        self.out.flush().map_err(|e| EvalError::io(&self.path, e))
    }
}

/// A logits file opened for comparison: header read and checked, records streamed one
/// chunk at a time.
pub struct BaseLogits {
    path: PathBuf,
    header: LogitsHeader,
    input: BufReader<File>,
}

impl BaseLogits {
    pub fn open(path: impl AsRef<Path>) -> Result<BaseLogits, EvalError> {
        let path = path.as_ref().to_path_buf();
        let f = File::open(&path).map_err(|e| EvalError::io(&path, e))?;
        let len = f.metadata().map_err(|e| EvalError::io(&path, e))?.len();
        let mut input = BufReader::with_capacity(1 << 20, f);
        let not = |why: &str| EvalError::NotLogitsFile {
            path: path.clone(),
            why: why.to_string(),
        };
        let mut fixed = [0u8; FIXED_HEADER];
        if len < FIXED_HEADER as u64 {
            return Err(not("shorter than the header"));
        }
        input
            .read_exact(&mut fixed)
            .map_err(|e| EvalError::io(&path, e))?;
        if &fixed[..8] != MAGIC {
            return Err(not("wrong magic"));
        }
        let field = |i: usize| {
            let o = 8 + 4 * i;
            u32::from_le_bytes(fixed[o..o + 4].try_into().expect("4 bytes"))
        };
        if field(0) != VERSION {
            return Err(not(&format!(
                "version {}, this build reads {VERSION}",
                field(0)
            )));
        }
        let (n_vocab, n_ctx, n_chunk, first) = (
            field(1) as usize,
            field(2) as usize,
            field(3) as usize,
            field(4) as usize,
        );
        if n_vocab == 0 || n_ctx < 4 || first + 1 >= n_ctx || n_chunk == 0 {
            return Err(not(&format!(
                "impossible sizes: n_vocab {n_vocab}, n_ctx {n_ctx}, first {first}, n_chunk {n_chunk}"
            )));
        }
        let n_tokens = n_chunk
            .checked_mul(n_ctx)
            .filter(|&n| ((FIXED_HEADER + 4 * n) as u64) <= len)
            .ok_or_else(|| not("token count larger than the file"))?;
        let mut raw = vec![0u8; 4 * n_tokens];
        input
            .read_exact(&mut raw)
            .map_err(|e| EvalError::io(&path, e))?;
        let header = LogitsHeader {
            n_vocab,
            n_ctx,
            n_chunk,
            first,
            bos: Some(field(5)).filter(|&b| b != u32::MAX),
            tokens: raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        };
        let expected = header.file_bytes();
        if len != expected {
            return Err(EvalError::Truncated {
                path,
                found: len,
                expected,
            });
        }
        Ok(BaseLogits {
            path,
            header,
            input,
        })
    }

    pub fn header(&self) -> &LogitsHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Go back to the first chunk's records (each comparison reads the file from there).
    pub(crate) fn rewind(&mut self) -> Result<(), EvalError> {
        let start = (FIXED_HEADER + 4 * self.header.tokens.len()) as u64;
        self.input
            .seek(SeekFrom::Start(start))
            .map(drop)
            .map_err(|e| EvalError::io(&self.path, e))
    }

    /// The next chunk's records into `buf` (resized to [`LogitsHeader::chunk_bytes`]).
    pub(crate) fn next_chunk(&mut self, buf: &mut Vec<u8>) -> Result<(), EvalError> {
        buf.resize(self.header.chunk_bytes(), 0);
        self.input
            .read_exact(buf)
            .map_err(|e| EvalError::io(&self.path, e))
    }
}
