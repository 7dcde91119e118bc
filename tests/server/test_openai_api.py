"""The OpenAI API of `lingqiao serve`, through the real `openai` client and qwen05.

Answers are checked at temperature 0 (greedy), where they are reproducible.
"""

import base64
import json
import math
import re
import struct
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, MODEL, N_CTX, N_EMBD, WHISPER

TIMINGS = {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_second", "cached_n"}


def ask(client, content, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 48)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **kw
    )


def check_usage(usage):
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens >= 0


# ---- models, health, page, metrics -------------------------------------------------------


def test_models_lists_the_model(client):
    ids = [m.id for m in client.models.list()]
    # The session's server also holds a Whisper model (--whisper, for test_audio.py).
    assert ids == [MODEL, WHISPER]
    assert client.models.retrieve(MODEL).id == MODEL


def test_health_and_page_need_no_key(server):
    assert server.json("GET", "/health", key=False) == (200, {"status": "ok"})
    status, headers, _ = server.request("GET", "/", key=False)
    assert status == 200
    assert "text/html" in headers["content-type"]


def test_metrics_parse_as_prometheus_text(server, client):
    ask(client, "Say hi.", max_tokens=4)
    status, headers, text = server.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    # Counters are listed without their _total suffix by the parser.
    assert "lingqiao_requests" in families
    assert "lingqiao_generated_tokens" in families
    http = families["lingqiao_http_requests"]
    statuses = {s.labels["status"] for s in http.samples}
    assert "200" in statuses
    assert families["lingqiao_slots"].samples[0].value == 4
    generated = families["lingqiao_generated_tokens"].samples[0].value
    assert generated >= 4


# ---- chat -----------------------------------------------------------------------------


def test_chat_english(client):
    r = ask(client, "What is the capital of France?")
    c = r.choices[0]
    assert "Paris" in c.message.content
    assert c.message.role == "assistant"
    assert c.finish_reason in ("stop", "length")
    assert r.object == "chat.completion"
    assert r.model == MODEL
    check_usage(r.usage)
    timings = r.model_extra["timings"]
    assert set(timings) >= TIMINGS
    assert timings["predicted_n"] == r.usage.completion_tokens


def test_chat_chinese(client):
    r = ask(client, "中国的首都是哪里？")
    assert "北京" in r.choices[0].message.content


def test_chat_system_message_and_parts(client):
    r = client.chat.completions.create(
        model=MODEL,
        temperature=0,
        max_completion_tokens=32,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
        ],
    )
    assert "Paris" in r.choices[0].message.content


