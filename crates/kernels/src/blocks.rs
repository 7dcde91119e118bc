//! On-disk block layouts of the ggml quantized types (`block_q4_0` ... `block_q8_K` in ggml-common.h).
//!
//! Every field is a byte array, so every block has alignment 1: a `&[u8]` taken from a memory map
//! at any offset can be viewed as `&[Block]` without an alignment check that could fail at run
//! time. Multi-byte fields are little-endian (as GGUF is); the accessors decode them.

use bytemuck::{Pod, Zeroable};
use half::f16;
use lingqiao_gguf::{GgmlType, QK_K};

/// Elements per block of the "legacy" quants (`QK4_0`, `QK8_0`, ... in ggml).
pub const QK: usize = 32;

#[inline(always)]
fn f16_at(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

/// 4-bit, scale only: x = d * (q - 8). Nibble j holds element j, the high nibble element j + 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// 4-bit, scale and offset: x = d * q + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// 5-bit, scale only: x = d * (q - 16); bit j of `qh` is the fifth bit of element j.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 5-bit, scale and offset: x = d * q + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 8-bit, scale only: x = d * q.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; QK],
}

/// 8-bit with `s = d * sum(qs)` precomputed, the partner of Q4_1/Q5_1 in dot products.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [i8; QK],
}

/// 2-bit super-block: 16 groups of 16, each with a 4-bit scale (low) and 4-bit min (high).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}

/// 3-bit super-block: 2 low bits in `qs`, the third in `hmask`; 16 six-bit scales in 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}

/// 4-bit super-block: 8 groups of 32 with 6-bit scales and mins packed in 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

/// 5-bit super-block: as Q4_K plus one high bit per element in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// 6-bit super-block: 4 low bits in `ql`, 2 high bits in `qh`, 16 signed 8-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: [u8; 2],
}

/// 8-bit activation super-block for K-quant dot products; `bsums[j]` = sum of qs[16j..16j+16].
/// Unlike the other blocks `d` is an f32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [i8; QK_K],
    pub bsums: [[u8; 2]; QK_K / 16],
}

macro_rules! impl_d {
    ($($t:ty),*) => {$(
        impl $t {
            /// The block scale as f32.
            #[inline(always)]
            pub fn d(&self) -> f32 {
                f16_at(self.d)
            }
        }
    )*};
}
impl_d!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, BlockQ2K, BlockQ3K, BlockQ4K,
    BlockQ5K, BlockQ6K
);

macro_rules! impl_m {
    ($($t:ty),*) => {$(
        impl $t {
            /// The block offset (min) as f32.
            #[inline(always)]
            pub fn m(&self) -> f32 {
                f16_at(self.m)
            }
        }
    )*};
}
impl_m!(BlockQ4_1, BlockQ5_1);

macro_rules! impl_dmin {
    ($($t:ty),*) => {$(
        impl $t {
            /// The super-block scale of the mins as f32.
            #[inline(always)]
            pub fn dmin(&self) -> f32 {
                f16_at(self.dmin)
            }
        }
    )*};
}
impl_dmin!(BlockQ2K, BlockQ4K, BlockQ5K);

impl BlockQ5_0 {
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

impl BlockQ5_1 {
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

impl BlockQ8_1 {
    /// d * sum(qs), as stored (rounded to f16).
    #[inline(always)]
    pub fn s(&self) -> f32 {
        f16_at(self.s)
    }
}

impl BlockQ8K {
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }

    #[inline(always)]
    pub fn bsum(&self, j: usize) -> i16 {
        i16::from_le_bytes(self.bsums[j])
    }
}

/// The 6-bit scale and min of group `j` (0..8) of a Q4_K/Q5_K block; matches ggml's
/// `get_scale_min_k4`. Bytes 0..4 hold scales 0..4, 4..8 mins 0..4 (low 6 bits each); the
/// remaining four of each are split into a low nibble in bytes 8..12 and two high bits
/// stolen from the top of bytes 0..8.
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (sc, m)
    }
}

/// All 8 scales and 8 mins of a Q4_K/Q5_K block.
#[inline(always)]
pub fn scales_mins_k4(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (sc[j], m[j]) = scale_min_k4(j, q);
    }
    (sc, m)
}

/// The 16 signed scales of a Q3_K block (already minus 32). Byte i (< 8) holds the low nibbles
/// of scales i and i + 8; bytes 8..12 hold the two high bits of scale i at bit 2 * (i / 4) of
/// byte 8 + i % 4.
#[inline(always)]
pub fn scales_q3k(q: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { q[i] & 0x0F } else { q[i - 8] >> 4 };
        let high = (q[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

macro_rules! assert_layout {
    ($($t:ty => $g:expr),* $(,)?) => {$(
        const _: () = assert!(size_of::<$t>() == $g.type_size());
        const _: () = assert!(align_of::<$t>() == 1);
    )*};
}
assert_layout!(
    BlockQ4_0 => GgmlType::Q4_0,
    BlockQ4_1 => GgmlType::Q4_1,
    BlockQ5_0 => GgmlType::Q5_0,
    BlockQ5_1 => GgmlType::Q5_1,
    BlockQ8_0 => GgmlType::Q8_0,
    BlockQ8_1 => GgmlType::Q8_1,
    BlockQ2K => GgmlType::Q2_K,
    BlockQ3K => GgmlType::Q3_K,
    BlockQ4K => GgmlType::Q4_K,
    BlockQ5K => GgmlType::Q5_K,
    BlockQ6K => GgmlType::Q6_K,
    BlockQ8K => GgmlType::Q8_K,
);
