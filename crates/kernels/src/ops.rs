//! Matrix operations on quantized weights: the matmul every linear layer runs, and row lookup.

use crate::tile::{ActTile, Format, TILE_ROWS, WeightTile};
use crate::{
    GgmlType, KernelError, Kernels, dequantize_row, quantize_row_with, row_bytes, vec_dot_type,
};
use lingqiao_pool::SharedMut;
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

/// Rows per unit of parallel work in a product that runs many tokens (a prompt; decoding
/// streams instead, see [`STREAM_GRAIN`]), a multiple of 4: about a quarter of the matrix's
/// share per thread, but at least 16 KiB of weights (a few microseconds: small enough to
/// balance threads on a noisy machine) and at most 1 MiB, and no more than ~64 units per
/// thread, so a vocabulary projection (150k-260k rows) is not handed out in thousands of
/// pieces.
///
/// Long units matter when decoding a model larger than the caches: each thread then
/// streams through long runs of consecutive rows, which the hardware prefetchers follow. On
/// the 2-core VM this project is measured on, qwen15 on 2 threads decoded 15.9 tok/s with
/// 16 KiB units and 18.5 with 1 MiB ones (4 MiB: 16.0, the threads no longer balance).
fn rows_per_chunk(rows: usize, row_bytes: usize) -> usize {
    let threads = lingqiao_pool::current_num_threads();
    let share = rows * row_bytes / (4 * threads);
    let by_size = share.clamp(16 << 10, 1 << 20) / row_bytes.max(1);
    let by_count = rows.div_ceil(64 * threads);
    by_size.max(by_count).max(4).next_multiple_of(4)
}

/// Bytes of weight rows per unit of work when a product streams its weights (decoding):
/// the threads walk contiguous shares of the rows ([`lingqiao_pool::for_each_split`]), so
/// the unit only sets how finely a thread that finishes early can take over the rest of
/// another's share. 32 KiB is a few microseconds of reading.
///
/// Measured on the 2-core VM, two threads, against the alternating chunks of
/// [`rows_per_chunk`] (16 KiB to 1 MiB): decode went from 43.0-45.0 to 46.6-47.0 tok/s on
/// qwen05 and from 65.5-67.7 to 72.0-75.1 on gemma3, whose products are small enough that
/// their chunks were short; qwen15's (1 MiB chunks already) and smollm2's stayed within noise.
const STREAM_GRAIN: usize = 32 << 10;

/// Tokens per tile kernel call (the results pass through a stack buffer of this many x 16).
const TILE_TOKENS: usize = 64;

/// How many bytes ahead of the row being multiplied the weights are prefetched, one row's
/// worth of cache lines per row. A decode step streams every weight once, and the hardware
/// prefetcher alone leaves the kernels waiting on memory: on the 2-core VM this project is
/// measured on, prefetching 2 KiB ahead took single-thread decode from 17-26 to 46-72 tok/s
/// (smollm2) and from 7.7 to 16-18 tok/s (qwen05); 0.5-1 KiB ahead was slower, 4 KiB the same.
const PREFETCH_AHEAD: usize = 2048;

/// Weight rows longer than this (bytes) are decoded with the table's prefetching kernel
/// ([`crate::VecDotPfFn`]) where it has one, which asks for the bytes [`PREFETCH_AHEAD`] on a
/// group of blocks at a time instead of a whole row's worth at the row's start: a burst of
/// 80-115 prefetches (qwen15's 5-7 KB ffn_down rows) leaves the memory queue idle while the
/// row is computed. `lingqiao-kernels --example decode_stream` on qwen15, two threads: ffn_down
/// went from 19-21 to 21-24 GB/s, all products together about +3% (4 of 4 alternated runs).
/// Rows of 2 KiB and less (gate, up, q/k/v) are as fast or faster with one burst per row.
const LONG_ROW: usize = 2048;

/// Ask for the cache lines of `bytes` (if any) ahead of use.
#[inline(always)]
pub fn prefetch(bytes: Option<&[u8]>) {
    if let Some(b) = bytes {
        prefetch_lines::<L1>(b);
    }
}

/// Ask for the cache lines of `bytes` to be brought into L2 (not L1): for data read a little
/// later and in larger amounts than L1 holds, such as the rows of a KV cache that the weight
/// stream of the previous token evicted.
#[inline(always)]
pub fn prefetch_l2(bytes: &[u8]) {
    prefetch_lines::<L2>(bytes)
}

/// Prefetch hints of [`prefetch_lines`] (x86's `_MM_HINT_T0` and `_MM_HINT_T1`).
pub(crate) const L1: i32 = 3;
pub(crate) const L2: i32 = 2;

