//! Float32 matrix products for the FP32 path of Whisper: the encoder's linear layers (GEMMs
//! of 1500-3000 tokens by 384-1536 features) and attention's activation-by-activation
//! products.
//!
//! - [`gemm_f32`]: `out[t][r] = x[t] · w[r]` for weights packed once ([`PackedF32`]).
//! - [`gemm_f32_nt`]: `out[i][j] = a[i] · b[j]` for two activation matrices (q·kᵀ, and p·v
//!   with v transposed by the caller); `b` is packed on the fly.
//!
//! # The arithmetic
//!
//! Every output element is one chain of fused multiply-adds in k order, exactly:
//!
//! ```text
//! acc = +0.0f32; for k in 0..K { acc = fma(x[t][k], w[r][k], acc) }; out[t][r] = acc
//! ```
//!
//! [`gemm_f32_ref`] is that loop written out (with `f32::mul_add`) and defines the bits.
//! Every table's kernel (the scalar one, AVX2+FMA; NEON and AVX-512 when they come) computes
//! each element the same way, so all of them give the same bits, for any thread count and
//! any blocking: a product blocked over k keeps each element's partial sum exactly (an f32
//! in a register or in the block's buffer) and continues the same chain in the next block;
//! k is never split into partial sums that are added afterwards. The price is that one
//! element's chain is sequential (K dependent fused multiply-adds), so the kernels get
//! their parallelism from many elements at once (a tile of [`NR`] rows by `mr` tokens),
//! never from within a dot product. With u = 2^-24, each element is within
//! `K * u / (1 - K * u) * sum_k |x[t][k] * w[r][k]|` of the exact product (one rounding
//! per step, the usual bound for recursive summation). NaN in gives NaN out; its payload is
//! not part of the contract.
//!
//! # How it runs
//!
//! Weights are packed in panels of [`NR`] = 16 rows, interleaved by k: one 64-byte
//! [`PanelLine`] holds the 16 rows' weights at one k, so a micro-kernel reads a panel
//! front to back (rows past the matrix's end are zero and their results are dropped).
//! The table's micro-kernel ([`GemmKernels::tile`]) multiplies a block's tokens (rows of
//! x, read in place and broadcast one element at a time) by one panel over a run of k,
//! `mr` tokens at a time with all `mr x 16` sums in registers (AVX2: 6 tokens x 2 vectors
//! = 12 accumulators; per k, 2 loads of the panel, 6 broadcasts and 12 fused
//! multiply-adds, which keep both FMA pipes of a Zen 3 core busy).
//!
//! The driver follows the usual cache blocking (Goto's and BLIS's loops): the product is
//! cut into blocks of [`MC`] tokens by up to [`NC_PANELS`] panels, handed out to the
//! threads of the current [`lingqiao_pool`] pool; each block runs over k in runs of
//! [`KC`], and within a run, panel by panel (a panel's `KC x 16` weights, 16 KiB, stay in
//! L1 while every group of tokens of the block passes over them; the block's `MC x KC`
//! activations stay in L2). A block's sums live in a per-thread buffer, 64-byte aligned,
//! until its last run is done; then they are copied to `out`. A product of at most `mr`
//! tokens (the logits of one token) reads every weight once, so it is not blocked over k
//! and its threads stream contiguous shares of the rows. Unlike BLIS, the activations are
//! not packed: copying them into k-interleaved groups of 6 tokens cost more than the
//! contiguous broadcasts saved (about 10% slower at every Whisper shape on Zen 3).
//!
//! Measured with `--example gemm_speed` on the 2-core Zen 3 VM (EPYC, 3.0 GHz, whose peak is
//! 32 flop/cycle per core), best of 4 runs, one thread / two: 1500x384x384 76 / 139
//! GFLOP/s, 1500x1536x384 72 / 158, 1500x384x1536 82 / 150, 3000x384x240 72 / 136 (24-27.5
//! flop/cycle per core, 75-86% of peak); the attention products with k = 64 (scores,
//! 1500x1500) 61 / 117 (short chains, and a 9 MB result to write for 2 x 64 flops per
//! element), and with n = 64 (values) 76 / 142; one token's logits (51864 rows of 384, an
//! 80 MB stream) 5.9 / 3.2 ms. The scalar table runs at about 0.5 GFLOP/s.