def test_max_tokens_gives_length(client):
    r = ask(client, "Write a long story about a dragon.", max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_stop_sequence(client):
    r = ask(client, "Count from 1 to 10, separated by commas.", stop=["5"], max_tokens=40)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert "5" not in c.message.content
    assert "4" in c.message.content


def test_seeded_sampling_repeats(client):
    kw = dict(temperature=1.0, top_p=0.9, seed=1234, max_tokens=16)
    a = ask(client, "Name a color.", **kw).choices[0].message.content
    b = ask(client, "Name a color.", **kw).choices[0].message.content
    assert a == b


def test_stream_chat_assembles(client):
    plain = ask(client, "What is the capital of France?").choices[0].message.content
    stream = client.chat.completions.create(
        model=MODEL,
        temperature=0,
        max_tokens=48,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    # The usage chunk is last, with no choices, and carries the timings.
    last = chunks[-1]
    assert last.choices == []
    check_usage(last.usage)
    assert set(last.model_extra["timings"]) >= TIMINGS
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_framing_without_usage(server):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    status, headers, raw = server.request("POST", "/v1/chat/completions", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    raw = raw.decode()
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    payloads = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    # Without include_usage the finishing chunk is last and carries the timings.
    assert payloads[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert set(payloads[-1]["timings"]) >= TIMINGS
    # Usage is in every answer: here on the finishing chunk.
    assert payloads[-1]["usage"]["completion_tokens"] > 0
    assert "usage" not in payloads[0]


# ---- completions ------------------------------------------------------------------------


def test_completion(client):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8,
                                  temperature=0)
    assert r.object == "text_completion"
    assert "Paris" in r.choices[0].text
    check_usage(r.usage)


def test_completion_stream(client):
    plain = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=10,
                                      temperature=0).choices[0].text
    chunks = list(client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=10,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain
    assert chunks[-1].usage.completion_tokens == 10


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4,
                                  temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert all(len(t) <= 2 for t in lp.top_logprobs)


# ---- logprobs ---------------------------------------------------------------------------


def test_chat_logprobs(client):
    r = ask(client, "What is the capital of France?", max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
        assert len(entry.top_logprobs) == 3
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob, abs_tol=1e-4)
    assert "".join(e.token for e in content) == r.choices[0].message.content


# ---- tools ------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("choice", ["required", "auto"])
def test_tool_call_round_trip(client, choice):
    messages = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                       tool_choice=choice, temperature=0, max_tokens=128)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", c.message
    call = c.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert "paris" in args["city"].lower()

    messages.append(c.message)
    messages.append({"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"city": "Paris", "temperature_c": 22, "sky": "sunny"})})
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                       temperature=0, max_tokens=96)
    answer = r.choices[0]
    assert answer.finish_reason == "stop"
    assert not answer.message.tool_calls
    assert "22" in answer.message.content or "sunny" in answer.message.content.lower()


def test_parallel_tool_calls(client):
    # Default (as llama-server): one call. With parallel_tool_calls, one or more.
    ask_ = dict(model=MODEL, tools=[WEATHER_TOOL], tool_choice="required", temperature=0,
                max_tokens=160,
                messages=[{"role": "user", "content": "What is the weather in Paris and in Rome?"}])
    one = client.chat.completions.create(**ask_).choices[0]
    assert one.finish_reason == "tool_calls"
    assert len(one.message.tool_calls) == 1
    many = client.chat.completions.create(**ask_, parallel_tool_calls=True).choices[0]
    assert many.finish_reason == "tool_calls"
    assert len(many.message.tool_calls) >= 1
    for call in many.message.tool_calls:
        assert call.function.name == "get_weather"
        assert "city" in json.loads(call.function.arguments)


def test_tool_call_streamed(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=128, stream=True, tools=[WEATHER_TOOL],
        tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather like in Paris today?"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls, chunks
    assert calls[0].index == 0
    assert calls[0].function.name == "get_weather"
    assert "paris" in json.loads(calls[0].function.arguments)["city"].lower()
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(client):
    r = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=32, tools=[WEATHER_TOOL], tool_choice="none",
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls
    assert "Paris" in r.choices[0].message.content


# ---- structured output ------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        # Bounded: greedy qwen05 otherwise lists languages until max_tokens.
        "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}


def test_json_schema_output(client):
    r = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=200,
        messages=[{"role": "user", "content": "Describe a fictional programmer (name, age, "
                   "three programming languages) as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)


def test_json_object_output(client):
    r = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=200,
        messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
        response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


# ---- embeddings -------------------------------------------------------------------------


def test_embeddings(client):
    # The client asks for base64 by default and decodes it.
    r = client.embeddings.create(model=MODEL, input=["The cat sat on the mat.", "你好，世界"])
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert len(d.embedding) == N_EMBD
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-3)
    assert r.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=MODEL, input="The cat sat on the mat.",
                                      encoding_format="float")
    a, b = floats.data[0].embedding, r.data[0].embedding
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6


def test_embeddings_raw_base64(server):
    status, body = server.json("POST", "/v1/embeddings", {"input": "hello", "encoding_format": "base64"})
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == 4 * N_EMBD
    v = struct.unpack(f"<{N_EMBD}f", raw)
    assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)


# ---- errors -----------------------------------------------------------------------------


def check_error_shape(body):
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def test_401_without_the_key(server):
    c = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.models.list()
    assert e.value.status_code == 401
    status, body = server.json("POST", "/v1/chat/completions", {}, key=False)
    assert status == 401
    check_error_shape(body)
    # /metrics needs the key too.
    assert server.request("GET", "/metrics", key=False)[0] == 401


def test_400_names_the_unsupported_field(client):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "hi", logit_bias={"1": 5})
    assert "logit_bias" in e.value.message
    assert e.value.body["param"] == "logit_bias"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "hi", extra_body={"mirostat": 2})
    assert "mirostat" in e.value.message


def test_400_for_bad_values(client):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "hi", temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        ask(client, "hi", n=2)


def test_400_for_malformed_json(server):
    for body in [b"{not json", b"\xff\xfe", b"[1, 2]", b""]:
        status, answer = server.json("POST", "/v1/chat/completions", body,
                                     headers={"Content-Type": "application/json"})
        assert status == 400, body
        check_error_shape(answer)


def test_400_for_a_prompt_over_the_context(client):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "hello " * (N_CTX + 100))
    msg = e.value.message
    assert str(N_CTX) in msg
    n_prompt = int(re.search(r"prompt is (\d+) tokens", msg).group(1))
    assert n_prompt > N_CTX


