//! Prompt processing as tiles: 16 weight rows against many tokens, with each weight block
//! unpacked once per matmul instead of once per token.
//!
//! A dot product of one weight row with one token, as the [`crate::VecDotFn`]s do it, spends
//! most of its instructions on work per (row, token, block): combine the bytes, convert the
//! integer sum to float, scale it. For a prompt that work is shared out differently here:
//!
//! - A tile of [`TILE_ROWS`] weight rows is unpacked once into signed bytes (the "q" of
//!   x = scale * q + min), interleaved so that 4 consecutive elements of the 16 rows make one
//!   64-byte vector ([`WeightTile`]), plus per row and group of 16 or 32 elements a float scale,
//!   a float min (Q4_1, Q4_K, ...) and an integer correction.
//! - Each token's activations, already quantized to the type's `vec_dot_type`, are rewritten
//!   once per matmul as unsigned bytes (y + 128) with their scales beside them ([`ActTile`]).
//! - A kernel multiplies 4 bytes of one token (broadcast) with the 16 rows' 4 bytes: one
//!   `vpdpbusd` does 64 multiply-adds for 16 rows, and the sums of a group come out as one
//!   integer per row, so the conversion and the scaling run once per (group, token) for 16
//!   rows instead of once per (group, token, row). ggml gets the same effect by repacking
//!   weights at load time (`ggml_gemm_q4_0_8x8_q8_0` and friends in its `repack.cpp`); we
//!   unpack per matmul instead, which costs a few percent of a prompt and leaves the weights
//!   as they are in the file, so decoding and memory are unchanged.
//! - The same layout is what Arm's `sdot` by element wants (`aarch64::tile`): a 16-byte
//!   quarter of a line is 4 rows x 4 elements, multiplied with the 4 bytes of one lane of a
//!   token's 16 (dotprod table); the i8mm table regroups the lines for `usmmla` instead.
//!
//! Because the activations are offset by 128 to be unsigned, each group's integer sum starts
//! from -128 * (sum of the row's q in the group), computed when the tile is packed; the sums
//! are then exact, as in the one-token kernels.
//!
//! [`run_ref`] is the portable definition of the arithmetic: each output is a chain of f32
//! fused multiply-adds in group order. SIMD versions (`x86::tile`, `aarch64::tile`) do the
//! same operations per lane and give the same bits. They are *not* bit-identical to the
//! [`crate::VecDotFn`]s (which accumulate in another order), but within the same per-type
//! bounds of the exact dot product; the tests check both.

use crate::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, BlockQ8_1,
    BlockQ8K, QK, scales_mins_k4,
};
use crate::scalar::{blocks, q5_pair};
use crate::{GgmlType, QK_K, vec_dot_type};
use std::ops::Range;

/// Weight rows per tile: one 512-bit vector holds 4 bytes of each.
pub const TILE_ROWS: usize = 16;

/// The largest [`Format::min_tokens`]: a run of at least this many tokens of one sequence
/// runs as tiles whatever the weight type. (Continuous batching sizes prompt chunks with it,
/// so that a prompt's tokens take the same kernels whether or not part of it was cached.)
pub const MAX_MIN_TOKENS: usize = 24;

/// How a weight type maps onto tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub ty: GgmlType,
    /// Elements per scale group: 32, or 16 for Q6_K.
    pub group: usize,
    /// Groups per activation scale: 1 for Q8_0/Q8_1 activations (a scale per 32), 256 /
    /// `group` for Q8_K (a scale per 256).
    pub groups_per_dx: usize,
    /// Whether the type has a min per group (x = scale * q + min).
    pub min: bool,
}