use crate::Kernels;
use lingqiao_pool::SharedMut;
use std::cell::RefCell;

/// Weight rows per panel: the width of the micro-kernels' tile (two AVX2 vectors, one
/// AVX-512 vector, four NEON vectors), fixed for every table so a matrix is packed once.
pub const NR: usize = 16;

/// The most tokens a table's micro-kernel may hold at once ([`GemmKernels::mr`]).
pub const MR_MAX: usize = 16;

/// Tokens per block of parallel work: a multiple of the AVX2 kernel's 6 tokens; the
/// block's `MC x KC` activations (96 KiB) and its sums (`MC x 256` floats, 96 KiB) stay in
/// the 512 KiB L2 of a Zen 3 core.
pub const MC: usize = 96;

/// The run of k a block takes at a time: one panel's `KC x NR` weights are 16 KiB, half of
/// a 32 KiB L1.
pub const KC: usize = 256;

/// The most panels (of [`NR`] rows) per block of parallel work; a matrix's panels are cut
/// into blocks as even as this allows.
pub const NC_PANELS: usize = 16;

/// The weights of the [`NR`] rows of a panel at one k: one 64-byte cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PanelLine(pub [f32; NR]);

/// A table's micro-kernel: tokens `0..m` of `x` (token `i`'s elements from `x[i * ldx]`)
/// times one panel over a run of k (`w`, one [`PanelLine`] per k, so the run is `w.len()`
/// long), into `c` (token `i`'s 16 sums in `c[i * ldc]`):
///
/// `c[i * ldc].0[j] = chain over kk of fma(x[i * ldx + kk], w[kk].0[j], acc)`, `acc`
/// starting at `c[i * ldc].0[j]` if `accumulate`, else at +0.0.
///
/// The kernel takes the tokens [`GemmKernels::mr`] at a time (then the rest), all in one
/// call so the panel's lines stay in L1 and the call's cost is paid once per block.
/// Panics if a slice is too short for the shape.
pub type GemmTileFn = fn(
    x: &[f32],
    ldx: usize,
    m: usize,
    w: &[PanelLine],
    c: &mut [PanelLine],
    ldc: usize,
    accumulate: bool,
);

/// A table's float32 product: its micro-kernel and how many tokens that holds at once.
#[derive(Clone, Copy, Debug)]
pub struct GemmKernels {
    /// Tokens the micro-kernel holds in registers at once (1..=[`MR_MAX`]): blocks of tokens
    /// are made a multiple of it, and a product of at most `mr` tokens streams its weights.
    pub mr: usize,
    pub tile: GemmTileFn,
}

/// The scalar table's micro-kernel.
pub const SCALAR: GemmKernels = GemmKernels {
    mr: 6,
    tile: tile_scalar,
};

/// Weights `rows x cols` (row-major, ggml order: out features x in features), packed into
/// panels of [`NR`] rows interleaved by k (see the module's comment).
#[derive(Clone, Debug, Default)]
pub struct PackedF32 {
    rows: usize,
    cols: usize,
    /// (panel, k): `rows.div_ceil(NR) * cols` lines; rows past `rows` are zero.
    data: Vec<PanelLine>,
}

impl PackedF32 {
    /// Packs `w` (`rows * cols` elements, row-major). Panics if the length disagrees.
    pub fn pack(w: &[f32], rows: usize, cols: usize) -> PackedF32 {
        let mut p = PackedF32::default();
        p.repack(w, rows, cols);
        p
    }

    /// [`PackedF32::pack`] into this buffer, reusing its allocation.
    fn repack(&mut self, w: &[f32], rows: usize, cols: usize) {
        assert_eq!(
            Some(w.len()),
            rows.checked_mul(cols),
            "PackedF32::pack: weights are not rows x cols"
        );
        self.rows = rows;
        self.cols = cols;
        let panels = rows.div_ceil(NR);
        self.data.clear();
        self.data.resize(panels * cols, PanelLine::default());
        if cols == 0 {
            return;
        }
        for (r, row) in w.chunks_exact(cols).enumerate() {
            let (p, j) = (r / NR, r % NR);
            for (line, &v) in self.data[p * cols..(p + 1) * cols].iter_mut().zip(row) {
                line.0[j] = v;
            }
        }
    }

