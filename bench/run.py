"""``make bench``: the platform under gunicorn on PostgreSQL and Redis, driven by wrk on loopback.

1. Prepares a clean PostgreSQL database ``bench`` and Redis databases 13/14 (never the ones tests
   or ``make run`` use; ``BENCH_DATABASE``, ``BENCH_REDIS_CACHE_DB`` and ``BENCH_REDIS_BROKER_DB``
   override them), migrates, collects static files.
2. Starts gunicorn (2 workers, production settings, ``BENCH_ENDPOINTS=1``) on 127.0.0.1:18000.
3. Measures the baselines: the no-op view anonymous and with an agent's API key.
4. Runs every ``bench/scenarios/*.py`` (``run(bench)``), each isolated: a failing scenario is
   reported and the others still run.
5. Writes ``bench/results.json`` and the table in ``bench/README.md``.

Options: ``--scale`` (or BENCH_SCALE; 1 = the sizes the issues name), ``--duration`` seconds per
load run (BENCH_DURATION), ``--only NAME`` to run selected scenarios, ``--merge`` (with ``--only``)
to replace only those scenarios' figures in the previous results (the header lists each rerun).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, WORK, Bench, Figure, machine_info, wait_for

PORT = int(os.environ.get("BENCH_PORT", "18000"))
PG = os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
# The database this run drops and recreates, and its Redis databases (cache, broker): overridable so
# two checkouts can bench side by side without dropping each other's data.
DATABASE = os.environ.get("BENCH_DATABASE", "bench")
REDIS_CACHE_DB = os.environ.get("BENCH_REDIS_CACHE_DB", "14")
REDIS_BROKER_DB = os.environ.get("BENCH_REDIS_BROKER_DB", "13")
README = ROOT / "bench" / "README.md"
RESULTS = ROOT / "bench" / "results.json"
MARK_BEGIN = "<!-- results:begin -->"
MARK_END = "<!-- results:end -->"


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="agentplatform.settings",
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"{PG}/{DATABASE}",
        REDIS_URL=f"{REDIS}/{REDIS_CACHE_DB}",
        CELERY_BROKER_URL=f"{REDIS}/{REDIS_BROKER_DB}",
        BENCH_ENDPOINTS="1",
        TRUSTED_PROXY_COUNT="0",  # wrk connects directly; production start-up requires it explicit
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        LOG_LEVEL="WARNING",
        STATIC_ROOT=str(WORK / "static"),
        MEDIA_ROOT=str(WORK / "media"),
        VAR_DIR=str(WORK / "var"),
        # No recycling of workers mid-run: a worker replaced after max_requests leaves one worker
        # serving for the 2-3 s its successor takes to boot, and charges that boot to whichever
        # load (baseline or measured) happens to be running: noise, not a property of the code.
        GUNICORN_MAX_REQUESTS="0",
    )
    # Rate limits stay active (their cost is part of every figure) but far above what a bench drives.
    groups = subprocess.run(
        [sys.executable, "-c", "from agentplatform import settings; print(' '.join(settings.RATE_LIMITS))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for group in groups:
        env["RATE_LIMIT_" + group.upper().replace(".", "_")] = "100000000/m"
    return env


def prepare(env: dict[str, str]) -> None:
    if not shutil.which("wrk"):
        print("bench: installing wrk from Debian", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'], check=True)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f'CREATE DATABASE "{DATABASE}"'], check=True)
    for db in sorted({REDIS_CACHE_DB, REDIS_BROKER_DB}):
        subprocess.run(["redis-cli", "-u", f"{REDIS}/{db}", "FLUSHDB"], check=True, capture_output=True)
    WORK.mkdir(parents=True, exist_ok=True)
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)


def refuse_busy_port() -> None:
    # Something already answering on the port would be measured instead of this checkout, and is
    # most likely another bench run whose database prepare() would drop: refuse before touching it.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            raise SystemExit(f"bench: 127.0.0.1:{PORT} is already in use; stop that server or set BENCH_PORT")


def start_server(env: dict[str, str]) -> subprocess.Popen:
    refuse_busy_port()
    log = open(WORK / "gunicorn.log", "w")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "agentplatform.wsgi:application",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            "2",
            "--threads",
            "4",
            # One listening socket per worker (SO_REUSEPORT): the kernel spreads wrk's connections
            # evenly. On the shared socket one worker sometimes accepted most of them, and a load
            # then ran at half speed with a core idle, whichever endpoint it measured.
            "--reuse-port",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Three minutes: on a loaded shared host the workers' imports alone have taken over 30 s.
        wait_for(f"http://127.0.0.1:{PORT}/healthz", timeout=180.0)
    except RuntimeError:
        server.terminate()  # else the next run finds the port taken
        raise
    return server


def discover(only: list[str] | None) -> list[tuple[str, object]]:
    scenarios = []
    for path in sorted((ROOT / "bench" / "scenarios").glob("*.py")):
        if path.name.startswith("_") or (only and path.stem not in only):
            continue
        spec = importlib.util.spec_from_file_location(f"bench_scenario_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        scenarios.append((path.stem, module))
    return scenarios


def _merge_into_previous(results: dict, rerun: list[str]) -> dict:
    """``results`` laid over the previous run's: same-named figures replaced in place, others kept."""
    previous = json.loads(RESULTS.read_text())
    fresh = {figure["name"]: figure for figure in results["figures"]}
    figures = [fresh.pop(figure["name"], figure) for figure in previous["figures"]]
    figures += list(fresh.values())
    merged = {**previous, "figures": figures, "failures": {**previous.get("failures", {}), **results["failures"]}}
    merged["reruns"] = [
        *previous.get("reruns", []),
        {"scenarios": rerun, "started_at": results["started_at"], "finished_at": results["finished_at"]},
    ]
    return merged


