#!/usr/bin/env python3
"""Golden renders of chat templates, made by Hugging Face transformers itself.

What it does
  1. Reads `tokenizer.chat_template` and the bos/eos token strings from the installed
     GGUF models (~/.cache/lingqiao/models/*.gguf) with the `gguf` package's GGUFReader,
     and saves each template byte-for-byte to testdata/templates/<name>.jinja:
       smollm2  SmolLM2-135M-Instruct.Q4_1.gguf
       qwen05   qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
       gemma3   gemma-3-270m-q4_k_m.gguf has NO template (it is the base model); we use the
                official Gemma 3 instruct template text (GEMMA3_IT_TEMPLATE below, as published
                in google/gemma-3-*-it tokenizer_config.json; no PyPI package ships it, so it
                was transcribed from public sources) with the bos/eos strings of that GGUF.
       features a synthetic template (FEATURES_TEMPLATE below) using the jinja2 features and
                Python methods real templates use: trim_blocks/lstrip_blocks whitespace,
                namespace, break/continue, .strip()/.split()/.items()/.get(), tojson options,
                Python printing of lists/None/bools/floats, filters and tests.
       chatml   the fallback template lingqiao uses for models without one (copied from
                crates/engine/src/chat_template.rs `chatml()`; the render is still jinja2's).
  2. Renders a fixed set of conversations with every template using transformers'
     own `render_jinja_template` (transformers.utils.chat_template_utils), i.e. the
     ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols)
     with transformers' tojson / raise_exception / strftime_now, after the same message
     normalisation `apply_chat_template` does (`_normalize_chat_messages`: drop None keys).
     `apply_chat_template` also passes the tokenizer's special tokens as variables; we
     pass bos_token and eos_token, which is what lingqiao's ChatTemplate exposes.
     Renders that raise (e.g. raise_exception in Gemma's template for a tool turn) are
     recorded with their message.
  3. Writes testdata/templates/golden.json.

Run (from the repo root):
    pip install gguf==0.19.0 numpy transformers jinja2
    python3 tools/reference/gen_template_golden.py

transformers does not need torch for this. A broken torch install can break
`import transformers`, so the script hides torch before importing it.
"""

import json
import os
import sys
from pathlib import Path

sys.modules.setdefault("torch", None)  # transformers probes torch; we never need it

