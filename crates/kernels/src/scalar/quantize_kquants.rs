//! Weight quantizers for the K-quants Q2_K ... Q6_K: ggml's `quantize_row_q*_K_ref`, what
//! `ggml_quantize_chunk` runs without an importance matrix, with the search helpers they use
//! (`nearest_int`, `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`).
//!
//! Each helper repeats its ggml namesake's f32 operations in the same order with no fused
//! multiply-adds (the C library is built without them, so the bytes can match). The integer
//! truncations of the C code (an `int` stored into an `int8_t` or `uint8_t`) are kept as
//! `as` casts: they only bite on degenerate blocks, and there they decide the bytes.
//!
//! Scalar on purpose: quantizing a file is offline work that the caller spreads over rows.

use super::blocks_mut;
use crate::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, scales_q3k};
use half::f16;
use lingqiao_gguf::QK_K;

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below it quantize to zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even through the mantissa of `fval + 1.5 * 2^23`.
/// Exact for |fval| < 2^22; beyond that ggml asserts in debug builds and returns these same
/// wrapped bits in release ones, which is what we reproduce.
#[inline(always)]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

#[inline(always)]
fn f16_round(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

#[inline(always)]
fn f16_value(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

/// The value of largest magnitude with its sign (first one on ties), and that magnitude.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// Matches ggml's `make_qx_quants` with `qw == NULL`: symmetric levels -nmax..nmax-1 stored
/// as `L = l + nmax`; the scale is refined over 18 nearby trial scales by weighted least
/// squares, weights by `rmse_type` (1: x^2, 2: 1, 3: |x|, else sqrt|x|; negative: one pass,
/// then the mean of the two scales). Returns the scale.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], rmse_type: i32) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = (-nmax) as f32 / max;
    if rmse_type == 0 {
        for (l, &v) in l_out.iter_mut().zip(x) {
            *l = (nmax + level(iscale, v)) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = (rmse_type.abs(), rmse_type < 0);
    let weight = |v: f32| match rmse_type {
        1 => v * v,
        2 => 1.0,
        3 => v.abs(),
        _ => v.abs().sqrt(),
    };
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = weight(v);
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    for (l, &v) in l_out.iter_mut().zip(x) {
        *l = (level(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l, &v) in l_out.iter_mut().zip(x) {
                *l = (nmax + level(iscale, v)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Matches ggml's `make_q3_quants`: levels -nmax..nmax-1 stored as `L = l + nmax`. With
/// `do_rmse`, up to five passes move single elements to the level that improves the x^2
/// weighted least-squares fit; returns the fitted scale.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8], do_rmse: bool) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    let level = |q: f32| nearest_int(q).clamp(-nmax, nmax - 1);
    if !do_rmse {
        for (l, &v) in l_out.iter_mut().zip(x) {
            *l = (level(iscale * v) + nmax) as i8;
        }
        return 1.0 / iscale;
    }
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (l, &v) in l_out.iter_mut().zip(x) {
        let q = level(iscale * v);
        *l = q as i8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (l, &v) in l_out.iter_mut().zip(x) {
            let w = v * v;
            let li = f32::from(*l);
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = level(v * sl2 / slx);
                if new_l != i32::from(*l) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// The search grid of [`make_qkx2_quants`]: trial inverse scales (rmin + rdelta * is + nmax)
/// / (max - min) for is in 0..=nstep, and whether errors are absolute (else squared).
#[derive(Clone, Copy)]
pub(crate) struct Qkx2Search {
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    pub use_mad: bool,
}

/// Matches ggml's `make_qkx2_quants`: levels 0..=nmax with an offset, x ~ scale * L - min.
/// Starts from the full range, then tries the grid of inverse scales, fitting scale and min
/// by weighted least squares to each one's levels, and keeps the lowest weighted error.
/// Returns (scale, min) with min >= 0 meaning the offset -min.
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    search: Qkx2Search,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let error = |scale: f32, min: f32, l: &[u8]| {
        let mut e = 0f32;
        for i in 0..n {
            let diff = scale * f32::from(l[i]) + min - x[i];
            let diff = if search.use_mad {
                diff.abs()
            } else {
                diff * diff
            };
            e += weights[i] * diff;
        }
        e
    };
    let levels = |iscale: f32, min: f32, l: &mut [u8]| {
        for i in 0..n {
            l[i] = nearest_int(iscale * (x[i] - min)).clamp(0, nmax) as u8;
        }
    };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    levels(iscale, min, l_out);
    let mut best_error = error(scale, min, l_out);
    if search.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=search.nstep {
        iscale = (search.rmin + search.rdelta * is as f32 + nmax as f32) / (max - min);
        levels(iscale, min, laux);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let (w, l) = (weights[i], f32::from(laux[i]));
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, laux);
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The 2-bit layout shared by Q2_K's and Q3_K's `qs`: element 32 * s + l of each 128-element
/// half goes to bits 2s of byte l.
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
    qs
}

/// Matches ggml's `quantize_row_q2_K_ref`.
pub fn quantize_row_q2_k_ref(src: &[f32], dst: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ2K>(dst)) {
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for j in 0..QK_K / 16 {
            let xg = &x[16 * j..16 * j + 16];
            let weights: [f32; 16] = std::array::from_fn(|i| xg[i].abs());
            (scales[j], mins[j]) =
                make_qkx2_quants(3, xg, &weights, &mut l[16 * j..16 * j + 16], search);
            max_scale = max_scale.max_c(scales[j]);
            max_min = max_min.max_c(mins[j]);
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (s, &scale) in b.scales.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * scale) as u8;
            }
            b.d = f16_round(max_scale / Q4SCALE);
        } else {
            b.scales = [0; 16];
            b.d = f16_round(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (s, &min) in b.scales.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * min) << 4) as u8;
            }
            b.dmin = f16_round(max_min / Q4SCALE);
        } else {
            b.dmin = f16_round(0.0);
        }
        let (d_all, dmin_all) = (f16_value(b.d), f16_value(b.dmin));
        for j in 0..QK_K / 16 {
            let d = d_all * f32::from(b.scales[j] & 0x0F);
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * f32::from(b.scales[j] >> 4);
            for i in 0..16 {
                l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / d).clamp(0, 3) as u8;
            }
        }
        b.qs = pack_2bit(&l);
    }
}

/// Matches ggml's `quantize_row_q3_K_ref`.
pub fn quantize_row_q3_k_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ3K>(dst)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0f32, 0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_q3_quants(
                4,
                &x[16 * j..16 * j + 16],
                &mut l[16 * j..16 * j + 16],
                true,
            );
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &scale) in scales.iter().enumerate() {
                let q = (nearest_int(iscale * scale) as i8).clamp(-32, 31) + 32;
                let q = q as u8;
                if j < 8 {
                    b.scales[j] = q & 0x0F;
                } else {
                    b.scales[j - 8] |= (q & 0x0F) << 4;
                }
                b.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
            }
            b.d = f16_round(1.0 / iscale);
        } else {
            b.d = f16_round(0.0);
        }
        let d_all = f16_value(b.d);
        let sc = scales_q3k(&b.scales);
        for j in 0..QK_K / 16 {
            let d = d_all * f32::from(sc[j]);
            if d == 0.0 {
                continue;
            }
            for i in 0..16 {
                l[16 * j + i] = nearest_int(x[16 * j + i] / d).clamp(-4, 3) as i8 + 4;
            }
        }
        // The third bit of element j is bit j / 32 of hmask[j % 32]; what is left is 2 bits.
        b.hmask = [0; QK_K / 8];
        let mut low = [0u8; QK_K];
        for j in 0..QK_K {
            let mut v = l[j] as u8;
            if v > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
                v -= 4;
            }
            low[j] = v;
        }
        b.qs = pack_2bit(&low);
    }
}

