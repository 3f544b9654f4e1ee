"""Atomic file writes: a temp file in the target's folder, fsync'd, then renamed over the target,
so a crash at any moment leaves either the old file or the complete new one."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_file(path):
    """`with atomic_file(path) as f: f.write(...)`: f is a binary file; the rename happens on exit."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
