"""Jinja2 chat templates parsed with Jinja2's own parser (never rendered): the templates models
ship are clean; walks to Python internals, however they are spelled, are critical; a template
that cannot be read is a finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from mlsec.scan.formats.chattemplate import template_escapes
from tests.unit.scan.formats.helpers import rules, scan_bytes
from tests.unit.scan.formats.test_gguf import LLAMA3_TEMPLATE, _base_kvs, gguf

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
QWEN = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}
    {%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou are provided with function signatures within <tools></tools>:" }}
    {%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
    {{- "\\n</tools>\\n<tool_call>\\n{\\"name\\": <function-name>}\\n</tool_call><|im_end|>\\n" }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not \
(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "assistant" %}
        {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
        {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}{%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""
LLAMA31_TOOLS = """\
{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}{%- set system_message = "" %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- for message in messages %}
    {%- if 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {%- for arg_name, arg_val in tool_call.arguments | items %}
            {{- arg_name + '="' + arg_val + '"' }}{%- if not loop.last %}{{- ", " }}{%- endif %}
        {%- endfor %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}{%- else %}{{- message.content }}{%- endif %}
    {%- endif %}
    {%- if loop.index0 > 1000 %}{% break %}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
GENERATION_TAGS = (
    "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
    "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}"
)
OWN_NAMES = (
    "{%- set sys = messages[0] if messages[0].role == 'system' else none %}"
    "{%- for os in messages %}{{ os.content }}{% endfor %}{{ sys.content if sys }}"
)
BENIGN = {
    "own-names": OWN_NAMES,
    "llama3": LLAMA3_TEMPLATE,
    "chatml": CHATML,
    "mistral": MISTRAL,
    "gemma": GEMMA,
    "qwen": QWEN,
    "llama31-tools": LLAMA31_TOOLS,
    "generation": GENERATION_TAGS,
}

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('touch pwned').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context.cycler }}",
    "{{ lipsum|attr('__globals__') }}",
    "{{ messages['__cla' ~ 'ss__'] }}",
    "{% set a = '_' * 2 ~ 'globals' ~ '_' * 2 %}{{ lipsum|attr(a) }}",
    "{{ messages[('%c%c'|format(95, 95)) ~ 'class' ~ ('%c%c'|format(95, 95))] }}",
    "{{ messages['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "{{ messages|map(attribute='__class__')|list }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(joiner) }}",
    "{{ ['_', '_class_', '_']|join }}",
    "{% include '/etc/passwd' %}",
    "{{ os.popen('id') }}",
    "{{ x.mro() }}",
    "{{ lipsum }}",
    "{{ url_for }}",
    "{% for k in request.environ %}{{ k }}{% endfor %}",
]


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_real_templates_are_clean(name: str) -> None:
    assert template_escapes(BENIGN[name]) == ([], None)


@pytest.mark.parametrize("payload", ESCAPES)
def test_escapes_are_found(payload: str) -> None:
    hits, failure = template_escapes(payload)
    assert failure is None and hits, payload


def _repo(tmp_path: Path, files: dict[str, str]):  # type: ignore[no-untyped-def]
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return scan(open_artifact(d))


def test_repo_with_every_real_template_is_clean(tmp_path: Path) -> None:
    files = {f"{n}.jinja": t for n, t in BENIGN.items()}
    files["tokenizer_config.json"] = json.dumps(
        {"chat_template": [{"name": n, "template": t} for n, t in BENIGN.items()]}
    )
    files["chat_template.json"] = json.dumps({"chat_template": QWEN})
    files["serve.yaml"] = "model: m\nprompt_template: |\n  {{ messages[0]['content'] }}\n"
    assert _repo(tmp_path, files).findings == ()


@pytest.mark.parametrize("payload", ESCAPES[:4])
def test_every_carrier_is_critical(tmp_path: Path, payload: str) -> None:
    evil = QWEN + payload
    report = _repo(
        tmp_path,
        {
            "tokenizer_config.json": json.dumps({"chat_template": evil}),
            "chat_template.j2": evil,
            "prompt.template": evil,
            "config.yaml": "serving:\n  prompt_template: " + json.dumps(evil) + "\n",
            "settings.json": json.dumps({"llm": {"prompt_template": evil}}),
        },
    )
    found = {(f.file, f.rule, f.severity.value) for f in report.findings}
    assert found == {
        (name, "CHAT-TEMPLATE-SSTI", "critical")
        for name in (
            "tokenizer_config.json",
            "chat_template.j2",
            "prompt.template",
            "config.yaml",
            "settings.json",
        )
    }


def test_gguf_template(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, gguf(_base_kvs(QWEN)), "m.gguf").findings == ()
    evil = gguf(_base_kvs(QWEN + ESCAPES[4]))
    (f,) = scan_bytes(tmp_path, evil, "m.gguf").findings
    assert (f.rule, f.severity.value) == ("GGUF-CHAT-TEMPLATE-SSTI", "critical")


def test_large_template_that_sniffs_as_json(tmp_path: Path) -> None:
    evil = "{%- if x %}{% endif %}" + " " * 70_000 + ESCAPES[0]
    assert rules(_repo(tmp_path, {"chat_template.jinja": evil})) == {"CHAT-TEMPLATE-SSTI"}


def test_escaped_chat_template_key(tmp_path: Path) -> None:
    text = json.dumps({"chat_template": ESCAPES[0]}).replace("chat_template", "chat_templ\\u0061te")
    assert rules(_repo(tmp_path, {"tokenizer_config.json": text})) == {"CHAT-TEMPLATE-SSTI"}


def test_unparseable_chat_template_fails_closed(tmp_path: Path) -> None:
    report = _repo(
        tmp_path,
        {
            "tokenizer_config.json": json.dumps({"chat_template": "{% for x in %}{{ x }}"}),
            "chat_template.jinja": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
            # not a chat template: a string that only looks like one is not judged as Jinja
            "other.json": json.dumps({"prompt_template": "{{ unbalanced"}),
        },
    )
    found = {(f.file, f.rule, f.severity.value) for f in report.findings}
    assert found == {
        ("tokenizer_config.json", "CHAT-TEMPLATE-UNPARSEABLE", "high"),
        ("chat_template.jinja", "CHAT-TEMPLATE-UNPARSEABLE", "high"),
    }


def test_jinja_missing_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jinja2", None)
    hits, failure = template_escapes(CHATML)
    assert hits == [] and failure is not None and "jinja2" in failure
