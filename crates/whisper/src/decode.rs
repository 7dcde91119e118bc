//! Whisper's decoding: the vocabulary, the special tokens, the logit rules (suppression,
//! timestamps) and the transcription loop over 30-second windows, as faster-whisper 1.2
//! (`WhisperModel.generate_segments`) drives CTranslate2's Whisper decoder.

use crate::model::{Cross, N_FRAMES, SelfCache, Whisper};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
/// Seconds per log-mel frame.
pub const TIME_PER_FRAME: f64 = 0.01;
/// Mel frames per encoder position.
const INPUT_STRIDE: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// `config.json` of a CTranslate2 Whisper model.
#[derive(Clone, Debug, Deserialize)]
pub struct Ct2Config {
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    pub lang_ids: Vec<u32>,
}

/// The vocabulary (`vocabulary.txt`: one GPT-2 byte-level token a line) and the special
/// tokens found in it by name.
pub struct Vocab {
    tokens: Vec<Vec<u8>>,
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub transcribe: u32,
    pub translate: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    /// Language codes and their tokens (`<|en|>` ...), empty for English-only models.
    pub languages: Vec<(String, u32)>,
}

/// GPT-2's byte-to-character map (`bytes_to_unicode`), inverted: the byte each character
/// of a byte-level token stands for.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut extra = 0;
    for b in 0..=255u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).unwrap_or('\u{fffd}'), b as u8);
    }
    map
}

