"""Start-up benchmark: each `mailer` command as a fresh process, beside a bare click program.

    python bench/bench_startup.py              # 7 runs of each
    python bench/bench_startup.py --runs 15
    git archive 38726c9 | tar -x -C /tmp/before && python bench/bench_startup.py --before /tmp/before

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


def run_once(argv: list[str], folder: Path, source: Path | None = None) -> tuple[float, int] | None:
    """Wall time in seconds and peak memory in MB of one process (None if it failed, for --before)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    if source:
        env["PYTHONPATH"] = str(source)  # ahead of the installed mailer
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        if source:
            return None
        raise SystemExit(f"{' '.join(argv)} failed:\n{process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", type=Path, metavar="SOURCE",
                        help="also time an earlier mailer's source tree (e.g. from `git archive COMMIT`), in the same run")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = folder / "bare.py"
        bare.write_text(BARE_CLICK)
        for step in (["init"], ["db", "upgrade"]):
            run_once([*MAILER, *step], folder)
        floor: list[tuple[float, int]] = []
        results = []
        for label, args, target in COMMANDS:
            now: list[tuple[float, int]] = []
            before: list[tuple[float, int] | None] = []
            for _ in range(options.runs):  # floor and commands interleaved: all see the same load
                floor.append(run_once([sys.executable, str(bare), "--help"], folder) or (0.0, 0))
                now.append(run_once([*MAILER, *args], folder) or (0.0, 0))
                if options.before:
                    before.append(run_once([*MAILER, *args], folder, options.before))
            results.append((label, now, before, target))
    floor_best = min(elapsed for elapsed, _ in floor)
    print(f"Start-up, {options.runs} runs each, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}. Ratio and target use the best run (the least disturbed by load).")
    print(f"{'command':<34} {'median':>8} {'best':>8} {'x floor':>8} {'peak MB':>8} {'before':>8}  target")
    print(f"{'bare click program --help (floor)':<34} {statistics.median(e for e, _ in floor):7.3f}s {floor_best:7.3f}s "
          f"{1:7.1f}x {max(mb for _, mb in floor):8d}")
    for label, now, before, target in results:
        best = min(elapsed for elapsed, _ in now)
        earlier = [run[0] for run in before if run]
        was = f"{min(earlier):7.3f}s" if earlier else ("     n/a" if options.before else "")
        verdict = "" if target is None else f"< {target} s: {'yes' if best < target else 'NO'}"
        print(f"{label:<34} {statistics.median(e for e, _ in now):7.3f}s {best:7.3f}s {best / floor_best:7.1f}x "
              f"{max(mb for _, mb in now):8d} {was:>8}  {verdict}")


if __name__ == "__main__":
    main()
