//! The tensor index: names, shapes, types and where each tensor's bytes live.

use std::collections::HashSet;

use crate::cursor::Cursor;
use crate::{GgmlType, GgufError};

/// ggml tensors have at most four dimensions (GGML_MAX_DIMS).
pub const MAX_DIMS: usize = 4;

/// One tensor's description from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` = ne0 = row length (contiguous in memory).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute file offset of the tensor's first byte.
    pub offset: u64,
    /// Size of the tensor's data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Validated at open: the product does not overflow.
        self.dims.iter().product()
    }

    /// ne[i] as ggml sees it: 1 past the stored dimensions.
    pub fn ne(&self, i: usize) -> u64 {
        self.dims.get(i).copied().unwrap_or(1)
    }

    /// Number of rows (elements / row length).
    pub fn n_rows(&self) -> u64 {
        self.n_elements() / self.ne(0)
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        self.n_bytes / self.n_rows()
    }
}

/// A tensor info as read, before its offset is made absolute and checked.
pub(crate) struct RawTensor {
    pub(crate) info: TensorInfo,
    /// Where this tensor's header entry starts, for error messages.
    pub(crate) header_offset: u64,
}

/// Smallest tensor info on disk: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

pub(crate) fn read_tensor_infos(
    c: &mut Cursor<'_>,
    n_tensors: u64,
) -> Result<Vec<RawTensor>, GgufError> {
    c.require_n(n_tensors, MIN_TENSOR_INFO_SIZE, "tensor infos")?;
    let mut out = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let header_offset = c.pos();
        let t = read_tensor_info(c)?;
        if !names.insert(t.name.clone()) {
            return Err(GgufError::DuplicateTensor {
                name: t.name,
                offset: header_offset,
            });
        }
        out.push(RawTensor {
            info: t,
            header_offset,
        });
    }
    Ok(out)
}

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<TensorInfo, GgufError> {
    let name = c.string("tensor name")?;
    let dims_offset = c.pos();
    let n_dims = c.u32("tensor n_dims")?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            name,
            n_dims,
            offset: dims_offset,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for axis in 0..n_dims as usize {
        let at = c.pos();
        let d = c.u64("tensor dimension")?;
        // ggml rejects empty tensors (its overflow check divides by ne[1]); an empty
        // weight in a model file is a corrupt file.
        if d == 0 {
            return Err(GgufError::ZeroDim {
                name,
                axis,
                offset: at,
            });
        }
        dims.push(d);
    }
    let ty_offset = c.pos();
    let ty_id = c.u32("tensor type")?;
    let ty = GgmlType::from_u32(ty_id).ok_or_else(|| GgufError::UnknownTensorType {
        name: name.clone(),
        ty: ty_id,
        offset: ty_offset,
    })?;
    let offset = c.u64("tensor offset")?;

    let overflow = || GgufError::ShapeOverflow {
        name: name.clone(),
        offset: dims_offset,
    };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ty.block_size() as u64) {
        return Err(GgufError::PartialBlock {
            name,
            ty,
            ne0,
            block_size: ty.block_size(),
            offset: dims_offset,
        });
    }
    let row = ty.row_bytes(ne0).ok_or_else(overflow)?;
    let n_bytes = row.checked_mul(n_elements / ne0).ok_or_else(overflow)?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        n_bytes,
    })
}