    /// Output features (ne1).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (ne0): the dot-product length.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` as it was before packing (a tied embedding's lookup, without keeping a
    /// second copy). Panics if `r` or `out`'s length is out of range.
    pub fn row(&self, r: usize, out: &mut [f32]) {
        assert!(
            r < self.rows && out.len() == self.cols,
            "PackedF32::row: out of range"
        );
        let (p, j) = (r / NR, r % NR);
        for (o, line) in out
            .iter_mut()
            .zip(&self.data[p * self.cols..(p + 1) * self.cols])
        {
            *o = line.0[j];
        }
    }

    /// Bytes the packed weights take (rows padded to a multiple of [`NR`]).
    pub fn bytes(&self) -> usize {
        self.data.len() * size_of::<PanelLine>()
    }

    /// Panel `p`'s lines for k in `k0..k1`.
    fn panel(&self, p: usize, k0: usize, k1: usize) -> &[PanelLine] {
        &self.data[p * self.cols + k0..p * self.cols + k1]
    }
}

/// The definition: `out[t * rows + r] = chain over k of fma(x[t * cols + k], w[r * cols + k])`
/// (see the module's comment), on unpacked row-major weights, one thread, no blocking.
/// Slow; for tests and as the specification the kernels are held to.
pub fn gemm_f32_ref(
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) {
    let len = |a: usize, b: usize| a.checked_mul(b);
    assert_eq!(
        Some(w.len()),
        len(rows, cols),
        "gemm_f32_ref: w is not rows x cols"
    );
    assert_eq!(
        Some(x.len()),
        len(n_tokens, cols),
        "gemm_f32_ref: x is not n_tokens x cols"
    );
    assert_eq!(
        Some(out.len()),
        len(n_tokens, rows),
        "gemm_f32_ref: out is not n_tokens x rows"
    );
    for t in 0..n_tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let mut acc = 0.0f32;
            for (&a, &b) in xt.iter().zip(wr) {
                acc = a.mul_add(b, acc);
            }
            out[t * rows + r] = acc;
        }
    }
}

/// `out[t * rows + r] = x[t] · w[r]` (the chain of the module's comment) for t in
/// `0..n_tokens`, where `x` is `n_tokens x w.cols()` row-major and `out` is
/// `n_tokens x w.rows()`. Runs on the current [`lingqiao_pool`] pool; the bits do not
/// depend on its size.
///
/// Panics if the shapes disagree.
pub fn gemm_f32(w: &PackedF32, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    gemm_f32_with(Kernels::get(), w, x, n_tokens, out)
}

/// [`gemm_f32`] through the micro-kernel of table `k` (tests compare tables).
pub fn gemm_f32_with(k: &Kernels, w: &PackedF32, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    let len = |a: usize, b: usize| a.checked_mul(b);
    assert_eq!(
        Some(x.len()),
        len(n_tokens, w.cols),
        "gemm_f32: x is not n_tokens x cols"
    );
    assert_eq!(
        Some(out.len()),
        len(n_tokens, w.rows),
        "gemm_f32: out is not n_tokens x rows"
    );
    run(k.gemm_f32, w, x, n_tokens, out);
}

/// `out[i * n + j] = a[i] · b[j]` (the chain of the module's comment over `k` elements) for
/// `a` (`m x k`) and `b` (`n x k`), both row-major: attention's scores q·kᵀ, and p·v with v
/// transposed by the caller. `b` is packed on each call (into a buffer kept per thread);
/// the product runs on the current pool.
///
/// Panics if the shapes disagree.
pub fn gemm_f32_nt(a: &[f32], m: usize, b: &[f32], n: usize, k: usize, out: &mut [f32]) {
    gemm_f32_nt_with(Kernels::get(), a, m, b, n, k, out)
}

