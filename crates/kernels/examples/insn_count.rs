//! Calls one of our kernels REPS times on fixed random data, for `bench/arm_insn/run.sh`,
//! which runs it under qemu-aarch64 with an instruction-counting plugin at two values of REPS:
//! the difference per call is the kernel's dynamic instruction count. The counterpart of
//! `bench/arm_insn/ggml_harness.c` (same shapes, same units, same names where ggml has the
//! same kernel).
//!
//! ```sh
//! insn_count list            # the kernels of the table LINGQIAO_ISA picks, with units per call
//! insn_count KERNEL REPS
//! ```
//!
//! `bash bench/arm_insn/run.sh ours` cross-builds it for aarch64 (as `scripts/cross.sh` does)
//! and counts it at each level; on any machine, `cargo run --release -p lingqiao-kernels
//! --example insn_count -- list` shows what the local table would be measured on.
//!
//! Kernels (n = 4096 values per row), through the table `Kernels::get()` picks:
//! - `vec_dot/TYPE`: the table's one-token kernel, one weight row x one token.
//! - `x4/TYPE`: the four-token kernel (`vec_dot_x4_fn`), one row x 4 tokens, where the table
//!   has one.
//! - `r4/TYPE`: the four-row kernel (`vec_dot_r4_fn`, decoding's), 4 rows x one token, where
//!   the table has one.
//! - `tile/TYPE`: the tile kernel (`tile.run`), 16 rows x 64 tokens (one call of `ops`'
//!   `TILE_TOKENS`), where the table has tiles and the type a tile format.
//! - `tile_pack/TYPE`: `tile.pack` of 16 rows (paid once per 16 rows per matmul, shared by
//!   all the tokens of the prompt); `tile_fill/TYPE`: `ActTile::fill` of 64 tokens.
//! - `quant/q8_0|q8_1|q8_K`: the table's activation quantizer, one token.
//! - `noop`: an empty call through the same loop (the harness's own cost per call).
//!
//! Units per call = rows x tokens x n / 256 (for tile_pack rows x n / 256, for tile_fill and
//! quant tokens x n / 256), so insns / units is "instructions per 256 multiply-adds of one
//! weight row with one token", as for ggml's harness.
//!
//! The weights are random bytes with every f16 scale set to 0.01 (float types: random values
//! in [-1, 1)); the activations are random values quantized by the table's quantizer.

use lingqiao_kernels::tile::{ActTile, Format, TILE_ROWS, WeightTile};
use lingqiao_kernels::{
    GgmlType, Kernels, WEIGHT_TYPES, f16_scale_offsets, quantize_row_with, row_bytes, vec_dot_type,
};
use std::hint::black_box;

const N: usize = 4096;
const TILE_TOKENS: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    VecDot,
    X4,
    R4,
    Tile,
    TilePack,
    TileFill,
    Quant,
    Noop,
}

/// ggml's spelling of a type in kernel names: q4_0, q4_K, f16, bf16.
fn tname(ty: GgmlType) -> String {
    ty.name().to_lowercase().replace("_k", "_K")
}

/// Every kernel the table `k` has, with its units per call.
fn kernels(k: &Kernels) -> Vec<(String, Kind, GgmlType, usize)> {
    let blocks = N / 256;
    let mut v = vec![("noop".to_string(), Kind::Noop, GgmlType::F32, 1)];
    for ty in WEIGHT_TYPES {
        v.push((format!("vec_dot/{}", tname(ty)), Kind::VecDot, ty, blocks));
    }
    for ty in WEIGHT_TYPES {
        if k.vec_dot_x4_fn(ty).is_some() {
            v.push((format!("x4/{}", tname(ty)), Kind::X4, ty, 4 * blocks));
        }
    }
    for ty in WEIGHT_TYPES {
        if k.vec_dot_r4_fn(ty).is_some() {
            v.push((format!("r4/{}", tname(ty)), Kind::R4, ty, 4 * blocks));
        }
    }
    if k.tile.is_some() {
        for ty in WEIGHT_TYPES {
            if Format::of(ty).is_some() {
                let t = tname(ty);
                let tile = TILE_ROWS * TILE_TOKENS * blocks;
                v.push((format!("tile/{t}"), Kind::Tile, ty, tile));
                v.push((
                    format!("tile_pack/{t}"),
                    Kind::TilePack,
                    ty,
                    TILE_ROWS * blocks,
                ));
                v.push((
                    format!("tile_fill/{t}"),
                    Kind::TileFill,
                    ty,
                    TILE_TOKENS * blocks,
                ));
            }
        }
    }
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        v.push((format!("quant/{}", tname(ty)), Kind::Quant, ty, blocks));
    }
    v
}

/// Uniform values in [-1, 1) from a linear congruential generator.
struct Lcg(u32);
impl Lcg {
    fn u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.u32() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    }
}

