"""A loopback OpenAI-compatible streaming server with scripted timing, for tests and calibration.

Each response streams `max_tokens` tokens, `tokens_per_chunk` per chunk (default one): the first after `ttft_s`, then one every
`itl_s`, in the SSE style of a real server kind:
  vllm / sglang  role chunk, content chunks, a usage-only chunk with empty choices, [DONE]
  trt-llm        usage on every chunk, then [DONE]
  transformers   usage on the last content chunk, and no [DONE]
  openai         content chunks and [DONE], no usage at all
With ttft_s = itl_s = 0 it is the zero-latency server `swarm bench --calibrate` measures the
client's own ceiling against. It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Script:
    style: str = "vllm"
    ttft_s: float = 0.0
    itl_s: float = 0.0
    cap_tokens: int | None = None  # a server that ignores max_tokens stops here
    status: int = 200
    truncate_after: int | None = None  # close the connection after this many chunks
    keepalive_comments: bool = True
    tokens_per_chunk: int = 1  # a server that batches tokens into one SSE event
    close_idle: bool = False  # drop each connection after its response, without saying so
    slots: int | None = None  # a server with this many decode slots: more requests queue
    hang_every: int | None = None  # the n-th, 2n-th... request never answers (a hung request)
    fail_after: int | None = None  # requests after the first n answer HTTP 500 (a dying server)


def _chunk(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    body = f"data: {payload}\n\n".encode()
    return f"{len(body):x}\r\n".encode() + body + b"\r\n"


def _delta(
    i: int, text: str | None, role: bool = False, finish: str | None = None, chat: bool = True
) -> dict[str, Any]:
    if not chat:  # /v1/completions: text, never a role
        return {"id": "cmpl-fake", "object": "text_completion", "choices": [{"index": 0, "text": text,
                "finish_reason": finish}]}  # fmt: skip
    delta: dict[str, Any] = {"role": "assistant"} if role else {"content": text}
    return {"id": "cmpl-fake", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
            "finish_reason": finish}]}  # fmt: skip


# What each engine writes into /v1/models `owned_by` (tests/fixtures/server_answers.json).
OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "trt-llm": "tensorrt_llm", "transformers": "local",
            "openai": "organization-owner"}  # fmt: skip


class FakeServer:
    def __init__(self, script: Script, port: int = 0, host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.server: asyncio.AbstractServer | None = None
        self.port = port
        self.requests = 0
        self.connections = 0
        self.bodies: list[dict[str, Any]] = []  # the last requests' bodies, newest last
        self._slots = asyncio.Semaphore(script.slots) if script.slots else None
        self._stopping = asyncio.Event()  # releases hung requests so that stop() can finish
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and end every connection's handler, so no task outlives the loop."""
        if self.server is not None:
            self.server.close()
            self._stopping.set()
            for writer in self._writers:  # the handlers then read EOF and return (cancelling
                writer.close()  # them instead makes Python 3.11's stream callback log an error)
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            while True:
                request = await reader.readline()
                if not request:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, path = request.split()[:2]
                if method == b"GET":
                    await self._get(writer, path.decode())
                else:
                    self.requests += 1
                    req = json.loads(body or b"{}")
                    self.bodies = [*self.bodies[-9:], req]
                    chat = not path.rstrip(b"/").endswith(b"/v1/completions")
                    if not await self._stream(writer, req, chat) or self.script.close_idle:
                        return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _get(self, writer: asyncio.StreamWriter, path: str) -> None:
        if path.startswith("/v1/models"):
            card: dict[str, Any] = {
                "id": "fake",
                "object": "model",
                "owned_by": OWNED_BY[self.script.style],
            }
            if self.script.style == "transformers":
                card["status"] = {"value": "loaded"}
            body = json.dumps({"object": "list", "data": [card]})
        elif path == "/version":
            body = json.dumps({"version": f"fake-{self.script.style}-1.0"})
        else:
            body = "ok"
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n{body}".encode()
        )
        await writer.drain()

    async def _stream(
        self, writer: asyncio.StreamWriter, req: dict[str, Any], chat: bool = True
    ) -> bool:
        s = self.script
        number = self.requests
        if s.hang_every and number % s.hang_every == 0:
            await self._stopping.wait()  # never answers; the client's timeout must end it
            return False
        failing = s.fail_after is not None and number > s.fail_after
        if s.status != 200 or failing:
            status = s.status if s.status != 200 else 500
            msg = json.dumps({"error": {"message": "scripted failure"}})
            writer.write(
                f"HTTP/1.1 {status} Error\r\nContent-Length: {len(msg)}\r\n\r\n{msg}".encode()
            )
            await writer.drain()
            return True
        n = int(req.get("max_tokens") or req.get("max_completion_tokens") or 16)
        n = min(n, s.cap_tokens) if s.cap_tokens else n
        prompt_tokens = len(str(req.get("messages" if chat else "prompt", "")).split())
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        if s.keepalive_comments:
            writer.write(b"8\r\n: ping\n\n\r\n")
        if chat:
            writer.write(_chunk(_delta(0, None, role=True)))
        await writer.drain()
        if self._slots is None:
            return await self._tokens(writer, n, prompt_tokens, chat)
        async with self._slots:  # queued until a slot frees: the server's real capacity
            return await self._tokens(writer, n, prompt_tokens, chat)

    async def _tokens(
        self, writer: asyncio.StreamWriter, n: int, prompt_tokens: int, chat: bool
    ) -> bool:
        s = self.script
        k = s.tokens_per_chunk
        for chunk, i in enumerate(range(0, n, k)):
            await asyncio.sleep(s.ttft_s if i == 0 else s.itl_s)
            if s.truncate_after is not None and chunk >= s.truncate_after:
                writer.close()
                return False
            done = min(i + k, n)
            text = "".join(f"t{j} " for j in range(i, done))
            event = _delta(i, text, finish="length" if done == n else None, chat=chat)
            if s.style == "trt-llm" or (s.style == "transformers" and done == n):
                event["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": done,
                    "total_tokens": prompt_tokens + done,
                }
            writer.write(_chunk(event))
            if s.itl_s:
                await writer.drain()
        if s.style in ("vllm", "sglang"):
            writer.write(_chunk({"id": "cmpl-fake", "object": "chat.completion.chunk", "choices": [],
                                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                           "total_tokens": prompt_tokens + n}}))  # fmt: skip
        if s.style != "transformers":
            writer.write(_chunk("[DONE]"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def main(argv: list[str] | None = None) -> None:
    """`python -m tools.fake_openai [--port N] [--style S] [--ttft-s T] [--itl-s T]`: serve until
    killed, printing `listening on PORT` first (calibration and tests read it)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--style", default="vllm", choices=["vllm", "sglang", "trt-llm", "transformers", "openai"]
    )
    parser.add_argument("--ttft-s", type=float, default=0.0)
    parser.add_argument("--itl-s", type=float, default=0.0)
    parser.add_argument("--slots", type=int, help="decode slots; more requests queue")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    a = parser.parse_args(argv)

    async def serve() -> None:
        script = Script(style=a.style, ttft_s=a.ttft_s, itl_s=a.itl_s, slots=a.slots)
        server = FakeServer(script, port=a.port, host=a.host)
        print(f"listening on {await server.start()}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
