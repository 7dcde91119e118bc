//! Per-token strings packed into one buffer each: the vocabulary texts with an index by
//! text ([`Vocab`]), and the rendered pieces ([`Pieces`]).
//!
//! A 262k-token vocabulary (Gemma 3) held as `Vec<String>`, a `HashMap<String, u32>` and a
//! `Vec<Vec<u8>>` of pieces costs three heap allocations and ~100 bytes of bookkeeping per
//! token, ~55 MB in all. Packed, each token costs its bytes, two 4-byte offsets and one
//! index slot.

use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;

use crate::error::TokenizerError;

/// Consecutive byte spans of one buffer: span `i` is `bounds[i]..bounds[i + 1]`
/// (`bounds[0]` is 0).
struct Spans {
    bounds: Vec<u32>,
}

impl Default for Spans {
    fn default() -> Spans {
        Spans::with_capacity(0)
    }
}

impl Spans {
    fn with_capacity(n: usize) -> Spans {
        let mut bounds = Vec::with_capacity(n + 1);
        bounds.push(0);
        Spans { bounds }
    }

    fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    #[inline]
    fn get(&self, i: u32) -> Option<Range<usize>> {
        let i = i as usize;
        let end = *self.bounds.get(i.checked_add(1)?)? as usize;
        Some(self.bounds[i] as usize..end)
    }

    /// Closes the next span at `end`; an offset past `u32` is an error naming `what`.
    fn push(&mut self, end: usize, what: &'static str) -> Result<(), TokenizerError> {
        let end = u32::try_from(end)
            .map_err(|_| TokenizerError::VocabBytesTooLarge { what, bytes: end })?;
        self.bounds.push(end);
        Ok(())
    }
}

/// The vocabulary texts, in id order, and an O(1) lookup of an id by text.
pub(crate) struct Vocab {
    text: String,
    spans: Spans,
    /// Ids, hashed and compared by their text in `text`.
    index: HashTable<u32>,
}

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

impl Vocab {
    /// Packs the token texts in id order. An empty text is renamed `[EMPTY_<id>]` so all
    /// stay unique, as llama.cpp does; a text seen twice is an error naming both ids.
    pub(crate) fn new(texts: &[String]) -> Result<Vocab, TokenizerError> {
        let n = texts.len();
        // exact unless some texts are empty (then it grows once)
        let total: usize = texts.iter().map(String::len).sum();
        let mut text = String::with_capacity(total);
        let mut spans = Spans::with_capacity(n);
        let mut index: HashTable<u32> = HashTable::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            let id = i as u32;
            let start = text.len();
            if t.is_empty() {
                text.push_str(&format!("[EMPTY_{i}]"));
            } else {
                text.push_str(t);
            }
            spans.push(text.len(), "token texts")?;
            let t = &text[start..];
            let at = |id: &u32| spans.get(*id).map_or("", |r| &text[r]);
            match index.entry(hash(t), |id| at(id) == t, |id| hash(at(id))) {
                Entry::Occupied(first) => {
                    return Err(TokenizerError::DuplicateToken {
                        text: t.to_string(),
                        first: *first.get(),
                        second: id,
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(id);
                }
            }
        }
        text.shrink_to_fit();
        Ok(Vocab { text, spans, index })
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The text of token `id`, if it exists.
    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        self.spans.get(id).map(|r| &self.text[r])
    }

    /// The text of token `id`, which must be below [`Vocab::len`] (ids the tokenizer
    /// produced itself); any other id panics like an out-of-range slice index.
    pub(crate) fn text(&self, id: u32) -> &str {
        match self.get(id) {
            Some(t) => t,
            None => panic!("token id {id} out of range for a vocab of {}", self.len()),
        }
    }

    /// The id whose text is exactly `text` (compared as bytes: no UTF-8 boundary checks on
    /// this path, which tokenization runs for every candidate merge).
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        let (all, want) = (self.text.as_bytes(), text.as_bytes());
        self.index
            .find(hash(text), |&id| {
                self.spans.get(id).is_some_and(|r| &all[r] == want)
            })
            .copied()
    }

    /// Total bytes of all texts.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// All texts in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len() as u32).map(|id| self.text(id))
    }
}

/// One byte string per token (`token_to_piece(id, special = true)`), packed.
pub(crate) struct Pieces {
    bytes: Vec<u8>,
    spans: Spans,
}

impl Pieces {
    /// Renders `n` pieces in id order: `render(id, out)` appends the piece of `id` to
    /// `out`. `size_hint` is the expected total length.
    pub(crate) fn build(
        n: u32,
        size_hint: usize,
        mut render: impl FnMut(u32, &mut Vec<u8>),
    ) -> Result<Pieces, TokenizerError> {
        let mut bytes = Vec::with_capacity(size_hint);
        let mut spans = Spans::with_capacity(n as usize);
        for id in 0..n {
            render(id, &mut bytes);
            spans.push(bytes.len(), "token pieces")?;
        }
        bytes.shrink_to_fit();
        Ok(Pieces { bytes, spans })
    }

    /// The piece of `id`; empty for an id out of range.
    pub(crate) fn get(&self, id: u32) -> &[u8] {
        self.spans.get(id).map_or(&[], |r| &self.bytes[r])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn texts_round_trip_and_index() {
        let v = Vocab::new(&texts(&["a", "", "▁b", "ab", "<0x0A>"])).unwrap();
        assert_eq!(v.len(), 5);
        let all: Vec<&str> = v.iter().collect();
        assert_eq!(all, ["a", "[EMPTY_1]", "▁b", "ab", "<0x0A>"]);
        for (i, t) in all.iter().enumerate() {
            assert_eq!(v.id(t), Some(i as u32));
            assert_eq!(v.get(i as u32), Some(*t));
        }
        assert_eq!(v.id(""), None);
        assert_eq!(v.id("b"), None);
        assert_eq!(v.id("a\u{0}"), None);
        assert_eq!(v.get(5), None);
        assert_eq!(v.get(u32::MAX), None);
        assert_eq!(v.text_len(), "a[EMPTY_1]▁bab<0x0A>".len());
    }

    #[test]
    fn duplicates_name_both_ids() {
        let err = Vocab::new(&texts(&["x", "y", "z", "y"])).err().unwrap();
        assert!(matches!(
            err,
            TokenizerError::DuplicateToken { ref text, first: 1, second: 3 } if text == "y"
        ));
        // a renamed empty text can collide with a literal one
        let err = Vocab::new(&texts(&["[EMPTY_1]", ""])).err().unwrap();
        assert!(matches!(
            err,
            TokenizerError::DuplicateToken {
                first: 0,
                second: 1,
                ..
            }
        ));
    }

    #[test]
    fn pieces_in_id_order() {
        let p = Pieces::build(4, 0, |id, out| {
            out.extend(std::iter::repeat_n(b'a' + id as u8, id as usize))
        })
        .unwrap();
        assert_eq!(p.get(0), b"");
        assert_eq!(p.get(1), b"b");
        assert_eq!(p.get(3), b"ddd");
        assert_eq!(p.get(4), b"");
        assert_eq!(p.get(u32::MAX), b"");
    }

    #[test]
    fn offsets_past_u32_are_an_error() {
        let mut s = Spans::default();
        s.push(u32::MAX as usize, "t").unwrap();
        assert!(matches!(
            s.push(u32::MAX as usize + 1, "t"),
            Err(TokenizerError::VocabBytesTooLarge { bytes, .. }) if bytes == 1 << 32
        ));
        assert_eq!(s.len(), 1);
    }
}