impl Format {
    /// The tile format of a weight type, for the types that have one.
    pub fn of(ty: GgmlType) -> Option<Format> {
        let (group, groups_per_dx, min) = match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => (QK, 1, false),
            GgmlType::Q4_1 | GgmlType::Q5_1 => (QK, 1, true),
            GgmlType::Q4_K | GgmlType::Q5_K => (32, QK_K / 32, true),
            GgmlType::Q6_K => (16, QK_K / 16, false),
            _ => return None,
        };
        Some(Format {
            ty,
            group,
            groups_per_dx,
            min,
        })
    }

    /// Tokens from which a matmul runs as tiles: below, unpacking the weights costs more than
    /// the tile kernel saves over the four-token kernels. Measured on the 2-core AVX-512 VM
    /// (one thread, `ops::matmul_with` with and without the tile kernels, at qwen05's and
    /// qwen15's FFN shapes): Q5_0 tiles were 1.34x faster at 8 tokens and equal at 6; Q4_K
    /// 0.72x at 16 and 1.21x at 32; Q6_K 0.86x at 16 and 1.24x at 32.
    pub fn min_tokens(&self) -> usize {
        match self.ty {
            GgmlType::Q4_K | GgmlType::Q5_K => MAX_MIN_TOKENS,
            GgmlType::Q6_K => 20,
            _ => 8,
        }
    }

    /// What the activations must provide: their type, the group size and whether per-group
    /// sums are needed. Weight types with the same key share one [`ActTile`].
    pub fn act_key(&self) -> (GgmlType, usize, bool) {
        (vec_dot_type(self.ty), self.group, self.min)
    }
}

/// One weight row as q (`n` values), a scale and a min per group: element k is
/// `sw[k / group] * q[k] + mw[k / group]`, the value ggml's dequantization gives.
#[inline(always)]
fn unpack_row(ty: GgmlType, row: &[u8], q: &mut [i8], sw: &mut [f32], mw: &mut [f32]) {
    match ty {
        GgmlType::Q4_0 => {
            for ((b, q), sw) in blocks::<BlockQ4_0>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK))
                .zip(sw)
            {
                for (j, &v) in b.qs.iter().enumerate() {
                    q[j] = (v & 0x0F) as i8 - 8;
                    q[j + QK / 2] = (v >> 4) as i8 - 8;
                }
                *sw = b.d();
            }
        }
        GgmlType::Q4_1 => {
            for (((b, q), sw), mw) in blocks::<BlockQ4_1>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK))
                .zip(sw)
                .zip(mw)
            {
                for (j, &v) in b.qs.iter().enumerate() {
                    q[j] = (v & 0x0F) as i8;
                    q[j + QK / 2] = (v >> 4) as i8;
                }
                (*sw, *mw) = (b.d(), b.m());
            }
        }
        GgmlType::Q5_0 => {
            for ((b, q), sw) in blocks::<BlockQ5_0>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK))
                .zip(sw)
            {
                for j in 0..QK / 2 {
                    let (lo, hi) = q5_pair(&b.qs, b.qh(), j);
                    q[j] = lo as i8 - 16;
                    q[j + QK / 2] = hi as i8 - 16;
                }
                *sw = b.d();
            }
        }
        GgmlType::Q5_1 => {
            for (((b, q), sw), mw) in blocks::<BlockQ5_1>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK))
                .zip(sw)
                .zip(mw)
            {
                for j in 0..QK / 2 {
                    let (lo, hi) = q5_pair(&b.qs, b.qh(), j);
                    q[j] = lo as i8;
                    q[j + QK / 2] = hi as i8;
                }
                (*sw, *mw) = (b.d(), b.m());
            }
        }
        GgmlType::Q8_0 => {
            for ((b, q), sw) in blocks::<BlockQ8_0>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK))
                .zip(sw)
            {
                q.copy_from_slice(&b.qs);
                *sw = b.d();
            }
        }
        GgmlType::Q4_K => {
            for (((b, q), sw), mw) in blocks::<BlockQ4K>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK_K))
                .zip(sw.chunks_exact_mut(QK_K / 32))
                .zip(mw.chunks_exact_mut(QK_K / 32))
            {
                nibbles_k(&b.qs, q);
                scales_k(b.d(), b.dmin(), &b.scales, sw, mw);
            }
        }
        GgmlType::Q5_K => {
            for (((b, q), sw), mw) in blocks::<BlockQ5K>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK_K))
                .zip(sw.chunks_exact_mut(QK_K / 32))
                .zip(mw.chunks_exact_mut(QK_K / 32))
            {
                nibbles_k(&b.qs, q);
                // The fifth bit of element e is bit e / 32 of qh[e % 32] (`unpack_q5k`).
                for (j, q) in q.chunks_exact_mut(32).enumerate() {
                    for (q, &h) in q.iter_mut().zip(&b.qh) {
                        *q |= (((h >> j) & 1) << 4) as i8;
                    }
                }
                scales_k(b.d(), b.dmin(), &b.scales, sw, mw);
            }
        }
        GgmlType::Q6_K => {
            for ((b, q), sw) in blocks::<BlockQ6K>(row)
                .iter()
                .zip(q.chunks_exact_mut(QK_K))
                .zip(sw.chunks_exact_mut(QK_K / 16))
            {
                // The layout of `unpack_q6k`, written as whole-array steps (this runs for
                // every weight of a prompt's matmuls, and these loops vectorize).
                for h in 0..2 {
                    let ql: &[u8; 64] = b.ql[64 * h..64 * h + 64].try_into().unwrap();
                    let qh: &[u8; 32] = b.qh[32 * h..32 * h + 32].try_into().unwrap();
                    let q: &mut [i8] = &mut q[128 * h..128 * h + 128];
                    for l in 0..32 {
                        let (a, c, hi) = (ql[l], ql[l + 32], qh[l]);
                        q[l] = ((a & 0x0F) | ((hi & 3) << 4)) as i8 - 32;
                        q[l + 32] = ((c & 0x0F) | (((hi >> 2) & 3) << 4)) as i8 - 32;
                        q[l + 64] = ((a >> 4) | (((hi >> 4) & 3) << 4)) as i8 - 32;
                        q[l + 96] = ((c >> 4) | (((hi >> 6) & 3) << 4)) as i8 - 32;
                    }
                }
                let d = b.d();
                for (sw, &sc) in sw.iter_mut().zip(&b.scales) {
                    *sw = d * f32::from(sc);
                }
            }
        }
        _ => unreachable!("Format::of has no tile format for {ty}"),
    }
}

