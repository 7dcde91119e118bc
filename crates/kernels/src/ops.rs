//! Matrix operations on quantized weights: the matmul every linear layer runs, and row lookup.

use crate::{
    GgmlType, KernelError, Kernels, dequantize_row, quantize_row, row_bytes, vec_dot_type,
};
use rayon::prelude::*;
use std::borrow::Cow;

/// A 2-D weight tensor in ggml order: `rows` rows (ne1) of `cols` elements (ne0), row-major,
/// each row `row_bytes(ty, cols)` bytes.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    /// ne1: output features.
    pub rows: usize,
    /// ne0: input features, the dot-product length.
    pub cols: usize,
}

impl WeightView<'_> {
    /// Checks that `data` holds exactly `rows` rows of `cols` elements; returns the row size.
    pub fn validate(&self) -> Result<usize, KernelError> {
        let rb = row_bytes(self.ty, self.cols)?;
        let expected = rb.checked_mul(self.rows).ok_or(KernelError::ByteLength {
            what: "weight tensor",
            expected: usize::MAX,
            got: self.data.len(),
        })?;
        if self.data.len() != expected {
            return Err(KernelError::ByteLength {
                what: "weight tensor",
                expected,
                got: self.data.len(),
            });
        }
        Ok(rb)
    }
}

/// Rows per unit of parallel work: small enough to balance the threads, large enough that the
/// per-task cost of rayon stays negligible.
fn rows_per_task(rows: usize) -> usize {
    let tasks = rayon::current_num_threads() * 8;
    rows.div_ceil(tasks).clamp(16, 1024)
}

/// `out[t * rows + r] = dot(w row r, x[t * cols..(t + 1) * cols])` for t in 0..n_tokens.
///
/// Each token's activations are quantized to `vec_dot_type(w.ty)` once; rows are split across
/// the current rayon pool, and every output element is one whole `vec_dot` call, so the result
/// is the same for any thread count. For several tokens each row is run against all tokens in
/// turn while its blocks are in cache.
///
/// Panics if the shapes disagree: they are fixed by the model and checked when it is loaded.
pub fn matmul(w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    matmul_with(Kernels::get(), w, x, n_tokens, out)
}

/// [`matmul`] with an explicit kernel table (tests compare tables).
pub fn matmul_with(k: &Kernels, w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    let w_row = w.validate().expect("matmul: invalid weight view");
    assert_eq!(
        x.len(),
        n_tokens * cols,
        "matmul: activations are not n_tokens x cols"
    );
    assert_eq!(
        out.len(),
        n_tokens * rows,
        "matmul: output is not n_tokens x rows"
    );
    let vdt = vec_dot_type(w.ty);
    let x_row = row_bytes(vdt, cols).expect("checked by validate: same block size");

    let xq: Cow<[u8]> = if vdt == GgmlType::F32 {
        Cow::Borrowed(bytemuck::cast_slice(x))
    } else {
        let mut buf = vec![0u8; n_tokens * x_row];
        buf.par_chunks_mut(x_row)
            .zip(x.par_chunks(cols))
            .for_each(|(dst, src)| {
                quantize_row(vdt, src, dst).expect("row sizes computed above");
            });
        Cow::Owned(buf)
    };
    let dot = k.vec_dot_fn(w.ty);
    let chunk = rows_per_task(rows);

    if n_tokens == 1 {
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
            for (i, o) in o.iter_mut().enumerate() {
                let r = c * chunk + i;
                *o = dot(cols, &w.data[r * w_row..(r + 1) * w_row], &xq);
            }
        });
        return;
    }

    // Row-major scratch (rows, n_tokens) so each task owns a contiguous slice; transposed after.
    let mut tmp = vec![0f32; rows * n_tokens];
    tmp.par_chunks_mut(chunk * n_tokens)
        .enumerate()
        .for_each(|(c, o)| {
            for (i, o_row) in o.chunks_exact_mut(n_tokens).enumerate() {
                let r = c * chunk + i;
                let wr = &w.data[r * w_row..(r + 1) * w_row];
                for (t, o) in o_row.iter_mut().enumerate() {
                    *o = dot(cols, wr, &xq[t * x_row..(t + 1) * x_row]);
                }
            }
        });
    for (r, v) in tmp.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in v.iter().enumerate() {
            out[t * rows + r] = v;
        }
    }
}

/// Dequantize row `row` of `w` into `out` (`w.cols` elements): the embedding lookup.
pub fn get_row(w: &WeightView, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let rb = w.validate()?;
    if row >= w.rows {
        return Err(KernelError::RowOutOfRange { row, rows: w.rows });
    }
    if out.len() != w.cols {
        return Err(KernelError::ElementCount {
            what: "get_row output",
            expected: w.cols,
            got: out.len(),
        });
    }
    dequantize_row(w.ty, &w.data[row * rb..(row + 1) * rb], out)
}
