//! Codepoint classes as llama.cpp's pre-tokenizers see them (`unicode_cpt_flags`):
//! `\p{L}`, `\p{N}`, `\p{P}`, `\p{M}`, `\p{S}` and `\s`, plus GPT-2's byte <-> char map.
//!
//! The general categories come from `regex-syntax`'s Unicode tables, so no table is kept
//! in this crate; `\s` is Unicode White_Space, which is the same 25 codepoints llama.cpp
//! lists in `unicode_set_whitespace`.

use std::sync::OnceLock;

pub(crate) const LETTER: u8 = 1 << 0;
pub(crate) const NUMBER: u8 = 1 << 1;
pub(crate) const PUNCT: u8 = 1 << 2;
pub(crate) const MARK: u8 = 1 << 3;
pub(crate) const SYMBOL: u8 = 1 << 4;
pub(crate) const WHITESPACE: u8 = 1 << 5;

struct Classes {
    ascii: [u8; 128],
    /// Sorted, disjoint (first, last, flags) ranges of the non-ASCII categorized codepoints.
    ranges: Vec<(u32, u32, u8)>,
}

fn category_ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    // The patterns are constants known to parse; an error here would be a build defect,
    // so fall back to an empty class rather than panic.
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return Vec::new();
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => Vec::new(),
    }
}

fn classes() -> &'static Classes {
    static CLASSES: OnceLock<Classes> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let mut ranges = Vec::new();
        for (pat, flag) in [
            (r"\p{L}", LETTER),
            (r"\p{N}", NUMBER),
            (r"\p{P}", PUNCT),
            (r"\p{M}", MARK),
            (r"\p{S}", SYMBOL),
        ] {
            for (a, b) in category_ranges(pat) {
                ranges.push((a, b, flag));
            }
        }
        ranges.sort_unstable();
        let mut ascii = [0u8; 128];
        for (c, slot) in ascii.iter_mut().enumerate() {
            *slot = lookup(&ranges, c as u32) | ws_flag(char::from(c as u8));
        }
        Classes { ascii, ranges }
    })
}

fn ws_flag(c: char) -> u8 {
    if c.is_whitespace() { WHITESPACE } else { 0 }
}

fn lookup(ranges: &[(u32, u32, u8)], cp: u32) -> u8 {
    let i = ranges.partition_point(|&(first, _, _)| first <= cp);
    if i == 0 {
        return 0;
    }
    let (first, last, flags) = ranges[i - 1];
    if first <= cp && cp <= last { flags } else { 0 }
}

/// The class bits of one codepoint.
pub(crate) fn flags(c: char) -> u8 {
    let t = classes();
    let cp = c as u32;
    if cp < 128 {
        t.ascii[cp as usize]
    } else {
        lookup(&t.ranges, cp) | ws_flag(c)
    }
}

/// GPT-2's reversible byte -> printable char map (`bytes_to_unicode` in openai/gpt-2):
/// printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if printable {
            b as u32
        } else {
            n += 1;
            255 + n
        };
        *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    // the 256 chars all lie below U+0144
    static INVERSE: OnceLock<[Option<u8>; 0x144]> = OnceLock::new();
    let inverse = INVERSE.get_or_init(|| {
        let mut inv = [None; 0x144];
        for (b, c) in byte_to_char_table().into_iter().enumerate() {
            if let Some(slot) = inv.get_mut(c as usize) {
                *slot = Some(b as u8);
            }
        }
        inv
    });
    inverse.get(c as usize).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_common_codepoints() {
        assert_eq!(flags('a'), LETTER);
        assert_eq!(flags('Z'), LETTER);
        assert_eq!(flags('7'), NUMBER);
        assert_eq!(flags(' '), WHITESPACE);
        assert_eq!(flags('\n'), WHITESPACE);
        assert_eq!(flags('!'), PUNCT);
        assert_eq!(flags('$'), SYMBOL);
        assert_eq!(flags('中'), LETTER);
        assert_eq!(flags('٣'), NUMBER); // Arabic-Indic digit three
        assert_eq!(flags('²'), NUMBER); // No
        assert_eq!(flags('\u{093F}'), MARK); // Devanagari vowel sign I
        assert_eq!(flags('\u{3000}'), WHITESPACE); // ideographic space is Zs, not P/S
        assert_eq!(flags('\u{00A0}'), WHITESPACE);
        assert_eq!(flags('😀'), SYMBOL);
        assert_eq!(flags('\u{200D}'), 0); // ZWJ is Cf
    }

    #[test]
    fn gpt2_byte_map() {
        let t = byte_to_char_table();
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xAD], 'Ń');
        let mut seen = std::collections::HashSet::new();
        assert!(t.iter().all(|c| seen.insert(*c)));
        for (b, c) in t.iter().enumerate() {
            assert_eq!(char_to_byte(*c), Some(b as u8));
        }
        assert_eq!(char_to_byte('\u{0144}'), None);
    }
}
