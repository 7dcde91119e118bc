//! Which type each tensor gets: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp)
//! for the file types we write, re-derived from its rules.
//!
//! The rules depend on the order tensors are visited (the n-th attn_v of the file gets more
//! bits in some mixes), so tensors are visited in llama.cpp's order: its loader keeps them
//! in a map sorted by layer number (tensors outside `blk.N.` first), then by name
//! (`weight_name_comparer` in llama-model-loader.h). The output file keeps that order too.

use lingqiao_gguf::{GgmlType, GgufFile, TensorInfo, keys};

use crate::{QuantizeError, QuantizeOptions, Target};

/// One tensor's planned type, and why it differs from the mix's choice if it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub from: GgmlType,
    pub to: GgmlType,
    /// Set when the row length is not whole blocks of the mix's choice: (that choice).
    pub fallback_from: Option<GgmlType>,
}

impl TensorPlan {
    /// Already quantized and converted to another type: dequantized and quantized again.
    pub(crate) fn requantizes(&self) -> bool {
        is_quantized(self.from) && self.from != self.to
    }
}

/// The hyper-parameters the rules read (`llama_hparams`), from the file's metadata.
struct Hparams {
    arch: String,
    n_layer: u32,
    n_gqa: u32,
    n_expert: u32,
    is_70b: bool,
}

impl Hparams {
    fn read(file: &GgufFile) -> Result<Hparams, QuantizeError> {
        let md = file.metadata();
        let arch = md.get_str(keys::GENERAL_ARCHITECTURE)?.to_string();
        let n_layer = md.get_u32(&keys::arch(&arch, "block_count"))?;
        // Per-layer arrays (some architectures) count by their first layer, as
        // llama_hparams::n_gqa() does by default.
        let first = |suffix: &str| -> Result<Option<u32>, QuantizeError> {
            let key = keys::arch(&arch, suffix);
            if !md.contains_key(&key) {
                return Ok(None);
            }
            Ok(md
                .get_per_layer_u32(&key, n_layer as usize)?
                .first()
                .copied())
        };
        let n_head = first("attention.head_count")?.unwrap_or(0);
        let n_head_kv = first("attention.head_count_kv")?.unwrap_or(n_head);
        let n_gqa = n_head.checked_div(n_head_kv).unwrap_or(0);
        let n_expert = md.opt_u32(&keys::arch(&arch, "expert_count"))?.unwrap_or(0);
        // llama.cpp calls an 80-layer llama with grouped-query attention "70B".
        let is_70b = arch == "llama" && n_layer == 80 && n_head != n_head_kv;
        Ok(Hparams {
            arch,
            n_layer,
            n_gqa,
            n_expert,
            is_70b,
        })
    }

    fn falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// The broad role of a tensor (`tensor_get_category`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    let table = [
        ("attn_qkv.weight", Category::AttnQkv),
        ("attn_kv_b.weight", Category::AttnKvB),
        ("attn_v.weight", Category::AttnV),
        ("attn_k.weight", Category::AttnK),
        ("attn_q.weight", Category::AttnQ),
        ("attn_output.weight", Category::AttnOutput),
        ("ffn_up", Category::FfnUp),
        ("ffn_gate", Category::FfnGate),
        ("ffn_down", Category::FfnDown),
    ];
    table
        .iter()
        .find(|(pat, _)| name.contains(pat))
        .map_or(Category::Other, |(_, c)| *c)
}

fn is_attn_v(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// Dimensions as ggml counts them: trailing 1s do not count (`ggml_n_dims`).
fn n_dims(t: &TensorInfo) -> usize {
    t.dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1)
}

/// Whether a tensor is quantized at all (`tensor_allows_quantization`): 2-D and up weights,
/// except norms and the small or position-like tables llama.cpp keeps as they are.
fn allows_quantization(t: &TensorInfo) -> bool {
    let name = t.name.as_str();
    if n_dims(t) < 2 || !name.ends_with("weight") {
        return false;
    }
    const KEEP_IF_CONTAINS: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if KEEP_IF_CONTAINS.iter().any(|p| name.contains(p)) {
        return false;
    }
    name != "position_embd.weight" && name != "token_types.weight"
}

