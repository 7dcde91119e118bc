//! The log-mel front end, exactly as faster-whisper's `FeatureExtractor` computes it
//! (`faster_whisper/feature_extractor.py`, 1.2.1), which is also what openai-whisper's
//! `log_mel_spectrogram` computes:
//!
//! 1. append `padding` zero samples (`__call__`, default 160);
//! 2. centered STFT: reflect-pad `N_FFT / 2` samples on each side (numpy's `reflect`, which
//!    mirrors repeatedly when the clip is shorter than the padding), frames of `N_FFT` every
//!    `HOP_LENGTH`, periodic Hann window, real FFT (`stft`);
//! 3. power spectrum, last frame dropped (`np.abs(stft[..., :-1]) ** 2`);
//! 4. slaney mel filterbank (`get_mel_filters`, librosa's `mel(norm="slaney")`);
//! 5. `log10(max(x, 1e-10))`, clamp to `max - 8` where the max is over the **whole input**,
//!    then `(x + 4) / 4`.
//!
//! Because of step 5 the features of a clip depend on the loudest frame anywhere in it:
//! computing a long recording in pieces gives different values than computing it whole.
//! faster-whisper computes the whole clip once and then slices 30 s windows out of it
//! ([`window`]), and so should callers that want its output.
//!
//! Values are rounded to f32 where the reference rounds them (the windowed frame, the
//! complex64 spectrum, the power, the mel energies, the logarithm); the filterbank is computed
//! in f64 and stored as f32, as the reference does. numpy >= 2 runs `rfft` in single precision
//! with a nearly correctly rounded result; rustfft's f32 FFT is less accurate, so the FFT runs
//! in f64 and is rounded (see [`MelFrontEnd::compute`]). The remaining differences are
//! rounding-order ones: `re² + im²` instead of `hypot(re, im)²`, a sparse sum instead of
//! BLAS's `sgemm`, and a polynomial log10. Measured against faster-whisper 1.2.1: within
//! 1.2e-7 (one f32 ulp at the features' magnitude).

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{RealFftPlanner, RealToComplex};

use crate::audio::SAMPLE_RATE;

/// FFT size (`n_fft`): 25 ms at 16 kHz.
pub const N_FFT: usize = 400;
/// Hop between frames (`hop_length`): 10 ms at 16 kHz.
pub const HOP_LENGTH: usize = 160;
/// Frames in one 30 s encoder window (`nb_max_frames`, `pad_or_trim`'s default length).
pub const N_FRAMES: usize = 3000;
/// Zero samples appended before the STFT (`FeatureExtractor.__call__`'s default `padding`).
pub const DEFAULT_PADDING: usize = 160;
/// Mel bands of every Whisper model except large-v3 / large-v3-turbo (which use 128).
pub const N_MELS: usize = 80;

/// Floor applied before the logarithm (`np.clip(mel_spec, a_min=1e-10)`).
const LOG_FLOOR: f32 = 1e-10;
/// Dynamic range kept below the clip's maximum, in log10 units.
const DYNAMIC_RANGE: f32 = 8.0;
/// Frames per block: the block's power spectra, 201 x 64 x 4 bytes, stay in L2.
const BLOCK_FRAMES: usize = 64;

/// A log-mel spectrogram: `n_mels x n_frames`, mel-major (row `m` holds band `m` for every
/// frame), the layout of the reference's `(n_mels, n_frames)` C-order array.
#[derive(Debug, Clone, PartialEq)]
pub struct Mel {
    pub n_mels: usize,
    pub n_frames: usize,
    /// (n_mels, n_frames)
    pub data: Vec<f32>,
}

impl Mel {
    /// Band `m` for every frame.
    pub fn row(&self, m: usize) -> &[f32] {
        &self.data[m * self.n_frames..(m + 1) * self.n_frames]
    }
}

/// The slaney mel filterbank, mirroring `FeatureExtractor.get_mel_filters` (librosa's
/// `filters.mel(sr, n_fft, n_mels, htk=False, norm="slaney")` with `fmax = 8000`): computed in
/// f64, stored as f32.
#[derive(Debug, Clone)]
pub struct MelFilters {
    n_mels: usize,
    n_freqs: usize,
    /// (n_mels, n_freqs)
    weights: Vec<f32>,
    /// Per band, the half-open range of FFT bins with a non-zero weight: the triangles are
    /// narrow, so the dot product skips the zeros (adding exact zeros changes nothing).
    support: Vec<(usize, usize)>,
}