def write_outputs(bench: Bench, failures: dict[str, str], started: dt.datetime, *, merge: list[str] | None) -> None:
    results = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": bench.scale,
        "duration_s": bench.duration,
        "connections": bench.connections,
        "machine": machine_info(),
        "baseline": bench.baseline.as_dict() if bench.baseline else None,
        "baseline_auth": bench.baseline_auth.as_dict() if bench.baseline_auth else None,
        "figures": [vars(figure) for figure in bench.figures],
        "failures": failures,
    }
    if merge:
        previous_scale = json.loads(RESULTS.read_text())["scale"]
        if previous_scale != bench.scale:
            raise SystemExit(f"bench: --merge needs the previous run's scale ({previous_scale}), not {bench.scale}")
        results = _merge_into_previous(results, merge)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        MARK_BEGIN,
        f"Run {results['finished_at']} · scale {results['scale']} · {results['duration_s']:g} s per load · "
        f"{results['connections']} connections · {results['machine']['cores']} cores "
        f"({results['machine']['cpu']}), Python {results['machine']['python']}",
    ]
    for rerun in results.get("reruns", []):
        lines.append(
            f"; rerun {rerun['finished_at']}: {', '.join(rerun['scenarios'])} (with the no-op baselines), "
            "their figures replaced in place"
        )
    lines += [
        "",
        "| figure | value | baseline | ratio | target | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for figure in results["figures"]:
        figure = Figure(**figure)
        baseline = f"{figure.baseline} ({figure.baseline_name})" if figure.baseline is not None else "—"
        ratio = f"{figure.ratio}" if figure.ratio is not None else "—"
        lines.append(
            f"| {figure.name} | {figure.value} {figure.unit} | {baseline} | {ratio} | "
            f"{figure.target or '—'} | {figure.note} |"
        )
    for name, error in results["failures"].items():
        lines.append(f"| scenario `{name}` failed | — | — | — | — | {error.splitlines()[-1][:150]} |")
    lines.append(MARK_END)
    text = README.read_text() if README.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        before, rest = text.split(MARK_BEGIN, 1)
        after = rest.split(MARK_END, 1)[1]
        text = before + "\n".join(lines) + after
    else:
        text = text + "\n" + "\n".join(lines) + "\n"
    README.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "10")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "16")))
    parser.add_argument("--only", action="append", help="scenario name (file stem); repeatable")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace these scenarios' figures in the previous results instead of the whole table",
    )
    args = parser.parse_args()
    if args.merge and not (args.only and RESULTS.exists()):
        parser.error("--merge needs --only and a previous bench/results.json")

    started = dt.datetime.now(dt.UTC)
    refuse_busy_port()
    env = server_env()
    print(f"bench: preparing database {DATABASE} and Redis dbs {REDIS_BROKER_DB}/{REDIS_CACHE_DB}", flush=True)
    prepare(env)
    server = start_server(env)
    bench = Bench(
        base_url=f"http://127.0.0.1:{PORT}",
        env=env,
        scale=args.scale,
        duration=args.duration,
        connections=args.connections,
    )
    failures: dict[str, str] = {}
    try:
        print("bench: baseline (no-op view, full middleware stack)", flush=True)
        bench.baseline = bench.load("/api/v1/bench/noop")
        bench.record(
            "noop requests/s (anonymous)",
            bench.baseline.requests_per_s,
            "req/s",
            note=f"p50 {bench.baseline.p50_ms:.2f} ms, p99 {bench.baseline.p99_ms:.2f} ms",
        )
        try:
            bench.baseline_auth = bench.load("/api/v1/bench/noop-auth", headers=bench.agent_headers())
            bench.record(
                "noop requests/s (agent API key)",
                bench.baseline_auth.requests_per_s,
                "req/s",
                baseline=bench.baseline.requests_per_s,
                baseline_name="anonymous noop",
                note=f"p50 {bench.baseline_auth.p50_ms:.2f} ms, p99 {bench.baseline_auth.p99_ms:.2f} ms",
            )
        except Exception as exc:  # accounts not installed yet: the authenticated baseline is skipped
            failures["baseline_auth"] = f"{exc.__class__.__name__}: {exc}"
        for name, module in discover(args.only):
            print(f"bench: scenario {name}", flush=True)
            try:
                module.run(bench)
            except Exception:  # one broken scenario must not lose the others' figures
                failures[name] = traceback.format_exc()
                print(failures[name], file=sys.stderr)
    finally:
        bench.close()
        server.terminate()
        server.wait(timeout=20)
    write_outputs(bench, failures, started, merge=args.only if args.merge else None)
    print(f"bench: wrote {RESULTS.relative_to(ROOT)} and the table in {README.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