/// llama.cpp's spread of extra bits over layers: the first and last eighth, and every third
/// layer between.
fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// Layer index from a `blk.N.` name.
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

/// The sort key of `weight_name_comparer`: layer (-1 outside blocks), then name.
fn order_key(name: &str) -> (i64, &str) {
    (layer_of(name).unwrap_or(-1), name)
}

/// The input's tensors in the order llama.cpp visits (and writes) them.
pub(crate) fn ordered(file: &GgufFile) -> Vec<&TensorInfo> {
    let mut ts: Vec<&TensorInfo> = file.tensors().iter().collect();
    ts.sort_by(|a, b| order_key(&a.name).cmp(&order_key(&b.name)));
    ts
}

/// Counters llama.cpp keeps across tensors (`quantize_state_impl`).
struct State {
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    tied_embeddings: bool,
}

/// `llama_tensor_get_type_impl` for our targets: the mix's choice before the shape check.
fn mix_type(
    st: &mut State,
    hp: &Hparams,
    target: Target,
    t: &TensorInfo,
    cat: Category,
    mut ty: GgmlType,
) -> Result<GgmlType, QuantizeError> {
    use GgmlType as G;
    use Target as T;
    let n_layer = i64::from(hp.n_layer);
    let layer = |counter: i64| -> Result<i64, QuantizeError> {
        if hp.n_expert <= 1 {
            return Ok(counter);
        }
        // Experts are not stored one layer after another: read the layer from the name.
        match layer_of(&t.name) {
            Some(l) if (0..n_layer).contains(&l) => Ok(l),
            _ => Err(QuantizeError::Plan(format!(
                "cannot tell the layer of expert tensor {:?}",
                t.name
            ))),
        }
    };

    if cat == Category::Output || (st.tied_embeddings && cat == Category::TokenEmbd) {
        // The output projection (or the embeddings standing in for it) is the most
        // sensitive matrix: Q6_K unless it must be Q8_0.
        let nx = t.ne(0);
        if hp.falcon() || !nx.is_multiple_of(ty.block_size() as u64) {
            ty = G::Q8_0;
        } else if ty != G::Q8_0 {
            ty = G::Q6_K;
        }
        return Ok(ty);
    }
    match cat {
        c if is_attn_v(c) => {
            let i = st.i_attention_wv;
            match target {
                T::Q2_K => ty = if hp.n_gqa >= 4 { G::Q4_K } else { G::Q3_K },
                T::Q3_K_M => ty = if i < 2 { G::Q5_K } else { G::Q4_K },
                T::Q3_K_L => ty = G::Q5_K,
                T::Q4_K_M | T::Q5_K_M if use_more_bits(i, st.n_attention_wv) => ty = G::Q6_K,
                T::Q4_K_S if i < 4 => ty = G::Q5_K,
                _ => {}
            }
            if hp.is_70b && matches!(ty, G::Q3_K | G::Q4_K) {
                // 8 query heads share each V head there: more bits cost little.
                ty = G::Q5_K;
            }
            if hp.n_expert == 8 {
                ty = G::Q8_0;
            }
            st.i_attention_wv += 1;
        }
        Category::AttnK if hp.n_expert == 8 => ty = G::Q8_0,
        Category::FfnDown => {
            let i = layer(st.i_ffn_down)?;
            let more = use_more_bits(i, n_layer);
            match target {
                T::Q2_K => ty = G::Q3_K,
                T::Q3_K_M => {
                    ty = if i < n_layer / 16 {
                        G::Q5_K
                    } else if !hp.falcon() || more {
                        G::Q4_K
                    } else {
                        G::Q3_K
                    }
                }
                T::Q3_K_L => ty = if hp.falcon() { G::Q4_K } else { G::Q5_K },
                T::Q4_K_M if hp.falcon() => {
                    ty = if i < n_layer / 16 {
                        G::Q6_K
                    } else if more {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    }
                }
                T::Q4_K_M | T::Q5_K_M if more => ty = G::Q6_K,
                T::Q4_K_S if !hp.falcon() && i < n_layer / 8 => ty = G::Q5_K,
                _ => {}
            }
            st.i_ffn_down += 1;
        }
        Category::AttnOutput if hp.falcon() => {
            ty = if target == T::Q3_K_L { G::Q4_K } else { ty };
        }
        Category::AttnOutput if hp.n_expert == 8 => {
            let mixes = [T::Q2_K, T::Q3_K_S, T::Q3_K_M, T::Q4_K_S, T::Q4_K_M];
            ty = if mixes.contains(&target) { G::Q5_K } else { ty };
        }
        Category::AttnOutput => match target {
            T::Q2_K => ty = G::Q3_K,
            T::Q3_K_M => ty = G::Q4_K,
            T::Q3_K_L => ty = G::Q5_K,
            _ => {}
        },
        Category::FfnGate => {
            layer(st.i_ffn_gate)?;
            st.i_ffn_gate += 1;
        }
        Category::FfnUp => {
            layer(st.i_ffn_up)?;
            st.i_ffn_up += 1;
        }
        // Untied embeddings, attn_q and attn_k change only in the IQ mixes we do not write.
        _ => {}
    }
    Ok(ty)
}

