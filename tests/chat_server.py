"""A real HTTP server on 127.0.0.1 speaking the chat-completions protocol, scripted per description (tests only).

Each request's description is the content of its last message. ``script[text]`` lists what the server does on
that text's 1st, 2nd, ... request (afterwards: ``ok``); ``always[text]`` applies to every request. Actions:

``ok``, ``no_emotional`` (a reply without the emotional key), ``429`` (with ``Retry-After: 0``), ``500``, ``503``,
``401``, ``400``, ``slow`` (answers after ``slow_s`` seconds), ``malformed`` (content that is not JSON),
``not_object`` (a JSON list), ``wrong_type`` (``visual`` holds objects), ``no_keys`` (none of the three keys),
``garbage_body`` (HTTP 200 whose body is not JSON).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def cues_for(text: str) -> dict[str, list[str]]:
    """What the server answers for ``text``."""
    return {"visual": [f"V:{text}"], "auditory": [f"A:{text}"], "emotional": [f"E:{text}"]}


class ChatServer:
    def __init__(self, delay: float = 0.0, slow_s: float = 1.0) -> None:
        self.script: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.requests: list[dict] = []  # every request body, with "_path" and "_auth"
        self.delay = delay  # seconds before every answer
        self.slow_s = slow_s
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append({"_path": self.path, "_auth": self.headers.get("Authorization"), **body})
                    seen = server.count(text)
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                self._counted = True
                try:
                    steps = server.script.get(text, [])
                    action = server.always.get(text) or (steps[seen - 1] if seen <= len(steps) else "ok")
                    time.sleep(server.delay)
                    self._act(action, text)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    self._done()

            def _done(self) -> None:
                # A request leaves the in-flight count before its reply is written: once the client has the reply it
                # may send the next request before this thread gets back here (which counted one too many).
                if getattr(self, "_counted", False):
                    self._counted = False
                    with server.lock:
                        server.inflight -= 1

            def _act(self, action: str, text: str) -> None:
                if action.isdigit():
                    headers = {"Retry-After": "0"} if action == "429" else {}
                    return self._send(int(action), {"error": {"message": f"status {action}"}}, headers)
                if action == "garbage_body":
                    return self._send(200, b"<html>502 Bad Gateway</html>")
                if action == "slow":
                    time.sleep(server.slow_s)
                reply = cues_for(text)
                if action == "no_emotional":
                    del reply["emotional"]
                content = {
                    "malformed": "Sure! Here are the cues: {visual: [smile",
                    "not_object": json.dumps([reply["visual"]]),
                    "wrong_type": json.dumps({"visual": [{"cue": "smile"}], "auditory": [], "emotional": []}),
                    "no_keys": json.dumps({"answer": "happy"}),
                }.get(action, json.dumps(reply))
                self._send(200, {"id": "x", "object": "chat.completion", "model": "m",
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})

            def _send(self, code, obj, headers=None):
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self._done()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def count(self, text: str) -> int:
        """Requests received for ``text``."""
        return sum(r["messages"][-1]["content"] == text for r in self.requests)

    def texts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