/// The 256 nibbles of a Q4_K/Q5_K block in element order (`unpack_q4k`): each 64-element
/// chunk uses 32 bytes, low nibbles first.
#[inline(always)]
fn nibbles_k(qs: &[u8; QK_K / 2], q: &mut [i8]) {
    for (qs, q) in qs.chunks_exact(32).zip(q.chunks_exact_mut(64)) {
        let (lo, hi) = q.split_at_mut(32);
        for ((&b, lo), hi) in qs.iter().zip(lo).zip(hi) {
            *lo = (b & 0x0F) as i8;
            *hi = (b >> 4) as i8;
        }
    }
}

/// The scales (d * sc) and mins (-dmin * m) of a Q4_K/Q5_K block's 8 groups.
#[inline(always)]
fn scales_k(d: f32, dmin: f32, scales: &[u8; 12], sw: &mut [f32], mw: &mut [f32]) {
    let (sc, m) = scales_mins_k4(scales);
    for j in 0..QK_K / 32 {
        sw[j] = d * f32::from(sc[j]);
        mw[j] = -(dmin * f32::from(m[j]));
    }
}

/// [`TILE_ROWS`] weight rows unpacked for the tile kernels. Rows past the end of the matrix
/// are zero (their outputs are computed and dropped).
#[derive(Debug, Default)]
pub struct WeightTile {
    /// Elements per row.
    pub n: usize,
    /// The q values: element k of row r at `(k / 4 * 16 + r) * 4 + k % 4`.
    pub q: Vec<i8>,
    /// Per group g and row r at `g * 16 + r`: -128 times the sum of the row's q in the group.
    pub corr: Vec<i32>,
    /// Per group and row: the scale.
    pub sw: Vec<f32>,
    /// Per group and row: the min (empty for types without one).
    pub mw: Vec<f32>,
    /// The rows unpacked one after another, before interleaving (kept to reuse its
    /// allocation).
    pub(crate) row_q: Vec<i8>,
    row_sw: Vec<f32>,
    row_mw: Vec<f32>,
}

