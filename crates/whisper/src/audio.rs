//! Audio files to 16 kHz mono f32 samples in [-1, 1]: what faster-whisper's `decode_audio`
//! produces with PyAV (FFmpeg) before the log-mel front end.
//!
//! - WAV (8/16/24/32-bit integer PCM, 32-bit float, any channel count and rate) is read with
//!   `hound`; WAV variants hound does not handle (64-bit float, A-law, mu-law, odd headers)
//!   fall back to `symphonia`.
//! - MP3, FLAC, Ogg Vorbis, M4A/MP4 (AAC-LC) and AIFF go through `symphonia`, with gapless
//!   trimming on (MP3 encoder delay and padding from the LAME/Xing header). symphonia ignores
//!   MP4 edit lists, so the AAC encoder's priming samples are dropped here from the edit list's
//!   start, as FFmpeg does (FFmpeg, and so this, keeps the padding of the last AAC frame).
//! - Channels are averaged into one (as FFmpeg's default stereo-to-mono matrix does).
//! - Other rates are resampled to 16 kHz with rubato's FFT resampler (band-limited, a long
//!   Blackman-Harris windowed sinc), the whole clip streamed through it, the resampler's delay
//!   trimmed off the front and the tail flushed, so the output has exactly
//!   `round(n * 16000 / rate)` samples and no time offset. 16 kHz input passes through
//!   untouched (mono 16-bit gives bit-identical samples to faster-whisper's `x / 32768`).
//!
//! Hostile input (truncated or random bytes, absurd headers, zero channels, zero rate) gives an
//! [`AudioError`], never a panic: rates are bounded, the decoded length is capped at
//! [`MAX_DURATION_SECS`] while decoding (so a tiny file that claims, or decompresses to, days of
//! audio stops early), nothing is preallocated from header fields, and a panic inside a
//! third-party decoder is caught and reported as a corrupt file.
//!
//! Like FFmpeg, a WAV whose data chunk is cut short, or whose lengths are a streaming
//! writer's placeholders, decodes to the complete frames that are there.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Whisper's input rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// The longest audio [`load`] and [`decode_bytes`] accept, in seconds (4 hours: 230 M
/// samples, 920 MB at 16 kHz).
pub const MAX_DURATION_SECS: u64 = 4 * 3600;

/// Source sample rates accepted. Anything outside is a broken header, and the upper bound keeps
/// the resampler's FFT sizes (a multiple of `rate / gcd(rate, 16000)`) reasonable.
pub const MIN_SOURCE_RATE: u32 = 1_000;
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Consecutive packets that may fail to demux or decode before the stream counts as broken.
const MAX_CONSECUTIVE_ERRORS: usize = 64;

/// Why an audio file could not be turned into samples.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read audio file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A container, codec or sample layout we do not decode.
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// Malformed data: truncated header, garbage, a decoder that gave up.
    #[error("corrupt audio file: {0}")]
    Corrupt(String),
    #[error("invalid audio: the file declares zero channels")]
    NoChannels,
    #[error(
        "invalid audio: sample rate {0} Hz (supported: {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz)"
    )]
    SampleRate(u32),
    /// The input decodes to zero samples (an empty file, or a valid file with no audio).
    #[error("empty audio: the input contains no samples")]
    Empty,
    #[error("audio too long: more than the {max_secs} s limit")]
    TooLong { max_secs: u64 },
}

/// Decodes the audio file at `path` to 16 kHz mono samples. The extension is a hint for the
/// container; the content decides. At most [`MAX_DURATION_SECS`] of audio.
pub fn load(path: &Path) -> Result<Vec<f32>, AudioError> {
    load_limited(path, MAX_DURATION_SECS)
}

