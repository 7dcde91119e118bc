//! The i8mm tile kernel (see [`crate::tile`]). STUB: the portable packing and reference
//! until the USMMLA version lands.

use crate::tile::{ActTile, Format, WeightTile};
use std::ops::Range;

#[target_feature(enable = "neon,dotprod,i8mm")]
pub(super) fn pack(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
    t.pack(f, n, rows, row_bytes)
}

#[target_feature(enable = "neon,dotprod,i8mm")]
pub(super) fn run(f: &Format, w: &WeightTile, x: &ActTile, tokens: Range<usize>, out: &mut [f32]) {
    crate::tile::run_ref(f, w, x, tokens, out)
}