/// Q4_K's and Q5_K's shared part: groups of 32 fitted by [`make_qkx2_quants`] with weights
/// rms(group) + |x|, their scales and mins stored as 6 bits under two f16 super-scales
/// (`scales` in the layout `get_scale_min_k4` reads), then the levels re-fitted to the
/// stored scales. Returns the levels 0..=nmax.
fn quantize_groups_of_32(
    x: &[f32],
    nmax: i32,
    search: Qkx2Search,
    d_out: &mut [u8; 2],
    dmin_out: &mut [u8; 2],
    packed: &mut [u8; 12],
) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..QK_K / 32 {
        let xg = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xg[i].abs());
        (scales[j], mins[j]) =
            make_qkx2_quants(nmax, xg, &weights, &mut l[32 * j..32 * j + 32], search);
        max_scale = max_scale.max_c(scales[j]);
        max_min = max_min.max_c(mins[j]);
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..QK_K / 32 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    *d_out = f16_round(max_scale / 63.0);
    *dmin_out = f16_round(max_min / 63.0);
    let (d_all, dmin_all) = (f16_value(*d_out), f16_value(*dmin_out));
    for j in 0..QK_K / 32 {
        let (sc, m) = crate::blocks::scale_min_k4(j, packed);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for i in 0..32 {
            l[32 * j + i] = nearest_int((x[32 * j + i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}

/// Matches ggml's `quantize_row_q4_K_ref`.
pub fn quantize_row_q4_k_ref(src: &[f32], dst: &mut [u8]) {
    let search = Qkx2Search {
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ4K>(dst)) {
        let l = quantize_groups_of_32(x, 15, search, &mut b.d, &mut b.dmin, &mut b.scales);
        for (c, qs) in b.qs.chunks_exact_mut(32).enumerate() {
            for (i, q) in qs.iter_mut().enumerate() {
                *q = l[64 * c + i] | (l[64 * c + i + 32] << 4);
            }
        }
    }
}

/// Matches ggml's `quantize_row_q5_K_ref`.
pub fn quantize_row_q5_k_ref(src: &[f32], dst: &mut [u8]) {
    let search = Qkx2Search {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ5K>(dst)) {
        let l = quantize_groups_of_32(x, 31, search, &mut b.d, &mut b.dmin, &mut b.scales);
        // Element e's fifth bit is bit e / 32 of qh[e % 32]; the nibbles are Q4_K's.
        b.qh = [0; QK_K / 8];
        for (c, qs) in b.qs.chunks_exact_mut(32).enumerate() {
            for (i, q) in qs.iter_mut().enumerate() {
                let (lo, hi) = (l[64 * c + i], l[64 * c + i + 32]);
                b.qh[i] |= (lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1);
                *q = (lo & 0x0F) | ((hi & 0x0F) << 4);
            }
        }
    }
}

/// Matches ggml's `quantize_row_q6_K_ref`.
pub fn quantize_row_q6_k_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ6K>(dst)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16], 1);
            if scales[j].abs() > max_abs_scale {
                max_abs_scale = scales[j].abs();
                max_scale = scales[j];
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f16_round(1.0 / iscale);
        for (s, &scale) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * scale).min(127) as i8;
        }
        let d_all = f16_value(b.d);
        for j in 0..QK_K / 16 {
            let d = d_all * f32::from(b.scales[j]);
            if d == 0.0 {
                continue;
            }
            for i in 0..16 {
                l[16 * j + i] = nearest_int(x[16 * j + i] / d).clamp(-32, 31) as i8 + 32;
            }
        }
        // Element 32 * s + i of each 128-element half: low nibble in ql (s = 0, 1 low
        // nibbles of bytes i, 32 + i; s = 2, 3 their high nibbles), high 2 bits at bit 2s
        // of qh[i].
        for h in 0..QK_K / 128 {
            let lh = &l[128 * h..128 * h + 128];
            for i in 0..32 {
                let q: [u8; 4] = std::array::from_fn(|s| lh[32 * s + i] as u8);
                b.ql[64 * h + i] = (q[0] & 0x0F) | ((q[2] & 0x0F) << 4);
                b.ql[64 * h + 32 + i] = (q[1] & 0x0F) | ((q[3] & 0x0F) << 4);
                b.qh[32 * h + i] =
                    (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
            }
        }
    }
}

/// ggml's `if (v > max) max = v;`, which (unlike `f32::max`) is the comparison the scale
/// searches are written with.
trait MaxC {
    fn max_c(self, v: f32) -> f32;
}

impl MaxC for f32 {
    #[inline(always)]
    fn max_c(self, v: f32) -> f32 {
        if v > self { v } else { self }
    }
}
