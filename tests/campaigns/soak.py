"""The soak campaign: ``hearth demo`` (the gateway, its embedded broker, the simulated house and its
resident, both shipped profiles, in accelerated time) as a process of its own for a while, with a client
reading the API as the web UI does. Its RSS (/proc/<pid>/status VmRSS) and open file descriptors
(/proc/<pid>/fd) are sampled all along: after a warm-up, the first and the last fifth of the samples are
compared (medians), so a leak shows as a growth and one unlucky sample does not.

    python -m tests.campaigns.run soak --seconds 3600 --speed 60
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.devkit.mosquitto import free_port

Out = Callable[[str], None]
_READY_TIMEOUT_S = 60.0
_SAMPLE_EVERY_S = 1.0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def soak(workdir: Path, seconds: float, *, speed: float = 120.0, warmup_s: float | None = None,
         out: Out = print) -> dict[str, Any]:
    """Run the demo house ``seconds`` (real) at ``speed``, sampling RSS and FDs; returns the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    hearth = Path(sys.executable).parent / "hearth"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # hearth demo never announces over mDNS (its config turns mDNS off); the API listens on loopback.
    proc = subprocess.Popen([str(hearth), "demo", "--speed", str(speed), "--port", str(port), "--data-dir",
                             str(workdir / "demo-data"), "--bad-morning-day", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    token: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(lines) < 20_000:
                lines.append(line)
            match = re.search(r"login token: (\S+)", line)
            if match:
                token.append(match.group(1))
            if "simulated time starts" in line:
                ready.set()

    threading.Thread(target=read, name="campaign-soak-reader", daemon=True).start()
    figures: dict[str, Any] = {"seconds": seconds, "speed": speed, "problems": []}
    samples: list[tuple[float, int, int, int]] = []  # (t, rss kB, fds, threads)
    requests = errors = 0
    try:
        if not ready.wait(_READY_TIMEOUT_S) or not token:
            raise RuntimeError("hearth demo did not start:\n" + "".join(lines[-50:]))
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        warmup = seconds * 0.2 if warmup_s is None else warmup_s
        paths = ["/api/devices", "/api/house", "/api/alerts", "/healthz", "/api/scenes"]
        while time.monotonic() - started < seconds:
            if proc.poll() is not None:
                figures["problems"].append(f"hearth demo exited with {proc.returncode}")
                break
            elapsed = time.monotonic() - started
            if elapsed >= warmup:
                samples.append((elapsed, _rss_kb(proc.pid), _fds(proc.pid), _threads(proc.pid)))
            # What a web UI on the house does meanwhile: reads, each on a connection of its own.
            request = urllib.request.Request(base + paths[requests % len(paths)],
                                             headers={"Authorization": f"Bearer {token[0]}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except (urllib.error.URLError, OSError) as err:
                errors += 1
                status = getattr(err, "code", None)
                if status is None or status >= 500:
                    figures["problems"].append(f"{request.full_url}: {err}")
            requests += 1
            time.sleep(_SAMPLE_EVERY_S)
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(
                urllib.request.Request(base + "/healthz"), timeout=10) as response:
            health = json.loads(response.read())
            figures["store"] = {k: health.get("store", {}).get(k) for k in ("commits", "commit_failures",
                                                                            "history_dropped")}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    figures["exit_code"] = proc.returncode
    figures["requests"] = requests
    figures["request_errors"] = errors
    figures["samples"] = len(samples)
    if samples:
        fifth = max(1, len(samples) // 5)
        first, last = samples[:fifth], samples[-fifth:]
        figures["rss_start_mb"] = round(statistics.median(s[1] for s in first) / 1024, 1)
        figures["rss_end_mb"] = round(statistics.median(s[1] for s in last) / 1024, 1)
        figures["rss_max_mb"] = round(max(s[1] for s in samples) / 1024, 1)
        figures["fds_start"] = int(statistics.median(s[2] for s in first))
        figures["fds_end"] = int(statistics.median(s[2] for s in last))
        figures["fds_max"] = max(s[2] for s in samples)
        figures["threads_start"] = int(statistics.median(s[3] for s in first))
        figures["threads_end"] = int(statistics.median(s[3] for s in last))
    simulated_h = seconds * speed / 3600
    out(f"soak: {seconds:g} s of the demo house at {speed:g}x ({simulated_h:.1f} simulated hours), "
        f"{requests} API reads ({errors} failed): RSS {figures.get('rss_start_mb')} -> {figures.get('rss_end_mb')} MB "
        f"(max {figures.get('rss_max_mb')}), FDs {figures.get('fds_start')} -> {figures.get('fds_end')} "
        f"(max {figures.get('fds_max')}), threads {figures.get('threads_start')} -> {figures.get('threads_end')}, "
        f"store {figures.get('store')}, exit {figures['exit_code']}")
    for problem in figures["problems"][:20]:
        out(f"  {problem}")
    return figures
