"""The benchmark harness's toolbox: load generation with wrk, a server under test, recorded figures.

Every figure is recorded with the baseline it is divided by, measured in the same run on the same
machine, so results compare across machines as ratios. Scenarios (``bench/scenarios/*.py``)
receive a ``Bench`` and call ``load``/``record``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    duration_s: float
    connections: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    note: str = ""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _to_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str, *, duration: float, connections: int) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    total = int(re.search(r"(\d+) requests in", output)[1])
    p50 = _to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M)[1])
    p99 = _to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M)[1])
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors_match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = sum(int(n) for n in errors_match.groups()) if errors_match else 0
    return LoadResult(
        requests_per_s=rps,
        p50_ms=p50,
        p99_ms=p99,
        requests=total,
        errors=errors,
        non_2xx=int(non_2xx_match[1]) if non_2xx_match else 0,
        duration_s=duration,
        connections=connections,
    )


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for our ASCII bodies


class Bench:
    """What a scenario gets: the server's address, the scale, the baseline, and tools."""

    def __init__(self, *, base_url: str, env: dict[str, str], scale: float, duration: float, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.env = env
        self.scale = scale
        self.duration = duration
        self.connections = connections
        self.figures: list[Figure] = []
        self.baseline: LoadResult | None = None
        self.baseline_auth: LoadResult | None = None
        self.psycopg_dsn = env["DATABASE_URL"]
        self._agent_headers: dict[str, str] | None = None
        self._worker: subprocess.Popen | None = None
        self._django_ready = False

    # --- load -----------------------------------------------------------------------------------
    def load(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | bytes | None = None,
        lua: str | None = None,
        duration: float | None = None,
        connections: int | None = None,
        threads: int = 2,
    ) -> LoadResult:
        """Drives ``path`` with wrk from a separate process on loopback and parses its figures."""
        duration = duration or self.duration
        connections = connections or self.connections
        headers = dict(headers or {})
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        WORK.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=WORK, delete=False) as script:
            script.write(f"wrk.method = {_lua_string(method)}\n")
            for name, value in headers.items():
                script.write(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}\n")
            if body is not None:
                text = body.decode() if isinstance(body, bytes) else body
                script.write(f"wrk.body = {_lua_string(text)}\n")
            if lua:
                script.write(lua + "\n")
            script_path = script.name
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            script_path,
            self.base_url + path,
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        os.unlink(script_path)
        return parse_wrk(output, duration=duration, connections=connections)

    # --- figures --------------------------------------------------------------------------------
    def record(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: float | None = None,
        baseline_name: str = "",
        target: str = "",
        note: str = "",
        ratio: float | None = None,
    ) -> Figure:
        """Records a figure; its ratio is ``value / baseline`` unless the scenario estimates it itself.

        ``ratio`` is for paired designs, whose estimate is the median of the pairs' own ratios
        rather than the ratio of two medians (``value`` and ``baseline`` are then those medians).
        """
        if ratio is None and baseline:
            ratio = value / baseline
        figure = Figure(
            name=name,
            value=round(value, 4),
            unit=unit,
            baseline=None if baseline is None else round(baseline, 4),
            baseline_name=baseline_name,
            ratio=None if ratio is None else round(ratio, 4),
            target=target,
            note=note,
        )
        self.figures.append(figure)
        shown = f" ratio {figure.ratio}" if figure.ratio is not None else ""
        print(f"  {name}: {figure.value} {unit}{shown} {('(target ' + target + ')') if target else ''}", flush=True)
        return figure

    # --- helpers for scenarios ------------------------------------------------------------------
    def manage(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=check,
        )

    def agent_headers(self) -> dict[str, str]:
        """An Authorization header for a fresh agent API key (created once per run)."""
        if self._agent_headers is None:
            result = self.manage("create_agent", f"bench-agent-{int(time.time())}", check=False)
            if result.returncode != 0:
                raise RuntimeError(f"create_agent failed: {result.stderr.strip()[-300:]}")
            key = result.stdout.strip().splitlines()[-1].strip()
            self._agent_headers = {"Authorization": f"Api-Key {key}"}
        return dict(self._agent_headers)

    def setup_django(self) -> None:
        """Django in this process, against the bench database (for seeding and in-process timing)."""
        if self._django_ready:
            return
        os.environ.update(self.env)
        import django

        django.setup()
        self._django_ready = True

    def ensure_worker(self) -> None:
        """Starts a Celery worker for scenarios whose data flows through tasks."""
        if self._worker is None:
            self._worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "agentplatform",
                    "worker",
                    "--pool=threads",
                    "--concurrency=4",
                    "--loglevel=WARNING",
                ],
                cwd=ROOT,
                env=self.env,
            )
            time.sleep(3)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.terminate()
            self._worker.wait(timeout=15)


def machine_info() -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match[1].strip() if match else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": shutil.which("wrk") or "missing",
    }


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


__all__ = ["Bench", "Figure", "LoadResult", "field", "machine_info", "parse_wrk", "wait_for"]
