"""A cue extractor that asks any OpenAI-compatible chat endpoint (DeepSeek, OpenAI, vLLM, llama.cpp, Ollama...).

The paper extracted cues with ``deepseek-chat`` in JSON mode (W11H08Z/XEmoGPT ``EmoCue-360/extract_clue.py``); this
sends the same kind of request with the standard library only (``urllib``): one ``POST {endpoint}/chat/completions``
per distinct description, with the messages and settings of a :class:`~xemogpt.cues.prompts.PromptSpec` (the
built-in prompt, a ``--prompt-file``, or the prompts read out of the official script with ``--prompt-from``).

* Requests run ``concurrency`` at a time. A request is retried with exponential backoff (and jitter, honouring
  ``Retry-After``) on HTTP 408/409/425/429/5xx, network errors, timeouts, and replies that are not the expected
  JSON object (visual / auditory / emotional lists of sentences).
* A description that still fails is never silently missing: ``on_failure`` ``stop`` (default) finishes the other
  descriptions, then raises :class:`ExtractionFailedError` listing the failed ones by name; ``skip`` returns None
  for them (callers leave them out: EmoCue-360 does not score a None prediction, ``xemogpt extract`` writes no
  entry, ``data import`` skips the sample); ``zero`` returns empty cue lists (a prediction then scores 0).
  HTTP 401/403/404 (key, URL or model wrong) stop the run at once, as does a run whose first requests are all
  refused.
* Every reply is stored as soon as it arrives in a disk cache, one JSON file per ``sha256(endpoint, request
  body)`` (the body holds the model, the messages - prompt and text - and every sampling setting), so a second run
  sends nothing and a run killed half-way resumes where it stopped.
* Like the published extraction, which stores the model's JSON as it comes, a modality the reply leaves out stays
  absent, so EmoCue-360 scores a missing ``emotional`` key as 0 and counts it.

Settings not given as arguments come from the environment: ``XEMOGPT_LLM_URL`` or ``OPENAI_BASE_URL``,
``XEMOGPT_LLM_MODEL``, the API key from ``$OPENAI_API_KEY`` (or the variable ``api_key_env`` names; omitted when
unset, for local servers), ``XEMOGPT_CUE_CACHE`` (cache folder, default ``~/.cache/xemogpt/cues``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xemogpt.cues.base import CueExtractor, Cues, empty_cues, normalize_cues
from xemogpt.cues.prompts import DEFAULT_SYSTEM, PromptSpec, default_prompt, load_prompt_file, prompt_from_script
from xemogpt.errors import XemoGPTError
from xemogpt.registry import register

DEFAULT_PROMPT = DEFAULT_SYSTEM  # the built-in system text (kept under its old name)
ON_FAILURE = ("stop", "skip", "zero")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
_FATAL_STATUS = {401, 403, 404}  # the key, the URL or the model is wrong: every request would fail alike
_REFUSALS_BEFORE_ABORT = 3  # refused descriptions with no success yet that stop the run


class LLMExtractorError(XemoGPTError, RuntimeError):
    """The endpoint could not be used (bad settings, a refused key, or failed descriptions)."""


@dataclass
class Failure:
    """A description with no usable reply after every attempt."""

    names: list[str]
    text: str
    reason: str
    attempts: int

    def line(self) -> str:
        return f"{', '.join(self.names)}: {self.reason} (after {self.attempts} attempt{'s' * (self.attempts > 1)})"


class ExtractionFailedError(LLMExtractorError):
    """``on_failure='stop'``: some descriptions failed; the others are done and cached."""

    def __init__(self, failures: list[Failure], total: int) -> None:
        self.failures = failures
        shown = "; ".join(f.line() for f in failures[:20])
        more = f"; and {len(failures) - 20} more" if len(failures) > 20 else ""
        super().__init__(
            f"cue extraction failed for {len(failures)} of {total} description(s): {shown}{more}. The others are "
            "cached, so running again asks only for these; or pass --on-failure skip (leave them out) or zero "
            "(empty cue lists)")


@dataclass
class ExtractionStats:
    """Counts over every ``extract`` call of one extractor."""

    descriptions: int = 0  # texts asked for, repeats included
    distinct: int = 0  # distinct texts per call, summed
    cached: int = 0  # answered from the disk cache
    requested: int = 0  # sent to the endpoint
    requests: int = 0  # HTTP requests, retries included
    retried: int = 0  # retry attempts
    failures: list[Failure] = field(default_factory=list)
    on_failure: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_replies: int = 0  # replies that reported token usage

    def summary(self) -> str:
        """One line, plus one per failed description."""
        parts = [f"{self.descriptions} description(s), {self.distinct} distinct", f"{self.cached} from the cache",
                 f"{self.requested} requested in {self.requests} request(s) ({self.retried} retried)",
                 f"{len(self.failures)} failed"]
        if self.usage_replies:
            parts.append(f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion")
        lines = ["cue extraction: " + ", ".join(parts)]
        action = {"stop": "stopped the run", "skip": "left out", "zero": "scored as empty cue lists"}[self.on_failure]
        lines += [f"  failed ({action}): {f.line()}" for f in self.failures]
        return "\n".join(lines)


class _Retry(Exception):
    """A transient failure: try again after ``delay`` seconds (None: the backoff schedule)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class _Refused(Exception):
    """The endpoint refused this description; ``fatal``: it will refuse every one."""

    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is ignored: the backoff schedule applies)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def chat_url(base: str) -> str:
    """``.../chat/completions`` for a base URL (``https://api.deepseek.com``, ``http://host:8000/v1``)."""
    base = base.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def resolve_prompt(prompt: str | PromptSpec | None = None, prompt_file: str | None = None,
                   prompt_from: str | None = None) -> PromptSpec:
    """The prompt spec from at most one of: a system text or spec, a prompt file, an extract_clue.py script."""
    given = [n for n, v in (("prompt", prompt), ("prompt_file", prompt_file), ("prompt_from", prompt_from)) if v]
    if len(given) > 1:
        raise LLMExtractorError(f"give only one of {', '.join(given)} (--prompt-file or --prompt-from)")
    if prompt_file:
        return load_prompt_file(prompt_file)
    if prompt_from:
        return prompt_from_script(prompt_from)
    if isinstance(prompt, PromptSpec):
        return prompt
    if isinstance(prompt, str):
        return PromptSpec(messages=(("system", prompt), ("user", None)), params=default_prompt().params,
                          source="prompt argument")
    return default_prompt()


