"""Files at rest: everything packyard writes is readable by its owner only.

The data directory holds the SQLite database (whose rows include the token signing key and the hashes
of client secrets), the server secret and the TLS private keys. packyard creates every file there 0600
and every directory 0700 by giving the mode explicitly where it creates them, whatever the umask, and
tightens files an older packyard (or a loose umask) left more open when it starts. The process-wide
umask is left alone: packyard is also used as a library (tests, the benchmark), and explicit modes at
the few places that create files hold whoever calls them.

SQLite creates its -wal, -shm and -journal files itself, with the mode of the database file, so the
database file is created 0600 before SQLite first opens it (``private_sqlite_file``).

A data directory that existed before packyard is left as it is, but ``open_dir_warning`` says how to
close it; ``packyard serve`` prints that on start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700

# What packyard keeps in the data directory, beside the SQLite files (see private_sqlite_file).
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
TLS_DIR = "tls"
TLS_FILES = ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem", ".lock")
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", "-writer")


def private_dir(path: Path) -> None:
    """Create ``path``, and whichever of its parents are missing, 0700 whatever the umask.

    A directory that exists keeps its mode (see open_dir_warning); so does one another process makes
    meanwhile."""
    missing: list[Path] = []
    ancestor = path
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        with contextlib.suppress(OSError):
            os.chmod(directory, DIR_MODE)  # mkdir's mode went through the umask
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def tighten(path: Path | str, mode: int = FILE_MODE) -> None:
    """Take away group and others' access to a file or directory packyard owns, if it has any.

    Symbolic links are not followed (what they point to isn't packyard's), and a file that is missing or
    can't be changed (another owner) is left alone: this is a repair on start, not a check."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
            return
        os.chmod(path, mode)


def private_sqlite_file(database: str) -> None:
    """Create the SQLite database file 0600 if it is missing, and tighten it and its companions.

    SQLite gives the -wal, -shm and -journal files the database file's mode, so they follow; the
    -writer lock file is packyard's own (storage/writer_lock.py) and is created 0600 there."""
    with contextlib.suppress(OSError):  # a directory that can't be written: SQLite reports it itself
        os.close(os.open(database, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    tighten(database)
    for suffix in SQLITE_COMPANIONS:
        tighten(database + suffix)


def private_data_dir(data_dir: Path) -> None:
    """Create the data directory 0700 if it is missing, and tighten what packyard keeps in it.

    The SQLite files are tightened where the database is opened (storage/db.py), wherever it lives."""
    private_dir(data_dir)
    tighten(data_dir / SECRET_FILE)
    tls_dir = data_dir / TLS_DIR
    tighten(tls_dir, DIR_MODE)
    for name in TLS_FILES:
        tighten(tls_dir / name)


def open_dir_warning(data_dir: Path) -> str | None:
    """One line saying how to close the data directory when group or others may use it, else None."""
    try:
        mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"warning: the data directory {data_dir} can be used by other users (mode {mode:04o}); "
        f"it holds the database, the server secret and TLS keys: run `chmod 700 {shlex.quote(str(data_dir))}`"
    )
