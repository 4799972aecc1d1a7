"""Each benchmark runs end to end with a tiny workload and prints its one-line result.

No timed assertions: the figures are noise at this size (and on a shared machine at any size); what is
checked is that the machinery works and the last line has the documented shape.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# name: <number> <unit...>, ratio <number> vs baseline
LAST_LINE = re.compile(r"^(?P<name>\w+): (?P<value>[\d,.]+) [^,]+, ratio (?P<ratio>[\d.]+|nan) vs baseline$")

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def run_bench(name: str, *args: str, timeout_s: float = 110) -> str:
    result = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = LAST_LINE.match(last)
    assert match is not None, f"last line {last!r} is not 'name: value unit, ratio R vs baseline'"
    assert match["name"] == name
    return result.stdout


def test_ingest() -> None:
    out = run_bench("ingest", "--messages", "2000", "--rounds", "1", "--paced-seconds", "1", "--rate", "200")
    assert "lost 0 (target: 0)" in out
    # the paced floor of our client layer, beside the baseline's and the gateway's
    assert re.search(r"paced MqttSession \+ orjson .*: \d[\d,]* msg/s received, \d+\.\d % CPU", out), out
    assert re.search(r"our MQTT session alone with the baseline's work: \d+\.\d %", out), out
    # paced with what a house sends, and the gateway once more with the stress stream
    assert re.search(r"paced gateway, house stream: \d[\d,]* msg/s received", out), out
    assert re.search(r"paced gateway, changing stream: \d[\d,]* msg/s received", out), out
    assert re.search(r"the gateway with the changing stream: \d+\.\d %", out), out
    assert re.search(r"paced gateway, house stream, 10 messages at a time: \d[\d,]* msg/s received", out), out
    assert re.search(r"paced baseline, 10 messages at a time: \d[\d,]* msg/s received", out), out
    assert re.search(r"\(baseline the same way: \d+\.\d %\), so a wake-up costs the gateway ~-?\d+ us of CPU", out), out


def test_latency() -> None:
    # --no-gc-freeze: no waiting for the gateway's second freeze, 20 s after start-up.
    out = run_bench("latency", "--probes", "5", "--rate", "200", "--no-gc-freeze")
    assert re.search(r"gateway, loaded: .*\(5 probes, lost 0\)", out), out
    # the gateway's own share of each probe, timed inside it: every answered probe of each series
    assert re.search(r"gateway's own path, loaded .*p99 \d+\.\d+ ms \(5 probes\)", out), out
    # what the probes over the target overlapped (none, or how many of them in a collection, in a commit)
    assert re.search(r"gateway probes under load over the target \(\d+\.\d+ ms\): (none|\d+ of 5 .*during a GC "
                     r"pause \d+, during a store commit \d+)", out), out


def test_memory() -> None:
    out = run_bench("memory", "--load-seconds", "2", "--rate", "200", "--stream", "house")
    assert "steady" in out and "import only" in out and "of the house stream" in out
    # The floor under the import share: the libraries alone, less than what the gateway imports.
    imports = float(re.search(r"import only \(.*?\): (\d+\.\d) MB", out).group(1))  # type: ignore[union-attr]
    libraries = float(re.search(r"libraries alone \(.*?\): (\d+\.\d) MB", out).group(1))  # type: ignore[union-attr]
    assert 20 < libraries < imports, out


def test_startup() -> None:
    out = run_bench("startup", "--rounds", "1")
    assert "1000 stored devices listed" in out


def test_store() -> None:
    out = run_bench("store", "--seconds", "2", "--rate", "200", "--messages", "2000")
    assert "commits/min" in out


def test_commitlag() -> None:
    # Long enough for the store's first commit (every 5 s): the lateness inside commits against outside them.
    out = run_bench("commitlag", "--seconds", "8", "--rate", "200")
    assert re.search(r"^[1-9]\d* commits in 8 s", out, re.MULTILINE), out
    assert re.search(r"during commits: p50 \d+\.\d+ ms.*\(\d+ messages\)", out), out
    assert re.search(r"outside them: p50 \d+\.\d+ ms.*\(\d+ messages\)", out), out


def test_storeage() -> None:
    # The store's commits name no index by device among their WAL pages; the comparison run (schema 3's index
    # put back) does.
    out = run_bench("storeage", "--commits", "10", "--devices", "50", "--changes", "3")
    shipped = re.search(r"^the store, last tenth +: [\d.]+ ms of the worker's CPU a commit, [\d.]+ ms wall, "
                        r"\d+ WAL pages a commit \((.*)\)$", out, re.MULTILINE)
    assert shipped and "history_block" in shipped.group(1) and "history_block_device_t" not in shipped.group(1), out
    assert re.search(r"^with schema 3's index by device, last tenth +: .*history_block_device_t \d+", out,
                     re.MULTILINE), out
    assert re.search(r"^storeage: [\d.]+ ms a commit after 10 commits \([\d.]+ ms with schema 3's index by device: "
                     r"[\d.]+x its first tenth's CPU\), ratio [\d.]+ vs baseline$", out, re.MULTILINE), out


def test_wakeup() -> None:
    out = run_bench("wakeup", "--seconds", "1", "--rounds", "1", "--rate", "200")
    assert re.search(r"baseline: [\d,]+ reads/s, \d+\.\d % CPU, \d+\.\d us per read", out), out
    assert re.search(r"asyncio : [\d,]+ reads/s", out), out
    assert "the loop's own share of a wake-up: asyncio" in out


def test_mqtt_client() -> None:
    run_bench("mqtt_client", "--messages", "2000", "--rounds", "1")
