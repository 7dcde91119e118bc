//! The reader's error type. Every variant caused by the file's bytes carries the byte
//! offset where the problem was found, so a bad file can be inspected with a hex dump.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a GGUF file: magic {found:02x?} at offset 0 (expected \"GGUF\")")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {version} at offset {offset} (supported: 2, 3)")]
    UnsupportedVersion { version: u32, offset: u64 },
    #[error("big-endian GGUF (version {version} byte-swapped at offset {offset}) is not supported")]
    BigEndian { version: u32, offset: u64 },
    #[error("file truncated at offset {offset}: {what} needs {needed} bytes, {remaining} remain")]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        remaining: u64,
    },
    #[error("unknown metadata value type {ty} at offset {offset}")]
    UnknownValueType { ty: u32, offset: u64 },
    #[error("invalid bool byte {byte} at offset {offset}")]
    InvalidBool { byte: u8, offset: u64 },
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: u64 },
    #[error("duplicate metadata key {key:?} at offset {offset}")]
    DuplicateKey { key: String, offset: u64 },
    #[error("metadata arrays nested deeper than {max} at offset {offset}")]
    NestingTooDeep { max: usize, offset: u64 },
    #[error(
        "invalid general.alignment {alignment} at offset {offset} (must be a nonzero power of two)"
    )]
    BadAlignment { alignment: u64, offset: u64 },
    #[error("tensor {name:?} at offset {offset}: unknown tensor type {ty}")]
    UnknownTensorType { name: String, ty: u32, offset: u64 },
    #[error("duplicate tensor name {name:?} at offset {offset}")]
    DuplicateTensor { name: String, offset: u64 },
    #[error("tensor {name:?} at offset {offset}: {n_dims} dimensions (at most 4)")]
    TooManyDims {
        name: String,
        n_dims: u32,
        offset: u64,
    },
    #[error("tensor {name:?} at offset {offset}: dimension {axis} is zero")]
    ZeroDim {
        name: String,
        axis: usize,
        offset: u64,
    },
    #[error("tensor {name:?} at offset {offset}: element count or byte size overflows u64")]
    ShapeOverflow { name: String, offset: u64 },
    #[error(
        "tensor {name:?} at offset {offset}: row length {ne0} is not a multiple of the {ty} block size {block_size}"
    )]
    PartialBlock {
        name: String,
        ty: crate::GgmlType,
        ne0: u64,
        block_size: usize,
        offset: u64,
    },
    #[error(
        "tensor {name:?} at offset {offset}: data offset {data_offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        name: String,
        data_offset: u64,
        alignment: u64,
        offset: u64,
    },
    #[error(
        "tensor {name:?} at offset {offset}: data [{start}, {end}) runs past the end of the file ({file_len} bytes)"
    )]
    TensorOutOfBounds {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
        offset: u64,
    },
    #[error(
        "tensor {name:?} (data at {start}) overlaps tensor {other:?} (data ends at {other_end})"
    )]
    TensorOverlap {
        name: String,
        start: u64,
        other: String,
        other_end: u64,
    },
    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },
    #[error("metadata key {key:?} (at offset {offset}) is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
        offset: u64,
    },
}
