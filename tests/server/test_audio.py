"""Speech to text through OpenAI's client: `audio.transcriptions.create` against
`lingqiao serve --whisper whisper-tiny-en`, checked against faster-whisper's transcripts of
the same clips (testdata/whisper/reference.json, made by testdata/whisper/make_reference.sh).
"""

import json

import openai
import pytest

from conftest import ROOT, WHISPER

CLIPS = ROOT / "testdata" / "whisper" / "clips"
REFERENCE = json.loads((ROOT / "testdata" / "whisper" / "reference.json").read_text())


def reference_text(clip):
    return REFERENCE["results"][WHISPER][clip]["greedy"]["text"]


@pytest.mark.parametrize("clip", ["en_kitchen.wav", "en_story.ogg", "en_train.wav"])
def test_transcription_equals_the_reference(client, clip):
    with open(CLIPS / clip, "rb") as f:
        r = client.audio.transcriptions.create(model=WHISPER, file=f)
    assert r.text == reference_text(clip)


def test_whisper_1_is_accepted_and_listed(client):
    ids = [m.id for m in client.models.list().data]
    assert WHISPER in ids
    with open(CLIPS / "en_kitchen.wav", "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    assert r.text == reference_text("en_kitchen.wav")


def test_verbose_json_has_timed_segments(client):
    with open(CLIPS / "en_weather.wav", "rb") as f:
        r = client.audio.transcriptions.create(
            model=WHISPER, file=f, response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
    ref = REFERENCE["results"][WHISPER]["en_weather.wav"]["greedy"]
    assert r.text == ref["text"]
    assert r.language == "en"
    assert 4.0 < r.duration < 4.5
    assert [(s.start, s.end) for s in r.segments] == [
        (s["start"], s["end"]) for s in ref["segments"]
    ]


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_formats(client, fmt):
    with open(CLIPS / "en_kitchen.wav", "rb") as f:
        r = client.audio.transcriptions.create(model=WHISPER, file=f, response_format=fmt)
    text = r if isinstance(r, str) else r.text
    assert reference_text("en_kitchen.wav").strip() in text
    if fmt == "srt":
        assert "00:00:00,000 --> " in text
    if fmt == "vtt":
        assert text.startswith("WEBVTT")


def test_bad_audio_is_a_400_that_says_why(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(
            model=WHISPER, file=("notes.wav", b"RIFF\x10\x00\x00\x00WAVEjunk", "audio/wav")
        )
    assert "audio" in str(e.value)
    assert e.value.body["param"] == "file"


def test_an_english_only_model_refuses_translation(client):
    with open(CLIPS / "en_kitchen.wav", "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.translations.create(model=WHISPER, file=f)
    assert "English-only" in str(e.value)


def test_an_unknown_model_is_a_404(client):
    with open(CLIPS / "en_kitchen.wav", "rb") as f, pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="no-such-model", file=f)