/// [`load`] with a different duration limit, in seconds of source audio.
pub fn load_limited(path: &Path, max_secs: u64) -> Result<Vec<f32>, AudioError> {
    let io_err = |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    if file.metadata().map_err(io_err)?.len() == 0 {
        return Err(AudioError::Empty);
    }
    let ext = path.extension().and_then(|e| e.to_str());
    if is_riff_wave(&mut file).map_err(io_err)? {
        let size = file.metadata().map_err(io_err)?.len();
        let mut head = Vec::new();
        (&mut file)
            .take(WAV_HEADER_SCAN)
            .read_to_end(&mut head)
            .map_err(io_err)?;
        let wav = match fix_wav_header(&head, size) {
            Some((header, data_start)) => {
                file.seek(SeekFrom::Start(data_start)).map_err(io_err)?;
                let reader = Cursor::new(header).chain(BufReader::new(&mut file));
                guarded(|| decode_wav(reader, size, max_secs))
            }
            None => {
                file.seek(SeekFrom::Start(0)).map_err(io_err)?;
                guarded(|| decode_wav(BufReader::new(&mut file), size, max_secs))
            }
        };
        match wav {
            Ok(samples) => return Ok(samples),
            Err(WavError::Fatal(e)) => return Err(e),
            Err(WavError::Fallback(e)) => {
                file.seek(SeekFrom::Start(0)).map_err(io_err)?;
                return guarded(|| decode_symphonia(Box::new(file), ext, None, max_secs))
                    .map_err(|_| e);
            }
        }
    }
    let start = mp4_media_start(&mut file);
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    guarded(|| decode_symphonia(Box::new(file), ext, start, max_secs))
}

/// Decodes an audio file held in memory (an upload) to 16 kHz mono samples. `hint` is the
/// file's extension if known (`"mp3"`, `"wav"`, ...); the content decides. At most
/// [`MAX_DURATION_SECS`] of audio.
pub fn decode_bytes(bytes: &[u8], hint: Option<&str>) -> Result<Vec<f32>, AudioError> {
    decode_bytes_limited(bytes, hint, MAX_DURATION_SECS)
}

/// [`decode_bytes`] with a different duration limit, in seconds of source audio (a server may
/// want a lower one for uploads).
pub fn decode_bytes_limited(
    bytes: &[u8],
    hint: Option<&str>,
    max_secs: u64,
) -> Result<Vec<f32>, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let mut cursor = Cursor::new(bytes);
    if is_riff_wave(&mut cursor).unwrap_or(false) {
        let size = bytes.len() as u64;
        let head = &bytes[..bytes.len().min(WAV_HEADER_SCAN as usize)];
        let wav = match fix_wav_header(head, size) {
            Some((header, data_start)) => {
                let reader = Cursor::new(header).chain(&bytes[data_start as usize..]);
                guarded(|| decode_wav(reader, size, max_secs))
            }
            None => guarded(|| decode_wav(cursor, size, max_secs)),
        };
        match wav {
            Ok(samples) => return Ok(samples),
            Err(WavError::Fatal(e)) => return Err(e),
            Err(WavError::Fallback(e)) => {
                let source = Box::new(Cursor::new(bytes.to_vec()));
                return guarded(|| decode_symphonia(source, hint, None, max_secs)).map_err(|_| e);
            }
        }
    }
    let start = mp4_media_start(&mut Cursor::new(bytes));
    // symphonia wants an owned ('static) source.
    guarded(|| decode_symphonia(Box::new(Cursor::new(bytes.to_vec())), hint, start, max_secs))
}

/// Runs a decoder, turning a panic inside a third-party decoder on malformed data into an
/// error. (The panic message still goes to stderr through the panic hook.)
fn guarded<T, E: From<AudioError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(AudioError::Corrupt("the decoder failed on malformed data".into()).into())
    })
}