def parse_reply(reply: Any) -> tuple[Cues, dict[str, int]]:
    """(cues, usage) of a chat-completions reply; ValueError when it is not the expected JSON object.

    Expected: ``choices[0].message.content`` holding a JSON object (a ```json fence is tolerated) with at least
    one of visual / auditory / emotional (or an alias, see :func:`normalize_cues`), each a list of sentences.
    """
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"the reply has no choices[0].message.content ({str(reply)[:120]!r})") from err
    obj = _parse_json_content(content)
    if not isinstance(obj, Mapping):
        raise ValueError(f"the reply content is JSON {type(obj).__name__}, not an object")
    cues = normalize_cues(obj, "the reply", keep_missing=True, strict=True)
    if not cues:
        raise ValueError(f"the reply names none of visual/auditory/emotional (keys: {', '.join(map(str, obj))})")
    usage = reply.get("usage") if isinstance(reply, Mapping) else None
    tokens = {}
    if isinstance(usage, Mapping):
        tokens = {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)}
    return cues, tokens


def _parse_json_content(content: Any) -> Any:
    """The model's message content as JSON; tolerates a ```json fence or prose around one object."""
    if isinstance(content, dict):
        return content
    if not isinstance(content, str):
        raise ValueError(f"message content is {type(content).__name__}, not text")
    s = content.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else s[3:]
        s = s.rsplit("```", 1)[0]
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        start, end = s.find("{"), s.rfind("}")
        if start >= 0 and end > start:
            try:
                return json.loads(s[start:end + 1])
            except json.JSONDecodeError:
                pass
        raise ValueError(f"the reply content is not JSON ({s[:80]!r})") from None


