"""Start-up benchmark: each `mailer` command as a fresh process, beside a bare click program.

    python bench/bench_startup.py              # 7 runs of each
    python bench/bench_startup.py --runs 15

A command line tool is started anew for every command, so its import time is what a
user waits for. Each command runs as its own process in a folder set up by `mailer
init && mailer db upgrade`; the floor is a click program with two commands and
nothing else, run by the same interpreter in the same run, interleaved with the
commands so that both see the same load. Prints the median and best wall time, the
ratio of the best to the floor's best (on a shared machine the best run is the one
least disturbed by others), peak memory (maximum resident set size), and the target
where issue 15 sets one: any `--help` under 0.3 s, `issue validate` under 0.6 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = ROOT / "issues" / "2026-11-open-letter.yaml"
MAILER = [str(Path(sys.executable).with_name("mailer"))]  # the console script a user runs
BARE_CLICK = '''
import click

@click.group()
def main():
    """A bare click program."""

@main.command()
def hello():
    """Say hello."""
    click.echo("hello")

main()
'''
HELP_TARGET, VALIDATE_TARGET = 0.3, 0.6
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("mailer --help", ["--help"], HELP_TARGET),
    ("mailer issue --help", ["issue", "--help"], HELP_TARGET),
    ("mailer sends --help", ["sends", "--help"], HELP_TARGET),
    ("mailer schedule --help", ["schedule", "--help"], HELP_TARGET),
    ("mailer subscribers list --help", ["subscribers", "list", "--help"], HELP_TARGET),
    ("mailer serve --help", ["serve", "--help"], HELP_TARGET),
    ("mailer issue validate ISSUE", ["issue", "validate", str(SAMPLE_ISSUE)], VALIDATE_TARGET),
    ("mailer config show", ["config", "show"], None),
    ("mailer subscribers list", ["subscribers", "list"], None),
    ("mailer sends list", ["sends", "list"], None),
    ("mailer issue build ISSUE", ["issue", "build", str(SAMPLE_ISSUE)], None),
]


def run_once(argv: list[str], folder: Path) -> tuple[float, int]:
    """Wall time in seconds and peak memory in MB of one process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = folder / "bare.py"
        bare.write_text(BARE_CLICK)
        for step in (["init"], ["db", "upgrade"]):
            run_once([*MAILER, *step], folder)
        floor_times: list[float] = []
        floor_memory = 0
        results = []
        for label, args, target in COMMANDS:
            times, memory = [], 0
            for _ in range(runs):  # floor and command interleaved: both see the same load
                floor, floor_mb = run_once([sys.executable, str(bare), "--help"], folder)
                floor_times.append(floor)
                floor_memory = max(floor_memory, floor_mb)
                elapsed, mb = run_once([*MAILER, *args], folder)
                times.append(elapsed)
                memory = max(memory, mb)
            results.append((label, times, memory, target))
    floor_best = min(floor_times)
    print(f"Start-up, {runs} runs each, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}. Ratio and target use the best run (the least disturbed by load).")
    print(f"{'command':<34} {'median':>8} {'best':>8} {'x floor':>8} {'peak MB':>8}  target")
    print(f"{'bare click program --help (floor)':<34} {statistics.median(floor_times):7.3f}s {floor_best:7.3f}s "
          f"{1:7.1f}x {floor_memory:8d}")
    for label, times, memory, target in results:
        best = min(times)
        verdict = "" if target is None else f"< {target} s: {'yes' if best < target else 'NO'}"
        print(f"{label:<34} {statistics.median(times):7.3f}s {best:7.3f}s {best / floor_best:7.1f}x {memory:8d}  {verdict}")

if __name__ == "__main__":
    main()
