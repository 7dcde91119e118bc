//! SIMD kernels on the real models' weights: the four-token kernels against the single ones
//! (bit for bit), and the K-quant kernels against scalar (bit for bit, or within the bound of
//! summing in another order), on rows of every matrix type the three models use. The
//! activations are other rows of the same matrix, dequantized: real value distributions on
//! both sides.

use lingqiao_gguf::GgufFile;
use lingqiao_kernels::{
    GgmlType, Kernels, dequantize_row, kquant_reorder_bound, quantize_row, vec_dot_type,
};
use std::collections::HashSet;

const MODELS: [&str; 3] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
];

fn open(file: &str) -> GgufFile {
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let path = std::path::PathBuf::from(home)
        .join(".cache/lingqiao/models")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: fetch the test models first (`lingqiao pull smollm2 gemma3 qwen05`)",
        path.display()
    );
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tables() -> Vec<&'static Kernels> {
    Kernels::simd_tables()
}

/// The K-quant kernels that keep the scalar kernel's float expression: bit-identical to it
/// (AVX2's and every aarch64 table's). The AVX-512 Q4_K/Q5_K/Q6_K ones accumulate in lanes:
/// within `kquant_reorder_bound`.
fn exact(table: &Kernels, ty: GgmlType) -> bool {
    match ty {
        GgmlType::Q2_K | GgmlType::Q3_K => true,
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => table.isa != "avx512",
        _ => false,
    }
}

#[test]
fn simd_kernels_on_model_weights() {
    let tables = tables();
    let mut checked = 0;
    let mut worst = 0f64;
    for file in MODELS {
        let f = open(file);
        // One matrix per (type, row length), the first in the file.
        let mut seen = HashSet::new();
        for t in f.tensors() {
            if t.dims.len() != 2 || !seen.insert((t.ty, t.dims[0])) {
                continue;
            }
            let (ty, n, rows) = (t.ty, t.dims[0] as usize, t.n_rows() as usize);
            let data = f.tensor_data(t);
            let rb = t.row_bytes() as usize;
            let vdt = vec_dot_type(ty);
            let xrb = vdt.row_bytes(n as u64).unwrap() as usize;
            // Activations: four rows from the second half of the matrix, dequantized.
            let mut x = vec![0u8; 4 * xrb];
            let mut deq = vec![0f32; n];
            for j in 0..4 {
                let r = rows / 2 + 7 * j;
                dequantize_row(ty, &data[r * rb..(r + 1) * rb], &mut deq).unwrap();
                quantize_row(vdt, &deq, &mut x[j * xrb..(j + 1) * xrb]).unwrap();
            }
            for r in 0..rows.min(16) {
                let w = &data[r * rb..(r + 1) * rb];
                for table in &tables {
                    let single: Vec<f32> = (0..4)
                        .map(|j| table.vec_dot(ty, n, w, &x[j * xrb..(j + 1) * xrb]))
                        .collect();
                    let kquant = matches!(
                        ty,
                        GgmlType::Q2_K
                            | GgmlType::Q3_K
                            | GgmlType::Q4_K
                            | GgmlType::Q5_K
                            | GgmlType::Q6_K
                    );
                    for (j, got) in single.iter().enumerate().filter(|_| kquant) {
                        let xj = &x[j * xrb..(j + 1) * xrb];
                        let want = Kernels::scalar().vec_dot(ty, n, w, xj);
                        if exact(table, ty) {
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{file} {} {} row {r} x{j}: {} vs scalar",
                                t.name,
                                table.isa,
                                got
                            );
                        } else {
                            let bound = kquant_reorder_bound(ty, n, w, xj).unwrap();
                            let err = (*got as f64 - want as f64).abs();
                            worst = worst.max(err / bound);
                            assert!(
                                err <= bound,
                                "{file} {} {} row {r} x{j}: {got} vs scalar {want} (bound {bound:e})",
                                t.name,
                                table.isa,
                            );
                        }
                    }
                    if let Some(x4) = table.vec_dot_x4_fn(ty) {
                        let mut four = [0f32; 4];
                        x4(n, w, &x, &mut four);
                        for j in 0..4 {
                            assert_eq!(
                                four[j].to_bits(),
                                single[j].to_bits(),
                                "{file} {} {} row {r} x{j}: x4 {} vs vec_dot {}",
                                t.name,
                                table.isa,
                                four[j],
                                single[j]
                            );
                        }
                    }
                    checked += 1;
                }
            }
            println!("{file}: {} {ty} {n} checked", t.name);
        }
    }
    println!("lane-accumulated K-quants: max diff {worst:.3} of the bound");
    assert!(checked > 0 || tables.is_empty());
}