/// Whether the stream starts like a RIFF/WAVE file; rewinds it.
fn is_riff_wave<R: Read + Seek>(r: &mut R) -> io::Result<bool> {
    let mut head = [0u8; 12];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    r.seek(SeekFrom::Start(0))?;
    Ok(n == 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE")
}

/// How far into a WAV file its `data` chunk is looked for (header chunks such as `LIST` or
/// `bext` sit before it and are small).
const WAV_HEADER_SCAN: u64 = 1 << 16;

/// Streamed WAVs (written to a pipe) cannot go back to fill in their lengths and leave
/// placeholders (0, 0xFFFFFFFF) that hound and symphonia refuse; a cut file declares more data
/// than it has. When the `data` chunk's length is one of those, returns the header up to the
/// data with the lengths set to the whole frames that are really there, and where the data
/// starts, so the file decodes to the end as FFmpeg does. `head` is the file's first bytes,
/// `size` its length. None when the header is fine or not understood.
fn fix_wav_header(head: &[u8], size: u64) -> Option<(Vec<u8>, u64)> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    let mut at = 12usize;
    let mut block_align = None;
    loop {
        let id = head.get(at..at + 4)?;
        let len = u32_at(at + 4)?;
        let body = at + 8;
        if id == b"fmt " {
            block_align = Some(u64::from(u16_at(body + 12)?));
        } else if id == b"data" {
            let block = block_align.filter(|&b| b > 0)?;
            let present = size.checked_sub(body as u64)?;
            let declared = u64::from(len);
            if declared != 0 && declared <= present && declared % block == 0 {
                return None;
            }
            let data_len = (present.min(u64::from(u32::MAX)) / block) * block;
            let mut header = head[..body].to_vec();
            header[at + 4..body].copy_from_slice(&(data_len as u32).to_le_bytes());
            let riff_len = (body as u64 - 8 + data_len).min(u64::from(u32::MAX));
            header[4..8].copy_from_slice(&(riff_len as u32).to_le_bytes());
            return Some((header, body as u64));
        }
        // Chunks are padded to an even length.
        at = body
            .checked_add(len as usize)?
            .checked_add(len as usize & 1)?;
    }
}

/// A WAV decode failure: `Fallback` when symphonia may still read the file (hound does not
/// handle this variant or header), `Fatal` when the file is understood and wrong.
enum WavError {
    Fallback(AudioError),
    Fatal(AudioError),
}

impl From<AudioError> for WavError {
    fn from(e: AudioError) -> Self {
        WavError::Fatal(e)
    }
}

/// WAV through hound: integer PCM scaled by `2^-(bits - 1)` (16-bit: `x / 32768`, as
/// faster-whisper's s16 path), float as is; channels averaged; resampled to 16 kHz.
/// `size` is the file's length in bytes, to tell a header's placeholder length from audio
/// that is really there.
fn decode_wav<R: Read>(reader: R, size: u64, max_secs: u64) -> Result<Vec<f32>, WavError> {
    let mut wav = hound::WavReader::new(reader).map_err(|e| {
        WavError::Fallback(match e {
            hound::Error::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                AudioError::Corrupt("truncated WAV header".into())
            }
            hound::Error::FormatError("file contains zero channels") => AudioError::NoChannels,
            hound::Error::FormatError(msg) => AudioError::Corrupt(format!("invalid WAV: {msg}")),
            hound::Error::Unsupported => {
                AudioError::Unsupported("WAV sample encoding not supported".into())
            }
            e => AudioError::Corrupt(format!("invalid WAV: {e}")),
        })
    })?;
    let spec = wav.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(AudioError::NoChannels.into());
    }
    let mut sink = Mono16k::new(spec.sample_rate, max_secs)?;
    // Refuse early only when the file really holds more than the limit: streamed WAVs carry
    // placeholder lengths, which decode to what is there. (Frames counted with the widest
    // container for the bit depth, so this never refuses a file that fits.)
    let declared = u64::from(wav.len()) / channels as u64;
    let container = u64::from(spec.bits_per_sample.div_ceil(8).max(1))
        .max(if spec.bits_per_sample == 24 { 4 } else { 1 });
    let present = size / (container * channels as u64);
    if declared.min(present) > sink.max_in {
        return Err(AudioError::TooLong { max_secs }.into());
    }

    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            mix_wav(wav.samples::<f32>(), channels, 1.0, &mut sink)?;
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            // A power of two: the scaling is exact.
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            mix_wav(
                wav.samples::<i32>().map(|s| s.map(|x| x as f32)),
                channels,
                scale,
                &mut sink,
            )?;
        }
        (format, bits) => {
            return Err(WavError::Fallback(AudioError::Unsupported(format!(
                "WAV with {bits}-bit {format:?} samples"
            ))));
        }
    }
    Ok(sink.finish()?)
}

