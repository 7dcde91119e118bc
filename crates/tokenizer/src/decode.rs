//! Token -> text: pieces, `llama_detokenize`, and the streaming decoder.

use crate::{Kind, Tokenizer};

/// `llama_detokenize(.., remove_special = false, unparse_special = special)`.
pub(crate) fn detokenize(tok: &Tokenizer, ids: &[u32], special: bool) -> String {
    let mut text: Vec<u8> = Vec::new();
    // With a space-prefixing vocab the first piece loses one leading space.
    let mut remove_space = tok.add_space_prefix;
    for &id in ids {
        let piece = tok.piece(id, special);
        let piece = match piece.first() {
            Some(b' ') if remove_space => &piece[1..],
            _ => piece,
        };
        remove_space = false;
        text.extend_from_slice(piece);
    }
    if tok.clean_spaces {
        clean_spaces(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// llama.cpp's `clean_up_tokenization_spaces` passes, byte for byte.
fn clean_spaces(text: &mut Vec<u8>) {
    // " ?", " !", " .", " ," lose the space
    let mut total = usize::from(!text.is_empty());
    for i in 1..text.len() {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);

    // " ' " becomes "'"
    let n = text.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    text.truncate(total);

    // " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it)
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            let re_ve = i + 2 < n && matches!((x1, text[i + 2]), (b'r', b'e') | (b'v', b'e'));
            if x1 == b's' || x1 == b'm' || re_ve {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

/// Turns generated token ids into text as they arrive, never splitting a UTF-8 char:
/// bytes of an incomplete char wait for the next token.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
    first: bool,
    special: bool,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tok: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder {
            tok,
            pending: Vec::new(),
            first: true,
            special: false,
        }
    }

    /// Also render control tokens (like `decode(ids, true)`); off by default.
    pub fn with_special(mut self, special: bool) -> Self {
        self.special = special;
        self
    }

    /// Adds one token; returns the text that became complete (possibly empty).
    /// Concatenating every `push` and the final `finish` equals `decode(ids, special)`
    /// for vocabs without `clean_spaces`.
    pub fn push(&mut self, id: u32) -> String {
        let piece = self.tok.piece(id, self.special);
        let piece = match piece.first() {
            Some(b' ') if self.first && self.tok.add_space_prefix => &piece[1..],
            _ => piece,
        };
        self.first = false;
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or(""));
                    match e.error_len() {
                        // bytes that can never start a valid char: replace now
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start = valid + n;
                        }
                        // an incomplete char at the end: wait for more bytes
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Flushes what is left (an incomplete char becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// `llama_token_to_piece(.., special = true)` of a token with attributes `attr` and vocab
/// text `text`, appended to `out` (the cache llama.cpp builds at load).
pub(crate) fn raw_piece(kind: &Kind, attr: u16, text: &str, out: &mut Vec<u8>) {
    use crate::attr::{BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED};
    if attr & (CONTROL | UNKNOWN | USER_DEFINED) != 0 {
        out.extend_from_slice(text.as_bytes());
    } else if attr & NORMAL != 0 {
        match kind {
            Kind::Spm => {
                // U+2581 becomes a space
                let mut parts = text.split('\u{2581}');
                out.extend_from_slice(parts.next().unwrap_or("").as_bytes());
                for part in parts {
                    out.push(b' ');
                    out.extend_from_slice(part.as_bytes());
                }
            }
            Kind::Bpe { .. } => gpt2_decode(text, out),
        }
    } else if attr & BYTE != 0 {
        out.push(byte_of_hex_token(text));
    }
    // unused / undefined tokens render as nothing
}

/// `llama_token_to_byte`: the two hex digits of `<0xNN>`, parsed like `strtol`.
fn byte_of_hex_token(text: &str) -> u8 {
    let digits = text.as_bytes().get(3..text.len().min(5)).unwrap_or(&[]);
    let mut v: u32 = 0;
    for &d in digits {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x,
            None => break,
        }
    }
    v as u8
}

/// `llama_decode_text`: GPT-2 chars back to bytes; a char outside the map is spelled out
/// the way llama.cpp does (`[UNK_BYTE_0x..<token>]`).
fn gpt2_decode(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match crate::unicode::char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}