/// [`gemm_f32_nt`] through the micro-kernel of table `kern`.
pub fn gemm_f32_nt_with(
    kern: &Kernels,
    a: &[f32],
    m: usize,
    b: &[f32],
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    let len = |a: usize, b: usize| a.checked_mul(b);
    assert_eq!(Some(a.len()), len(m, k), "gemm_f32_nt: a is not m x k");
    assert_eq!(Some(b.len()), len(n, k), "gemm_f32_nt: b is not n x k");
    assert_eq!(Some(out.len()), len(m, n), "gemm_f32_nt: out is not m x n");
    let mut packed = PACKED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    packed.repack(b, n, k);
    run(kern.gemm_f32, &packed, a, m, out);
    PACKED.with(|p| *p.borrow_mut() = packed);
}

thread_local! {
    /// The right-hand operand [`gemm_f32_nt`] packs, kept from call to call on this thread.
    static PACKED: RefCell<PackedF32> = RefCell::new(PackedF32::default());
    /// A block's sums ([`MC`] x up to [`NC_PANELS`] lines), kept per thread.
    static SUMS: RefCell<Vec<PanelLine>> = const { RefCell::new(Vec::new()) };
}

/// The blocked, parallel product (see the module's comment).
fn run(g: GemmKernels, w: &PackedF32, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    assert!(
        (1..=MR_MAX).contains(&g.mr),
        "gemm: a table's mr must be 1..=MR_MAX"
    );
    let (rows, cols) = (w.rows, w.cols);
    if rows == 0 || n_tokens == 0 {
        return;
    }
    let panels = rows.div_ceil(NR);
    let row_blocks = panels.div_ceil(NC_PANELS);
    let block_panels = panels.div_ceil(row_blocks);
    let row_blocks = panels.div_ceil(block_panels);
    // A product of one group of tokens reads each weight once: no reuse to block k for.
    let streaming = n_tokens <= g.mr;
    let kc = if streaming { cols.max(1) } else { KC };
    let mc = MC.next_multiple_of(g.mr);
    let token_blocks = n_tokens.div_ceil(mc);
    let out = SharedMut::new(out);
    let block = |_: usize, units: std::ops::Range<usize>| {
        SUMS.with(|s| {
            let sums = &mut *s.borrow_mut();
            sums.resize(mc * block_panels, PanelLine::default());
            for u in units {
                // Consecutive units share a block of weights (row-block major).
                let (rb, tb) = (u / token_blocks, u % token_blocks);
                let p0 = rb * block_panels;
                let np = block_panels.min(panels - p0);
                let t0 = tb * mc;
                let mt = mc.min(n_tokens - t0);
                // At least one run, so a product over zero columns writes its zeros.
                for k0 in (0..cols.max(1)).step_by(kc) {
                    let k1 = (k0 + kc).min(cols);
                    let xs = &x[(t0 * cols + k0).min(x.len())..];
                    for jp in 0..np {
                        let wp = w.panel(p0 + jp, k0, k1);
                        (g.tile)(xs, cols, mt, wp, &mut sums[jp..], np, k0 > 0);
                    }
                }
                let r0 = p0 * NR;
                let r1 = rows.min((p0 + np) * NR);
                for i in 0..mt {
                    let t = t0 + i;
                    // SAFETY: block (tb, rb) alone writes tokens t0..t0 + mt of rows r0..r1,
                    // and each unit is handed to one thread.
                    let o = unsafe { out.slice(t * rows + r0..t * rows + r1) };
                    for (o, line) in o.chunks_mut(NR).zip(&sums[i * np..(i + 1) * np]) {
                        match <&mut [f32; NR]>::try_from(&mut *o) {
                            // A whole line: one 64-byte move, not a memcpy call (with k = 64,
                            // the calls took a third of the time of the attention scores).
                            Ok(o) => *o = line.0,
                            Err(_) => o.copy_from_slice(&line.0[..o.len()]),
                        }
                    }
                }
            }
        })
    };
    let units = row_blocks * token_blocks;
    if streaming {
        lingqiao_pool::for_each_split(units, 1, block);
    } else {
        lingqiao_pool::for_each_chunk(units, 1, block);
    }
}