/// Averages interleaved WAV samples into mono chunks for the sink. A read error mid-stream is a
/// truncated data chunk: keep the complete frames before it, as FFmpeg does. An unsupported
/// container width (e.g. 12 bits in 2 bytes) on the first frame goes to the fallback.
fn mix_wav<I>(samples: I, channels: usize, scale: f32, sink: &mut Mono16k) -> Result<(), WavError>
where
    I: Iterator<Item = hound::Result<f32>>,
{
    const CHUNK: usize = 8192;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut frame_sum = 0.0f32;
    let mut in_frame = 0;
    let mut frames = 0u64;
    let inv_channels = 1.0 / channels as f32;
    for s in samples {
        let x = match s {
            Ok(x) => x,
            Err(hound::Error::Unsupported | hound::Error::TooWide) if frames == 0 => {
                return Err(WavError::Fallback(AudioError::Unsupported(
                    "WAV sample container not supported".into(),
                )));
            }
            Err(_) => break,
        };
        frame_sum += x;
        in_frame += 1;
        if in_frame == channels {
            // Mono: x * scale exactly; several channels: the mean.
            let v = if channels == 1 {
                frame_sum * scale
            } else {
                frame_sum * inv_channels * scale
            };
            chunk.push(v);
            frame_sum = 0.0;
            in_frame = 0;
            frames += 1;
            if chunk.len() == CHUNK {
                sink.push(&chunk)?;
                chunk.clear();
            }
        }
    }
    sink.push(&chunk)?;
    Ok(())
}

/// Everything else through symphonia: probe the container, decode the first audio track,
/// average channels, resample. Packets that fail to decode are skipped (as FFmpeg does), up
/// to [`MAX_CONSECUTIVE_ERRORS`] in a row. `media_start` is an MP4 edit list's start (see
/// [`mp4_media_start`]): that many frames are dropped from the front, as FFmpeg does.
fn decode_symphonia(
    source: Box<dyn MediaSource>,
    hint: Option<&str>,
    media_start: Option<MediaStart>,
    max_secs: u64,
) -> Result<Vec<f32>, AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut probe_hint = Hint::new();
    if let Some(ext) = hint {
        probe_hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&probe_hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => {
                AudioError::Unsupported("not a recognized audio format".into())
            }
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                AudioError::Unsupported("not a recognized audio format".into())
            }
            e => AudioError::Corrupt(format!("cannot open the container: {e}")),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Unsupported("no audio track".into()))?;
    let track_id = track.id;
    if track.codec_params.channels.is_some_and(|c| c.count() == 0) {
        return Err(AudioError::NoChannels);
    }
    if let Some(rate) = track.codec_params.sample_rate {
        check_rate(rate)?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("codec: {e}")))?;

    let mut sink: Option<Mono16k> = None;
    let mut f32_buf: Option<AudioBuffer<f32>> = None;
    let mut mono = Vec::new();
    let mut errors = 0;
    // Frames still to drop from the front (set once the rate is known).
    let mut to_skip: Option<u64> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A chained stream with new parameters: keep the first part.
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::DecodeError(_)) if errors < MAX_CONSECUTIVE_ERRORS => {
                errors += 1;
                continue;
            }
            // Damage after some audio: keep what decoded, like a truncated file.
            Err(_) if sink.as_ref().is_some_and(|s| s.n_in > 0) => break,
            Err(e) => return Err(AudioError::Corrupt(format!("cannot read packets: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))
                if errors < MAX_CONSECUTIVE_ERRORS =>
            {
                errors += 1;
                continue;
            }
            Err(_) if sink.as_ref().is_some_and(|s| s.n_in > 0) => break,
            Err(e) => return Err(AudioError::Corrupt(format!("cannot decode: {e}"))),
        };
        errors = 0;
        let spec = *decoded.spec();
        if spec.channels.count() == 0 {
            return Err(AudioError::NoChannels);
        }
        let sink = match &mut sink {
            Some(s) if s.rate == spec.rate => s,
            Some(s) => {
                return Err(AudioError::Unsupported(format!(
                    "sample rate changes mid-stream ({} Hz to {} Hz)",
                    s.rate, spec.rate
                )));
            }
            None => sink.insert(Mono16k::new(spec.rate, max_secs)?),
        };
        mix_planes(decoded, &mut f32_buf, &mut mono);
        let skip = to_skip.get_or_insert_with(|| media_start.map_or(0, |m| m.frames_at(spec.rate)));
        let drop = (*skip).min(mono.len() as u64) as usize;
        *skip -= drop as u64;
        sink.push(&mono[drop..])?;
    }
    match sink {
        Some(sink) => sink.finish(),
        None => Err(AudioError::Empty),
    }
}