impl WeightTile {
    /// Unpacks `rows` (whole rows of `f.ty`, at most [`TILE_ROWS`] of `row_bytes` each, `n`
    /// elements per row) into this tile, with the portable code (kernel tables carry a
    /// [`PackFn`] for their instruction set that gives the same tile).
    ///
    /// Panics if the sizes disagree (they are fixed by the model and checked at load).
    pub fn pack(&mut self, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
        pack_impl(self, f, n, rows, row_bytes)
    }
}

/// Fills a [`WeightTile`] (see [`WeightTile::pack`]).
pub type PackFn = fn(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize);

/// A table's tile kernels: the packing (the same tile as [`WeightTile::pack`]) and the
/// product (the same results as [`run_ref`]).
#[derive(Clone, Copy, Debug)]
pub struct TileKernels {
    pub pack: PackFn,
    pub run: TileRunFn,
}

/// The first half of [`WeightTile::pack`]: every row unpacked into `t.row_q` (row after row,
/// missing rows zero) and the scales and mins placed. Inlined into each instance so that it
/// is compiled for the instance's target features.
#[inline(always)]
pub(crate) fn unpack_rows(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
    let ng = n / f.group;
    shape_weights(t, f, n, rows, row_bytes);
    for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
        let q = &mut t.row_q[r * n..(r + 1) * n];
        unpack_row(f.ty, row, q, &mut t.row_sw, &mut t.row_mw);
        for g in 0..ng {
            t.sw[g * TILE_ROWS + r] = t.row_sw[g];
            if f.min {
                t.mw[g * TILE_ROWS + r] = t.row_mw[g];
            }
        }
    }
}

/// Sizes a [`WeightTile`] for [`TILE_ROWS`] rows of `n` elements and zeroes what the rows of
/// `rows` do not fill: the q (in `row_q`) of missing rows, every scale and min (the present
/// rows' are then written). Panics if the sizes disagree.
#[inline(always)]
pub(crate) fn shape_weights(
    t: &mut WeightTile,
    f: &Format,
    n: usize,
    rows: &[u8],
    row_bytes: usize,
) {
    assert!(
        n.is_multiple_of(f.group) && n.is_multiple_of(4),
        "tile: row length {n}"
    );
    assert!(rows.len().is_multiple_of(row_bytes) && rows.len() / row_bytes <= TILE_ROWS);
    let ng = n / f.group;
    t.n = n;
    t.q.resize(n * TILE_ROWS, 0);
    t.corr.resize(ng * TILE_ROWS, 0);
    t.sw.clear();
    t.sw.resize(ng * TILE_ROWS, 0.0);
    t.mw.clear();
    if f.min {
        t.mw.resize(ng * TILE_ROWS, 0.0);
    }
    // Rows present are overwritten by their unpacking; only the missing ones are zeroed.
    let present = rows.len() / row_bytes;
    t.row_q.resize(n * TILE_ROWS, 0);
    t.row_q[present * n..].fill(0);
    t.row_sw.resize(ng, 0.0);
    t.row_mw.resize(ng, 0.0);
}

/// The portable body of [`WeightTile::pack`].
fn pack_impl(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
    unpack_rows(t, f, n, rows, row_bytes);
    for r in 0..TILE_ROWS {
        let q = &t.row_q[r * n..(r + 1) * n];
        for (g, grp) in q.chunks_exact(f.group).enumerate() {
            let s: i32 = grp.iter().map(|&v| i32::from(v)).sum();
            t.corr[g * TILE_ROWS + r] = -128 * s;
        }
    }
    // Quad k4 of row r to slot k4 * 16 + r: one 64-byte line per quad index.
    let src: &[[i8; 4]] = bytemuck::cast_slice(&t.row_q);
    let dst: &mut [[[i8; 4]; TILE_ROWS]] = bytemuck::cast_slice_mut(&mut t.q);
    let quads = n / 4;
    for (k4, line) in dst.iter_mut().enumerate() {
        for (r, slot) in line.iter_mut().enumerate() {
            *slot = src[r * quads + k4];
        }
    }
}