def test_long_max_tokens_stops_at_the_context(client):
    # prompt + max_tokens beyond the context is allowed; generation stops at the context.
    r = ask(client, "hi", max_tokens=N_CTX * 2)
    assert r.choices[0].finish_reason in ("stop", "length")


def test_404_for_an_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found"


def test_404_for_an_unknown_route(server):
    status, body = server.json("GET", "/v1/nothing")
    assert status == 404
    check_error_shape(body)


def test_413_for_a_huge_body(server):
    status, body = server.json("POST", "/v1/chat/completions",
                               b'{"messages": "' + b"a" * (9 << 20) + b'"}')
    assert status == 413
    check_error_shape(body)


# ---- concurrency ------------------------------------------------------------------------


def test_parallel_requests_match_sequential(client):
    questions = ["What is the capital of France?", "What is 2 + 2?", "Name a primary color.",
                 "中国的首都是哪里？"]
    alone = [ask(client, q, max_tokens=16).choices[0].message.content for q in questions]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: ask(client, q, max_tokens=16).choices[0].message.content,
                                 questions))
    assert together == alone


def test_client_disconnect_frees_the_slot(server):
    import http.client
    import time

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    body = {"messages": [{"role": "user", "content": "Write a very long story about the sea."}],
            "max_tokens": 3000, "temperature": 0, "stream": True}
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    assert r.read(600)  # a few chunks
    conn.close()

    def active():
        _, _, text = server.request("GET", "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        return families["lingqiao_requests_active"].samples[0].value

    deadline = time.monotonic() + 30
    while active() != 0:
        assert time.monotonic() < deadline, "the slot was not freed after the client left"
        time.sleep(0.2)


def test_unsupported_schema_keyword_is_400(client):
    schema = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "List fruits."}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert "uniqueItems" in e.value.message


@pytest.fixture
def busy_server(tmp_path):
    from conftest import start_server

    yield from start_server(tmp_path / "busy.log", "--parallel", "1", "--queue", "1")


def test_503_when_the_queue_is_full(busy_server):
    # One slot and one place in the queue: of four requests at once, at most two are taken.
    c = openai.OpenAI(base_url=f"{busy_server.url}/v1", api_key=API_KEY, max_retries=0,
                      timeout=300)

    def one(_):
        try:
            c.chat.completions.create(model=MODEL, max_tokens=48, temperature=0,
                                      messages=[{"role": "user", "content": "Tell a story."}])
            return 200
        except openai.APIStatusError as e:
            assert e.body["code"] == "server_busy"
            return e.status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(one, range(4)))
    assert statuses.count(503) >= 2, statuses
    assert statuses.count(200) >= 1, statuses