/// Converts a decoded packet to f32 and averages its channels into `mono`.
fn mix_planes(
    decoded: AudioBufferRef<'_>,
    buf: &mut Option<AudioBuffer<f32>>,
    mono: &mut Vec<f32>,
) {
    let spec = *decoded.spec();
    let capacity = decoded.capacity();
    let buf = match buf {
        Some(b) if b.spec() == &spec && b.capacity() >= capacity => b,
        _ => buf.insert(AudioBuffer::new(capacity as u64, spec)),
    };
    decoded.convert(buf);
    let planes = buf.planes();
    let planes = planes.planes();
    let frames = buf.frames();
    mono.clear();
    mono.extend_from_slice(&planes[0][..frames]);
    if planes.len() > 1 {
        for plane in &planes[1..] {
            for (m, &x) in mono.iter_mut().zip(&plane[..frames]) {
                *m += x;
            }
        }
        let inv = 1.0 / planes.len() as f32;
        for m in mono.iter_mut() {
            *m *= inv;
        }
    }
}

/// Where an MP4 track's media starts, from its edit list: `media_time` in `timescale` units.
/// AAC encoders prepend priming samples (1024 for FFmpeg's, 2112 for Apple's) and record them
/// here; symphonia does not apply edit lists, FFmpeg does.
#[derive(Debug, Clone, Copy)]
struct MediaStart {
    media_time: u64,
    timescale: u32,
}

impl MediaStart {
    fn frames_at(self, rate: u32) -> u64 {
        let frames =
            u128::from(self.media_time) * u128::from(rate) / u128::from(self.timescale.max(1));
        frames.min(u128::from(u32::MAX)) as u64
    }
}