/// Many tokens' activations rewritten for the tile kernels.
#[derive(Debug, Default)]
pub struct ActTile {
    /// Elements per token.
    pub n: usize,
    pub n_tokens: usize,
    /// Activation scales per token: one per group (Q8_0/Q8_1) or per 256 elements (Q8_K).
    pub ndx: usize,
    /// Groups per token.
    pub ng: usize,
    /// y + 128 for every element, token after token.
    pub u: Vec<u8>,
    /// The scales, `ndx` per token.
    pub dx: Vec<f32>,
    /// Per token and group (types with a min only): the sum of the group's activations, as
    /// the min is multiplied with it. For Q8_1 that is its `s` (d * sum, as ggml uses); for
    /// Q8_K the integer sum (the scale is applied per 256 elements).
    pub gx: Vec<f32>,
}

impl ActTile {
    /// Sizes the tile for `n_tokens` tokens of `n` elements; [`fill_token`] then fills each
    /// token's parts (independently, so in parallel).
    pub fn shape(&mut self, f: &Format, n: usize, n_tokens: usize) {
        assert!(n.is_multiple_of(f.group) && (n / f.group).is_multiple_of(f.groups_per_dx));
        self.n = n;
        self.n_tokens = n_tokens;
        self.ng = n / f.group;
        self.ndx = self.ng / f.groups_per_dx;
        self.u.resize(n * n_tokens, 0);
        self.dx.resize(self.ndx * n_tokens, 0.0);
        self.gx.clear();
        if f.min {
            self.gx.resize(self.ng * n_tokens, 0.0);
        }
    }

    /// Shapes the tile and fills every token, one after another, from `xq`: `n_tokens` rows
    /// of `x_row` bytes of `vec_dot_type(f.ty)` (matmul fills tokens in parallel instead).
    /// Panics if `xq` is shorter.
    pub fn fill(&mut self, f: &Format, n: usize, n_tokens: usize, xq: &[u8], x_row: usize) {
        self.shape(f, n, n_tokens);
        let (ng, ndx) = (self.ng, self.ndx);
        for t in 0..n_tokens {
            let gx: &mut [f32] = if self.gx.is_empty() {
                &mut []
            } else {
                &mut self.gx[t * ng..(t + 1) * ng]
            };
            fill_token(
                f,
                &xq[t * x_row..(t + 1) * x_row],
                &mut self.u[t * n..(t + 1) * n],
                &mut self.dx[t * ndx..(t + 1) * ndx],
                gx,
            );
        }
    }
}

/// Fills one token of an [`ActTile`] from its quantized row `xq` (see [`ActTile::shape`]).
pub fn fill_token(f: &Format, xq: &[u8], u: &mut [u8], dx: &mut [f32], gx: &mut [f32]) {
    fn offset(qs: &[i8], u: &mut [u8]) {
        for (u, &y) in u.iter_mut().zip(qs) {
            *u = (y as u8) ^ 0x80;
        }
    }
    match vec_dot_type(f.ty) {
        GgmlType::Q8_0 => {
            for ((b, u), dx) in blocks::<BlockQ8_0>(xq)
                .iter()
                .zip(u.chunks_exact_mut(QK))
                .zip(dx)
            {
                offset(&b.qs, u);
                *dx = b.d();
            }
        }
        GgmlType::Q8_1 => {
            for (i, (b, u)) in blocks::<BlockQ8_1>(xq)
                .iter()
                .zip(u.chunks_exact_mut(QK))
                .enumerate()
            {
                offset(&b.qs, u);
                dx[i] = b.d();
                if f.min {
                    gx[i] = b.s();
                }
            }
        }
        GgmlType::Q8_K => {
            let per = QK_K / f.group;
            let sums = f.group / 16;
            for (i, (b, u)) in blocks::<BlockQ8K>(xq)
                .iter()
                .zip(u.chunks_exact_mut(QK_K))
                .enumerate()
            {
                offset(&b.qs, u);
                dx[i] = b.d();
                if f.min {
                    for j in 0..per {
                        let s: i32 = (0..sums).map(|h| i32::from(b.bsum(j * sums + h))).sum();
                        gx[i * per + j] = s as f32;
                    }
                }
            }
        }
        other => unreachable!("no tile format has activations of {other}"),
    }
}

