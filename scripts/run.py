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


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_ENV", "development")
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
