//! Pre-tokenizers: split text into words before BPE, as llama.cpp's `unicode_regex_split`
//! does for each `tokenizer.ggml.pre` type.
//!
//! llama.cpp replaces the common regexes with hand-written scanners
//! (`unicode_regex_split_custom_gpt2/llama3/qwen2`) whose behaviour is the reference,
//! including where they differ from a real regex engine; the scanners below follow those,
//! not the regex text. Each pass refines the previous pass's segments: a word never
//! crosses a segment boundary.

use crate::unicode::{LETTER, NUMBER, PUNCT, WHITESPACE, flags};

/// The regex family of a pre-tokenizer type (the `regex_exprs` of `llm_tokenizer_bpe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreSplit {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// `\p{N}` isolated first, then GPT-2 (starcoder, smollm, refact, command-r, ...).
    Starcoder,
    /// Case-insensitive contractions, `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,3}`, ...
    Llama3,
    /// As Llama3 but single digits: `\p{N}` (qwen2, deepseek-r1-qwen, stablelm2, ...).
    Qwen2,
    /// llama.cpp's fallback for `pre = "default"` or a missing pre type.
    Default,
}

/// A half-open range of codepoint indices.
type Seg = (usize, usize);

/// Splits `text` into words (byte ranges of `text`, in order, covering it exactly).
pub(crate) fn split(text: &str, kind: PreSplit) -> Vec<std::ops::Range<usize>> {
    let (cps, byte_at): (Vec<char>, Vec<usize>) = {
        let mut cps = Vec::with_capacity(text.len());
        let mut byte_at = Vec::with_capacity(text.len() + 1);
        for (i, c) in text.char_indices() {
            cps.push(c);
            byte_at.push(i);
        }
        byte_at.push(text.len());
        (cps, byte_at)
    };
    let cls: Vec<u8> = cps.iter().map(|&c| flags(c)).collect();
    let s = Scan {
        cps: &cps,
        cls: &cls,
    };
    let mut segs: Vec<Seg> = if cps.is_empty() {
        Vec::new()
    } else {
        vec![(0, cps.len())]
    };
    match kind {
        PreSplit::Gpt2 => segs = s.pass(&segs, Scan::gpt2),
        PreSplit::Starcoder => {
            segs = s.isolate(&segs, |s, p, _| (s.cls[p] & NUMBER != 0).then_some(1));
            segs = s.pass(&segs, Scan::gpt2);
        }
        PreSplit::Llama3 => segs = s.pass(&segs, |s, seg, out| s.llama3(seg, out, 3)),
        PreSplit::Qwen2 => segs = s.pass(&segs, |s, seg, out| s.llama3(seg, out, 1)),
        PreSplit::Default => {
            segs = s.isolate(&segs, |s, p, end| s.run(p, end, |s, q| s.default_punct(q)));
            segs = s.pass(&segs, Scan::gpt2);
            segs = s.isolate(&segs, |s, p, end| {
                s.run(p, end, |s, q| s.cls[q] & NUMBER != 0)
            });
            segs = s.isolate(&segs, |s, p, end| {
                (p + 3 <= end && s.cps[p..p + 3].iter().all(char::is_ascii_digit)).then_some(3)
            });
        }
    }
    segs.into_iter()
        .map(|(a, b)| byte_at[a]..byte_at[b])
        .collect()
}

struct Scan<'a> {
    cps: &'a [char],
    cls: &'a [u8],
}

/// Collects words of one segment; the scanners only ever move forward.
struct Emit<'o> {
    out: &'o mut Vec<Seg>,
    prev: usize,
}

impl Emit<'_> {
    fn to(&mut self, end: usize) {
        if end > self.prev {
            self.out.push((self.prev, end));
        }
        self.prev = end;
    }
}