/// The tile kernel: `out[(t - tokens.start) * 16 + r]` = row r of `w` against token t of
/// `x`, for the tokens of `tokens`.
pub type TileRunFn =
    fn(f: &Format, w: &WeightTile, x: &ActTile, tokens: Range<usize>, out: &mut [f32]);

/// Calls `$kernel::<GROUP, GROUPS_PER_DX, MIN>($args)` for the tile format `$f`: the SIMD
/// tile kernels are compiled per format shape, and this is the one place that maps a
/// [`Format`] to its shape.
macro_rules! dispatch_format {
    ($f:expr, $kernel:ident($($args:expr),*)) => {
        match ($f.group, $f.groups_per_dx, $f.min) {
            (32, 1, false) => $kernel::<32, 1, false>($($args),*),
            (32, 1, true) => $kernel::<32, 1, true>($($args),*),
            (32, 8, true) => $kernel::<32, 8, true>($($args),*),
            (16, 16, false) => $kernel::<16, 16, false>($($args),*),
            other => unreachable!("no tile kernel for {other:?}"),
        }
    };
}
pub(crate) use dispatch_format;

/// Checks the shapes a tile kernel relies on. Panics on a mismatch (a bug in the caller).
pub(crate) fn check(f: &Format, w: &WeightTile, x: &ActTile, tokens: &Range<usize>, out: &[f32]) {
    let ng = w.n / f.group;
    assert_eq!(w.n, x.n, "tile: weight and activation lengths differ");
    assert!(w.q.len() == w.n * TILE_ROWS && w.corr.len() == ng * TILE_ROWS);
    assert!(w.sw.len() == ng * TILE_ROWS && w.mw.len() == if f.min { ng * TILE_ROWS } else { 0 });
    assert!(x.ng == ng && x.ndx * f.groups_per_dx == ng && tokens.end <= x.n_tokens);
    assert!(x.u.len() >= x.n_tokens * x.n && x.dx.len() >= x.n_tokens * x.ndx);
    assert!(!f.min || x.gx.len() >= x.n_tokens * ng);
    assert!(
        out.len() >= tokens.len() * TILE_ROWS,
        "tile: output too short"
    );
}

/// The portable definition of the tile arithmetic (see the module docs): per row and token,
/// the exact integer sum of each group, converted to f32 and accumulated with fused
/// multiply-adds in group order.
pub fn run_ref(f: &Format, w: &WeightTile, x: &ActTile, tokens: Range<usize>, out: &mut [f32]) {
    check(f, w, x, &tokens, out);
    let (n, ng) = (w.n, w.n / f.group);
    for (i, t) in tokens.enumerate() {
        let u = &x.u[t * n..(t + 1) * n];
        for r in 0..TILE_ROWS {
            let (mut acc, mut a) = (0f32, 0f32);
            for g in 0..ng {
                let mut s = w.corr[g * TILE_ROWS + r];
                let k0 = g * f.group;
                for (k, &u) in (k0..).zip(&u[k0..k0 + f.group]) {
                    let q = w.q[(k / 4 * TILE_ROWS + r) * 4 + k % 4];
                    s += i32::from(u) * i32::from(q);
                }
                let v = s as f32;
                let (sw, gi) = (w.sw[g * TILE_ROWS + r], t * ng + g);
                if f.groups_per_dx == 1 {
                    acc = v.mul_add(sw * x.dx[t * x.ndx + g], acc);
                    if f.min {
                        acc = w.mw[g * TILE_ROWS + r].mul_add(x.gx[gi], acc);
                    }
                } else {
                    a = v.mul_add(sw, a);
                    if f.min {
                        a = w.mw[g * TILE_ROWS + r].mul_add(x.gx[gi], a);
                    }
                    if (g + 1) % f.groups_per_dx == 0 {
                        acc = a.mul_add(x.dx[t * x.ndx + g / f.groups_per_dx], acc);
                        a = 0.0;
                    }
                }
            }
            out[i * TILE_ROWS + r] = acc;
        }
    }
}