impl Vocab {
    pub fn load(dir: &Path) -> Result<Vocab, DecodeError> {
        let path = dir.join("vocabulary.txt");
        let text = std::fs::read(&path).map_err(|e| DecodeError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let text = String::from_utf8(text).map_err(|_| DecodeError::File {
            path: path.display().to_string(),
            msg: "not UTF-8".into(),
        })?;
        Self::parse(&text).map_err(|msg| DecodeError::File {
            path: path.display().to_string(),
            msg,
        })
    }

    pub fn parse(text: &str) -> Result<Vocab, String> {
        let map = unicode_to_byte();
        let lines: Vec<&str> = text.lines().collect();
        let mut by_name = HashMap::new();
        let mut tokens = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("<|") && line.ends_with("|>") {
                by_name.insert(*line, i as u32);
                tokens.push(Vec::new());
            } else {
                tokens.push(
                    line.chars()
                        .map(|c| map.get(&c).copied().unwrap_or(b'?'))
                        .collect(),
                );
            }
        }
        let find = |name: &str| by_name.get(name).copied().ok_or(format!("no {name} token"));
        let no_speech = find("<|nospeech|>").or_else(|_| find("<|nocaptions|>"))?;
        let timestamp_begin = find("<|0.00|>")?;
        let eot = find("<|endoftext|>")?;
        let sot = find("<|startoftranscript|>")?;
        let mut languages: Vec<(String, u32)> = by_name
            .iter()
            .filter(|&(_, &id)| id > sot && id < timestamp_begin)
            .filter_map(|(name, &id)| {
                let code = name.strip_prefix("<|")?.strip_suffix("|>")?;
                let is_lang = (2..=3).contains(&code.len())
                    && code.chars().all(|c| c.is_ascii_lowercase())
                    || code == "haw"
                    || code == "yue";
                is_lang.then(|| (code.to_string(), id))
            })
            .collect();
        languages.sort_by_key(|l| l.1);
        // English-only models carry the language tokens too, but only `en` is meaningful;
        // the model is multilingual when its vocabulary has the full language list.
        let multilingual = tokens.len() >= 51865;
        if !multilingual {
            languages.clear();
        }
        Ok(Vocab {
            tokens,
            eot,
            sot,
            sot_prev: find("<|startofprev|>")?,
            sot_lm: find("<|startoflm|>")?,
            transcribe: find("<|transcribe|>")?,
            translate: find("<|translate|>")?,
            no_speech,
            no_timestamps: find("<|notimestamps|>")?,
            timestamp_begin,
            languages,
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    pub fn is_multilingual(&self) -> bool {
        !self.languages.is_empty()
    }

    /// The text of the tokens below `eot` (faster-whisper's `Tokenizer.decode`), invalid
    /// UTF-8 replaced as the reference's tokenizer does.
    pub fn decode(&self, tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .filter(|&&t| t < self.eot)
            .filter_map(|&t| self.tokens.get(t as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages.iter().find(|l| l.0 == code).map(|l| l.1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

/// Decoding options, with faster-whisper's defaults where it has them.
#[derive(Clone, Debug)]
pub struct Options {
    /// A language code, or `None` to detect it (multilingual models).
    pub language: Option<String>,
    pub task: Task,
    pub suppress_blank: bool,
    pub max_initial_timestamp: f64,
    pub without_timestamps: bool,
    pub condition_on_previous_text: bool,
    pub no_speech_threshold: Option<f64>,
    pub log_prob_threshold: Option<f64>,
    /// 1: greedy; more: beam search with this many beams (CTranslate2's `BeamSearch`).
    pub beam_size: usize,
    /// Beam search stops once `round(beam_size * patience)` hypotheses have finished.
    pub patience: f32,
    /// Finished hypotheses are ranked by `score / length^length_penalty`.
    pub length_penalty: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            language: None,
            task: Task::Transcribe,
            suppress_blank: true,
            max_initial_timestamp: 1.0,
            without_timestamps: false,
            condition_on_previous_text: true,
            no_speech_threshold: Some(0.6),
            log_prob_threshold: Some(-1.0),
            beam_size: 1,
            patience: 1.0,
            length_penalty: 1.0,
        }
    }
}

/// `t` seconds as subtitles write it: `HH:MM:SS` then `sep` (`,` in SRT, `.` in WebVTT) and
/// milliseconds.
pub fn format_timestamp(t: f64, sep: char) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A detected (or given) language: its code and probability.
pub type Language = (String, f64);

/// One transcribed segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
}

/// The result of one window's generation.
struct Generation {
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech_prob: f64,
}

/// The transcriber: a model, its vocabulary and configuration.
pub struct Transcriber {
    pub model: Whisper,
    pub vocab: Vocab,
    pub config: Ct2Config,
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    x.iter().map(|v| v - lse).collect()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

impl Transcriber {
    pub fn load(dir: &Path) -> Result<Transcriber, Box<dyn std::error::Error + Send + Sync>> {
        let model = Whisper::load(dir)?;
        let vocab = Vocab::load(dir)?;
        let path = dir.join("config.json");
        let config: Ct2Config = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DecodeError::File {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?,
            Err(e) => return Err(format!("{}: {e}", path.display()).into()),
        };
        if vocab.len() > model.dims.n_vocab {
            return Err(format!(
                "vocabulary.txt has {} tokens, the model {}",
                vocab.len(),
                model.dims.n_vocab
            )
            .into());
        }
        Ok(Transcriber {
            model,
            vocab,
            config,
        })
    }

    /// faster-whisper's `get_suppressed_tokens` for the default `[-1]`: the non-speech
    /// tokens (`config.json`'s `suppress_ids`) and the task and control tokens.
    fn suppressed(&self) -> Vec<u32> {
        let v = &self.vocab;
        let mut s = self.config.suppress_ids.clone();
        s.extend([
            v.transcribe,
            v.translate,
            v.sot,
            v.sot_prev,
            v.sot_lm,
            v.no_speech,
        ]);
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The language of a window from the decoder's first step after `<|startoftranscript|>`
    /// (CTranslate2's `detect_language`): the most likely language token and its probability.
    pub fn detect_language(&self, enc: &[f32]) -> Option<(String, f64)> {
        if !self.vocab.is_multilingual() {
            return None;
        }
        let cross = self.model.cross(enc);
        let mut cache = self.model.cache();
        let logits = self
            .model
            .decode(&cross, &mut cache, &[self.vocab.sot], &[0])
            .remove(0);
        let langs = &self.vocab.languages;
        let max = langs
            .iter()
            .map(|l| logits[l.1 as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = langs
            .iter()
            .map(|l| f64::from((logits[l.1 as usize] - max).exp()))
            .sum();
        let best = langs
            .iter()
            .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))?;
        Some((
            best.0.clone(),
            f64::from((logits[best.1 as usize] - max).exp()) / sum,
        ))
    }

    /// Whisper's logit rules for the next token after `seq` (the generated tokens so far):
    /// suppression, then `ApplyTimestampRules`.
    fn apply_rules(&self, logits: &mut [f32], seq: &[u32], suppressed: &[u32], opts: &Options) {
        let v = &self.vocab;
        let ninf = f32::NEG_INFINITY;
        for &t in suppressed {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        }
        if seq.is_empty() && opts.suppress_blank {
            for &t in &self.config.suppress_ids_begin {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = ninf;
                }
            }
        }
        if opts.without_timestamps {
            return;
        }
        let tb = v.timestamp_begin as usize;
        let eot = v.eot as usize;
        logits[v.no_timestamps as usize] = ninf;
        let last_ts = seq.last().is_some_and(|&t| t as usize >= tb);
        let penult_ts = seq.len() < 2 || seq[seq.len() - 2] as usize >= tb;
        if last_ts {
            if penult_ts {
                logits[tb..].fill(ninf);
            } else {
                logits[..eot].fill(ninf);
            }
        }
        if let Some(&last) = seq.iter().rev().find(|&&t| t as usize >= tb) {
            let last = last as usize;
            let upto = if last_ts && !penult_ts {
                last
            } else {
                last + 1
            };
            let upto = upto.min(logits.len());
            logits[tb..upto].fill(ninf);
        }
        if seq.is_empty() {
            logits[..tb].fill(ninf);
            let idx = (opts.max_initial_timestamp / TIME_PRECISION).round() as usize;
            let last_allowed = tb + idx;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(ninf);
            }
        }
        let lp = log_softmax(logits);
        let ts = &lp[tb..];
        let max_ts = ts.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let ts_lse = if max_ts == ninf {
            ninf
        } else {
            max_ts + ts.iter().map(|x| (x - max_ts).exp()).sum::<f32>().ln()
        };
        let max_text = lp[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_lse > max_text {
            logits[..tb].fill(ninf);
        }
    }

    /// Generation for one window, as CTranslate2's `Whisper.generate` runs it: the prompt
    /// through the decoder (the no-speech probability read at `<|startoftranscript|>`), then
    /// at most `min(n_text_ctx / 2, n_text_ctx - (prompt length - 1))` tokens, greedy or by
    /// beam search.
    fn generate(&self, enc: &[f32], prompt: &[u32], opts: &Options) -> Generation {
        let m = &self.model;
        let ctx = m.dims.n_text_ctx;
        let max_len = (ctx / 2).min(ctx - (prompt.len() - 1));
        let suppressed = self.suppressed();
        let cross = m.cross(enc);
        let mut cache = m.cache();
        let sot_at = prompt
            .iter()
            .position(|&t| t == self.vocab.sot)
            .unwrap_or(0);
        let mut out = m.decode(&cross, &mut cache, prompt, &[sot_at, prompt.len() - 1]);
        let no_speech_prob = f64::from(log_softmax(&out[0])[self.vocab.no_speech as usize].exp());
        let logits = out.pop().unwrap_or_default();
        let (tokens, score) = if opts.beam_size > 1 {
            self.beam_search(&cross, cache, logits, max_len, &suppressed, opts)
        } else {
            self.greedy(&cross, cache, logits, max_len, &suppressed, opts)
        };
        // faster-whisper's `avg_logprob`: the cumulated log-probability (end of text
        // included) over the length plus one.
        let len = tokens.len() as f64;
        let avg_logprob = score * len.powf(f64::from(opts.length_penalty)) / (len + 1.0);
        Generation {
            tokens,
            avg_logprob,
            no_speech_prob,
        }
    }

    /// Greedy decoding; returns the tokens and the length-normalized score.
    fn greedy(
        &self,
        cross: &Cross,
        mut cache: SelfCache,
        mut logits: Vec<f32>,
        max_len: usize,
        suppressed: &[u32],
        opts: &Options,
    ) -> (Vec<u32>, f64) {
        let mut tokens = Vec::new();
        let mut sum = 0f64;
        for step in 0..max_len {
            self.apply_rules(&mut logits, &tokens, suppressed, opts);
            let lp = log_softmax(&logits);
            let t = argmax(&lp);
            sum += f64::from(lp[t]);
            if t as u32 == self.vocab.eot {
                break;
            }
            tokens.push(t as u32);
            if step + 1 == max_len {
                break;
            }
            logits = self
                .model
                .decode(cross, &mut cache, &[t as u32], &[0])
                .remove(0);
        }
        let len = tokens.len() as f64;
        (tokens, sum / len.powf(f64::from(opts.length_penalty)))
    }

    /// Beam search as CTranslate2's `BeamSearch::search` does it: `2 * beam_size` candidates
    /// per step over all beams' cumulated log-probabilities; a candidate that ends (or
    /// reaches the last step) is set aside as a finished hypothesis and its place taken by
    /// the next candidate that does not end; the search stops when `round(beam_size *
    /// patience)` hypotheses have finished, and the best by `score / length^length_penalty`
    /// wins.
    fn beam_search(
        &self,
        cross: &Cross,
        cache: SelfCache,
        logits: Vec<f32>,
        max_len: usize,
        suppressed: &[u32],
        opts: &Options,
    ) -> (Vec<u32>, f64) {
        let beam = opts.beam_size;
        let n_cand = 2 * beam;
        let max_finished = ((beam as f32 * opts.patience).round() as usize).max(1);
        let eot = self.vocab.eot;
        let mut seqs: Vec<Vec<u32>> = vec![Vec::new()];
        let mut scores = vec![0f32];
        let mut caches = vec![cache];
        let mut logits = vec![logits];
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        for step in 0..max_len {
            // The best n_cand (score, beam, token) over every beam's continuations.
            let mut cand: Vec<(f32, usize, u32)> = Vec::with_capacity(n_cand * seqs.len());
            for (b, l) in logits.iter_mut().enumerate() {
                self.apply_rules(l, &seqs[b], suppressed, opts);
                let lp = log_softmax(l);
                let mut top: Vec<(f32, usize, u32)> = Vec::with_capacity(n_cand + 1);
                for (t, &p) in lp.iter().enumerate() {
                    let sc = scores[b] + p;
                    if top.len() < n_cand || sc > top[top.len() - 1].0 {
                        let at = top.partition_point(|c| c.0 >= sc);
                        top.insert(at, (sc, b, t as u32));
                        top.truncate(n_cand);
                    }
                }
                cand.extend(top);
            }
            // Stable: equal scores keep the flattened (beam, token) order, as a top-k does.
            cand.sort_by(|a, b| b.0.total_cmp(&a.0));
            cand.truncate(n_cand);
            let last = step + 1 == max_len;
            let mut next = Vec::with_capacity(beam);
            let mut secondary = beam;
            for k in 0..beam.min(cand.len()) {
                let (sc, b, t) = cand[k];
                let mut chosen = k;
                if t == eot || last {
                    let mut hyp = seqs[b].clone();
                    if t != eot {
                        hyp.push(t);
                    }
                    finished.push((hyp, sc));
                    if let Some(j) = (secondary..cand.len()).find(|&j| cand[j].2 != eot) {
                        chosen = j;
                        secondary = j + 1;
                    }
                }
                next.push(cand[chosen]);
            }
            if last || finished.len() >= max_finished {
                break;
            }
            let mut new_caches: Vec<SelfCache> = next.iter().map(|c| caches[c.1].clone()).collect();
            seqs = next
                .iter()
                .map(|&(_, b, t)| {
                    let mut s = seqs[b].clone();
                    s.push(t);
                    s
                })
                .collect();
            scores = next.iter().map(|c| c.0).collect();
            let tokens: Vec<u32> = next.iter().map(|c| c.2).collect();
            logits = self.model.decode_step(cross, &mut new_caches, &tokens);
            caches = new_caches;
        }
        let lp = opts.length_penalty;
        finished
            .into_iter()
            .map(|(h, sc)| {
                let norm = f64::from(sc) / (h.len() as f64).powf(f64::from(lp));
                (h, norm)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default()
    }

    /// Transcribes a whole log-mel spectrogram (`n_mels x n_frames`, mel-major, computed
    /// with faster-whisper's padding), window after window, calling `on_segment` as each
    /// segment is decoded. Returns the segments and the language used.
    pub fn transcribe(
        &self,
        mel: &[f32],
        n_frames: usize,
        opts: &Options,
        mut on_segment: impl FnMut(&Segment),
    ) -> Result<(Vec<Segment>, Option<Language>), DecodeError> {
        let v = &self.vocab;
        let n_mels = self.model.dims.n_mels;
        if mel.len() != n_mels * n_frames {
            return Err(DecodeError::Invalid(
                "the spectrogram is not n_mels x n_frames".into(),
            ));
        }
        let content_frames = n_frames.saturating_sub(1);
        let window = |seek: usize, size: usize| {
            let mut w = vec![0f32; n_mels * N_FRAMES];
            for c in 0..n_mels {
                w[c * N_FRAMES..c * N_FRAMES + size]
                    .copy_from_slice(&mel[c * n_frames + seek..c * n_frames + seek + size]);
            }
            w
        };
        let mut language = None;
        // The first window's encoding when language detection made it (faster-whisper
        // hands it on too), so that window is not encoded twice.
        let mut first_enc = None;
        if v.is_multilingual() {
            match &opts.language {
                Some(code) => {
                    if v.language_token(code).is_none() {
                        return Err(DecodeError::Invalid(format!("unknown language {code:?}")));
                    }
                    language = Some((code.clone(), 1.0));
                }
                None => {
                    let size = N_FRAMES.min(content_frames);
                    let enc = self.model.encode(&window(0, size));
                    language = self.detect_language(&enc);
                    first_enc = Some(enc);
                }
            }
        }
        let mut sot_seq = vec![v.sot];
        if let Some((code, _)) = &language {
            sot_seq.push(v.language_token(code).unwrap_or(v.sot));
            sot_seq.push(match opts.task {
                Task::Transcribe => v.transcribe,
                Task::Translate => v.translate,
            });
        }
        let mut segments = Vec::new();
        let mut all_tokens: Vec<u32> = Vec::new();
        let mut prompt_reset_since = 0;
        let mut seek = 0;
        let half = self.model.dims.n_text_ctx / 2 - 1;
        while seek < content_frames {
            let time_offset = seek as f64 * TIME_PER_FRAME;
            let size = N_FRAMES.min(content_frames - seek);
            let duration = size as f64 * TIME_PER_FRAME;
            let enc = match first_enc.take() {
                Some(enc) if seek == 0 => enc,
                _ => self.model.encode(&window(seek, size)),
            };
            let previous = &all_tokens[prompt_reset_since..];
            let mut prompt = Vec::new();
            if !previous.is_empty() {
                prompt.push(v.sot_prev);
                prompt.extend_from_slice(&previous[previous.len().saturating_sub(half)..]);
            }
            prompt.extend_from_slice(&sot_seq);
            if opts.without_timestamps {
                prompt.push(v.no_timestamps);
            }
            let g = self.generate(&enc, &prompt, opts);
            if let Some(th) = opts.no_speech_threshold {
                let skip = g.no_speech_prob > th
                    && !opts.log_prob_threshold.is_some_and(|lp| g.avg_logprob > lp);
                if skip {
                    seek += size;
                    continue;
                }
            }
            let (pieces, next_seek) = self.split(&g.tokens, time_offset, size, duration, seek);
            seek = next_seek;
            for (start, end, tokens) in pieces {
                let text = v.decode(&tokens);
                if start == end || text.trim().is_empty() {
                    continue;
                }
                all_tokens.extend_from_slice(&tokens);
                let s = Segment {
                    start,
                    end,
                    text,
                    tokens,
                    avg_logprob: g.avg_logprob,
                    no_speech_prob: g.no_speech_prob,
                };
                on_segment(&s);
                segments.push(s);
            }
            if !opts.condition_on_previous_text {
                prompt_reset_since = all_tokens.len();
            }
        }
        Ok((segments, language))
    }

    /// faster-whisper's `_split_segments_by_timestamps`: the segments of one window's tokens
    /// and where the next window starts.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        tokens: &[u32],
        time_offset: f64,
        size: usize,
        duration: f64,
        seek: usize,
    ) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
        let tb = self.vocab.timestamp_begin;
        let is_ts = |t: u32| t >= tb;
        let n = tokens.len();
        let single_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
        let consecutive: Vec<usize> = (1..n)
            .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
            .collect();
        let mut out = Vec::new();
        if !consecutive.is_empty() {
            let mut slices = consecutive;
            if single_ending {
                slices.push(n);
            }
            let mut last = 0;
            for &cur in &slices {
                let sliced = &tokens[last..cur];
                let start = time_offset + f64::from(sliced[0] - tb) * TIME_PRECISION;
                let end = time_offset + f64::from(sliced[sliced.len() - 1] - tb) * TIME_PRECISION;
                out.push((start, end, sliced.to_vec()));
                last = cur;
            }
            let next = if single_ending {
                seek + size
            } else {
                seek + (tokens[last - 1] - tb) as usize * INPUT_STRIDE
            };
            (out, next)
        } else {
            let mut d = duration;
            if let Some(&t) = tokens.iter().rev().find(|&&t| is_ts(t))
                && t != tb
            {
                d = f64::from(t - tb) * TIME_PRECISION;
            }
            out.push((time_offset, time_offset + d, tokens.to_vec()));
            (out, seek + size)
        }
    }
}