/// One prefetch with hint `HINT` ([`L1`] or [`L2`]) every 64 bytes of `bytes`, from its
/// first. When `bytes` does not start on a line, the line holding its last bytes is left out:
/// the callers ask for consecutive regions, so the next region's first prefetch covers it.
/// Asking for it twice (one prefetch per line touched) made qwen15's decode products 5-20%
/// slower on two threads (`decode_stream`, three alternated runs: 18.0-22.0 against
/// 22.5-24.7 tok/s).
#[inline(always)]
pub(crate) fn prefetch_lines<const HINT: i32>(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetch is a hint; the address is inside a live slice.
        unsafe { core::arch::x86_64::_mm_prefetch::<HINT>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The kernels one-token decoding runs for a weight type (see [`decode_rows`]).
#[derive(Clone, Copy, Debug)]
pub struct DecodeKernels {
    pub dot: crate::VecDotFn,
    /// The prefetching one-row kernel, used for rows longer than [`LONG_ROW`] where the table
    /// has one.
    pub pf: Option<crate::VecDotPfFn>,
    /// The four-row kernel, used where the table has one and there is no prefetching kernel.
    pub r4: Option<crate::VecDotR4Fn>,
}

impl DecodeKernels {
    /// What `k` runs for one-token products of `ty` with rows of `row_bytes`.
    pub fn of(k: &Kernels, ty: GgmlType, row_bytes: usize) -> Self {
        DecodeKernels {
            dot: k.vec_dot_fn(ty),
            pf: k.vec_dot_pf_fn(ty).filter(|_| row_bytes > LONG_ROW),
            r4: k.vec_dot_r4_fn(ty),
        }
    }
}

/// One-token products of rows `rows` of `matrix` (rows of `w_row` bytes, `cols` elements)
/// with the quantized activation row `x`, into `out` (one value per row), as decoding runs
/// them: four rows a call where there is a four-row kernel, each call asking for the next
/// four rows' worth of bytes [`PREFETCH_AHEAD`] past the end of its rows a few lines per
/// block (one burst of four rows' lines per call was slower); else a row a call, asking for
/// the row's worth of bytes [`PREFETCH_AHEAD`] on (spread over the row by the prefetching
/// kernel for long rows, in one burst before the row otherwise). Prefetches stop at the
/// matrix's end. `kernel_speed` times this same loop.
pub fn decode_rows(
    k: &DecodeKernels,
    cols: usize,
    matrix: &[u8],
    w_row: usize,
    rows: std::ops::Range<usize>,
    x: &[u8],
    out: &mut [f32],
) {
    let len = matrix.len();
    let mut w_rows = &matrix[rows.start * w_row..rows.end * w_row];
    let mut o = &mut out[..rows.len()];
    let mut first = rows.start;
    if let (Some(r4), None) = (k.r4, k.pf) {
        let quads = o.len() / 4;
        for q in 0..quads {
            let at = (first + 4 * q + 4) * w_row + PREFETCH_AHEAD;
            let pf = &matrix[at.min(len)..(at + 4 * w_row).min(len)];
            let out4: &mut [f32; 4] = (&mut o[4 * q..4 * q + 4]).try_into().expect("4");
            r4(cols, &w_rows[4 * q * w_row..], w_row, x, pf, out4);
        }
        o = &mut o[4 * quads..];
        w_rows = &w_rows[4 * quads * w_row..];
        first += 4 * quads;
    }
    for (i, (o, wr)) in o.iter_mut().zip(w_rows.chunks_exact(w_row)).enumerate() {
        let ahead = (first + i) * w_row + PREFETCH_AHEAD;
        let pf_bytes = &matrix[ahead.min(len)..(ahead + w_row).min(len)];
        *o = match k.pf {
            Some(pf) => pf(cols, wr, x, pf_bytes),
            None => {
                prefetch_lines::<L1>(pf_bytes);
                (k.dot)(cols, wr, x)
            }
        };
    }
}

/// Tokens per tile of prompt processing: their activations (64 x one quantized row, e.g.
/// 64 x 952 bytes for 896 columns) stay in L1/L2 while a chunk of weight rows runs over them.
const TOKEN_TILE: usize = 64;

/// `out[t * rows + r] = dot(w row r, x[t * cols..(t + 1) * cols])` for t in 0..n_tokens.
///
/// Each token's activations are quantized to `vec_dot_type(w.ty)` once; rows are handed out
/// in chunks to the threads of the current [`lingqiao_pool`] pool, and every output element
/// is one whole kernel call, so the result is the same for any thread count. For several
/// tokens, each weight row runs against four tokens per kernel call (see
/// [`crate::VecDotX4Fn`]), a tile of tokens at a time.
///
/// Panics if the shapes disagree: they are fixed by the model and checked when it is loaded.
pub fn matmul(w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    matmul_with(Kernels::get(), w, x, n_tokens, out)
}

/// [`matmul`] with an explicit kernel table (tests compare tables).
pub fn matmul_with(k: &Kernels, w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    matmul_many_with(k, &mut [(*w, out)], x, n_tokens)
}

/// Several products of the same activations (a layer's Q, K and V, or its FFN gate and up):
/// the activations are quantized once per distinct `vec_dot_type`, and all matrices' rows
/// share one parallel region, so the threads meet once instead of once per matrix.
pub fn matmul_many(outs: &mut [(WeightView, &mut [f32])], x: &[f32], n_tokens: usize) {
    matmul_many_with(Kernels::get(), outs, x, n_tokens)
}

/// [`matmul_many`] with an explicit kernel table.
pub fn matmul_many_with(
    k: &Kernels,
    outs: &mut [(WeightView, &mut [f32])],
    x: &[f32],
    n_tokens: usize,
) {
    matmul_segments_with(k, outs, x, &[n_tokens])
}

/// [`matmul_many`] over a batch made of several sequences' tokens: `segments` are the
/// lengths of consecutive runs of tokens that belong to one sequence (summing to the
/// number of tokens). Each token's results are bit for bit those of running its segment
/// alone: whether a token runs as part of a tile depends only on its segment's length,
/// and the one- and four-token kernels agree bit for bit. This is what keeps a sequence's
/// output independent of what else shares its batch (continuous batching).
pub fn matmul_segments(outs: &mut [(WeightView, &mut [f32])], x: &[f32], segments: &[usize]) {
    matmul_segments_with(Kernels::get(), outs, x, segments)
}

/// [`matmul_segments`] with an explicit kernel table.
pub fn matmul_segments_with(
    k: &Kernels,
    outs: &mut [(WeightView, &mut [f32])],
    x: &[f32],
    segments: &[usize],
) {
    let n_tokens: usize = segments.iter().sum();
    let Some(cols) = outs.first().map(|(w, _)| w.cols) else {
        return;
    };
    assert_eq!(
        x.len(),
        n_tokens * cols,
        "matmul: activations are not n_tokens x cols"
    );
    // Activations quantized once per type the weights need, into buffers kept from call to
    // call: a prompt's activations are megabytes, and fresh allocations that size come
    // from (and return to) the kernel, zeroed page by page every time.
    let quantizing = lingqiao_pool::profile::span(lingqiao_pool::profile::Op::Quantize);
    let mut spare = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let mut quantized: Vec<(GgmlType, usize, Cow<[u8]>)> = Vec::new();
    for (w, out) in outs.iter() {
        w.validate().expect("matmul: invalid weight view");
        assert_eq!(w.cols, cols, "matmul_many: matrices differ in columns");
        assert_eq!(
            out.len(),
            n_tokens * w.rows,
            "matmul: output is not n_tokens x rows"
        );
        let vdt = vec_dot_type(w.ty);
        if !quantized.iter().any(|(t, _, _)| *t == vdt) {
            let x_row = row_bytes(vdt, cols).expect("checked by validate: same block size");
            let buf = spare.pop().unwrap_or_default();
            quantized.push((
                vdt,
                x_row,
                quantize_activations(k, vdt, x, cols, x_row, buf),
            ));
        }
    }

    drop(quantizing);

    // Prompts run as tiles where the table and the type have them: each distinct activation
    // form is built once from the quantized rows.
    // (Decoding never gets here: one token is below every format's threshold.)
    let tile_run = k.tile;
    let longest = segments.iter().copied().max().unwrap_or(0);
    let tile_format = |ty| Format::of(ty).filter(|f| longest >= f.min_tokens());
    let mut acts: Vec<((GgmlType, usize, bool), ActTile)> = Vec::new();
    if tile_run.is_some() && outs.iter().any(|(w, _)| tile_format(w.ty).is_some()) {
        let mut spare_acts = ACTS.with(|s| std::mem::take(&mut *s.borrow_mut()));
        for (w, _) in outs.iter() {
            let Some(f) = tile_format(w.ty) else { continue };
            if acts.iter().any(|(key, _)| *key == f.act_key()) {
                continue;
            }
            let (_, x_row, xq) = quantized
                .iter()
                .find(|(t, _, _)| *t == vec_dot_type(w.ty))
                .expect("made above");
            // One pass over the activations on this thread: it costs ~1% of the matmul that
            // follows, so it is not worth a parallel region of its own.
            let mut a = spare_acts.pop().unwrap_or_default();
            a.fill(&f, cols, n_tokens, xq, *x_row);
            acts.push((f.act_key(), a));
        }
        ACTS.with(|s| *s.borrow_mut() = spare_acts);
    }

    struct Job<'a> {
        w: WeightView<'a>,
        w_row: usize,
        xq: &'a [u8],
        x_row: usize,
        out: SharedMut<f32>,
        /// The one-token kernels ([`decode_rows`]); `decode.dot` also runs the tokens the
        /// four-token kernel leaves.
        decode: DecodeKernels,
        x4: Option<crate::VecDotX4Fn>,
        tile: Option<(Format, &'a ActTile, crate::tile::TileKernels)>,
        /// Token ranges and whether they run as tiles: a segment long enough for this
        /// format's tiles is one tile run; the tokens between such segments are one
        /// run of four- and one-token kernels.
        runs: Vec<(std::ops::Range<usize>, bool)>,
        chunk: usize,
        first_chunk: usize,
    }
    // A product that reads each weight row once (one token, or a few decoding together, and
    // no tiles) is bound by memory: its threads then stream contiguous shares of the rows.
    let streaming = n_tokens <= TOKEN_TILE && acts.is_empty();
    let mut jobs = Vec::with_capacity(outs.len());
    let mut n_chunks = 0;
    for (w, out) in outs.iter_mut() {
        let vdt = vec_dot_type(w.ty);
        let (_, x_row, xq) = quantized
            .iter()
            .find(|(t, _, _)| *t == vdt)
            .expect("made above");
        let w_row = row_bytes(w.ty, cols).expect("validated");
        let tile = tile_run.and_then(|tk| {
            let f = tile_format(w.ty)?;
            let (_, a) = acts.iter().find(|(key, _)| *key == f.act_key())?;
            Some((f, a, tk))
        });
        let mut chunk = if streaming {
            (STREAM_GRAIN / w_row).max(4).next_multiple_of(4)
        } else {
            rows_per_chunk(w.rows, w_row)
        };
        if tile.is_some() {
            chunk = chunk.next_multiple_of(TILE_ROWS);
        }
        let min_tile = tile.map_or(usize::MAX, |(f, _, _)| f.min_tokens());
        let mut runs: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
        let mut t0 = 0;
        // One token (decoding) takes its own path below: no runs, no allocation per matrix.
        for &len in segments.iter().filter(|_| n_tokens > 1) {
            let tiled = len >= min_tile;
            match runs.last_mut() {
                Some((r, false)) if !tiled => r.end = t0 + len,
                _ => runs.push((t0..t0 + len, tiled)),
            }
            t0 += len;
        }
        jobs.push(Job {
            w: *w,
            w_row,
            xq,
            x_row: *x_row,
            out: SharedMut::new(out),
            decode: DecodeKernels::of(k, w.ty, w_row),
            x4: k.vec_dot_x4_fn(w.ty),
            tile,
            runs,
            chunk,
            first_chunk: n_chunks,
        });
        n_chunks += w.rows.div_ceil(chunk);
    }

    let schedule = if streaming {
        lingqiao_pool::for_each_split
    } else {
        lingqiao_pool::for_each_chunk
    };
    schedule(n_chunks, 1, &|_, r: std::ops::Range<usize>| {
        let c = r.start;
        let j = jobs
            .iter()
            .rev()
            .find(|j| j.first_chunk <= c)
            .expect("chunk 0 belongs to the first job");
        let r0 = (c - j.first_chunk) * j.chunk;
        let rows = r0..(r0 + j.chunk).min(j.w.rows);
        let w_rows = &j.w.data[rows.start * j.w_row..rows.end * j.w_row];
        if n_tokens == 1 {
            // SAFETY: each chunk of rows is handed to exactly one thread.
            let o = unsafe { j.out.slice(rows.clone()) };
            decode_rows(
                &j.decode,
                cols,
                j.w.data,
                j.w_row,
                rows,
                &j.xq[..j.x_row],
                o,
            );
            return;
        }
        let n_rows = j.w.rows;
        for (run, tiled) in &j.runs {
            if *tiled {
                let (f, act, tk) = j.tile.expect("tile runs only with tile kernels");
                TILE_W.with(|wt| {
                    let wt = &mut *wt.borrow_mut();
                    let mut buf = [0f32; TILE_TOKENS * TILE_ROWS];
                    for r0 in rows.clone().step_by(TILE_ROWS) {
                        let r1 = (r0 + TILE_ROWS).min(rows.end);
                        (tk.pack)(wt, &f, cols, &j.w.data[r0 * j.w_row..r1 * j.w_row], j.w_row);
                        for t0 in run.clone().step_by(TILE_TOKENS) {
                            let t1 = (t0 + TILE_TOKENS).min(run.end);
                            (tk.run)(&f, wt, act, t0..t1, &mut buf);
                            for t in t0..t1 {
                                // SAFETY: rows r0..r1 belong to this thread's chunk.
                                let o = unsafe { j.out.slice(t * n_rows + r0..t * n_rows + r1) };
                                let at = (t - t0) * TILE_ROWS;
                                let src = &buf[at..at + TILE_ROWS];
                                if let Ok(o) = <&mut [f32; TILE_ROWS]>::try_from(&mut *o) {
                                    // A whole tile: one 64-byte move, not a memcpy call.
                                    *o = src.try_into().expect("TILE_ROWS elements");
                                } else {
                                    o.copy_from_slice(&src[..r1 - r0]);
                                }
                            }
                        }
                    }
                });
                continue;
            }
            // A few tokens (several sequences decoding together) make one pass over the
            // rows, which then come from memory as in one-token decoding: prefetch them
            // the same way. Longer runs revisit each row per token tile and are compute-bound.
            let stream = run.len() <= TOKEN_TILE;
            for t0 in run.clone().step_by(TOKEN_TILE) {
                let t1 = (t0 + TOKEN_TILE).min(run.end);
                for (r, wr) in rows.clone().zip(w_rows.chunks_exact(j.w_row)) {
                    if stream {
                        let ahead = r * j.w_row + PREFETCH_AHEAD;
                        prefetch(j.w.data.get(ahead..ahead + j.w_row));
                    }
                    let mut t = t0;
                    if let Some(x4) = j.x4 {
                        while t + 4 <= t1 {
                            let mut o4 = [0f32; 4];
                            x4(cols, wr, &j.xq[t * j.x_row..(t + 4) * j.x_row], &mut o4);
                            for (i, v) in o4.into_iter().enumerate() {
                                // SAFETY: row r belongs to this thread's chunk.
                                unsafe { j.out.write((t + i) * n_rows + r, v) };
                            }
                            t += 4;
                        }
                    }
                    for t in t..t1 {
                        let v = (j.decode.dot)(cols, wr, &j.xq[t * j.x_row..(t + 1) * j.x_row]);
                        // SAFETY: row r belongs to this thread's chunk.
                        unsafe { j.out.write(t * n_rows + r, v) };
                    }
                }
            }
        }
    });
    drop(jobs);
    spare.extend(quantized.into_iter().filter_map(|(_, _, q)| match q {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    }));
    SCRATCH.with(|s| *s.borrow_mut() = spare);
    if !acts.is_empty() {
        ACTS.with(|s| s.borrow_mut().extend(acts.into_iter().map(|(_, a)| a)));
    }
}

thread_local! {
    /// Activation tiles reused by [`matmul_many_with`] on this thread.
    static ACTS: std::cell::RefCell<Vec<ActTile>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The weight tile each thread unpacks into.
    static TILE_W: std::cell::RefCell<WeightTile> = std::cell::RefCell::new(WeightTile::default());
    /// Activation buffers reused by [`matmul_many_with`] on this thread.
    static SCRATCH: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `x` (n rows of `cols` f32) as rows of `vdt`, quantized in parallel for many tokens.
fn quantize_activations<'a>(
    k: &Kernels,
    vdt: GgmlType,
    x: &'a [f32],
    cols: usize,
    x_row: usize,
    mut buf: Vec<u8>,
) -> Cow<'a, [u8]> {
    if vdt == GgmlType::F32 {
        return Cow::Borrowed(bytemuck::cast_slice(x));
    }
    let n = x.len() / cols;
    // Every byte is overwritten below; resize only zero-fills growth.
    buf.resize(n * x_row, 0);
    let dst = SharedMut::new(&mut buf);
    lingqiao_pool::for_each_chunk(n, 16, |_, r| {
        for t in r {
            // SAFETY: each token's row is written by the one thread given its chunk.
            let d = unsafe { dst.slice(t * x_row..(t + 1) * x_row) };
            quantize_row_with(k, vdt, &x[t * cols..(t + 1) * cols], d)
                .expect("row sizes computed above");
        }
    });
    Cow::Owned(buf)
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
