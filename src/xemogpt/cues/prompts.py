"""What the LLM cue extractor sends: the messages around a description and the request settings.

A :class:`PromptSpec` comes from one of three places:

* the built-in prompt (:data:`DEFAULT_SYSTEM`, temperature 0, JSON mode);
* ``--prompt-file`` (:func:`load_prompt_file`), a YAML or JSON file::

      system: |            # required: the system message
        You split an emotion description into atomic cues ...
      example: |           # optional: appended to the system text as is (as the paper's script does)
        EXAMPLE INPUT: ...
        EXAMPLE JSON OUTPUT: {"visual": [...], "auditory": [...], "emotional": [...]}
      sampling:            # optional: request fields; left out, the server's defaults apply
        temperature: 0
        max_tokens: 2048
      json_mode: true      # optional (default true): response_format {"type": "json_object"}
      extra_body: {}       # optional: other request fields a server understands (e.g. vLLM's guided_json)

* ``--prompt-from extract_clue.py`` (:func:`prompt_from_script`): the prompts of a user's copy of the official
  XEmoGPT ``EmoCue-360/extract_clue.py``, read with :mod:`ast` and never executed. The script's
  ``chat.completions.create(...)`` call is followed as written: its ``messages`` list (a system message holding
  ``system_prompt1 + example_prompt`` in the released file, then the description), its ``response_format`` and any
  literal sampling argument (the released file sets none, so none is sent), plus the ``model`` and the client's
  ``base_url`` as defaults for ``--model`` / ``--endpoint``. An ``api_key`` in the file is never read.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xemogpt.errors import XemoGPTError

DEFAULT_SYSTEM = """You split an explainable emotion-recognition description of a person in a video into atomic cues.
Return a JSON object with exactly three keys, each a list of strings:
- "visual": what is seen (face, eyes, brows, mouth, gaze, head and body movements, gestures, clothing, scene);
- "auditory": what is heard (voice, pitch, loudness, speaking rate, pauses, tremor, laughter, sighs) and what is said
  (start a cue about the spoken words or subtitle with "Subtitle text:");
- "emotional": the inferred emotional states and the reasoning that links the cues to them.
Each cue is one short, self-contained sentence stating a single fact, in English. Keep the description's meaning;
do not invent cues. Use an empty list when a modality is not mentioned.

