//! The encoder's element-wise functions over whole rows, written so that LLVM vectorizes
//! them on any target (no calls into the C library per element): e^x for the attention
//! softmax and erf for the exact GELU. With `expf` and `erff` from the C library these two
//! took two thirds of whisper-tiny's encoder time (7M erf and 54M exp per window).
//!
//! - e^x as 2^n * e^r (n = round(x log2 e), r = x - n ln 2 in two parts) with the degree-7
//!   Taylor polynomial of e^r, the kernels crate's SIMD `exp8` method (truncation error
//!   below 6e-9 relative, so within an ulp or two of `expf`).
//! - erf(x) = 1 - (a1 t + ... + a5 t^5) e^(-x^2), t = 1 / (1 + p|x|), Abramowitz and
//!   Stegun 7.1.26: absolute error below 1.5e-7 (measured 6.4e-7 evaluated in f32), a GELU
//!   within 3.2e-7 |x| of the erf one.

const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Inputs below this give 0 (e^x is under the smallest normal f32), above it +inf.
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;

/// e^x; 0 below -87 and +inf above 88 (and NaN for NaN).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let c = x.clamp(EXP_LO, EXP_HI);
    let n = (c * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for k in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + k;
    }
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let e = p * two_n;
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f32::INFINITY
    } else {
        e
    }
}

/// erf(x), Abramowitz and Stegun 7.1.26 (absolute error below 1e-6 in f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_72) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 { -y } else { y }
}

/// The exact (erf) GELU of every element, as Whisper's `nn.GELU()`.
pub fn gelu(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The sum of `x` in eight interleaved partial sums (added pairwise at the end), so the
/// loop vectorizes; a strict left-to-right float sum cannot be.
fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    for (a, v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The largest element of `x`, eight lanes at a time (NaNs are ignored, as by `f32::max`).
fn max8(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&acc)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// softmax in place: e^(x - max) / sum.
pub fn softmax(x: &mut [f32]) {
    let max = max8(x);
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum8(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_two_ulps_of_the_c_library() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (super::exp(x), x.exp());
            assert!((a - b).abs() <= 2.5e-7 * b, "exp({x}) = {a}, libm {b}");
            x += 0.0137;
        }
        assert_eq!(super::exp(-100.0), 0.0);
        assert_eq!(super::exp(100.0), f32::INFINITY);
        assert!(super::exp(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_1e6_of_libm() {
        let mut x = -6.0f32;
        let mut worst = 0f32;
        while x < 6.0 {
            let (a, b) = (super::erf(x), libm::erf(f64::from(x)) as f32);
            worst = worst.max((a - b).abs());
            x += 0.0001;
        }
        // The formula's 1.5e-7 plus its evaluation in f32.
        assert!(worst < 1e-6, "erf is off by up to {worst}");
        eprintln!("erf: max abs error {worst:e}");
    }
}
