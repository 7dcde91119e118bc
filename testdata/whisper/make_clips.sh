#!/usr/bin/env bash
# Synthesizes the Whisper test clips in clips/ with espeak-ng and sox.
# Reproducible: fixed espeak-ng options, sox run in repeatable mode (-R, fixed
# seed for the white noise), no dither (-D). Rerunning rewrites identical files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/clips"

# --- tools ---------------------------------------------------------------
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
# libsox-fmt-all gives sox its ogg/vorbis (and mp3) writers.
if ! dpkg -s libsox-fmt-all >/dev/null 2>&1 && ! sox -h 2>/dev/null | grep -q 'AUDIO FILE FORMATS:.* vorbis'; then
  need+=(libsox-fmt-all)
fi
if ((${#need[@]})); then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- settings ------------------------------------------------------------
# espeak-ng: words per minute, pitch, amplitude, word gap (10 ms units).
ESPEAK_OPTS=(-s 160 -p 50 -a 100 -g 0)
# Mandarin: Debian's espeak-ng 1.51 voice `cmn` ("latin as English") reads the
# pinyin it derives from the characters as English letters and digits
# ("ni3" -> "nee three"); `cmn-latn-pinyin` is the same Mandarin voice with the
# pinyin read as pinyin, so it is used for the Chinese clips.
ZH_VOICE=cmn-latn-pinyin
SOX=(sox -R -D -V1)   # repeatable mode, no dither, quiet

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
rm -f "$out"/*.wav "$out"/*.ogg "$out"/*.mp3   # the directory is fully generated

# Every clip is also listed in clips.json (name, language, voice, spoken text,
# format) for reference.py and the tests.
manifest=()
# note FILE LANG VOICE FORMAT TEXT
note() {
  local text="${5//\\/\\\\}"; text="${text//\"/\\\"}"
  manifest+=("$(printf '  {"file": "%s", "language": "%s", "voice": "%s", "format": "%s",\n   "text": "%s"}' \
    "$1" "$2" "$3" "$4" "$text")")
}

# speak VOICE TEXT RAW_WAV : espeak-ng output (22050 Hz mono 16-bit)
speak() { espeak-ng -v "$1" "${ESPEAK_OPTS[@]}" -w "$3" -- "$2"; }

# to16k IN OUT : 16 kHz mono 16-bit signed PCM WAV
to16k() { "${SOX[@]}" "$1" -r 16000 -c 1 -b 16 -e signed-integer "$2"; }

# wav16 NAME VOICE TEXT : clips/NAME.wav at 16 kHz mono 16-bit
wav16() {
  speak "$2" "$3" "$tmp/$1.raw.wav"
  to16k "$tmp/$1.raw.wav" "$out/$1.wav"
  note "$1.wav" "${4:-en}" "$2" "wav 16000 Hz mono s16" "$3"
}

# --- English, 16 kHz mono ------------------------------------------------
wav16 en_weather en "The weather today is sunny and warm, with a light breeze from the west."
wav16 en_kitchen en "Please put the milk back in the fridge after breakfast."
wav16 en_train   en "The next train to the city leaves at half past seven from platform four."
wav16 en_library en "She borrowed three books from the library and returned them a week later."

# --- Mandarin, 16 kHz mono -----------------------------------------------
# These two sentences were picked from a dozen candidates because whisper-base
# detects them as zh with this voice; many other espeak-ng Mandarin sentences
# are detected as Thai or English.
wav16 zh_morning  "$ZH_VOICE" "我每天早上七点起床，然后去学校上课。" zh
wav16 zh_worktime "$ZH_VOICE" "现在是上午九点，我要去上班了。" zh

# --- English, 44.1 kHz stereo 16-bit ---------------------------------------
t="Where is the nearest post office, please?"
speak en "$t" "$tmp/stereo.raw.wav"
note en_stereo44k.wav en en "wav 44100 Hz stereo s16" "$t"
"${SOX[@]}" "$tmp/stereo.raw.wav" -r 44100 -c 2 -b 16 -e signed-integer "$out/en_stereo44k.wav"

# --- English with white noise, 16 kHz mono ---------------------------------
t="My brother plays the guitar every evening after dinner."
speak en "$t" "$tmp/noisy.raw.wav"
note en_noisy.wav en en "wav 16000 Hz mono s16, white noise mixed at volume 0.02" "$t"
to16k "$tmp/noisy.raw.wav" "$tmp/noisy.clean.wav"
len="$(soxi -s "$tmp/noisy.clean.wav")"
# White noise of the same length (repeatable seed; rate set on the -n input so
# the sample count is in 16 kHz samples), mixed in at volume 0.02 (noise RMS
# about 27 dB below the speech RMS). sox -m does no 1/n scaling once a -v is given.
"${SOX[@]}" -r 16000 -c 1 -n -b 16 -e signed-integer "$tmp/noise.wav" synth "${len}s" whitenoise
"${SOX[@]}" -m "$tmp/noisy.clean.wav" -v 0.02 "$tmp/noise.wav" -b 16 -e signed-integer "$out/en_noisy.wav"

# --- English, OGG Vorbis ---------------------------------------------------
t="Once upon a time, a small fox lived at the edge of a quiet forest."
speak en "$t" "$tmp/story.raw.wav"
note en_story.ogg en en "ogg vorbis 16000 Hz mono, quality 3" "$t"
to16k "$tmp/story.raw.wav" "$tmp/story.wav"
"${SOX[@]}" "$tmp/story.wav" -C 3 "$out/en_story.ogg"

# --- English, longer than 60 s, 16 kHz mono -------------------------------
wav16 en_long en "Every morning, the old baker opened his small shop on the corner of the market square. \
He lit the ovens before sunrise, and by the time the first customers arrived, the shelves were full of warm bread, \
sweet rolls, and apple pies. The children from the nearby school often stopped by on their way to class, \
counting their coins carefully to buy a cinnamon bun. The baker knew most of them by name, and he liked to ask \
about their lessons and their friends. In the afternoon, when the shop was quiet, he sat by the window with a cup \
of tea and watched the people walking past. Some were in a hurry, talking on their phones, while others strolled \
slowly and looked at the flowers in the square. On Sundays the shop was closed, and the baker went fishing at the \
lake outside the town. He rarely caught anything, but he said that the silence of the water helped him think \
of new recipes for the week ahead. His favourite recipe was a simple loaf of brown bread, made with honey, oats, \
and a pinch of salt. He often said that good things do not need to be complicated."

# --- manifest --------------------------------------------------------------
{
  printf '{"espeak_ng": "%s",\n "espeak_opts": "%s",\n "sox": "%s",\n "clips": [\n' \
    "$(espeak-ng --version | sed -E 's/.*: ([0-9.]+) .*/\1/')" "${ESPEAK_OPTS[*]}" "$(sox --version | sed -E 's/.*SoX v//')"
  last=$((${#manifest[@]} - 1))
  for i in "${!manifest[@]}"; do
    if ((i < last)); then printf '%s,\n' "${manifest[$i]}"; else printf '%s\n' "${manifest[$i]}"; fi
  done
  printf ' ]}\n'
} > "$here/clips.json"

# --- summary ---------------------------------------------------------------
for f in "$out"/*; do
  printf '%-18s %6.2f s  %5s Hz  %s ch  %s\n' "$(basename "$f")" "$(soxi -D "$f")" \
    "$(soxi -r "$f")" "$(soxi -c "$f")" "$(du -b "$f" | cut -f1) B"
done
du -sh "$out"