impl Scan<'_> {
    fn pass(&self, segs: &[Seg], f: impl Fn(&Self, Seg, &mut Emit)) -> Vec<Seg> {
        let mut out = Vec::with_capacity(segs.len() * 2);
        for &seg in segs {
            let mut e = Emit {
                out: &mut out,
                prev: seg.0,
            };
            f(self, seg, &mut e);
            e.to(seg.1);
        }
        out
    }

    /// A `std::regex_iterator` pass with a pattern that never matches empty: each match
    /// and each gap between matches becomes its own segment.
    fn isolate(&self, segs: &[Seg], at: impl Fn(&Self, usize, usize) -> Option<usize>) -> Vec<Seg> {
        self.pass(segs, |s, (ini, end), e| {
            let mut p = ini;
            while p < end {
                match at(s, p, end) {
                    Some(n) if n > 0 => {
                        e.to(p);
                        e.to(p + n);
                        p += n;
                    }
                    _ => p += 1,
                }
            }
        })
    }

    /// Length of the run of codepoints from `p` satisfying `pred`, if any.
    fn run(&self, p: usize, end: usize, pred: impl Fn(&Self, usize) -> bool) -> Option<usize> {
        let mut q = p;
        while q < end && pred(self, q) {
            q += 1;
        }
        Some(q - p)
    }

    /// `[\p{P}\$\+<=>\^~\|]`: after llama.cpp's category collapsing every ASCII
    /// punctuation or symbol except the backtick is in the class.
    fn default_punct(&self, q: usize) -> bool {
        let c = self.cps[q];
        if c.is_ascii() {
            c.is_ascii_punctuation() && c != '`'
        } else {
            self.cls[q] & PUNCT != 0
        }
    }

    /// Class bits at `p`, or None past the segment end (llama.cpp's OUT_OF_RANGE).
    fn at(&self, p: usize, end: usize) -> Option<u8> {
        (p < end).then(|| self.cls[p])
    }

    fn is(&self, p: usize, end: usize, bit: u8) -> bool {
        self.at(p, end).is_some_and(|f| f & bit != 0)
    }

    /// Length of an English contraction at `p` (`'s 't 'm 'd 're 've 'll`).
    fn contraction(&self, p: usize, end: usize, any_case: bool) -> usize {
        if self.cps[p] != '\'' || p + 1 >= end {
            return 0;
        }
        let low = |c: char| if any_case { c.to_ascii_lowercase() } else { c };
        let c1 = low(self.cps[p + 1]);
        if matches!(c1, 's' | 't' | 'm' | 'd') {
            return 2;
        }
        if p + 2 < end {
            let c2 = low(self.cps[p + 2]);
            if matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return 3;
            }
        }
        0
    }

    /// Trailing whitespace handling shared by all three scanners: `\s+(?!\S)|\s+`,
    /// with `\s*[\r\n]+` first when `newline_rule` is set.
    fn whitespace(&self, pos: usize, end: usize, newline_rule: bool) -> usize {
        let mut n = 0;
        let mut after_newline = None;
        while self.is(pos + n, end, WHITESPACE) {
            if matches!(self.cps[pos + n], '\r' | '\n') {
                after_newline = Some(pos + n + 1);
            }
            n += 1;
        }
        if newline_rule && let Some(p) = after_newline {
            return p;
        }
        if n > 1 && pos + n < end {
            // leave the last space to prefix the next word
            return pos + n - 1;
        }
        pos + n.max(1)
    }

    /// `unicode_regex_split_custom_gpt2`.
    fn gpt2(&self, (ini, end): Seg, e: &mut Emit) {
        let mut pos = ini;
        while pos < end {
            let n = self.contraction(pos, end, false);
            if n > 0 {
                pos += n;
                e.to(pos);
                continue;
            }
            let c = self.cps[pos];
            let space = usize::from(c == ' ');
            let f2 = if c == ' ' {
                self.at(pos + 1, end)
            } else {
                Some(self.cls[pos])
            };
            let Some(f2) = f2 else {
                // a lone space at the segment end
                pos = self.whitespace(pos, end, false);
                e.to(pos);
                continue;
            };
            let word_class = if f2 & LETTER != 0 {
                Some(LETTER)
            } else if f2 & NUMBER != 0 {
                Some(NUMBER)
            } else {
                None
            };
            if let Some(bit) = word_class {
                pos += space;
                while self.is(pos, end, bit) {
                    pos += 1;
                }
                e.to(pos);
                continue;
            }
            if f2 & (WHITESPACE | LETTER | NUMBER) == 0 {
                pos += space;
                while self
                    .at(pos, end)
                    .is_some_and(|f| f & (WHITESPACE | LETTER | NUMBER) == 0)
                {
                    pos += 1;
                }
                e.to(pos);
                continue;
            }
            pos = self.whitespace(pos, end, false);
            e.to(pos);
        }
    }

    /// `unicode_regex_split_custom_llama3` (max_digits 3) and `_qwen2` (max_digits 1).
    fn llama3(&self, (ini, end): Seg, e: &mut Emit, max_digits: usize) {
        let mut pos = ini;
        while pos < end {
            let n = self.contraction(pos, end, true);
            if n > 0 {
                pos += n;
                e.to(pos);
                continue;
            }
            let c = self.cps[pos];
            let f = self.cls[pos];
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == '\r' || c == '\n' || f & NUMBER != 0)
                && (f & LETTER != 0 || self.is(pos + 1, end, LETTER))
            {
                pos += 1;
                while self.is(pos, end, LETTER) {
                    pos += 1;
                }
                e.to(pos);
                continue;
            }
            // \p{N}{1,max_digits}
            if f & NUMBER != 0 {
                let mut start = pos;
                while self.is(pos, end, NUMBER) {
                    pos += 1;
                    if pos - start >= max_digits {
                        e.to(pos);
                        start = pos;
                    }
                }
                e.to(pos);
                continue;
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'; a space at the segment end also lands here in
            // llama.cpp and yields the same one-space word as the whitespace rule.
            let f2 = if c == ' ' {
                self.at(pos + 1, end)
            } else {
                Some(f)
            };
            if f2.is_none_or(|f2| f2 & (WHITESPACE | LETTER | NUMBER) == 0) {
                pos += usize::from(c == ' ');
                while self
                    .at(pos, end)
                    .is_some_and(|f| f & (WHITESPACE | LETTER | NUMBER) == 0)
                {
                    pos += 1;
                }
                while pos < end && matches!(self.cps[pos], '\r' | '\n') {
                    pos += 1;
                }
                e.to(pos);
                continue;
            }
            pos = self.whitespace(pos, end, true);
            e.to(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, kind: PreSplit) -> Vec<&str> {
        split(text, kind).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words("Hello world's  end\n\n 42!", PreSplit::Gpt2),
            ["Hello", " world", "'s", " ", " end", "\n\n", " 42", "!"]
        );
        assert_eq!(words("a  ", PreSplit::Gpt2), ["a", "  "]);
        assert_eq!(words("I'M", PreSplit::Gpt2), ["I", "'", "M"]);
    }

    #[test]
    fn starcoder_isolates_digits() {
        assert_eq!(
            words("x 123", PreSplit::Starcoder),
            ["x", " ", "1", "2", "3"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words("I'M here 12345\r\n\n  x", PreSplit::Llama3),
            ["I", "'M", " here", " ", "123", "45", "\r\n\n", " ", " x"]
        );
        assert_eq!(
            words("foo(bar);\n", PreSplit::Llama3),
            ["foo", "(bar", ");\n"]
        );
    }

    #[test]
    fn qwen2_single_digits() {
        assert_eq!(words("v1.25", PreSplit::Qwen2), ["v", "1", ".", "2", "5"]);
    }

    #[test]
    fn default_pass_chain() {
        assert_eq!(
            words("a+b 1234", PreSplit::Default),
            ["a", "+", "b", " ", "123", "4"]
        );
    }
}
