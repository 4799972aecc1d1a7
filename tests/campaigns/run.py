"""Campaigns of issue 20, for longer runs than CI's (tests/campaigns/test_*.py run each briefly).

    scripts/campaign fuzz --inputs 1000000          # >= 1,000,000 inputs over every target, count per target
    scripts/campaign broker-restarts --rounds 100
    scripts/campaign kill9 --rounds 100
    scripts/campaign disk-full --full-seconds 30
    scripts/campaign clock-jumps --steps 200
    scripts/campaign dst
    scripts/campaign soak --seconds 3600
    scripts/campaign all                            # each with its default: a few minutes in all

Each prints its figures and a verdict; the exit status is 1 if a campaign found a defect. Every loop is
bounded in count and in time (``--time-budget``). Work files go to a temporary directory (``--workdir``
keeps them). Network: loopback only; mDNS is off in every gateway these campaigns start.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Verdict = list[str]  # what is wrong; empty: the campaign passed


def verdict_broker_restarts(f: dict[str, Any]) -> Verdict:
    wrong = []
    for key in ("lost_confirmed", "stale_delivered", "late_in_flight", "state_regressions"):
        if f[key]:
            wrong.append(f"{key.replace('_', ' ')}: {f[key]}")
    if f["refused_while_down"] != f["rounds"]:
        wrong.append(f"refused while down {f['refused_while_down']} of {f['rounds']}")
    if f["confirmed"] != f["rounds"]:
        wrong.append(f"confirmed after the restart {f['confirmed']} of {f['rounds']}")
    if not f.get("gateway_alive"):
        wrong.append("the gateway did not survive")
    return wrong


# A kill loses the changes since the last commit: up to one interval, plus the time a change takes to reach
# the store and a commit takes to write (a loaded 2-core machine: allow half a second more).
KILL_LOSS_SLACK_S = 0.5


def verdict_kill9(f: dict[str, Any], slack_s: float = KILL_LOSS_SLACK_S) -> Verdict:
    wrong = []
    if f["corrupt"]:
        wrong.append(f"corrupt databases: {f['corrupt']}")
    if f["failed_restarts"] or not f.get("restarts_ok"):
        wrong.append(f"failed restarts: {f['failed_restarts']}")
    if not (f["max_loss_s"] <= f["commit_interval_s"] + slack_s):
        wrong.append(f"max loss {f['max_loss_s']:.3f} s > commit interval {f['commit_interval_s']} s + {slack_s} s")
    if any(isinstance(x, float) and math.isnan(x) for x in f["losses_s"]):
        wrong.append("a stored value that was never sent")
    return wrong


def verdict_disk_full(f: dict[str, Any]) -> Verdict:
    wrong = []
    if not f.get("commit_failures_while_full"):
        wrong.append("no commit failed while full (the limit did not bite)")
    if not f.get("alive_while_full") or f.get("api_while_full") != 200:
        wrong.append(f"while full: alive {f.get('alive_while_full')}, API {f.get('api_while_full')}")
    if f.get("lost_changes") != 0:
        wrong.append(f"changes lost: {f.get('lost_changes')}")
    if f.get("integrity") != "ok":
        wrong.append(f"integrity {f.get('integrity')}")
    if f.get("stored_power") != f.get("last_sent"):
        wrong.append(f"stored power {f.get('stored_power')} is not the last sent {f.get('last_sent')}")
    return wrong


def verdict_clock_jumps(f: dict[str, Any]) -> Verdict:
    wrong = [f"{scene}: {v}" for scene in ("morning", "evening") for v in f[f"{scene}_violations"]]
    for scene in ("morning", "evening"):
        if f[f"{scene}_runs"] < f["days"] - 1:
            wrong.append(f"{scene}: {f[scene + '_runs']} runs in {f['days']} days")
    if f["cold_runs"] != f["cold_episodes"]:
        wrong.append(f"a 30 min hold fired {f['cold_runs']} times for {f['cold_episodes']} episodes "
                     "(the wall clock was set back during it)")
    return wrong


def verdict_dst(f: dict[str, Any]) -> Verdict:
    wrong = []
    for name, result in f.items():
        for scene in ("night_per_day", "morning_per_day"):
            counts = [result[scene].get(day, 0) for day in result["days"]]
            if counts != [1, 1]:
                wrong.append(f"{name}: {scene} on {result['days']}: {counts} (want once a day)")
        if len(result["cold"]) != 1 or result["cold_late_s"][0] != 0.0:
            wrong.append(f"{name}: the hold fired at {result['cold']} ({result['cold_late_s']} s late)")
    return wrong


# Flat: the last fifth's median RSS within this of the first fifth's (after the warm-up); FDs within a few.
SOAK_RSS_GROWTH_MB = 8.0
SOAK_FD_GROWTH = 3


def verdict_soak(f: dict[str, Any]) -> Verdict:
    wrong = list(f["problems"])
    if f.get("exit_code") != 0:
        wrong.append(f"exit code {f.get('exit_code')}")
    if f.get("rss_end_mb") is None:
        return [*wrong, "no samples"]
    if f["rss_end_mb"] - f["rss_start_mb"] > SOAK_RSS_GROWTH_MB:
        wrong.append(f"RSS grew {f['rss_start_mb']} -> {f['rss_end_mb']} MB")
    if f["fds_end"] - f["fds_start"] > SOAK_FD_GROWTH:
        wrong.append(f"FDs grew {f['fds_start']} -> {f['fds_end']}")
    return wrong


def verdict_fuzz(results: list[Any]) -> Verdict:
    return [f"{r.name}: {finding.kind} at {finding.where}: {finding.message[:200]}"
            for r in results for finding in r.findings]


# ---------------------------------------------------------------------------------------------- runners


def run_fuzz_campaign(args: argparse.Namespace, workdir: Path) -> Verdict:
    from tests.campaigns.api_fuzz import ApiUnderTest
    from tests.campaigns.fuzz import all_targets, run_fuzz

    targets = all_targets()
    wanted = [t for t in args.targets.split(",") if t] if args.targets else []
    use_api = not wanted or any("api".startswith(w) or w in "api" for w in wanted)
    if wanted:
        targets = [t for t in targets if any(w in t.name for w in wanted)]
    count = len(targets) + (1 if use_api else 0)
    per_target = math.ceil(args.inputs / max(1, count))
    print(f"fuzz: {args.inputs:,} inputs over {count} targets ({per_target:,} each), time budget "
          f"{args.time_budget:g} s, seed {args.seed}", flush=True)

    def out(line: str) -> None:
        print(line, flush=True)

    if use_api:
        with ApiUnderTest(workdir / "api") as api:
            results = run_fuzz([*targets, api.target()], per_target, args.time_budget, seed=args.seed, out=out)
            health = api.health()
            print(f"fuzz: the gateway after the API's inputs: {health}", flush=True)
            if not health["alive"] or health["healthz"] != 200:
                return [*verdict_fuzz(results), f"the gateway did not survive the API fuzzing: {health}"]
    else:
        results = run_fuzz(targets, per_target, args.time_budget, seed=args.seed, out=out)
    return verdict_fuzz(results)


def _campaigns() -> dict[str, tuple[Callable[[argparse.Namespace, Path], Verdict], str]]:
    from tests.campaigns import clock, faults, soak

    return {
        "fuzz": (run_fuzz_campaign, "hypothesis inputs over codecs, loaders and the API"),
        "broker-restarts": (lambda a, w: verdict_broker_restarts(faults.broker_restarts(
            w / "broker", a.rounds, time_budget_s=a.time_budget)), "restart the broker under commands"),
        "kill9": (lambda a, w: verdict_kill9(faults.kill9_mid_commit(
            w / "kill9", a.rounds, commit_interval_s=a.commit_interval, time_budget_s=a.time_budget)),
            "kill -9 the gateway mid-commit"),
        "disk-full": (lambda a, w: verdict_disk_full(faults.disk_full(w / "disk", full_seconds=a.full_seconds,
                                                                      method=a.disk_method)),
                      "the store's files cannot grow, then can"),
        "clock-jumps": (lambda a, w: verdict_clock_jumps(clock.clock_jumps(a.steps, a.seed)),
                        "wall-clock steps under the scene engine"),
        "dst": (lambda a, w: verdict_dst(clock.dst_changes()), "Europe/Berlin across both DST changes"),
        "soak": (lambda a, w: verdict_soak(soak.soak(w / "soak", a.seconds, speed=a.speed)),
                 "the simulated house for a while: RSS and FDs flat"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("campaign", choices=["all", "fuzz", "broker-restarts", "kill9", "disk-full", "clock-jumps",
                                             "dst", "soak"])
    parser.add_argument("--rounds", type=int, default=10, help="broker-restarts, kill9 (default 10)")
    parser.add_argument("--inputs", type=int, default=30_000,
                        help="fuzz: inputs in total, shared by the targets (default 30,000)")
    parser.add_argument("--targets", default="", help="fuzz: comma-separated parts of target names (default all)")
    parser.add_argument("--seconds", type=float, default=120.0, help="soak: real seconds (default 120)")
    parser.add_argument("--speed", type=float, default=60.0, help="soak: simulated seconds per second (default 60)")
    parser.add_argument("--steps", type=int, default=20, help="clock-jumps: wall-clock steps (default 20)")
    parser.add_argument("--full-seconds", type=float, default=3.0, help="disk-full: how long (default 3)")
    parser.add_argument("--disk-method", choices=["auto", "tmpfs", "rlimit"], default="auto",
                        help="disk-full: a full tmpfs in a private mount namespace, or RLIMIT_FSIZE (default: "
                             "tmpfs where it can be mounted)")
    parser.add_argument("--commit-interval", type=float, default=0.5, help="kill9: commit interval (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=3600.0,
                        help="seconds a campaign may take before it stops early (default 3600)")
    parser.add_argument("--workdir", type=Path, help="keep work files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every broker and gateway a campaign started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    campaigns = _campaigns()
    names = list(campaigns) if args.campaign == "all" else [args.campaign]
    failed: dict[str, Verdict] = {}
    with tempfile.TemporaryDirectory(prefix="hearth-campaign-") as tmp:
        workdir = args.workdir or Path(tmp)
        for name in names:
            started = time.monotonic()
            print(f"== {name}: {campaigns[name][1]}", flush=True)
            wrong = campaigns[name][0](args, workdir)
            took = time.monotonic() - started
            print(f"== {name}: {'FAILED: ' + '; '.join(wrong) if wrong else 'ok'} ({took:.0f} s)", flush=True)
            if wrong:
                failed[name] = wrong
    if len(names) > 1:
        print(json.dumps({"failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