Example input: In the video, the woman's brows draw together and she looks down. In the audio, her voice is quiet
and slow. The subtitle says "I'm fine." Her words and her voice disagree, so she is probably sad.
Example output: {"visual": ["Her brows draw together.", "She looks down."], "auditory": ["Her voice is quiet.",
"She speaks slowly.", "Subtitle text: 'I'm fine.'"], "emotional": ["Her words and her voice disagree.",
"She is probably sad."]}"""

# Request fields a prompt file may set under ``sampling`` (anything else goes under ``extra_body``).
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "presence_penalty",
                 "frequency_penalty", "stop", "top_k", "min_p", "repetition_penalty")
_FILE_KEYS = ("system", "example", "sampling", "json_mode", "extra_body")
# Arguments of chat.completions.create that configure the client, not the request body.
_CLIENT_ARGS = ("timeout", "extra_headers", "extra_query")


class PromptFileError(XemoGPTError, ValueError):
    """A prompt file or script that cannot be used; the message names the file (and line or key)."""


@dataclass(frozen=True)
class PromptSpec:
    """Messages around one description, and the other request fields.

    Attributes:
        messages: ``(role, content)`` pairs in order; ``content`` None is where the description goes.
        params: request fields besides ``model`` and ``messages`` (sampling, ``response_format``, extra fields).
        model: a default model name (``--prompt-from``: the script's ``model=``).
        endpoint: a default base URL (``--prompt-from``: the client's ``base_url=``).
        source: where the spec came from, for messages and the run summary.
        notes: what the source says beyond the request (e.g. the script's parallel requests).
    """

    messages: tuple[tuple[str, str | None], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    endpoint: str | None = None
    source: str = "built-in prompt"
    notes: tuple[str, ...] = ()

    def compose(self, text: str) -> list[dict[str, str]]:
        """The chat messages for one description."""
        return [{"role": role, "content": text if content is None else content} for role, content in self.messages]


def default_prompt() -> PromptSpec:
    return PromptSpec(messages=(("system", DEFAULT_SYSTEM), ("user", None)),
                      params={"temperature": 0, "response_format": {"type": "json_object"}})


def _spec_from_mapping(data: Any, where: str) -> PromptSpec:
    if not isinstance(data, Mapping):
        raise PromptFileError(f"{where}: expected a mapping with keys {', '.join(_FILE_KEYS)}, got "
                              f"{type(data).__name__}")
    unknown = [k for k in data if k not in _FILE_KEYS]
    if unknown:
        raise PromptFileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a prompt file has "
                              f"{', '.join(_FILE_KEYS)}")
    system = data.get("system")
    if not isinstance(system, str) or not system.strip():
        raise PromptFileError(f"{where}: 'system' (the system message text) is required and must be text")
    example = data.get("example")
    if example is not None and not isinstance(example, str):
        raise PromptFileError(f"{where}: 'example' must be text, got {type(example).__name__}")
    sampling = data.get("sampling") or {}
    if not isinstance(sampling, Mapping):
        raise PromptFileError(f"{where}: 'sampling' must be a mapping such as {{temperature: 0}}")
    bad = [k for k in sampling if k not in SAMPLING_KEYS]
    if bad:
        raise PromptFileError(f"{where}: sampling key(s) {', '.join(map(repr, bad))} unknown; use "
                              f"{', '.join(SAMPLING_KEYS)} (other request fields go under 'extra_body')")
    json_mode = data.get("json_mode", True)
    if not isinstance(json_mode, bool):
        raise PromptFileError(f"{where}: 'json_mode' must be true or false")
    extra = data.get("extra_body") or {}
    if not isinstance(extra, Mapping) or {"model", "messages"} & set(extra):
        raise PromptFileError(f"{where}: 'extra_body' must be a mapping of request fields other than model/messages")
    params: dict[str, Any] = {**extra, **sampling}
    if json_mode:
        params["response_format"] = {"type": "json_object"}
    return PromptSpec(messages=(("system", system + (example or "")), ("user", None)), params=params, source=where)


def load_prompt_file(path: str | Path) -> PromptSpec:
    """A :class:`PromptSpec` from a ``.yaml``/``.yml``/``.json`` prompt file (layout in the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise PromptFileError(f"prompt file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    import yaml

    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise PromptFileError(f"prompt file {p} could not be parsed: {err}") from err
    return _spec_from_mapping(data, f"prompt file {p}")


# ---------------------------------------------------------------------------------------------------- --prompt-from
class _Unknown(Exception):
    """An expression whose value cannot be known without running the script."""


def _static(node: ast.AST, env: Mapping[str, Any]) -> Any:
    """The value of a literal expression: constants, names bound to literals, ``+`` and ``.strip()``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        raise _Unknown(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static(node.left, env), _static(node.right, env)
        if type(left) is not type(right) and not {type(left), type(right)} <= {int, float}:
            raise _Unknown("+ of mixed types")
        return left + right
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_static(e, env) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Unknown("** in a dict")
        return {_static(k, env): _static(v, env) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.args and not node.keywords
            and node.func.attr in ("strip", "lstrip", "rstrip")):
        value = _static(node.func.value, env)
        if isinstance(value, str):
            return getattr(value, node.func.attr)()
    raise _Unknown(type(node).__name__)


def _bindings(body: list[ast.stmt], env: dict[str, Any], nodes: dict[str, ast.AST]) -> None:
    """Record ``name = expr`` statements of a block, in order: literal values in ``env``, every right-hand side
    in ``nodes``; a later non-literal assignment hides an earlier literal one."""
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            name = stmt.target.id
            try:
                if not isinstance(stmt.op, ast.Add):
                    raise _Unknown("augmented assignment")
                env[name] = env[name] + _static(stmt.value, env)
            except (_Unknown, KeyError, TypeError):
                env.pop(name, None)
            continue
        else:
            continue
        for t in targets:
            if not isinstance(t, ast.Name):
                continue
            nodes[t.id] = value
            try:
                env[t.id] = _static(value, env)
            except _Unknown:
                env.pop(t.id, None)


def _is_create_call(node: ast.AST) -> bool:
    """``<anything>.chat.completions.create(...)``."""
    f = node.func if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr == "create" and isinstance(f.value, ast.Attribute)
            and f.value.attr == "completions" and isinstance(f.value.value, ast.Attribute)
            and f.value.value.attr == "chat")


def _client_base_url(tree: ast.Module, env: Mapping[str, Any]) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in ("OpenAI", "AsyncOpenAI"):
                for kw in node.keywords:
                    if kw.arg == "base_url":
                        try:
                            value = _static(kw.value, env)
                        except _Unknown:
                            return None
                        return value if isinstance(value, str) else None
    return None


def _parallel_note(tree: ast.Module) -> tuple[str, ...]:
    """The script's default ``max_workers`` (the published file sends 50 requests at a time)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args[len(node.args.args) - len(node.args.defaults):]
            for a, d in zip(args, node.args.defaults):
                if a.arg == "max_workers" and isinstance(d, ast.Constant) and isinstance(d.value, int):
                    return (f"the script sends {d.value} requests at a time (--concurrency {d.value})",)
    return ()


def prompt_from_script(path: str | Path) -> PromptSpec:
    """The request of an ``extract_clue.py``-shaped script, read without running it.

    Raises:
        PromptFileError: the file is missing, is not Python, has no ``chat.completions.create`` call, or builds
            its messages or arguments in a way that cannot be read without running it (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise PromptFileError(f"--prompt-from: {p} does not exist")
    where = f"--prompt-from {p}"
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
    except (SyntaxError, ValueError, UnicodeDecodeError) as err:
        raise PromptFileError(f"{where}: not a readable Python file ({err})") from err

    module_env: dict[str, Any] = {}
    module_nodes: dict[str, ast.AST] = {}
    _bindings(tree.body, module_env, module_nodes)

    owner: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}  # call -> innermost function holding it
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        owner.update({id(c): fn for c in ast.walk(fn) if _is_create_call(c)})  # inner functions come later
    calls = [(c, owner.get(id(c))) for c in ast.walk(tree) if _is_create_call(c)]
    if not calls:
        raise PromptFileError(f"{where}: no client.chat.completions.create(...) call found; is this the "
                              "EmoCue-360/extract_clue.py of W11H08Z/XEmoGPT?")
    if len({ast.dump(c) for c, _ in calls}) > 1:
        lines = ", ".join(str(c.lineno) for c, _ in calls)
        raise PromptFileError(f"{where}: several different chat.completions.create calls (lines {lines}); keep "
                              "the one that extracts cues")
    call, fn = calls[0]

    env, nodes = dict(module_env), dict(module_nodes)
    params: set[str] = set()
    if fn is not None:
        params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
        for name in params:  # a parameter hides a module-level name of the same spelling
            env.pop(name, None)
            nodes.pop(name, None)
        _bindings([s for s in fn.body if s.lineno < call.lineno], env, nodes)

    model: str | None = None
    messages_node: ast.AST | None = None
    request: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise PromptFileError(f"{where}, line {call.lineno}: **kwargs in the create call cannot be read "
                                  "without running the script")
        if kw.arg == "messages":
            messages_node = kw.value
            continue
        if kw.arg in _CLIENT_ARGS:
            continue
        try:
            value = _static(kw.value, env)
        except _Unknown as err:
            raise PromptFileError(f"{where}, line {kw.value.lineno}: argument {kw.arg}= is not a literal ({err}); "
                                  "write its value in the call or in a module-level constant") from err
        if kw.arg == "model":
            model = str(value)
        elif kw.arg == "stream" and value:
            raise PromptFileError(f"{where}, line {kw.value.lineno}: stream=True is not supported")
        elif kw.arg == "extra_body":
            if not isinstance(value, dict):
                raise PromptFileError(f"{where}, line {kw.value.lineno}: extra_body must be a dict")
            request.update(value)
        elif kw.arg != "stream":
            request[kw.arg] = value
    if messages_node is None:
        raise PromptFileError(f"{where}, line {call.lineno}: the create call has no messages= argument")
    seen: set[str] = set()
    while isinstance(messages_node, ast.Name) and messages_node.id in nodes and messages_node.id not in seen:
        seen.add(messages_node.id)
        messages_node = nodes[messages_node.id]
    messages = _messages(messages_node, env, params, where)
    notes = _parallel_note(tree)
    return PromptSpec(messages=messages, params=request, model=model, endpoint=_client_base_url(tree, module_env),
                      source=f"{p.name} (read with --prompt-from)", notes=notes)


def _messages(node: ast.AST, env: Mapping[str, Any], params: set[str], where: str) -> tuple[tuple[str, str | None],
                                                                                            ...]:
    """The message templates of a literal ``[{"role": ..., "content": ...}, ...]``; the content that is the
    function's parameter (the description) becomes None."""
    line = getattr(node, "lineno", "?")
    if not isinstance(node, ast.List):
        raise PromptFileError(f"{where}, line {line}: messages must be a list literal of {{'role', 'content'}} dicts")
    out: list[tuple[str, str | None]] = []
    for item in node.elts:
        if not isinstance(item, ast.Dict) or any(k is None for k in item.keys):
            raise PromptFileError(f"{where}, line {item.lineno}: each message must be a dict literal")
        fields: dict[str, ast.AST] = {}
        for k, v in zip(item.keys, item.values):
            try:
                fields[str(_static(k, env))] = v
            except _Unknown as err:
                raise PromptFileError(f"{where}, line {item.lineno}: a message key is not a literal") from err
        if set(fields) != {"role", "content"}:
            raise PromptFileError(f"{where}, line {item.lineno}: a message needs exactly 'role' and 'content', got "
                                  f"{', '.join(sorted(fields))}")
        try:
            role = _static(fields["role"], env)
        except _Unknown as err:
            raise PromptFileError(f"{where}, line {item.lineno}: the role is not a literal") from err
        content = fields["content"]
        if isinstance(content, ast.Name) and content.id in params:
            out.append((str(role), None))
            continue
        try:
            value = _static(content, env)
        except _Unknown as err:
            raise PromptFileError(f"{where}, line {content.lineno}: message content {ast.unparse(content)!r} is "
                                  f"neither a prompt the file defines as text nor the description parameter "
                                  f"({err})") from err
        if not isinstance(value, str):
            raise PromptFileError(f"{where}, line {content.lineno}: message content must be text")
        out.append((str(role), value))
    if sum(c is None for _, c in out) != 1:
        raise PromptFileError(f"{where}, line {line}: exactly one message must carry the description (the "
                              f"function's parameter); found {sum(c is None for _, c in out)}")
    return tuple(out)
