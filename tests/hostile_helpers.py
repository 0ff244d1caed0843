"""What the hostile-input tests (issue 19) share: a reader run in a child process with a timeout and
a memory cap (a reader that hangs on a FIFO or reads /dev/zero forever must fail the test, not take
the machine with it), bytes of a file to compare, a PNG header bomb made in a few bytes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Address space given to a child reader: enough for numpy, PIL and yaml, far below the machine's memory.
CHILD_MEMORY = 3 << 30


@dataclass
class Child:
    returncode: int | None  # None: killed at the timeout
    out: str
    err: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def in_child(code: str, *, timeout: float = 60.0) -> Child:
    """Run ``code`` in a fresh Python (this checkout first on the path) under a memory cap and a timeout."""
    prelude = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({CHILD_MEMORY}, {CHILD_MEMORY}))\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    try:
        p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired as e:
        return Child(None, str(e.stdout or ""), str(e.stderr or ""))
    return Child(p.returncode, p.stdout, p.stderr)


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` 1-bit pixels, in a few hundred bytes (a valid file:
    its rows are zeros, compressed)."""
    row = b"\0" + b"\0" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(min(height, 64))) + comp.flush()  # truncated, but the header is

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def bmp_bomb(path: Path, width: int, height: int) -> Path:
    """A 24-bit BMP whose header claims ``width`` x ``height`` pixels, with no pixel data (54 bytes)."""
    header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(header + info)
    return path


def file_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()
