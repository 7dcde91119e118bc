"""Continuous batching through the real server: 8 concurrent streamed chats on qwen05 all
complete, and each is exactly what the same request gives alone at temperature 0.

(Throughput is measured by bench/serve_concurrency.py, not here: this machine is shared
and timing assertions would be noise.)
"""

import concurrent.futures

import openai
import pytest

from conftest import API_KEY, MODEL, start_server

N = 8
TOPICS = ["the sea", "mountains", "a city at night", "rain", "an old library", "spring",
          "the desert", "a train journey"]


@pytest.fixture(scope="module")
def client8(tmp_path_factory):
    log = tmp_path_factory.mktemp("server8") / "server.log"
    for srv in start_server(log, "--parallel", str(N)):
        yield openai.OpenAI(base_url=f"{srv.url}/v1", api_key=API_KEY, max_retries=0,
                            timeout=600)


def chat(client, topic):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Write a short story about {topic}."}],
        temperature=0,
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
        logprobs=True,
    )
    text, logprobs, usage, finish = [], [], None, None
    for chunk in stream:
        if chunk.choices:
            c = chunk.choices[0]
            if c.delta.content:
                text.append(c.delta.content)
            if c.logprobs and c.logprobs.content:
                logprobs.extend(t.logprob for t in c.logprobs.content)
            if c.finish_reason:
                finish = c.finish_reason
        if chunk.usage:
            usage = chunk.usage
    return "".join(text), logprobs, usage, finish


def test_eight_concurrent_streams_equal_each_alone(client8):
    alone = [chat(client8, t) for t in TOPICS]
    for text, logprobs, usage, finish in alone:
        assert text and finish in ("stop", "length")
        assert usage.completion_tokens == len(logprobs) > 0
    with concurrent.futures.ThreadPoolExecutor(N) as ex:
        together = list(ex.map(lambda t: chat(client8, t), TOPICS))
    for topic, a, b in zip(TOPICS, alone, together):
        assert b[3] == a[3], topic
        assert b[0] == a[0], f"{topic}: concurrent answer differs from alone"
        # Bit-identical arithmetic: the logprobs are equal, not just close.
        assert b[1] == a[1], f"{topic}: logprobs differ"