/// Checks a micro-kernel call's shape (see [`GemmTileFn`]) against the slices, so the SIMD
/// versions can index without bounds checks.
#[inline(always)]
fn check_tile(x: &[f32], ldx: usize, m: usize, k: usize, c: &[PanelLine], ldc: usize) {
    if m == 0 {
        return;
    }
    let x_need = (m - 1).checked_mul(ldx).and_then(|v| v.checked_add(k));
    assert!(
        x_need.is_some_and(|n| n <= x.len()),
        "gemm tile: x too short"
    );
    let c_need = (m - 1).checked_mul(ldc).and_then(|v| v.checked_add(1));
    assert!(
        c_need.is_some_and(|n| n <= c.len()),
        "gemm tile: c too short"
    );
}

/// The portable micro-kernel: the chain of the module's comment, element by element.
pub fn tile_scalar(
    x: &[f32],
    ldx: usize,
    m: usize,
    w: &[PanelLine],
    c: &mut [PanelLine],
    ldc: usize,
    accumulate: bool,
) {
    let k = w.len();
    check_tile(x, ldx, m, k, c, ldc);
    for i in 0..m {
        let ci = &mut c[i * ldc].0;
        for (j, cij) in ci.iter_mut().enumerate() {
            let mut acc = if accumulate { *cij } else { 0.0 };
            for (kk, line) in w.iter().enumerate() {
                acc = x[i * ldx + kk].mul_add(line.0[j], acc);
            }
            *cij = acc;
        }
    }
}

/// Safe wrappers of the SIMD micro-kernels, for the tables.
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd_safe {
    use super::{GemmKernels, PanelLine, check_tile};

    /// Tokens the AVX2 micro-kernel holds: 6 x 2 accumulators, 2 registers for the panel's
    /// line and 1-2 for broadcasts, of the 16 ymm registers.
    const MR_AVX2: usize = 6;

    pub(crate) const AVX2: GemmKernels = GemmKernels {
        mr: MR_AVX2,
        tile: tile_avx2,
    };

    fn tile_avx2(
        x: &[f32],
        ldx: usize,
        m: usize,
        w: &[PanelLine],
        c: &mut [PanelLine],
        ldc: usize,
        accumulate: bool,
    ) {
        let k = w.len();
        check_tile(x, ldx, m, k, c, ldc);
        let (x, w, c) = (x.as_ptr(), w.as_ptr(), c.as_mut_ptr());
        // SAFETY: only reachable through a table, which exists only after AVX2 and FMA were
        // detected and its probe passed; `check_tile` showed that tokens 0..m of x hold k
        // elements each at stride ldx and that c has lines 0, ldc, .., (m - 1) * ldc.
        unsafe { super::avx2::tiles(x, ldx, m, w, k, c, ldc, accumulate) }
    }
}

