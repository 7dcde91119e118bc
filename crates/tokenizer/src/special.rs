//! Splitting text around special tokens before the tokenizer proper runs
//! (llama.cpp `tokenizer_st_partition`).
//!
//! llama.cpp takes the special tokens longest first and, for each, cuts every occurrence
//! out of the text fragments that remain. That is not leftmost-longest matching (a longer
//! token later in the text wins over a shorter one that starts earlier and overlaps it),
//! so the same order is kept here. To stay fast on long prompts with large special sets
//! (Gemma has ~6,400), one Aho-Corasick pass first finds which special tokens occur at
//! all; only those are then cut out.

use std::ops::Range;

use aho_corasick::AhoCorasick;

use crate::attr::{CONTROL, LSTRIP, RSTRIP, UNKNOWN};
use crate::vocab::Vocab;

pub(crate) enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

pub(crate) struct SpecialMatcher {
    /// Control, user-defined and unknown token ids, longest text first.
    ids: Vec<u32>,
    /// Automaton over the texts of `ids` (pattern i = ids[i]); None when `ids` is empty
    /// or the automaton could not be built (then every special token is tried).
    ac: Option<AhoCorasick>,
}

/// C `isspace` on one byte, which is what llama.cpp strips with.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl SpecialMatcher {
    pub(crate) fn new(ids: Vec<u32>, vocab: &Vocab) -> SpecialMatcher {
        let ac = if ids.is_empty() {
            None
        } else {
            AhoCorasick::new(ids.iter().map(|&id| vocab.text(id))).ok()
        };
        SpecialMatcher { ids, ac }
    }

    pub(crate) fn partition(
        &self,
        text: &str,
        parse_special: bool,
        vocab: &Vocab,
        attrs: &[u16],
    ) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Fragment::Text(0..text.len())];
        let present: Vec<bool> = match &self.ac {
            Some(ac) => {
                let mut seen = vec![false; self.ids.len()];
                for m in ac.find_overlapping_iter(text) {
                    seen[m.pattern().as_usize()] = true;
                }
                seen
            }
            None => vec![true; self.ids.len()],
        };
        for (i, &id) in self.ids.iter().enumerate() {
            let a = attrs[id as usize];
            if !present[i] || (!parse_special && a & (CONTROL | UNKNOWN) != 0) {
                continue;
            }
            let needle = vocab.text(id);
            let mut next = Vec::with_capacity(frags.len() + 2);
            for frag in frags {
                let Fragment::Text(r) = frag else {
                    next.push(frag);
                    continue;
                };
                let (mut s, e) = (r.start, r.end);
                while let Some(off) = text[s..e].find(needle) {
                    let m = s + off;
                    let mut left_end = m;
                    if a & LSTRIP != 0 {
                        while left_end > s && is_c_space(text.as_bytes()[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > s {
                        next.push(Fragment::Text(s..left_end));
                    }
                    next.push(Fragment::Token(id));
                    s = m + needle.len();
                    if a & RSTRIP != 0 {
                        while s < e && is_c_space(text.as_bytes()[s]) {
                            s += 1;
                        }
                    }
                }
                if s < e {
                    next.push(Fragment::Text(s..e));
                }
            }
            frags = next;
        }
        frags
    }
}
