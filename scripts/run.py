"""``make run``: the web server, a Celery worker and beat, together, until Ctrl-C.

Everything runs in the embedded mode (DJANGO_ENV=development): SQLite in WAL mode, a file cache
and a filesystem broker under ./var shared by the three processes, so no server is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PYTHON = sys.executable
HOST = os.environ.get("RUN_HOST", "127.0.0.1")
PORT = os.environ.get("RUN_PORT", "8000")

COMMANDS = {
    "web": [PYTHON, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"],
    # Threads: a slow job must not block the heartbeat; SQLite writers queue on the busy timeout.
    "worker": [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "agentplatform",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "--loglevel=INFO",
        "--hostname=embedded@%h",
    ],
    "beat": [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "agentplatform",
        "beat",
        "--loglevel=INFO",
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
    ],
}


# Celery's warning about a worker running as root (a container or VM's usual user on a laptop run):
# 8 lines at every start that matter in production, not here. Shown again with LOG_LEVEL=DEBUG.
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


def process_env(environ: dict[str, str]) -> dict[str, str]:
    """The three processes' environment: the embedded mode, quiet unless LOG_LEVEL=DEBUG."""
    env = dict(environ)
    env.setdefault("DJANGO_ENV", "development")
    if env.get("LOG_LEVEL", "").upper() != "DEBUG":
        env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), ROOT_WARNING_FILTER]))
    return env


def main() -> int:
    env = process_env(os.environ)
    processes: dict[str, subprocess.Popen] = {}
    for name, command in COMMANDS.items():
        processes[name] = subprocess.Popen(command, env=env)
    print(f"\nAgent Ops Platform at http://{HOST}:{PORT}/  (admin: /admin/, API: /api/v1/, docs: /api/docs/)")
    print("web, worker and beat are running; Ctrl-C stops all of them.\n", flush=True)

    def stop(*_args):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping the others.", file=sys.stderr)
                    exit_code = process.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
