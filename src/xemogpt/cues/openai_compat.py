"""A cue extractor that asks any OpenAI-compatible chat endpoint (OpenAI, DeepSeek, vLLM, llama.cpp, Ollama...).

The paper extracted cues with a hosted chat LLM in JSON mode; this does the same with the standard library only
(``urllib``): one ``POST {base}/chat/completions`` per distinct description with ``response_format:
{"type": "json_object"}``, retries with exponential backoff on network errors, 408/409/429/5xx and unparsable
replies, and a disk cache of one JSON file per ``sha256(model, prompt, text)`` so that re-running an evaluation
costs nothing. Like the published extraction (which stores the model's JSON as it is), a modality the reply
leaves out stays absent from the result, so EmoCue-360 scores a missing ``emotional`` key as 0 and counts it.

Settings come from the arguments (a recipe) or the environment: ``XEMOGPT_LLM_URL`` or ``OPENAI_BASE_URL`` (the
base URL, e.g. ``http://localhost:8000/v1``), ``XEMOGPT_LLM_MODEL``, ``OPENAI_API_KEY`` (optional for local
servers), ``XEMOGPT_CUE_CACHE`` (cache folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from xemogpt.cues.base import CueExtractor, Cues, normalize_cues
from xemogpt.errors import XemoGPTError
from xemogpt.registry import register

DEFAULT_PROMPT = """You split an explainable emotion-recognition description of a person in a video into atomic cues.
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

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class LLMExtractorError(XemoGPTError, RuntimeError):
    """The endpoint could not be used (bad settings, a refused request, or retries exhausted)."""


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


@register("cue_extractor", "openai")
class OpenAICueExtractor(CueExtractor):
    """Cue extraction through an OpenAI-compatible ``/chat/completions`` endpoint, with JSON output.

    Args:
        url: base URL (``.../v1``) or the full ``.../chat/completions`` URL; default ``$XEMOGPT_LLM_URL``, then
            ``$OPENAI_BASE_URL``, then ``https://api.openai.com/v1``.
        model: model name; default ``$XEMOGPT_LLM_MODEL`` (required one way or the other).
        api_key: bearer token; default ``$OPENAI_API_KEY`` (omitted when empty, for local servers).
        prompt: the system prompt (part of the cache key).
        cache_dir: folder of cached replies; default ``$XEMOGPT_CUE_CACHE`` or ``~/.cache/xemogpt/cues``.
        use_cache: read and write the cache (False: always ask).
        max_retries: attempts after the first one.
        backoff: first retry delay in seconds (doubled each time, with jitter).
        timeout: seconds per request.
        temperature: sampling temperature (0 for repeatable cues).
        max_workers: concurrent requests within one ``extract`` call.
        json_mode: send ``response_format: {"type": "json_object"}`` (turn off for servers that reject it).
    """

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        cache_dir: str | None = None,
        use_cache: bool = True,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        temperature: float = 0.0,
        max_workers: int = 4,
        json_mode: bool = True,
    ) -> None:
        base = url or _env("XEMOGPT_LLM_URL", "OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.endpoint = base.rstrip("/") if base.rstrip("/").endswith("/chat/completions") \
            else base.rstrip("/") + "/chat/completions"
        self.model = model or _env("XEMOGPT_LLM_MODEL")
        if not self.model:
            raise LLMExtractorError("no model for the 'openai' cue extractor: set XEMOGPT_LLM_MODEL or give "
                                    "cue_extractor.model in the recipe / --model on the command line")
        self.api_key = api_key if api_key is not None else _env("OPENAI_API_KEY")
        self.prompt = prompt
        self.use_cache = use_cache
        folder = cache_dir if cache_dir is not None else _env("XEMOGPT_CUE_CACHE")
        self.cache_dir = Path(folder or Path.home() / ".cache" / "xemogpt" / "cues").expanduser()
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.temperature = temperature
        self.max_workers = max(1, max_workers)
        self.json_mode = json_mode
        self.requests_sent = 0  # HTTP requests made by this object (retries included)

    # ------------------------------------------------------------------------------------------------ cache
    def cache_key(self, text: str) -> str:
        """sha256 of model, prompt and text (NUL-separated so that no two triples collide)."""
        return hashlib.sha256("\0".join((self.model or "", self.prompt, text)).encode("utf-8")).hexdigest()

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

    def _cache_put(self, text: str, cues: Cues) -> None:
        if not self.use_cache:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_path(text)
        tmp = path.with_suffix(f".{os.getpid()}.{random.randrange(1 << 30)}.tmp")
        tmp.write_text(json.dumps({"model": self.model, "cues": cues}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: concurrent runs never read half a file

    # ------------------------------------------------------------------------------------------------ requests
    def _payload(self, text: str) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": self.prompt}, {"role": "user", "content": text}],
            "temperature": self.temperature,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return json.dumps(body).encode("utf-8")

    def _post(self, text: str) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.endpoint, data=self._payload(text), headers=headers, method="POST")
        self.requests_sent += 1
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _ask(self, text: str) -> Cues:
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random() / 2))
            try:
                reply = self._post(text)
                content = reply["choices"][0]["message"]["content"]
                return normalize_cues(_parse_json_content(content), f"reply of {self.endpoint}", keep_missing=True)
            except urllib.error.HTTPError as err:
                if err.code not in _RETRY_STATUS:
                    detail = err.read().decode("utf-8", "replace")[:300]
                    raise LLMExtractorError(
                        f"{self.endpoint} refused the request with HTTP {err.code}: {detail} (check the URL, model "
                        "name and OPENAI_API_KEY)") from err
                last = err
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = err
            except (ValueError, KeyError, IndexError, TypeError) as err:  # not the JSON we asked for
                last = err
        raise LLMExtractorError(f"{self.endpoint}: no usable reply after {self.max_retries + 1} attempts "
                                f"(last error: {last!r})")

    def extract(self, texts: Sequence[str]) -> list[Cues]:
        """Cues for each text; distinct uncached texts are sent once each, concurrently."""
        texts = list(texts)
        results: dict[str, Cues] = {}
        todo = []
        for t in dict.fromkeys(texts):
            cached = self._cache_get(t)
            if cached is not None:
                results[t] = cached
            else:
                todo.append(t)

        def work(t: str) -> tuple[str, Cues]:
            cues = self._ask(t)
            self._cache_put(t, cues)
            return t, cues

        if todo:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(todo))) as pool:
                results.update(pool.map(work, todo))
        return [{m: list(v) for m, v in results[t].items()} for t in texts]


def _parse_json_content(content: Any) -> Any:
    """The model's message content as JSON; tolerates a ```json fence around it."""
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
            return json.loads(s[start:end + 1])
        raise