/// `rows` weight rows of `ty`.
fn weights(k: &Kernels, ty: GgmlType, rows: usize, r: &mut Lcg) -> Vec<u8> {
    let rb = row_bytes(ty, N).unwrap();
    let mut out = vec![0u8; rows * rb];
    if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        for row in out.chunks_exact_mut(rb) {
            let f: Vec<f32> = (0..N).map(|_| r.f32()).collect();
            quantize_row_with(k, ty, &f, row).unwrap();
        }
        return out;
    }
    for b in out.iter_mut() {
        *b = (r.u32() >> 24) as u8;
    }
    for b in out.chunks_exact_mut(ty.type_size()) {
        for &off in f16_scale_offsets(ty) {
            b[off..off + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
    }
    out
}

/// `rows` activation rows of `ty` (an activation type), quantized from random values.
fn acts(k: &Kernels, ty: GgmlType, rows: usize, r: &mut Lcg) -> Vec<u8> {
    let rb = row_bytes(ty, N).unwrap();
    let mut out = vec![0u8; rows * rb];
    for row in out.chunks_exact_mut(rb) {
        let f: Vec<f32> = (0..N).map(|_| r.f32()).collect();
        quantize_row_with(k, ty, &f, row).unwrap();
    }
    out
}

#[inline(never)]
fn noop(n: usize, w: &[u8], x: &[u8]) -> f32 {
    black_box((n, w.len(), x.len()));
    0.0
}

fn main() {
    let k = Kernels::get();
    let args: Vec<String> = std::env::args().collect();
    let list = kernels(k);
    if args.len() == 2 && args[1] == "list" {
        for (name, _, _, units) in &list {
            println!("{name} {units}");
        }
        return;
    }
    if args.len() != 3 {
        eprintln!("usage: {} KERNEL REPS | list", args[0]);
        std::process::exit(2);
    }
    let Some(&(ref name, kind, ty, units)) = list.iter().find(|e| e.0 == args[1]) else {
        eprintln!(
            "unknown kernel {} for table {} (see `list`)",
            args[1], k.isa
        );
        std::process::exit(2);
    };
    let reps: usize = args[2].parse().expect("REPS: a number");

    let mut r = Lcg(12345);
    let vdt = vec_dot_type(ty);
    let wb = row_bytes(ty, N).unwrap();
    let xb = row_bytes(vdt, N).unwrap();
    let mut sink = 0f32;
    match kind {
        Kind::Noop | Kind::VecDot => {
            let w = weights(k, ty, 1, &mut r);
            let x = acts(k, vdt, 1, &mut r);
            let f = if kind == Kind::Noop {
                black_box(noop as fn(usize, &[u8], &[u8]) -> f32)
            } else {
                k.vec_dot_fn(ty)
            };
            for _ in 0..reps {
                sink += f(N, black_box(&w), black_box(&x));
            }
        }
        Kind::X4 => {
            let w = weights(k, ty, 1, &mut r);
            let x = acts(k, vdt, 4, &mut r);
            let f = k.vec_dot_x4_fn(ty).unwrap();
            let mut o = [0f32; 4];
            for _ in 0..reps {
                f(N, black_box(&w), black_box(&x), &mut o);
                sink += o[0];
            }
        }
        Kind::R4 => {
            let w = weights(k, ty, 4, &mut r);
            let x = acts(k, vdt, 1, &mut r);
            let f = k.vec_dot_r4_fn(ty).unwrap();
            let mut o = [0f32; 4];
            for _ in 0..reps {
                f(N, black_box(&w), wb, black_box(&x), &[], &mut o);
                sink += o[0];
            }
        }
        Kind::Tile | Kind::TilePack | Kind::TileFill => {
            let tk = k.tile.unwrap();
            let f = Format::of(ty).unwrap();
            let w = weights(k, ty, TILE_ROWS, &mut r);
            let x = acts(k, vdt, TILE_TOKENS, &mut r);
            let mut wt = WeightTile::default();
            let mut at = ActTile::default();
            (tk.pack)(&mut wt, &f, N, &w, wb);
            at.fill(&f, N, TILE_TOKENS, &x, xb);
            let mut out = vec![0f32; TILE_ROWS * TILE_TOKENS];
            for _ in 0..reps {
                match kind {
                    Kind::Tile => {
                        (tk.run)(&f, black_box(&wt), black_box(&at), 0..TILE_TOKENS, &mut out)
                    }
                    Kind::TilePack => (tk.pack)(&mut wt, &f, N, black_box(&w), wb),
                    _ => at.fill(&f, N, TILE_TOKENS, black_box(&x), xb),
                }
                sink += out[0] + f32::from(wt.q[0]) + at.dx[0];
            }
        }
        Kind::Quant => {
            let src: Vec<f32> = (0..N).map(|_| r.f32()).collect();
            let mut dst = vec![0u8; row_bytes(ty, N).unwrap()];
            let q = match ty {
                GgmlType::Q8_0 => k.quantize_q8_0,
                GgmlType::Q8_1 => k.quantize_q8_1,
                _ => k.quantize_q8_k,
            };
            for _ in 0..reps {
                q(black_box(&src), &mut dst);
                sink += f32::from(dst[0]);
            }
        }
    }
    black_box(sink);
    // Nothing here depends on REPS or on the results, so the output costs the same in both
    // runs (run.sh pads REPS with zeros to a fixed width for the same reason: arguments of
    // one length leave the stack, and so the startup code's work, the same).
    println!("{name} isa={} units={units}", k.isa);
}
