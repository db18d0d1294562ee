"""The streaming client under `swarm bench`: HTTP/1.1 on asyncio streams, SSE parsed at byte arrival.

Kept to what a measurement needs, and nothing per token on the hot path: one persistent
connection per worker (the pool is the workers), `perf_counter_ns()` taken when bytes arrive and
before any parsing, and the JSON of each event decoded once to classify it (content, role-only,
usage, keep-alive). The records are plain dataclasses; metrics are computed after the level.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RequestRecord:
    """One request, as the client saw it (monotonic ns)."""

    t_send: int
    content_times: list[int] = field(default_factory=list)
    end: int = 0
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    text: list[str] = field(default_factory=list)  # the pieces, joined only for a recount
    error: str | None = None
    saw_done: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.content_times)


class SSEParser:
    """Incremental SSE: feed bytes as they arrive, get (arrival ns, data) per complete event.

    Handles events split across reads, CRLF or LF line ends, several `data:` lines per event and
    `:` comment keep-alives (ignored). The timestamp of an event is that of the read that
    completed it.
    """

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes, t_ns: int) -> list[tuple[int, str]]:
        cr_pending = self.buffer.endswith(b"\r")
        self.buffer += chunk
        if cr_pending or b"\r" in chunk:  # normalise CRLF; a trailing CR waits for its LF
            held = self.buffer.endswith(b"\r")
            self.buffer = (
                self.buffer[: len(self.buffer) - held].replace(b"\r\n", b"\n") + b"\r" * held
            )
        events = []
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            data = [line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")]
            if data:
                events.append((t_ns, b"\n".join(data).decode("utf-8", errors="replace")))
        return events


def classify(record: RequestRecord, t_ns: int, data: str) -> None:
    """Fold one SSE event into the record: content time, usage from any chunk, [DONE]."""
    if data == "[DONE]":
        record.saw_done = True
        return
    try:
        event = json.loads(data)
    except ValueError:
        record.error = f"malformed event: {data[:80]!r}"
        return
    if isinstance(event, dict) and "error" in event:
        record.error = f"server error event: {str(event['error'])[:120]}"
        return
    usage = event.get("usage") if isinstance(event, dict) else None
    if isinstance(usage, dict):  # vLLM sends it last with no choices, TRT-LLM on every chunk
        record.completion_tokens = usage.get("completion_tokens", record.completion_tokens)
        record.prompt_tokens = usage.get("prompt_tokens", record.prompt_tokens)
    for choice in (event.get("choices") or []) if isinstance(event, dict) else []:
        delta = choice.get("delta") or {}
        text = (
            delta.get("content")
            or delta.get("reasoning_content")
            or delta.get("reasoning")
            or choice.get("text")
        )
        if text or delta.get("tool_calls"):  # a role-only or empty chunk is not a token
            record.content_times.append(t_ns)
            if text:
                record.text.append(text)
            break


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    model: str

    @classmethod
    def from_url(cls, url: str, model: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"endpoint must be http://host:port[/v1/chat/completions], got {url!r}"
            )
        path = parts.path if parts.path not in ("", "/") else "/v1/chat/completions"
        return cls(parts.hostname, parts.port or 80, path, model)


class StaleConnection(ConnectionError):
    """Closed before any response byte: on a reused connection, the server dropped it idle."""


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened after an error or a close."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def stream(self, body: bytes, record: RequestRecord, timeout_s: float) -> None:
        reused = self.writer is not None
        try:
            await self._stream_once(body, record, timeout_s)
        except StaleConnection:
            if not reused:
                raise
            await self.close()  # the server closed an idle keep-alive: one retry, fresh connection
            await self._stream_once(body, record, timeout_s)

    async def _stream_once(self, body: bytes, record: RequestRecord, timeout_s: float) -> None:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = (f"POST {self.target.path} HTTP/1.1\r\nHost: {self.target.host}:{self.target.port}\r\n"
                f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        record.t_send = time.perf_counter_ns()
        self.writer.write(head.encode() + body)
        await asyncio.wait_for(self._read_response(record), timeout_s)

    async def _read_response(self, record: RequestRecord) -> None:
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise StaleConnection("connection closed before a response")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        parser = SSEParser()
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = int(headers["content-length"]) if "content-length" in headers else None
        body_errors = b""
        async for piece in self._body(chunked, length):
            t = time.perf_counter_ns()  # stamped at arrival, before parsing
            if status != 200:
                body_errors += piece
                continue
            for t_event, data in parser.feed(piece, t):
                classify(record, t_event, data)
        record.end = time.perf_counter_ns()
        if status != 200:
            record.error = f"HTTP {status}: {body_errors[:120].decode(errors='replace')}"
        if headers.get("connection", "").lower() == "close" or (not chunked and length is None):
            await self.close()

    async def _body(self, chunked: bool, length: int | None) -> Any:
        assert self.reader is not None
        if chunked:
            while True:
                size_line = await self.reader.readline()
                if not size_line:
                    raise ConnectionError("stream truncated: connection closed mid-body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await self.reader.readline()  # the blank line after the last chunk
                    return
                data = await self.reader.readexactly(size)
                await self.reader.readline()
                yield data
        elif length is not None:
            remaining = length
            while remaining > 0:
                data = await self.reader.read(min(remaining, 65536))
                if not data:
                    return
                remaining -= len(data)
                yield data
        else:  # no length and not chunked: the body runs to EOF
            while data := await self.reader.read(65536):
                yield data


def request_body(
    model: str, prompt: str, output_len: int, server_kind: str, seed: int, completions: bool = False
) -> bytes:
    """The chat request (or, for /v1/completions, the completions request with a `prompt`),
    forcing the output length the way each server kind accepts."""
    body: dict[str, Any] = {"model": model, "stream": True, "temperature": 0, "seed": seed}
    if completions:
        body["prompt"] = prompt
    else:
        body["messages"] = [{"role": "user", "content": prompt}]
    if server_kind != "openai":
        body["stream_options"] = {"include_usage": True}
    if server_kind in ("vllm", "sglang") or server_kind == "trt-llm":
        body.update(max_tokens=output_len, min_tokens=output_len, ignore_eos=True)
    elif server_kind == "transformers":
        body.update(
            max_completion_tokens=output_len,
            generation_config=json.dumps({"min_new_tokens": output_len}),
        )
    else:
        body["max_tokens"] = output_len
    return json.dumps(body).encode()