/// Reads the first sound track's edit list start from an MP4/M4A file (`moov/trak/edts/elst`,
/// first non-empty edit, with `mdia/mdhd`'s timescale). Returns None for anything else or
/// anything malformed: the caller then decodes from the first sample. Only box headers and
/// the few small boxes needed are read; `mdat` is skipped by seeking.
fn mp4_media_start<R: Read + Seek>(r: &mut R) -> Option<MediaStart> {
    let end = r.seek(SeekFrom::End(0)).ok()?;
    r.seek(SeekFrom::Start(0)).ok()?;
    let mut head = [0u8; 8];
    r.read_exact(&mut head).ok()?;
    if &head[4..8] != b"ftyp" {
        return None;
    }
    let (moov, moov_end) = find_box(r, 0, end, b"moov")?;
    let mut at = moov;
    while let Some((trak, trak_end)) = find_box(r, at, moov_end, b"trak") {
        at = trak_end;
        let Some((mdia, mdia_end)) = find_box(r, trak, trak_end, b"mdia") else {
            continue;
        };
        let is_sound = find_box(r, mdia, mdia_end, b"hdlr")
            .filter(|&(hdlr, hdlr_end)| hdlr + 12 <= hdlr_end)
            .and_then(|(hdlr, _)| read_at::<4>(r, hdlr + 8))
            .is_some_and(|kind| &kind == b"soun");
        if !is_sound {
            continue;
        }
        // mdhd: version (1), flags (3), then 32- or 64-bit creation/modification times.
        let (mdhd, mdhd_end) = find_box(r, mdia, mdia_end, b"mdhd")?;
        let version = read_at::<1>(r, mdhd)?[0];
        let timescale_at = mdhd + if version == 1 { 20 } else { 12 };
        if timescale_at + 4 > mdhd_end {
            return None;
        }
        let timescale = u32::from_be_bytes(read_at(r, timescale_at)?);
        let (edts, edts_end) = find_box(r, trak, trak_end, b"edts")?;
        let (elst, elst_end) = find_box(r, edts, edts_end, b"elst")?;
        if elst + 8 > elst_end {
            return None;
        }
        let version = read_at::<1>(r, elst)?[0];
        let count = u32::from_be_bytes(read_at(r, elst + 4)?);
        let entry_len = if version == 1 { 20 } else { 12 };
        for i in 0..u64::from(count.min(16)) {
            let entry = elst + 8 + i * entry_len;
            if entry + entry_len > elst_end {
                return None;
            }
            // An empty edit (media_time -1) delays the track; skip it and look further.
            let media_time = if version == 1 {
                i64::from_be_bytes(read_at(r, entry + 8)?)
            } else {
                i64::from(i32::from_be_bytes(read_at(r, entry + 4)?))
            };
            if media_time >= 0 {
                return Some(MediaStart {
                    media_time: media_time as u64,
                    timescale,
                });
            }
        }
        return None;
    }
    None
}

/// Finds the first box of `kind` among the boxes in `[start, end)`: its content's
/// `(start, end)`.
fn find_box<R: Read + Seek>(r: &mut R, start: u64, end: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
    let mut at = start;
    while at + 8 <= end {
        let head: [u8; 8] = read_at(r, at)?;
        let size = u64::from(u32::from_be_bytes(head[0..4].try_into().ok()?));
        let (header_len, size) = match size {
            0 => (8, end - at),
            1 => (16, u64::from_be_bytes(read_at(r, at + 8)?)),
            n => (8, n),
        };
        if size < header_len || at.checked_add(size)? > end {
            return None;
        }
        if &head[4..8] == kind {
            return Some((at + header_len, at + size));
        }
        at += size;
    }
    None
}

fn read_at<const N: usize>(r: &mut (impl Read + Seek), at: u64) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    r.seek(SeekFrom::Start(at)).ok()?;
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::SampleRate(rate))
    }
}

/// Collects mono samples at the source rate and produces 16 kHz output, streaming through the
/// resampler so a long file never sits in memory at its source rate.
struct Mono16k {
    rate: u32,
    /// The duration limit, in input frames.
    max_in: u64,
    /// Input frames pushed so far.
    n_in: u64,
    out: Vec<f32>,
    resampler: Option<Box<Resampling>>,
}

/// rubato's FFT resampler with the clip-level bookkeeping: input gathered into whole chunks,
/// the delay skipped at the front.
struct Resampling {
    fft: FftFixedIn<f32>,
    /// Input not yet processed, (< chunk)
    pending: Vec<f32>,
    /// One call's output, (output_frames_max)
    chunk_out: Vec<f32>,
    /// Output frames still to drop: the resampler's delay.
    to_skip: usize,
}

