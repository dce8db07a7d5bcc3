"""Where the server's time goes: py-spy samples of the packyard process while wrk drives one workload.

py-spy (the `bench` extra) pauses the process for each sample (without pausing, stacks come out torn),
with --native so that time in C (the SQLite library, socket writes, msgspec) shows as its own frames, and
writes collapsed stacks; `summarize` turns them into the share of busy samples in each function,
inclusive (the function or anything it called) and self (the function's own code), and in each layer.

    python -m bench.profile STACKS.raw   # summarize a collapsed-stack file written earlier
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import wrk

if TYPE_CHECKING:
    from bench.run import Options, Say
    from bench.servers import Server

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")

# Which layer a sample belongs to, by the file of its innermost frame that names one (first match wins).
LAYERS = (
    ("SQLite engine (C)", ("libsqlite3", "sqlite3.c", "_sqlite3.")),
    ("libpq / psycopg (C)", ("libpq", "psycopg_binary", "psycopg_c")),
    ("kernel calls via libc (socket I/O, epoll)", ("libc.so", "libc-", "libpthread")),
    (
        "packyard http (routing, auth, app)",
        ("packyard/http/app.py", "packyard/http/routing.py", "packyard/http/request.py", "packyard/http/errors.py"),
    ),
    ("packyard wire projection", ("packyard/http/hcp_2021/",)),
    ("packyard auth (token check)", ("packyard/auth/",)),
    ("packyard domain", ("packyard/domain/",)),
    ("packyard storage (repositories, raw SQL)", ("packyard/storage/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("sqlite3 / psycopg (Python)", ("sqlite3/", "psycopg/")),
    ("uvicorn / httptools", ("uvicorn/", "httptools/")),
    ("asyncio / uvloop", ("asyncio/", "uvloop/")),
    ("msgspec", ("msgspec/",)),
)


@dataclass
class Summary:
    samples: int
    inclusive: list[tuple[str, float]]
    self_time: list[tuple[str, float]]  # the innermost Python function, time in C it called included
    native: list[tuple[str, float]]  # the innermost frame, C or Python
    layers: list[tuple[str, float]]

    def render(self, top: int = 25) -> str:
        lines = [f"{self.samples:,} samples of the busy server process"]
        lines.append("\nby layer (the innermost frame that belongs to one):")
        lines += [f"  {share:6.1%}  {name}" for name, share in self.layers]
        lines.append(f"\ninclusive (the function and everything it calls), top {top}:")
        lines += [f"  {share:6.1%}  {name}" for name, share in self.inclusive[:top]]
        lines.append(f"\nself, by innermost Python function (the C it calls included), top {top}:")
        lines += [f"  {share:6.1%}  {name}" for name, share in self.self_time[:top]]
        lines.append(f"\nself, by innermost frame (C functions on their own), top {top}:")
        lines += [f"  {share:6.1%}  {name}" for name, share in self.native[:top]]
        return "\n".join(lines)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3":
                path = path.split("/", 1)[-1]
    return path


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame.strip())
        if m:
            path = _short(m.group("file"))
            out.append((f"{m.group('func')} ({path})", path))
    return out


def _is_python(path: str) -> bool:
    return path.endswith(".py") or path.startswith("<")


def _layer(frames: list[tuple[str, str]]) -> str:
    for _, path in reversed(frames):
        for name, needles in LAYERS:
            if any(n in path for n in needles):
                return name
    return "other (interpreter, standard library)"


def summarize(raw: str) -> Summary:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    native: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        total += count
        for name in {f[0] for f in frames}:
            inclusive[name] += count
        python = [f for f in frames if _is_python(f[1])]
        self_time[(python or frames)[-1][0]] += count
        native[frames[-1][0]] += count
        layers[_layer(frames)] += count
    if total == 0:
        return Summary(0, [], [], [], [])

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / total) for name, n in counter.most_common()]

    return Summary(total, shares(inclusive), shares(self_time), shares(native), shares(layers))


def record(
    server: Server, url: str, token: str, opts: Options, seconds: int, say: Say, name: str = "getchannel"
) -> Summary | None:
    """py-spy the server for `seconds` while wrk drives `url` (a separate run: the table is not affected)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        say("  --profile: py-spy is not installed (pip install -e '.[bench]'); skipping the profile")
        return None
    assert opts.profile_dir is not None
    out = opts.profile_dir / f"{name}.stacks.txt"
    argv = [spy, "record", "--pid", str(server.pid), "--duration", str(seconds), "--rate", "200", "--native"]
    argv += ["--format", "raw", "-o", str(out)]
    load = threading.Thread(target=wrk.run, args=(url, token, opts.load), kwargs={"seconds": seconds + 2})
    load.start()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        load.join()
    if done.returncode != 0 or not out.exists():
        say(f"  --profile: py-spy failed ({done.returncode}): {done.stderr.strip()[:300]}")
        return None
    summary = summarize(out.read_text())
    (opts.profile_dir / f"{name}.profile.txt").write_text(summary.render(40) + "\n")
    say(f"  profile written to {opts.profile_dir}/{name}.profile.txt")
    return summary


def main() -> None:
    for name in sys.argv[1:]:
        print(summarize(Path(name).read_text()).render(40))


if __name__ == "__main__":
    main()
