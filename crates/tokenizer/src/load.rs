//! Building a [`Tokenizer`] from a [`crate::TokenizerSpec`] (borrowed as a [`SpecRef`]): llama.cpp's defaults per model type,
//! special ids, token attribute fixes, the end-of-generation set and the piece cache
//! (`llama_vocab::impl::load`).

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::attr::{self, CONTROL, NORMAL, RSTRIP, UNUSED, USER_DEFINED};
use crate::bpe::Merges;
use crate::error::TokenizerError;
use crate::spec::{SpecRef, bpe_pre_info};
use crate::special::SpecialMatcher;
use crate::vocab::{Pieces, Vocab};
use crate::{Kind, Tokenizer, unicode};

struct Flags {
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    default_bos: Option<u32>,
    default_eos: Option<u32>,
    default_unk: Option<u32>,
}

pub(crate) fn build(spec: SpecRef<'_>) -> Result<Tokenizer, TokenizerError> {
    let n_vocab = spec.tokens.len();
    if n_vocab == 0 {
        return Err(TokenizerError::EmptyVocab);
    }
    if u32::try_from(n_vocab).is_err() {
        return Err(TokenizerError::VocabTooLarge(n_vocab));
    }
    let check_len = |what, n: usize| {
        if n < n_vocab {
            Err(TokenizerError::LengthMismatch {
                what,
                found: n,
                n_vocab,
            })
        } else {
            Ok(())
        }
    };

    // vocab strings; llama.cpp renames empty ones so they stay unique
    let vocab = Vocab::new(spec.tokens)?;
    let scores = match spec.scores {
        Some(s) => {
            check_len("tokenizer.ggml.scores", s.len())?;
            s.into_owned()
        }
        None => vec![0.0; n_vocab],
    };
    let mut attrs: Vec<u16> = match spec.token_types {
        Some(t) => {
            check_len("tokenizer.ggml.token_type", t.len())?;
            t.iter()
                .take(n_vocab)
                .map(|&t| attr::from_token_type(t))
                .collect()
        }
        None => vec![NORMAL; n_vocab],
    };

    let (kind, mut flags) = match spec.model {
        "llama" => (
            Kind::Spm,
            Flags {
                add_bos: true,
                add_eos: false,
                add_space_prefix: true,
                clean_spaces: false,
                default_bos: Some(1),
                default_eos: Some(2),
                default_unk: Some(0),
            },
        ),
        "gpt2" => {
            let pre = bpe_pre_info(spec.pre)?;
            let merges = parse_merges(spec.merges.unwrap_or(&[]), &vocab);
            // Not every byte needs a token (SmolLM2 lacks some control bytes): llama.cpp
            // drops a byte it cannot spell, and so does `Tokenizer::bpe_tokenize`.
            let byte_chars = Box::new(unicode::byte_to_char_table());
            (
                Kind::Bpe {
                    split: pre.split,
                    merges,
                    ignore_merges: pre.ignore_merges,
                    byte_chars,
                },
                Flags {
                    add_bos: pre.add_bos,
                    add_eos: false,
                    add_space_prefix: false,
                    clean_spaces: pre.clean_spaces,
                    default_bos: if pre.no_bos { None } else { Some(11) },
                    default_eos: Some(11),
                    default_unk: None,
                },
            )
        }
        other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
    };
    if let Some(v) = spec.add_space_prefix {
        flags.add_space_prefix = v;
    }
    if let Some(v) = spec.add_bos {
        flags.add_bos = v;
    }
    if let Some(v) = spec.add_eos {
        flags.add_eos = v;
    }

    // A file id out of range keeps the default; a default out of range means none.
    let n = n_vocab as u32;
    let pick = |default: Option<u32>, file: Option<u32>| -> Option<u32> {
        let default = default.filter(|&d| d < n);
        match file {
            Some(f) if f < n => Some(f),
            _ => default,
        }
    };
    let ids = &spec.ids;
    let bos = pick(flags.default_bos, ids.bos);
    let eos = pick(flags.default_eos, ids.eos);
    let _unk = pick(flags.default_unk, ids.unk);
    let mut eot = pick(None, ids.eot);
    let mut eom = pick(None, ids.eom);
    let mut fim_pre = pick(None, ids.fim_pre);
    let mut fim_suf = pick(None, ids.fim_suf);
    let mut fim_mid = pick(None, ids.fim_mid);
    let mut fim_pad = pick(None, ids.fim_pad);
    let mut fim_rep = pick(None, ids.fim_rep);
    let mut fim_sep = pick(None, ids.fim_sep);

    // Find missing end-of-turn / FIM tokens by text and mark them control. llama.cpp walks
    // a hash map here; the vocab order is used instead so the choice is deterministic.
    for (i, t) in vocab.iter().enumerate() {
        for (slot, texts) in [
            (&mut eot, attr::EOT_TEXTS),
            (&mut eom, attr::EOM_TEXTS),
            (&mut fim_pre, attr::FIM_PRE_TEXTS),
            (&mut fim_suf, attr::FIM_SUF_TEXTS),
            (&mut fim_mid, attr::FIM_MID_TEXTS),
            (&mut fim_pad, attr::FIM_PAD_TEXTS),
            (&mut fim_rep, attr::FIM_REP_TEXTS),
            (&mut fim_sep, attr::FIM_SEP_TEXTS),
        ] {
            if slot.is_none() && texts.contains(&t) {
                *slot = Some(i as u32);
                attrs[i] |= CONTROL;
            }
        }
    }
    // control tokens named "unused..." are unused
    for (i, t) in vocab.iter().enumerate() {
        if attrs[i] & CONTROL != 0 && t.contains("unused") {
            attrs[i] |= UNUSED;
        }
    }
    let _ = (fim_pre, fim_suf, fim_mid);

    let mut eog: HashSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    for (i, t) in vocab.iter().enumerate() {
        if attr::EOG_TEXTS.contains(&t) {
            eog.insert(i as u32);
            attrs[i] |= CONTROL;
        }
    }
    for (i, t) in vocab.iter().enumerate() {
        if attr::ALWAYS_RENDER.contains(&t) {
            attrs[i] = USER_DEFINED;
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    // o200k_harmony / solar-open: "<|end|>" is not an end of generation there
    let eog_has =
        |eog: &HashSet<u32>, text: &str| eog.iter().find(|&&id| vocab.text(id) == text).copied();
    if let Some(end) = eog_has(&eog, "<|end|>") {
        let ret = eog_has(&eog, "<|return|>").is_some();
        let call = eog_has(&eog, "<|call|>").is_some() || eog_has(&eog, "<|calls|>").is_some();
        let flush = eog_has(&eog, "<|flush|>").is_some();
        if call && (ret || flush) {
            eog.remove(&end);
            attrs[end as usize] = USER_DEFINED;
        }
    }
    // gemma4 / plamo: "</s>" is an ordinary token there
    if let Some(s) = eog_has(&eog, "</s>")
        && (eog_has(&eog, "<|tool_response>").is_some() || eog_has(&eog, "<|plamo:eos|>").is_some())
    {
        eog.remove(&s);
        attrs[s as usize] = NORMAL;
    }

    // Phi-3: special tokens swallow the whitespace after them.
    let name = spec.name.unwrap_or("").to_ascii_lowercase();
    let phi3 = name.contains("phi-3") || name.contains("phi3");

    let mut special_ids: Vec<u32> = (0..n)
        .filter(|&id| attrs[id as usize] & (CONTROL | USER_DEFINED | attr::UNKNOWN) != 0)
        .collect();
    // longest first; ties by id, where llama.cpp's std::sort leaves them unspecified
    special_ids.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));
    if phi3 {
        for &id in &special_ids {
            attrs[id as usize] |= RSTRIP;
        }
        for (t, on) in [
            ("</s>", true),
            ("<unk>", false),
            ("<s>", false),
            ("<|endoftext|>", false),
        ] {
            if let Some(id) = vocab.id(t) {
                if on {
                    attrs[id as usize] |= RSTRIP;
                } else {
                    attrs[id as usize] &= !RSTRIP;
                }
            }
        }
    }

    let pieces = Pieces::build(n, vocab.text_len(), |id, out| {
        crate::decode::raw_piece(&kind, attrs[id as usize], vocab.text(id), out)
    })?;
    Ok(Tokenizer {
        kind,
        special: SpecialMatcher::new(special_ids, &vocab),
        vocab,
        scores,
        attrs,
        pieces,
        bos,
        eos,
        eog,
        add_bos: flags.add_bos,
        add_eos: flags.add_eos,
        add_space_prefix: flags.add_space_prefix,
        clean_spaces: flags.clean_spaces,
    })
}

/// `bpe_ranks`: "left right" -> rank, first occurrence winning; a line without a space
/// after its first byte can never match and is skipped.
fn parse_merges(lines: &[String], vocab: &Vocab) -> Merges {
    let mut by_id = HashMap::with_capacity_and_hasher(lines.len(), Default::default());
    let mut by_text = HashMap::default();
    for (rank, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let Some(pos) = bytes.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1) else {
            continue;
        };
        let (a, b) = (&line[..pos], &line[pos + 1..]);
        let rank = rank as u32;
        match (vocab.id(a), vocab.id(b)) {
            (Some(x), Some(y)) => {
                by_id.entry((x, y)).or_insert(rank);
            }
            _ => {
                by_text
                    .entry((a.to_string(), b.to_string()))
                    .or_insert(rank);
            }
        }
    }
    Merges { by_id, by_text }
}
