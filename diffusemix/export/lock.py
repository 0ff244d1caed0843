"""One run at a time per output folder: a lock on the folder's lock file (:func:`.folder.lock_path`).

A whole run (``--shard 0/1``) holds the lock alone. The shards of one export
(``--shard I/N``, N > 1) share it, since they are made to work together; a
shard that is about to start a remix (``--reuse-generated`` with new mixing
settings, which forgets every shard's rows) needs it alone for that moment.

The lock is an ``flock`` on the file, so the kernel drops it when its process
ends in any way (``kill -9`` included): a lock left by a killed run is stale
by construction and the next run takes it over. The file holds the holder's
pid, shard and start time, to say who holds it, and so that shards of another
split (``--shard 0/3`` beside a running ``--shard 0/2``) are refused: the first
holder of a free lock rewrites the file, later shards append their line, and
every line in it then belongs to one split. Where ``fcntl`` is missing
(Windows), the file's existence is the lock and a holder whose pid is no
longer running is taken over.

The lock file is opened without following a link and only if it is a regular
file (:func:`.folder.open_state_file`): a planted link is refused, never truncated.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import DiffuseMixError
from . import folder
from .folder import alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class OutputLock:
    """The lock of one output folder, held by this run from :meth:`acquire` to :meth:`release`."""

    def __init__(self, output_dir: Path, shard: tuple[int, int]) -> None:
        self.out = Path(output_dir)
        self.path = folder.lock_path(output_dir)
        self.shard = shard
        self.shared = shard[1] > 1
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise a DiffuseMixError that says who holds it and what to do."""
        folder.checked_state_dir(self.out, create=True)  # a real folder, not a link
        if fcntl is None:  # pragma: no cover - Windows
            self._acquire_by_pid()
            return
        fd = folder.open_state_file(self.path, os.O_RDWR | os.O_CREAT)  # never through a link
        try:
            alone = self._try(fd, fcntl.LOCK_EX)
            if self.shared and alone:  # the first shard of a free folder: its split is the folder's now
                os.ftruncate(fd, 0)
                if not self._try(fd, fcntl.LOCK_SH):
                    raise self._busy()
            elif self.shared and not self._try(fd, fcntl.LOCK_SH):
                raise self._busy()
            elif not self.shared and not alone:
                raise self._busy()
            if self.shared and not alone:
                self._check_split(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._write_holder()

    @staticmethod
    def _try(fd: int, how: int) -> bool:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _check_split(self, fd: int) -> None:
        """Shards of one export share the folder; a shard of another split (another N) is refused."""
        lines = os.pread(fd, 1 << 20, 0).decode("utf-8", "replace").splitlines()
        for line in lines:
            try:
                info = json.loads(line)
                shard = info.get("shard") if isinstance(info, dict) else None
                count = int(shard[1])
            except (ValueError, TypeError, IndexError, AttributeError):
                continue
            if count != self.shard[1]:
                i, n = self.shard
                raise DiffuseMixError(
                    f"output folder {self.path.parent.parent} is being exported in a split of {count} shards "
                    f"(pid {info.get('pid')}, shard {shard[0]}/{count}, started {info.get('started', '?')}); shard "
                    f"{i}/{n} belongs to a split of {n} shards: two splits at once would make the same images twice."
                    f" Run the shards with --shard I/{count} while they run, or wait for them to finish"
                )

    def hold_alone(self) -> None:
        """For a shard about to clear every shard's state (a remix): the lock alone, or a DiffuseMixError."""
        if not self.shared or fcntl is None or self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._busy(remix=True) from None

    def share_again(self) -> None:
        """After :meth:`hold_alone`: let the other shards of this export in again."""
        if self.shared and fcntl is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        elif fcntl is None and self.path.exists():  # pragma: no cover - Windows
            if self._read_holder().get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)

    # -- who holds it -------------------------------------------------------

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "shard": list(self.shard), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        data = (json.dumps(info) + "\n").encode("utf-8")
        if self.shared:  # other shards hold it too: one line each, appended (never through a link)
            fd = folder.open_state_file(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        else:
            os.ftruncate(self._fd, 0)  # type: ignore[arg-type]
            os.pwrite(self._fd, data, 0)  # type: ignore[arg-type]

    def _read_holder(self) -> dict[str, Any]:
        try:
            lines = (folder.read_state_bytes(self.path) or b"").decode("utf-8").splitlines()
            info = json.loads(lines[-1]) if lines else {}
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def _busy(self, remix: bool = False) -> DiffuseMixError:
        info = self._read_holder()
        who = ""
        if info.get("pid"):
            shard = info.get("shard") or [0, 1]
            who = f" (pid {info['pid']}" + (f", shard {shard[0]}/{shard[1]}" if shard[1] > 1 else "")
            who += f", started {info['started']})" if info.get("started") else ")"
        what = (
            "a remix (--reuse-generated with new mixing settings) forgets every shard's rows, so it must run alone"
            if remix
            else "two runs writing one folder at once would mix their files"
        )
        return DiffuseMixError(
            f"output folder {self.path.parent.parent} is in use by another export{who}: {what}. Wait for it to "
            "finish (or stop it), then run this command again; or choose another output folder. "
            "The shards of one export (--shard I/N) may run together"
        )

    def _acquire_by_pid(self) -> None:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._read_holder()
                if alive(int(holder.get("pid") or 0)) and not (self.shared and holder.get("shard", [0, 1])[1] > 1):
                    raise self._busy() from None
                self.path.unlink(missing_ok=True)  # a killed run's lock, or the shards of this export
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"pid": os.getpid(), "shard": list(self.shard)}, f)
            return
        raise self._busy()
