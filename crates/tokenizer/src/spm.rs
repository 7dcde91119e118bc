//! SentencePiece-style merging (`llm_tokenizer_spm_session`): start from the text's chars,
//! repeatedly merge the adjacent pair whose concatenation is the vocab token with the
//! highest score (ties: leftmost), then emit each final piece as its token or, when it is
//! not in the vocab, as byte-fallback tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Symbol {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Pair {
    score: f32,
    left: usize,
    len: usize,
}

impl PartialEq for Pair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pair {
    // max-heap: higher score first, then the smaller left index
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Tokenizes `text` (spaces already escaped to U+2581) and appends the ids to `out`.
/// `lookup` finds a vocab id by text, `score` gives its score, `byte_token` the id that
/// stands for one raw byte.
pub(crate) fn tokenize(
    text: &str,
    lookup: impl Fn(&str) -> Option<u32>,
    score: impl Fn(u32) -> f32,
    byte_token: impl Fn(u8) -> Option<u32>,
    out: &mut Vec<u32>,
) {
    let mut syms: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let idx = syms.len();
        syms.push(Symbol {
            start: i,
            end: i + c.len_utf8(),
            prev: idx.checked_sub(1),
            next: None,
        });
        if idx > 0 {
            syms[idx - 1].next = Some(idx);
        }
    }
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Pair>, syms: &[Symbol], l: Option<usize>| {
        let Some(l) = l else { return };
        let Some(r) = syms[l].next else { return };
        if let Some(id) = lookup(&text[syms[l].start..syms[r].end]) {
            heap.push(Pair {
                score: score(id),
                left: l,
                len: syms[r].end - syms[l].start,
            });
        }
    };
    for l in 0..syms.len() {
        push(&mut heap, &syms, Some(l));
    }
    while let Some(p) = heap.pop() {
        let l = p.left;
        let Some(r) = syms[l].next else { continue };
        if syms[l].start == syms[l].end || syms[r].end - syms[l].start != p.len {
            continue;
        }
        syms[l].end = syms[r].end;
        syms[l].next = syms[r].next;
        syms[r].start = syms[r].end;
        if let Some(n) = syms[r].next {
            syms[n].prev = Some(l);
        }
        push(&mut heap, &syms, syms[l].prev);
        push(&mut heap, &syms, Some(l));
    }
    let mut i = if syms.is_empty() { None } else { Some(0) };
    while let Some(k) = i {
        let piece = &text[syms[k].start..syms[k].end];
        match lookup(piece) {
            Some(id) => out.push(id),
            // Every merged piece is a token, so only a single unknown char gets here.
            None => out.extend(piece.bytes().filter_map(&byte_token)),
        }
        i = syms[k].next;
    }
}