impl MelFilters {
    /// `get_mel_filters(sr, n_fft, n_mels)`. The mel scale's upper end (45.2456... mel,
    /// i.e. 8 kHz) is fixed in the reference whatever `sample_rate` is.
    pub fn new(sample_rate: u32, n_fft: usize, n_mels: usize) -> Self {
        let n_freqs = n_fft / 2 + 1;
        // np.fft.rfftfreq(n=n_fft, d=1.0 / sr): k * (1 / (n * d)).
        let d = 1.0 / f64::from(sample_rate);
        let val = 1.0 / (n_fft as f64 * d);
        let fftfreqs: Vec<f64> = (0..n_freqs).map(|k| k as f64 * val).collect();

        // np.linspace(0, max_mel, n_mels + 2): i * step + start, last element set to stop.
        let (min_mel, max_mel) = (0.0f64, 45.245640471924965f64);
        let n_points = n_mels + 2;
        let step = (max_mel - min_mel) / (n_points - 1) as f64;
        let mut mels: Vec<f64> = (0..n_points).map(|i| i as f64 * step + min_mel).collect();
        mels[n_points - 1] = max_mel;

        // Linear below 1 kHz, logarithmic above (the slaney mel scale).
        let f_min = 0.0f64;
        let f_sp = 200.0f64 / 3.0;
        let min_log_hz = 1000.0f64;
        let min_log_mel = (min_log_hz - f_min) / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        let freqs: Vec<f64> = mels
            .iter()
            .map(|&mel| {
                if mel >= min_log_mel {
                    min_log_hz * (logstep * (mel - min_log_mel)).exp()
                } else {
                    f_min + f_sp * mel
                }
            })
            .collect();
        let fdiff: Vec<f64> = freqs.windows(2).map(|w| w[1] - w[0]).collect();

        let mut weights = vec![0.0f32; n_mels * n_freqs];
        let mut support = Vec::with_capacity(n_mels);
        for m in 0..n_mels {
            // Slaney normalization: approximately constant energy per band.
            let enorm = 2.0 / (freqs[m + 2] - freqs[m]);
            let row = &mut weights[m * n_freqs..(m + 1) * n_freqs];
            for (k, w) in row.iter_mut().enumerate() {
                let lower = -(freqs[m] - fftfreqs[k]) / fdiff[m];
                let upper = (freqs[m + 2] - fftfreqs[k]) / fdiff[m + 1];
                *w = (0.0f64.max(lower.min(upper)) * enorm) as f32;
            }
            let lo = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let hi = row.iter().rposition(|&w| w != 0.0).map_or(lo, |k| k + 1);
            support.push((lo, hi));
        }
        Self {
            n_mels,
            n_freqs,
            weights,
            support,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// FFT bins per band (`n_fft / 2 + 1`).
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// The weights, (n_mels, n_freqs) row-major: the reference's `mel_filters` array.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Band `m` of `mel_filters @ power` for a block of frames: `power` is
    /// (n_freqs, BLOCK_FRAMES), bin-major, and `out` gets the band's value for the first
    /// `out.len()` frames. Frames are the vector lanes; bins are summed in order.
    fn apply_band(&self, m: usize, power: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let (lo, hi) = self.support[m];
        let row = &self.weights[m * self.n_freqs..(m + 1) * self.n_freqs];
        for (k, &w) in row.iter().enumerate().take(hi).skip(lo) {
            let p = &power[k * BLOCK_FRAMES..k * BLOCK_FRAMES + out.len()];
            for (o, &x) in out.iter_mut().zip(p) {
                *o += w * x;
            }
        }
    }
}

/// `log10` of a positive normal f32, Cephes' `log10f` (error under 2 ulp for the whole
/// range, against libm's 1): plain arithmetic, so a loop over a slice vectorizes, which libm
/// calls do not. Inputs here are at least the 1e-10 floor; NaN or infinity (from non-finite
/// samples) give meaningless values, never a panic.
#[inline]
fn log10_fast(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    // log10(e) and log10(2), each split into an exactly representable head and a tail.
    const L10EA: f32 = 4.3359375E-1;
    const L10EB: f32 = 7.007_319E-4;
    const L102A: f32 = 3.007_812_5E-1;
    const L102B: f32 = 2.487_456_6E-4;
    // frexp: x = m * 2^e, m in [0.5, 1).
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    let m = if m < SQRT_HALF {
        e -= 1;
        m + m - 1.0
    } else {
        m - 1.0
    };
    let z = m * m;
    let mut y = 7.037_683_6E-2;
    y = y * m - 1.151_461_E-1;
    y = y * m + 1.167_699_9E-1;
    y = y * m - 1.242_014_1E-1;
    y = y * m + 1.424_932_3E-1;
    y = y * m - 1.666_805_8E-1;
    y = y * m + 2.000_071_5E-1;
    y = y * m - 2.499_999_4E-1;
    y = y * m + 3.333_333E-1;
    let y = y * m * z - 0.5 * z;
    let e = e as f32;
    // ln(1 + m) = m + y; scaled to log10 in pieces to keep the rounding small.
    let mut r = y * L10EB;
    r += m * L10EB;
    r += e * L102B;
    r += y * L10EA;
    r += m * L10EA;
    r += e * L102A;
    r
}

/// `np.hanning(n_fft + 1)[:-1].astype("float32")`: the periodic Hann window, computed with
/// numpy's formula `0.5 + 0.5 * cos(pi * n / (M - 1))`, `n = 1 - M, 3 - M, ..., M - 1`.
pub fn hann_window(n_fft: usize) -> Vec<f32> {
    let m = n_fft + 1;
    (0..n_fft)
        .map(|i| {
            let n = (2 * i) as f64 - (m - 1) as f64;
            (0.5 + 0.5 * (std::f64::consts::PI * n / (m - 1) as f64).cos()) as f32
        })
        .collect()
}

/// numpy's `np.pad(x, mode="reflect")` index map: a mirror about the first and last samples
/// without repeating them, applied as often as needed (period `2 (len - 1)`), which is what
/// numpy does when the padding is longer than the signal.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let j = i.rem_euclid(period) as usize;
    if j < len { j } else { period as usize - j }
}

/// The precomputed parts of the front end (window, filterbank, FFT plan), reusable across
/// clips and threads. Mirrors `FeatureExtractor.__init__` + `__call__`.
pub struct MelFrontEnd {
    filters: MelFilters,
    /// (N_FFT)
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd")
            .field("n_mels", &self.filters.n_mels)
            .finish()
    }
}

