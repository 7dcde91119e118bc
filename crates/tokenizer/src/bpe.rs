//! Byte-level BPE merging of one pre-tokenized word (`llm_tokenizer_bpe_session`).
//!
//! Symbols start as the word's chars and the lowest-rank adjacent pair merges first (ties:
//! leftmost). A binary heap of candidate pairs with lazy invalidation keeps each merge
//! O(log n), so a long word (a run of digits or spaces) costs O(n log n), not O(n^2).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;

/// The merge table keyed by the ids of the two parts. llama.cpp keys it by strings; every
/// part of a real merge list is itself a vocab token, and the rare merge whose part is not
/// (so could never fire through ids) is kept in `by_text`.
pub(crate) struct Merges {
    pub(crate) by_id: HashMap<(u32, u32), u32>,
    pub(crate) by_text: HashMap<(String, String), u32>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    end: usize,
    /// The vocab id of `word[start..end]`, if it is a token.
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Merges `word` (already byte-encoded) and appends its symbols, each as a byte range of
/// `word`, to `out`.
pub(crate) fn merge_word(
    word: &str,
    merges: &Merges,
    lookup: impl Fn(&str) -> Option<u32>,
    out: &mut Vec<(usize, usize)>,
) {
    let mut syms: Vec<Symbol> = Vec::with_capacity(word.len());
    for (i, c) in word.char_indices() {
        let end = i + c.len_utf8();
        let idx = syms.len();
        syms.push(Symbol {
            start: i,
            end,
            id: lookup(&word[i..end]),
            prev: idx.checked_sub(1),
            next: None,
        });
        if idx > 0 {
            syms[idx - 1].next = Some(idx);
        }
    }
    // (rank, left index, total byte length): the length detects stale pairs, since a
    // symbol only ever grows, and left-to-right order breaks rank ties like llama.cpp.
    let mut heap: BinaryHeap<Reverse<(u32, usize, usize)>> = BinaryHeap::new();
    let rank_of = |syms: &[Symbol], l: usize, r: usize| -> Option<u32> {
        let (a, b) = (&syms[l], &syms[r]);
        if let (Some(x), Some(y)) = (a.id, b.id)
            && let Some(&rank) = merges.by_id.get(&(x, y))
        {
            return Some(rank);
        }
        if merges.by_text.is_empty() {
            return None;
        }
        let key = (
            word[a.start..a.end].to_string(),
            word[b.start..b.end].to_string(),
        );
        merges.by_text.get(&key).copied()
    };
    let push = |heap: &mut BinaryHeap<_>, syms: &[Symbol], l: usize| {
        if let Some(r) = syms[l].next
            && let Some(rank) = rank_of(syms, l, r)
        {
            heap.push(Reverse((rank, l, syms[r].end - syms[l].start)));
        }
    };
    for l in 0..syms.len() {
        push(&mut heap, &syms, l);
    }
    while let Some(Reverse((_, l, len))) = heap.pop() {
        let Some(r) = syms[l].next else { continue };
        // merged away (start == end) or grown since the pair was queued
        if syms[l].start == syms[l].end || syms[r].end - syms[l].start != len {
            continue;
        }
        syms[l].end = syms[r].end;
        syms[l].id = lookup(&word[syms[l].start..syms[l].end]);
        syms[l].next = syms[r].next;
        syms[r].start = syms[r].end;
        if let Some(n) = syms[r].next {
            syms[n].prev = Some(l);
        }
        if let Some(p) = syms[l].prev {
            push(&mut heap, &syms, p);
        }
        push(&mut heap, &syms, l);
    }
    out.extend(
        syms.iter()
            .filter(|s| s.end > s.start)
            .map(|s| (s.start, s.end)),
    );
}