/// A type whose blocks fit rows of `ncols` (`tensor_type_fallback`): the K-quants fall back
/// to a 32-element type, and anything still not fitting to F16.
/// A block type, not one of the float types.
pub(crate) fn is_quantized(ty: GgmlType) -> bool {
    !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

fn fallback(ty: GgmlType, ncols: u64) -> GgmlType {
    use GgmlType as G;
    if ncols.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    // Q2_K and Q3_K fall back to Q4_0 in the llama.cpp we build against (older releases
    // used IQ4_NL, which we do not write).
    let smaller = match ty {
        G::Q2_K | G::Q3_K => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        other => other,
    };
    if ncols.is_multiple_of(smaller.block_size() as u64) {
        smaller
    } else {
        G::F16
    }
}

/// The type each tensor of `file` gets, in output order, with fallbacks noted.
pub fn plan_detailed(
    file: &GgufFile,
    opts: &QuantizeOptions,
) -> Result<Vec<TensorPlan>, QuantizeError> {
    let hp = Hparams::read(file)?;
    let tensors = ordered(file);
    let mut st = State {
        n_attention_wv: tensors
            .iter()
            .filter(|t| is_attn_v(category(&t.name)))
            .count() as i64,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
    };
    let base = opts.target.base_type();
    let quantized_target = is_quantized(base);
    tensors
        .into_iter()
        .map(|t| {
            let mut p = TensorPlan {
                name: t.name.clone(),
                from: t.ty,
                to: t.ty,
                fallback_from: None,
            };
            if !allows_quantization(t) {
                return Ok(p);
            }
            p.to = base;
            if quantized_target {
                if !opts.pure {
                    p.to = mix_type(&mut st, &hp, opts.target, t, category(&t.name), base)?;
                }
                let fitted = fallback(p.to, t.ne(0));
                if fitted != p.to {
                    p.fallback_from = Some(p.to);
                    p.to = fitted;
                }
            }
            Ok(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_order_puts_unnumbered_tensors_first_then_layers_numerically() {
        let mut names = [
            "blk.10.attn_v.weight",
            "token_embd.weight",
            "blk.2.attn_k.weight",
            "output_norm.weight",
            "blk.2.attn_v.weight",
        ];
        names.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        assert_eq!(
            names,
            [
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.attn_v.weight",
                "blk.10.attn_v.weight",
            ]
        );
    }

    #[test]
    fn fallbacks_follow_block_sizes() {
        use GgmlType as G;
        assert_eq!(fallback(G::Q4_K, 896), G::Q5_0);
        assert_eq!(fallback(G::Q4_K, 1024), G::Q4_K);
        assert_eq!(fallback(G::Q6_K, 576), G::Q8_0);
        assert_eq!(fallback(G::Q2_K, 576), G::Q4_0);
        assert_eq!(fallback(G::Q6_K, 48), G::F16);
        assert_eq!(fallback(G::Q4_0, 48), G::F16);
    }
}