/// The AVX2+FMA micro-kernel: `M` tokens by 16 rows in 2M ymm accumulators; per k, the
/// panel's line is two aligned loads and each token's element one broadcast, then 2M
/// `vfmadd231ps` — each the fused multiply-add of the scalar chain, in the same order.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::PanelLine;
    use core::arch::x86_64::*;

    /// Tokens 0..m, six at a time and then the rest.
    ///
    /// # Safety
    /// As [`tile`], for tokens 0..m.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tiles(
        x: *const f32,
        ldx: usize,
        m: usize,
        w: *const PanelLine,
        k: usize,
        c: *mut PanelLine,
        ldc: usize,
        accumulate: bool,
    ) {
        let six = m / 6 * 6;
        // SAFETY: tokens i0.. of the caller's are in bounds by the function's contract.
        unsafe {
            for i0 in (0..six).step_by(6) {
                tile::<6>(x.add(i0 * ldx), ldx, w, k, c.add(i0 * ldc), ldc, accumulate);
            }
            let (x, c) = (x.add(six * ldx), c.add(six * ldc));
            match m - six {
                0 => {}
                1 => tile::<1>(x, ldx, w, k, c, ldc, accumulate),
                2 => tile::<2>(x, ldx, w, k, c, ldc, accumulate),
                3 => tile::<3>(x, ldx, w, k, c, ldc, accumulate),
                4 => tile::<4>(x, ldx, w, k, c, ldc, accumulate),
                _ => tile::<5>(x, ldx, w, k, c, ldc, accumulate),
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA available; `x.add(i * ldx + kk)` readable for i < M, kk < k; `w` holds
    /// k lines; `c.add(i * ldc)` a writable line for i < M.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const M: usize>(
        x: *const f32,
        ldx: usize,
        w: *const PanelLine,
        k: usize,
        c: *mut PanelLine,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        // SAFETY (all accesses): in bounds by the function's contract; lines are 64-byte
        // aligned, so the aligned loads and stores are.
        unsafe {
            if accumulate {
                for (i, a) in acc.iter_mut().enumerate() {
                    let ci = c.add(i * ldc).cast::<f32>();
                    *a = [_mm256_load_ps(ci), _mm256_load_ps(ci.add(8))];
                }
            }
            let xs: [*const f32; M] = core::array::from_fn(|i| x.add(i * ldx));
            let step = |acc: &mut [[__m256; 2]; M], kk: usize| {
                let wl = w.add(kk).cast::<f32>();
                let (w0, w1) = (_mm256_load_ps(wl), _mm256_load_ps(wl.add(8)));
                for (a, xi) in acc.iter_mut().zip(&xs) {
                    let b = _mm256_broadcast_ss(&*xi.add(kk));
                    a[0] = _mm256_fmadd_ps(b, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(b, w1, a[1]);
                }
            };
            let k4 = k / 4 * 4;
            for kk in (0..k4).step_by(4) {
                step(&mut acc, kk);
                step(&mut acc, kk + 1);
                step(&mut acc, kk + 2);
                step(&mut acc, kk + 3);
            }
            for kk in k4..k {
                step(&mut acc, kk);
            }
            for (i, a) in acc.iter().enumerate() {
                let ci = c.add(i * ldc).cast::<f32>();
                _mm256_store_ps(ci, a[0]);
                _mm256_store_ps(ci.add(8), a[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{all_tables, uniform};

    #[test]
    fn packing_puts_row_r_at_lane_r_mod_16_and_pads_with_zeros() {
        let (rows, cols) = (17, 3);
        let w: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let p = PackedF32::pack(&w, rows, cols);
        assert_eq!((p.rows(), p.cols()), (rows, cols));
        assert_eq!(p.bytes(), 2 * cols * 64);
        for r in 0..rows {
            for k in 0..cols {
                assert_eq!(p.data[(r / NR) * cols + k].0[r % NR], w[r * cols + k]);
            }
        }
        assert!(
            p.data[cols..]
                .iter()
                .all(|l| l.0[1..].iter().all(|&v| v == 0.0))
        );
    }

    /// A tile over k in two runs (the second continuing the first's sums) gives the bits
    /// of one run, in every table, for any number of tokens.
    #[test]
    fn a_tile_continues_its_chain_across_runs_of_k() {
        let mut rnd = uniform(7);
        let k = 45;
        let w: Vec<PanelLine> = (0..k)
            .map(|_| PanelLine(core::array::from_fn(|_| rnd())))
            .collect();
        for table in all_tables() {
            let g = table.gemm_f32;
            let ldx = k + 3;
            // Up to two whole groups of the kernel's tokens and a part of a third.
            let x: Vec<f32> = (0..(2 * g.mr + 1) * ldx).map(|_| rnd()).collect();
            for m in 1..=2 * g.mr + 1 {
                let mut whole = vec![PanelLine::default(); 2 * m];
                (g.tile)(&x, ldx, m, &w, &mut whole, 2, false);
                let mut split = vec![PanelLine(core::array::from_fn(|_| rnd())); 2 * m];
                (g.tile)(&x, ldx, m, &w[..20], &mut split, 2, false);
                (g.tile)(&x[20..], ldx, m, &w[20..], &mut split, 2, true);
                for i in 0..m {
                    let bits = |l: &PanelLine| l.0.map(f32::to_bits);
                    assert_eq!(
                        bits(&whole[2 * i]),
                        bits(&split[2 * i]),
                        "{} m={m} token {i}",
                        table.isa
                    );
                }
            }
        }
    }
}