import jinja2  # noqa: E402
import transformers  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from transformers.utils.chat_template_utils import (  # noqa: E402
    _normalize_chat_messages,
    render_jinja_template,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "templates"
MODELS = Path(os.path.expanduser("~/.cache/lingqiao/models"))

GEMMA3_IT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

# Must equal crates/engine/src/chat_template.rs `CHATML`.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + (message.content | default('')) + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


FEATURES_TEMPLATE = """{{ bos_token }}
{# whitespace control: this comment line and the block lines below leave no blank lines #}
{% set ns = namespace(n=0, last_user='') %}
{% for m in messages %}
    {% if m.role == 'user' %}{% set ns.n = ns.n + 1 %}{% set ns.last_user = m.content %}{% endif %}
    {% if loop.index > 6 %}{% break %}{% endif %}
    {% if m.role == 'system' %}{% continue %}{% endif %}
[{{ loop.index0 }}] {{ m.role | upper }} {{ m.content is defined }} {{ m.tool_calls is defined }} {{ loop.first }} {{ loop.last }}
    {% if m.content is defined and m.content %}
  strip={{ m.content.strip() | tojson }} words={{ m.content.split() | length }} starts={{ m.content.startswith('W') }} ends={{ m.content.rstrip().endswith('?') }}
  lstrip={{ m.content.lstrip()[:5] }}| title={{ m.content[:12] | title }} replace={{ m.content.replace(' ', '_')[:12] }}
    {% endif %}
    {% for k, v in m.items() %}{{ k }}={{ v if v is string else v | tojson }};{% endfor %}

    {% if m.tool_calls is defined %}
        {% for tc in m.tool_calls %}
  call {{ tc.function.name }} {{ tc.function.arguments | tojson(indent=2) }} {{ tc.get('id') }} {{ tc.get('missing', 'dflt') }}
        {% endfor %}
    {% endif %}
{% endfor %}
users={{ ns.n }} last={{ ns.last_user | trim }}
{% if tools %}
    {% for t in tools %}
- {{ t.function.name }}: {{ t.function.parameters | tojson(sort_keys=true) }}
  keys={{ t.function.parameters.properties.keys() | list }} required={{ t.function.parameters.required }} n={{ t.function.parameters.properties | length }}
  compact={{ t.function | tojson(separators=(',', ':')) }}
    {% endfor %}
{% elif tools is none %}
no tools (None)
{% else %}
empty tools {{ tools }}
{% endif %}
{{ [1, 2.5, none, true, 'x', "it's"] }} {{ {'a': 1, 'b': [false]} }} {{ none }} {{ 1e-05 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 'a' ~ 'b' }}
{{ messages | length }} {{ messages[-1].role }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | map(attribute='role') | join(',') }}
{%- if add_generation_prompt %}
<gen>{{ eos_token }}
{%- endif %}
"""


def gguf_template(path):
    """(chat_template or None, bos string, eos string) from a GGUF file."""
    r = GGUFReader(str(path))
    f = r.fields.get("tokenizer.chat_template")
    tmpl = f.contents() if f is not None else None
    tokens = r.fields["tokenizer.ggml.tokens"]
    bos = tokens.contents(int(r.fields["tokenizer.ggml.bos_token_id"].contents()))
    eos = tokens.contents(int(r.fields["tokenizer.ggml.eos_token_id"].contents()))
    return tmpl, bos, eos


# Two functions in the OpenAI tools format; floats, bools, null, enum, nested object and
# non-ASCII text exercise tojson.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city (天气 🌦).",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. \"Paris\" or '北京'"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the docs.\nReturns <= 10 hits & a score.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                    "threshold": {"type": "number", "default": 0.5, "minimum": 1e-05, "maximum": 1e20},
                    "exact": {"type": "boolean", "default": False, "nullable": True, "example": None},
                    "filters": {"type": "object", "properties": {"lang": {"type": "string"}}},
                },
                "required": ["query"],
            },
        },
    },
]


def msg(role, content=None, tool_calls=None, tool_call_id=None, name=None, reasoning_content=None):
    """A message with keys in the order lingqiao's ChatMessage serialises them (None keys kept
    here, dropped by transformers' normalisation exactly as lingqiao drops them)."""
    return {
        "role": role,
        "content": content,
        "tool_calls": tool_calls,
        "tool_call_id": tool_call_id,
        "name": name,
        "reasoning_content": reasoning_content,
    }


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


SYS = "You are a concise assistant."
CONVERSATIONS = [
    ("system_user_gen", [msg("system", SYS), msg("user", "What is 2+2?")], None, True),
    ("system_user_nogen", [msg("system", SYS), msg("user", "What is 2+2?")], None, False),
    ("user_only_gen", [msg("user", "Hello!")], None, True),
    (
        "multi_turn_system",
        [
            msg("system", SYS),
            msg("user", "Name a prime."),
            msg("assistant", "7"),
            msg("user", "Another one?"),
        ],
        None,
        True,
    ),
    (
        "multi_turn_no_system_nogen",
        [msg("user", "Hi"), msg("assistant", "Hello! How can I help?"), msg("user", "Tell me a joke.")],
        None,
        False,
    ),
    (
        "chinese_emoji",
        [
            msg("user", "你好，世界！🌍🚀 Ça va? ñ"),
            msg("assistant", "我很好，谢谢 😊"),
            msg("user", "再见 👋🏽 — «ok»"),
        ],
        None,
        True,
    ),
    (
        "whitespace_and_markup",
        [
            msg("system", "  Be brief.\n"),
            msg("user", "  \n  line one\n\tline two  \n\n"),
            msg("assistant", "Quotes \" ' and \\backslash\\ <b>bold</b> &amp; {{ not_a_var }} {% raw %}"),
            msg("user", ""),
        ],
        None,
        True,
    ),
    ("tools_user", [msg("user", "Weather in Paris?")], TOOLS, True),
    (
        "tools_system_call_results",
        [
            msg("system", SYS),
            msg("user", "Weather in Paris and Beijing?"),
            msg(
                "assistant",
                None,
                tool_calls=[
                    call("call_1", "get_weather", {"city": "Paris", "unit": "celsius"}),
                    call("call_2", "get_weather", {"city": "北京"}),
                ],
            ),
            msg("tool", '{"temp": 18.5, "sky": "cloudy"}', tool_call_id="call_1", name="get_weather"),
            msg("tool", '{"temp": 25, "sky": "晴"}', tool_call_id="call_2", name="get_weather"),
        ],
        TOOLS,
        True,
    ),
    (
        "tool_call_string_args_with_content",
        [
            msg("user", "Search for rust"),
            msg(
                "assistant",
                "Let me search.",
                tool_calls=[call("c1", "search_docs", '{"query": "rust", "top_k": 3}')],
            ),
            msg("tool", "3 hits", tool_call_id="c1"),
            msg("assistant", "Found 3 hits."),
        ],
        TOOLS,
        False,
    ),
    (
        "reasoning_content",
        [msg("user", "Think first."), msg("assistant", "Done.", reasoning_content="2+2=4"), msg("user", "ok")],
        None,
        True,
    ),
    ("empty_tools_list", [msg("user", "No tools here.")], [], True),
]