@register("cue_extractor", "openai")
class OpenAICueExtractor(CueExtractor):
    """Cue extraction through any OpenAI-compatible chat completions endpoint.

    Args:
        endpoint: base URL (``https://api.deepseek.com``, ``http://localhost:8000/v1``) or the full
            ``.../chat/completions`` URL; default: the ``--prompt-from`` script's ``base_url``, then
            ``$XEMOGPT_LLM_URL``, ``$OPENAI_BASE_URL``, ``https://api.openai.com/v1``.
        model: model name; default: the script's ``model``, then ``$XEMOGPT_LLM_MODEL`` (one is required).
        api_key: bearer token (for library use; the command line reads it from ``api_key_env``).
        api_key_env: environment variable holding the key (default ``OPENAI_API_KEY``; naming a variable that is
            unset is an error, the default unset sends no key).
        prompt: a system text or a :class:`PromptSpec` (default: the built-in prompt at temperature 0).
        prompt_file: a YAML/JSON prompt file (see :mod:`xemogpt.cues.prompts`).
        prompt_from: a copy of the official ``extract_clue.py``, read without running it.
        cache_dir: folder of cached replies; default ``$XEMOGPT_CUE_CACHE`` or ``~/.cache/xemogpt/cues``.
        use_cache: read and write the cache (False: always ask, store nothing).
        concurrency: requests in flight at once.
        retries: attempts after the first one, per description.
        backoff: first retry delay in seconds, doubled at each attempt (with jitter), at most ``max_backoff``.
        max_backoff: longest wait between attempts (also caps ``Retry-After``).
        timeout: seconds per request.
        on_failure: ``stop`` | ``skip`` | ``zero`` for a description with no usable reply (module docstring).
        progress: show a tqdm bar on stderr (None: when stderr is a terminal).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        prompt: str | PromptSpec | None = None,
        prompt_file: str | None = None,
        prompt_from: str | None = None,
        cache_dir: str | None = None,
        use_cache: bool = True,
        concurrency: int = 16,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 60.0,
        on_failure: str = "stop",
        progress: bool | None = None,
    ) -> None:
        self.spec = resolve_prompt(prompt, prompt_file, prompt_from)
        base = endpoint or self.spec.endpoint or _env("XEMOGPT_LLM_URL", "OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.endpoint = chat_url(base)
        self.model = model or self.spec.model or _env("XEMOGPT_LLM_MODEL")
        if not self.model:
            raise LLMExtractorError("no model for the 'openai' cue extractor: pass --model (or cue_extractor.model "
                                    "in the recipe) or set XEMOGPT_LLM_MODEL")
        if api_key is None:
            self.key_env = api_key_env or DEFAULT_KEY_ENV
            api_key = os.environ.get(self.key_env) or None
            if api_key_env and not api_key:
                raise LLMExtractorError(f"the API key variable {api_key_env} is not set (--api-key-env "
                                        f"{api_key_env}): export {api_key_env}=... first")
        else:
            self.key_env = "api_key argument"
        self.api_key = api_key
        if on_failure not in ON_FAILURE:
            raise LLMExtractorError(f"on_failure must be one of {', '.join(ON_FAILURE)}, got {on_failure!r}")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise LLMExtractorError(f"concurrency must be >= 1, retries >= 0 and timeout > 0 (got {concurrency}, "
                                    f"{retries}, {timeout})")
        self.on_failure = on_failure
        self.use_cache = use_cache
        folder = cache_dir if cache_dir is not None else _env("XEMOGPT_CUE_CACHE")
        self.cache_dir = Path(folder or Path.home() / ".cache" / "xemogpt" / "cues").expanduser()
        self.concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.progress = progress
        self.stats = ExtractionStats(on_failure=on_failure)
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._refusals_without_success = 0
        self._successes = 0
        self._fatal: LLMExtractorError | None = None

    @property
    def requests_sent(self) -> int:
        """HTTP requests made by this object (retries included)."""
        return self.stats.requests

    def describe(self) -> str:
        """What is asked of whom, for logs: endpoint, model, prompt source and request settings."""
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.spec.params.items())) or "server defaults"
        return f"{self.model} at {self.endpoint}, prompt: {self.spec.source}, settings: {settings}"

    # ------------------------------------------------------------------------------------------------ cache
    def request_body(self, text: str) -> dict[str, Any]:
        """The JSON body sent for ``text``."""
        return {"model": self.model, "messages": self.spec.compose(text), **self.spec.params}

    def cache_key(self, text: str) -> str:
        """sha256 of the endpoint and the request body (model, prompt, text and every setting)."""
        body = json.dumps(self.request_body(text), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(f"{self.endpoint}\n{body}".encode()).hexdigest()

    def _cache_path(self, text: str) -> Path:
        return self.cache_dir / f"{self.cache_key(text)}.json"

    def _cache_get(self, text: str) -> Cues | None:
        if not self.use_cache:
            return None
        path = self._cache_path(text)
        try:
            return normalize_cues(json.loads(path.read_text(encoding="utf-8"))["cues"], str(path), keep_missing=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: ask again

    def _cache_put(self, text: str, cues: Cues, content: Any, usage: Mapping[str, int]) -> None:
        if not self.use_cache:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_path(text)
        record = {"endpoint": self.endpoint, "model": self.model, "cues": cues, "content": content,
                  "usage": dict(usage), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a killed run or a concurrent one never leaves half a file

    # ------------------------------------------------------------------------------------------------ requests
    def _post(self, text: str) -> Any:
        """One HTTP request; the decoded JSON reply, or _Retry / _Refused."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(self.request_body(text)).encode("utf-8")
        req = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
        with self._lock:
            self.stats.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300].strip()
            if err.code in _RETRY_STATUS or err.code >= 500:
                after = err.headers.get("Retry-After") if err.headers else None
                raise _Retry(f"HTTP {err.code}", _seconds(after)) from err
            hint = {401: f"check ${self.key_env}", 403: f"check ${self.key_env}",
                    404: "check --endpoint and --model"}.get(err.code, "")
            raise _Refused(f"HTTP {err.code} from {self.endpoint}: {detail}" + (f" ({hint})" if hint else ""),
                           fatal=err.code in _FATAL_STATUS) from err
        except TimeoutError as err:
            raise _Retry(f"no reply within {self.timeout:g}s") from err
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError):
                raise _Retry(f"no reply within {self.timeout:g}s") from err
            raise _Retry(f"network error: {reason}") from err
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _Retry(f"the reply is not JSON ({raw[:80]!r})") from err

    def _ask(self, text: str) -> tuple[Cues | None, str, int]:
        """(cues or None, failure reason, attempts) for one description, retrying transient failures."""
        reason = ""
        for attempt in range(self.retries + 1):
            if self._abort.is_set():
                return None, "run stopped", attempt
            try:
                reply = self._post(text)
                cues, usage = parse_reply(reply)
            except _Retry as err:
                reason, delay = str(err), err.delay
            except ValueError as err:  # not the JSON object we asked for
                reason, delay = str(err), None
            except _Refused as err:
                with self._lock:
                    self._refusals_without_success += not self._successes
                    if err.fatal or self._refusals_without_success >= _REFUSALS_BEFORE_ABORT:
                        self._abort.set()
                        self._fatal = LLMExtractorError(
                            str(err) if err.fatal else f"the endpoint refused the first {_REFUSALS_BEFORE_ABORT} "
                            f"descriptions, so it will likely refuse all: {err}")
                return None, str(err), attempt + 1
            else:
                self._cache_put(text, cues, reply["choices"][0]["message"]["content"], usage)
                with self._lock:
                    self._successes += 1
                    if usage:
                        self.stats.usage_replies += 1
                        self.stats.prompt_tokens += usage.get("prompt_tokens", 0)
                        self.stats.completion_tokens += usage.get("completion_tokens", 0)
                return cues, "", attempt + 1
            if attempt < self.retries:
                with self._lock:
                    self.stats.retried += 1
                wait_s = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2) if delay is None else delay
                if self._abort.wait(min(wait_s, self.max_backoff)):
                    return None, "run stopped", attempt + 1
        return None, reason, self.retries + 1

    def extract(self, texts: Sequence[str], names: Sequence[str] | None = None) -> list[Cues | None]:
        """Cues for each text, in order; ``names`` (one per text) label failures. Distinct texts missing from the
        cache are sent once each, ``concurrency`` at a time. Failed texts give None (``skip``), empty lists
        (``zero``), or :class:`ExtractionFailedError` once every other text is done (``stop``)."""
        texts = list(texts)
        names = [str(n) for n in names] if names is not None else [f"#{i}" for i in range(len(texts))]
        if len(names) != len(texts):
            raise ValueError(f"{len(names)} names for {len(texts)} texts")
        by_text: dict[str, list[str]] = {}
        for t, n in zip(texts, names):
            by_text.setdefault(t, []).append(n)
        results: dict[str, Cues | None] = {}
        todo = []
        for t in by_text:
            cached = self._cache_get(t)
            if cached is not None:
                results[t] = cached
            else:
                todo.append(t)
        self.stats.descriptions += len(texts)
        self.stats.distinct += len(by_text)
        self.stats.cached += len(results)
        self.stats.requested += len(todo)
        failures = self._run(todo, results, by_text) if todo else []
        self.stats.failures += failures
        if failures and self.on_failure == "stop":
            raise ExtractionFailedError(failures, len(by_text))
        out: list[Cues | None] = []
        for t in texts:
            cues = results.get(t)
            if cues is None:
                out.append(empty_cues() if self.on_failure == "zero" else None)
            else:
                out.append({m: list(v) for m, v in cues.items()})
        return out

    def _run(self, todo: list[str], results: dict[str, Cues | None], by_text: Mapping[str, list[str]]) -> list[Failure]:
        from tqdm.auto import tqdm

        self._abort.clear()
        self._fatal = None
        failures: list[Failure] = []
        bar = tqdm(total=len(by_text), initial=len(results), desc="cue extraction", unit="desc", file=sys.stderr,
                   disable=(not self.progress) if self.progress is not None else None, dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="cue-llm")
        try:
            pending: dict[Future, str] = {pool.submit(self._ask, t): t for t in todo}
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = pending.pop(fut)
                    cues, reason, attempts = fut.result()
                    results[t] = cues
                    if cues is None:
                        failures.append(Failure(by_text[t], t, reason, attempts))
                    bar.update(1)
                    bar.set_postfix(retried=self.stats.retried, failed=len(failures), refresh=False)
                if self._fatal is not None:
                    raise self._fatal
        except BaseException as e:
            self._abort.set()  # workers stop at their next attempt; finished replies are already cached
            # a fatal reply lets the requests in flight end (no retries now) so none lands after we return;
            # Ctrl+C does not wait on them
            pool.shutdown(wait=not isinstance(e, KeyboardInterrupt), cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown(wait=True)
        order = {t: i for i, t in enumerate(by_text)}
        return sorted(failures, key=lambda f: order[f.text])
