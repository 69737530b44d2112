"""Guards for writing a local store: the writer's lock, what ``--force`` may replace, symbolic links inside a
store, and file-system errors as one line. :func:`mdforecast.store.writing` uses them."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; writers are not serialised there
    fcntl = None

from .errors import StoreError

__all__ = ["locked", "check_replaceable", "refuse_links", "os_errors", "signals_deferred"]


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
    """Turn a failed file operation on the store ``path`` into a one-line :class:`StoreError`."""
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise StoreError(f"disk full while writing {path}; free space or write elsewhere with -o") from err
        raise StoreError(f"cannot write {path}: {err.strerror or err}; check the path and its permissions, or "
                         "write elsewhere with -o") from err


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.NAME.lock`` next to the (resolved) ``target`` for the block; the lock file
    is removed at the end. Raises :class:`StoreError` at once when another process holds it."""
    if fcntl is None:
        yield
        return
    real = Path(os.path.realpath(target))
    lock = real.with_name(f".{real.name}.lock")
    with os_errors(str(target)):
        real.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreError(f"another mdforecast process is writing {target} (it holds {lock}); wait for it "
                                 "to finish, then rerun") from None
            try:
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the previous holder removed the file we locked: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: what a local store directory holds; ``--force`` replaces nothing else
_STORE_ENTRIES = {"zarr.json", "topology", "trajectories"}


def check_replaceable(target: Path) -> None:
    """Refuse to replace ``target`` unless it is recognisably a store (or forecast) mdforecast wrote."""
    if target.is_symlink():
        raise StoreError(f"{target} is a symbolic link; --force replaces only a store mdforecast wrote: remove the "
                         "link yourself or write elsewhere with -o")
    if not target.is_dir():
        raise StoreError(f"{target} is a file, not an mdforecast store; --force replaces only stores: move it away "
                         "or write elsewhere with -o")
    try:
        ours = isinstance(json.loads((target / "zarr.json").read_text())["attributes"]["mdforecast"], dict)
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    others = sorted(set(os.listdir(target)) - _STORE_ENTRIES)
    if not ours or others:
        what = f"it holds {', '.join(others[:3])}" if ours else "it is not an mdforecast store"
        raise StoreError(f"{target} is a directory mdforecast did not write ({what}); --force replaces only a "
                         "store of ours: move it away or write elsewhere with -o")


def refuse_links(root: Path) -> None:
    """Refuse a store whose groups are symbolic links: cleaning up a failed write would delete through them."""
    trajectories = root / "trajectories"
    inside = [root / "zarr.json", root / "topology", trajectories]
    if trajectories.is_dir() and not trajectories.is_symlink():
        inside += sorted(trajectories.iterdir())
    links = [p for p in inside if p.is_symlink()]
    if links:
        raise StoreError(f"{links[0]} is a symbolic link inside store {root}; mdforecast does not write into a store "
                         "where a failed write would delete through a link: replace the link by a copy of its "
                         "target, or write a new store with -o")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them, so a store being swapped into place is
    never left half-renamed. Only the main thread receives Python signals; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])