impl Mono16k {
    fn new(rate: u32, max_secs: u64) -> Result<Self, AudioError> {
        check_rate(rate)?;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            let (rate_in, rate_out) = (rate as usize, SAMPLE_RATE as usize);
            // Chunks of an even number of the smallest whole-ratio blocks: the FFT then has an
            // even length, so the delay (half a block) is a whole number of output samples.
            // Around 4096 input frames per chunk; the filter is as long as one chunk.
            let block_in = rate_in / gcd(rate_in, rate_out);
            let chunk = block_in * 2 * (4096 / (2 * block_in)).max(1);
            let fft = FftFixedIn::<f32>::new(rate_in, rate_out, chunk, 1, 1).map_err(|e| {
                AudioError::Unsupported(format!("cannot resample from {rate} Hz: {e}"))
            })?;
            let to_skip = fft.output_delay();
            let chunk_out = vec![0.0; fft.output_frames_max()];
            Some(Box::new(Resampling {
                fft,
                pending: Vec::with_capacity(chunk),
                chunk_out,
                to_skip,
            }))
        };
        let max_in = u64::from(rate).saturating_mul(max_secs);
        Ok(Self {
            rate,
            max_in,
            n_in: 0,
            out: Vec::new(),
            resampler,
        })
    }

    fn push(&mut self, mono: &[f32]) -> Result<(), AudioError> {
        self.n_in += mono.len() as u64;
        if self.n_in > self.max_in {
            return Err(AudioError::TooLong {
                max_secs: self.max_in / u64::from(self.rate),
            });
        }
        let Some(rs) = &mut self.resampler else {
            self.out.extend_from_slice(mono);
            return Ok(());
        };
        let chunk = rs.fft.input_frames_next();
        let mut rest = mono;
        while !rest.is_empty() {
            let take = (chunk - rs.pending.len()).min(rest.len());
            rs.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if rs.pending.len() == chunk {
                let (_, n_out) = rs
                    .fft
                    .process_into_buffer(&[&rs.pending], &mut [&mut rs.chunk_out], None)
                    .map_err(resample_error)?;
                rs.emit(n_out, &mut self.out);
                rs.pending.clear();
            }
        }
        Ok(())
    }

    /// Flushes the resampler and trims to exactly `round(n_in * 16000 / rate)` samples.
    fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        if self.n_in == 0 {
            return Err(AudioError::Empty);
        }
        let Some(rs) = &mut self.resampler else {
            return Ok(self.out);
        };
        let num = u128::from(self.n_in) * u128::from(SAMPLE_RATE);
        let rate = u128::from(self.rate);
        let wanted = ((2 * num + rate) / (2 * rate)) as usize;
        if !rs.pending.is_empty() {
            let (_, n_out) = rs
                .fft
                .process_partial_into_buffer(Some(&[&rs.pending]), &mut [&mut rs.chunk_out], None)
                .map_err(resample_error)?;
            rs.emit(n_out, &mut self.out);
            rs.pending.clear();
        }
        // Push zeros through until the delayed tail is out. Each call yields at least one
        // block, so this ends; the bound is a guard.
        let mut guard = 0;
        while self.out.len() < wanted && guard < 1 << 20 {
            let (_, n_out) = rs
                .fft
                .process_partial_into_buffer(None::<&[&[f32]]>, &mut [&mut rs.chunk_out], None)
                .map_err(resample_error)?;
            rs.emit(n_out, &mut self.out);
            guard += 1;
        }
        self.out.truncate(wanted);
        if self.out.is_empty() {
            return Err(AudioError::Empty);
        }
        Ok(self.out)
    }
}

impl Resampling {
    fn emit(&mut self, n_out: usize, out: &mut Vec<f32>) {
        let produced = &self.chunk_out[..n_out];
        let skip = self.to_skip.min(produced.len());
        self.to_skip -= skip;
        out.extend_from_slice(&produced[skip..]);
    }
}

fn resample_error(e: rubato::ResampleError) -> AudioError {
    AudioError::Unsupported(format!("resampling failed: {e}"))
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