impl MelFrontEnd {
    /// The front end for a model with `n_mels` bands (80, or 128 for large-v3), at Whisper's
    /// 16 kHz / 400-point FFT / 160-sample hop.
    pub fn new(n_mels: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Self {
            filters: MelFilters::new(SAMPLE_RATE, N_FFT, n_mels),
            window: hann_window(N_FFT),
            fft,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.filters.n_mels
    }

    pub fn filters(&self) -> &MelFilters {
        &self.filters
    }

    /// `FeatureExtractor.__call__(samples, padding)`: the log-mel of 16 kHz mono samples with
    /// `padding` zero samples appended (faster-whisper's default is [`DEFAULT_PADDING`]).
    ///
    /// There are `(samples.len() + padding) / HOP_LENGTH` frames. Where the reference raises
    /// (no samples at all, or fewer than one hop) this returns a spectrogram with no frames.
    pub fn compute(&self, samples: &[f32], padding: usize) -> Mel {
        let n_mels = self.filters.n_mels;
        // The padded signal x' = samples ++ zeros(padding), never materialized.
        let len = samples.len() + padding;
        // 1 + len / hop STFT frames over the centered signal, minus the dropped last one.
        let n_frames = len / HOP_LENGTH;
        let mut data = vec![0.0f32; n_mels * n_frames];
        if n_frames == 0 {
            return Mel {
                n_mels,
                n_frames,
                data,
            };
        }

        let sample = |i: usize| if i < samples.len() { samples[i] } else { 0.0 };
        let half = (N_FFT / 2) as isize;
        let mut frame = vec![0.0f64; N_FFT]; // (N_FFT)
        let mut spectrum = self.fft.make_output_vec(); // (N_FFT / 2 + 1)
        let mut scratch = self.fft.make_scratch_vec();
        // A block of frames at a time: the power spectra are stored bin-major, so the mel
        // projection runs with frames as vector lanes and writes straight into the mel-major
        // output rows.
        let mut power = vec![0.0f32; (N_FFT / 2 + 1) * BLOCK_FRAMES]; // (N_FFT / 2 + 1, BLOCK_FRAMES)
        let mut max = f32::NEG_INFINITY;

        for t0 in (0..n_frames).step_by(BLOCK_FRAMES) {
            let count = BLOCK_FRAMES.min(n_frames - t0);
            for (j, t) in (t0..t0 + count).enumerate() {
                // Frame t covers x'[t * hop - N_FFT / 2, t * hop + N_FFT / 2).
                let start = (t * HOP_LENGTH) as isize - half;
                let end = start + N_FFT as isize;
                // The windowed frame is rounded to f32 as in the reference; the FFT runs in
                // f64 and its output is rounded to f32 (complex64). numpy's f32 FFT is close
                // to correctly rounded, rustfft's f32 FFT is not: an f32 FFT here put the
                // features ~8e-6 from the reference in bands 60 dB below the frame's peak,
                // this puts them within an f32 ulp.
                if start >= 0 && end as usize <= samples.len() {
                    let src = &samples[start as usize..end as usize];
                    for ((f, &x), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                        *f = f64::from(x * w);
                    }
                } else {
                    for (i, (f, &w)) in frame.iter_mut().zip(&self.window).enumerate() {
                        *f = f64::from(sample(reflect_index(start + i as isize, len)) * w);
                    }
                }
                self.fft
                    .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                    .expect("the FFT buffers come from this plan");
                for (k, c) in spectrum.iter().enumerate() {
                    power[k * BLOCK_FRAMES + j] = power_of(*c);
                }
            }
            for (m, row) in data.chunks_exact_mut(n_frames).enumerate() {
                let out = &mut row[t0..t0 + count];
                self.filters.apply_band(m, &power, out);
                for v in out.iter_mut() {
                    *v = log10_fast(v.max(LOG_FLOOR));
                }
                // (A plain comparison, unlike f32::max's NaN rules, vectorizes.)
                max = out.iter().fold(max, |a, &b| if b > a { b } else { a });
            }
        }

        let floor = max - DYNAMIC_RANGE;
        for v in &mut data {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        Mel {
            n_mels,
            n_frames,
            data,
        }
    }
}

/// `|c|^2`. The reference computes `np.abs(c) ** 2` (a hypot, then a square): the two differ
/// by an ulp or so, far below the FFT's own rounding, and hypot is several times slower.
#[inline]
fn power_of(c: Complex64) -> f32 {
    let (re, im) = (c.re as f32, c.im as f32);
    re * re + im * im
}

/// The log-mel of 16 kHz mono `samples` with `padding` zeros appended:
/// `FeatureExtractor(feature_size=n_mels)(samples, padding=padding)`. Builds a
/// [`MelFrontEnd`] each call; keep one around to avoid that.
pub fn log_mel(samples: &[f32], n_mels: usize, padding: usize) -> Mel {
    MelFrontEnd::new(n_mels).compute(samples, padding)
}

/// `pad_or_trim(features[:, start_frame : start_frame + n_frames], n_frames)`: an
/// `n_mels x n_frames` window (mel-major), right-padded with `0.0` where the spectrogram
/// ends. As in the reference the padding is zeros *in the normalized log-mel domain*
/// (log10 power -4), not the value silence would get.
pub fn window(mel: &Mel, start_frame: usize, n_frames: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; mel.n_mels * n_frames];
    let start = start_frame.min(mel.n_frames);
    let end = start_frame.saturating_add(n_frames).min(mel.n_frames);
    let take = end - start;
    if take == 0 {
        return out;
    }
    for (m, dst) in out.chunks_exact_mut(n_frames).enumerate() {
        dst[..take].copy_from_slice(&mel.row(m)[start..end]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_is_periodic() {
        let w = hann_window(N_FFT);
        assert_eq!(w.len(), 400);
        assert_eq!(w[0], 0.0);
        assert_eq!(w[200], 1.0);
        assert!((w[100] - 0.5).abs() < 1e-7 && (w[300] - 0.5).abs() < 1e-7);
        assert!((w[1] - w[399]).abs() < 1e-7);
    }

    #[test]
    fn log10_fast_is_accurate() {
        // Log-uniform sweep over the range the front end sees (the 1e-10 floor up to 1e12),
        // against f64. One f32 ulp at |log10| = 10 is 9.5e-7.
        let mut worst = 0.0f64;
        let mut x = 1e-10f32;
        while x < 1e12 {
            let err = (f64::from(log10_fast(x)) - f64::from(x).log10()).abs();
            worst = worst.max(err);
            x *= 1.000_37;
        }
        assert!(worst < 1e-6, "worst error {worst:e}");
        assert_eq!(log10_fast(1.0), 0.0);
        assert_eq!(log10_fast(LOG_FLOOR), -10.0);
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(4), 6, mode="reflect")
        let got: Vec<usize> = (-6..10).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(reflect_index(-3, 1), 0);
    }

    #[test]
    fn window_pads_with_zero() {
        let mel = Mel {
            n_mels: 2,
            n_frames: 3,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        assert_eq!(window(&mel, 1, 4), [2.0, 3.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
        assert_eq!(window(&mel, 0, 2), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(window(&mel, 7, 2), [0.0; 4]);
    }
}
