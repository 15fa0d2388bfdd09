"""Small file helpers: atomic writes, checksums, safe reads of regular files, and a lock.

No reader ever sees a half-written file (:func:`atomic_path`); nothing reads a named pipe,
a device or a symbolic link where a regular file is expected (:func:`read_regular_file`);
and at most one process writes to a directory guarded by :func:`exclusive_lock`.
"""
import contextlib
import hashlib
import os
import stat
import tempfile
import threading

from .constants import PROJECT_DIR
from .errors import CTCChromaError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _umask() -> int:
    """The process's umask. Reading it means setting it, so this happens once, under a lock:
    threads writing files at the same moment must never see the temporary 0."""
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            _UMASK = os.umask(0)
            os.umask(_UMASK)
        return _UMASK


_UMASK = None
_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the target's extension (so ``np.savez`` or ``soundfile``
    pick the right format) and is removed if the block raises. A folder that cannot be
    created or written (for example because a parent is a file) is a
    :class:`CTCChromaError` naming ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=f'.tmp{ext}', dir=directory)
    except OSError as e:
        raise CTCChromaError(f'{path}: cannot write ({_reason(e)})') from None
    os.close(fd)
    # mkstemp creates the file readable by its owner only; give it the usual permissions.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_bytes(data: bytes) -> str:
    """SHA-256 (hex) of a byte string."""
    return hashlib.sha256(data).hexdigest()


def hash_file_into(hasher, path, block_size: int = 1 << 20):
    """Feed a file's content into ``hasher`` in blocks; CTCChromaError if unreadable."""
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(block_size), b''):
                hasher.update(block)
    except OSError as e:
        raise CTCChromaError(f'{path}: cannot read ({_reason(e)})') from None
    return hasher


def sha256_file(path) -> str:
    """SHA-256 (hex) of a file's content; CTCChromaError if unreadable."""
    return hash_file_into(hashlib.sha256(), path).hexdigest()


CACHE_ENV_VAR = 'CTC_CHROMA_CACHE'
"""Environment variable that moves every cache (HCQT, chroma) to another folder."""


def cache_root():
    """Root folder of all caches: ``$CTC_CHROMA_CACHE`` or ``<repo>/cache``.

    Returns:
        path (Path): Cache root (may not exist yet)
    """
    from pathlib import Path
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else PROJECT_DIR / 'cache'


def read_regular_file(path) -> bytes:
    """The bytes of ``path``, which must be a regular file, not a symbolic link.

    Opening a named pipe would block forever and a device (``/dev/zero``) never ends, so
    the file type is checked on the open descriptor, before anything is read.

    Raises:
        CTCChromaError: The path is missing, not a regular file, or unreadable.
    """
    flags = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if os.path.islink(path):
            raise CTCChromaError(f'{path}: is a symbolic link, expected a regular file') from None
        raise CTCChromaError(f'{path}: cannot read ({_reason(e)})') from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CTCChromaError(f'{path}: not a regular file')
        with os.fdopen(fd, 'rb', closefd=False) as f:
            return f.read()
    except OSError as e:
        raise CTCChromaError(f'{path}: cannot read ({_reason(e)})') from None
    finally:
        os.close(fd)


def is_regular_file(path) -> bool:
    """True if ``path`` is a regular file and not a symbolic link (nothing is opened)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def exclusive_lock(path, what: str):
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block.

    The lock is advisory (``flock``) and released by the operating system when the process
    ends, however it ends, so a killed run never leaves a stale lock. The file itself stays.

    Args:
        path (str or Path): Lock file
        what (str): What the lock guards, for the error message

    Raises:
        CTCChromaError: Another process holds the lock.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise CTCChromaError(f'{path}: cannot create lock file ({_reason(e)})') from None
    try:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise CTCChromaError(f'{what}: another process is writing to it (lock {path} is '
                                 f'held); wait for it to finish') from None
        yield
    finally:
        os.close(fd)


def is_locked(path) -> bool:
    """True if another process holds :func:`exclusive_lock` on ``path`` (POSIX only)."""
    if fcntl is None or not os.path.exists(path):  # pragma: no cover
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