def render(template, bos, eos, messages, tools, agp):
    # apply_chat_template: normalise (drop None keys) then render_jinja_template.
    conv = _normalize_chat_messages(messages)
    try:
        out, _ = render_jinja_template(
            conversations=[conv],
            tools=tools,
            chat_template=template,
            add_generation_prompt=agp,
            bos_token=bos,
            eos_token=eos,
        )
        return out[0], None
    except jinja2.exceptions.TemplateError as e:
        # raise_exception() raises the base TemplateError; jinja2's own failures are subclasses.
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else type(e).__name__
        return None, {"kind": kind, "message": str(e)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    templates = {}
    for name, file in [
        ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("qwen05", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ]:
        path = MODELS / file
        if not path.exists():
            sys.exit(f"missing model {path}: fetch it first (lingqiao pull)")
        tmpl, bos, eos = gguf_template(path)
        if name == "gemma3":
            assert tmpl is None, "gemma-3-270m base unexpectedly has a chat template"
            tmpl, source = GEMMA3_IT_TEMPLATE, "official Gemma 3 instruct template (gguf has none)"
        else:
            source = f"{file} tokenizer.chat_template"
        templates[name] = {"file": f"{name}.jinja", "bos_token": bos, "eos_token": eos, "source": source, "text": tmpl}
    templates["features"] = {
        "file": "features.jinja",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "source": "synthetic: jinja2 features real templates use",
        "text": FEATURES_TEMPLATE,
    }
    templates["chatml"] = {
        "file": "chatml.jinja",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "source": "lingqiao fallback (llama.cpp chatml format)",
        "text": CHATML_TEMPLATE,
    }

    cases = []
    for name, t in templates.items():
        with open(OUT / t["file"], "w", encoding="utf-8", newline="") as f:
            f.write(t.pop("text"))
        with open(OUT / t["file"], encoding="utf-8", newline="") as f:
            text = f.read()
        for cid, messages, tools, agp in CONVERSATIONS:
            expected, error = render(text, t["bos_token"], t["eos_token"], messages, tools, agp)
            cases.append(
                {
                    "template": name,
                    "id": cid,
                    "messages": messages,
                    "tools": tools,
                    "add_generation_prompt": agp,
                    "expected": expected,
                    "error": error,
                }
            )
    golden = {
        "generator": "tools/reference/gen_template_golden.py",
        "reference": f"transformers {transformers.__version__} render_jinja_template, jinja2 {jinja2.__version__}",
        "templates": templates,
        "cases": cases,
    }
    with open(OUT / "golden.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum(c["error"] is not None for c in cases)
    print(f"wrote {len(cases)} cases ({n_err} errors) for {len(templates)} templates to {OUT}")


if __name__ == "__main__":
    main()
