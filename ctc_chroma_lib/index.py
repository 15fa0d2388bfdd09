"""A retrieval index: chroma features of every recording in a folder, built incrementally.

Notebook: 06_Retrieval.ipynb

Layout of an index directory::

    manifest.json                 feature kind, parameters, and one entry per recording
    features/<key>-<hash>.npz     chroma (12 x T float32) and times (T,) of one recording
    pack/<digest>.chroma.npy      all recordings' chroma, frames x 12 float16, for queries
    pack/<digest>.coarse.npy      the same averaged over 4 frames, frames x 12 float32
    .lock                         held by the one run that may write to the index

The per-recording ``.npz`` files are what an ``index`` run writes and checkpoints; at its
end it *packs* them into two arrays (``pack/``) that queries memory-map instead of opening
thousands of files: the chroma as float16 (half the bytes, rankings unchanged, see
``bench/bench_scale.py``) and the coarse features of the two-stage search
(:mod:`ctc_chroma_lib.search`). Recordings are stored in the manifest's order, one after the
other; offsets follow from the frame counts. The pack is named by a digest of the entries
it holds, so a pack never overwrites the one the manifest points to; a pack that does not
match the entries (an interrupted run) is ignored by queries, which then read the ``.npz``
files (the same results, slower), and rebuilt by the next run.

What an index guarantees:

- **Atomic writes.** Every ``.npz`` is written atomically before the manifest that lists it;
  the manifest is rewritten atomically every few seconds and when the run ends (normally,
  by an error or an interrupt). An interrupted or even killed run leaves a valid index that
  lists only completed recordings, and the next run continues from there (and removes the
  temporary files a killed run left).
- **One writer.** ``index`` holds an exclusive lock on ``.lock``; a second run on the same
  index fails at once with a clear message. The operating system releases the lock when a
  run ends, however it ends.
- **No silent deletion.** Recordings that are no longer in the folder are dropped, but
  dropping more than :data:`PRUNE_LIMIT` of them, or all of them (an unmounted or wrong
  folder), needs ``prune=True`` (``--prune``). A folder without audio files is an error
  unless ``allow_empty=True``.
- **Verified features.** Each entry stores the size and SHA-256 of its feature file. Every
  ``index`` run checks them and recomputes missing, changed or corrupt feature files;
  loading checks them again, and also the dtype, shape, finiteness and unit norm of the
  chroma. Feature paths must be plain file names inside ``features/`` and regular files:
  a manifest cannot make a query open ``../../etc/passwd``, ``/dev/zero`` or a named pipe.
- **Incremental.** A recording is recomputed when its size or modification time changed
  *and* its content hash differs. The ``.npz`` name contains the content hash, so a changed
  recording never overwrites the features the current manifest points to.

Unreadable audio is an error (naming the file), detected before any feature is written:
a silently incomplete index would make retrieval results misleading.
"""
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from stat import S_ISREG
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .audio import AUDIO_EXTENSIONS, check_audio_duration
from .constants import FEATURE_RATE, HCQT
from .errors import CTCChromaError
from .fileio import (atomic_path, exclusive_lock, is_locked, read_regular_file, sha256_bytes,
                     sha256_file)

INDEX_FORMAT = 'ctc-chroma-index'
INDEX_VERSION = 3
"""Version 2 added the size and SHA-256 of every feature file (``npz_size``, ``npz_sha256``),
version 3 the packed features (``pack``); an ``index`` run upgrades older indexes in place,
and queries read a version-2 index without its pack."""
MANIFEST_NAME = 'manifest.json'
FEATURES_DIR = 'features'
PACK_DIR = 'pack'
LOCK_NAME = '.lock'
PACK_VERSION = 1
PACK_NAME = re.compile(r'[0-9a-f]{16}\.(chroma|coarse)\.npy')
"""The only pack file names an index writes or opens."""
PACK_NORM_TOLERANCE = 4e-3
"""Largest deviation from 1 of a packed (float16) frame's norm."""

MANIFEST_INTERVAL = 2.0
"""Seconds between manifest checkpoints while indexing."""

DASK_CONNECT_TIMEOUT = 30.0
"""Seconds to wait for a Dask scheduler before giving up."""

PRUNE_LIMIT = 3
"""Recordings an ``index`` run may drop without ``--prune`` (never all of them)."""

NORM_TOLERANCE = 1e-3
"""Largest deviation of a stored chroma frame's Euclidean norm from 1."""

NPZ_NAME = re.compile(r'[0-9a-f]{12}-[0-9a-f]{16}\.npz')
"""The only feature file names an index writes or opens."""
_HEX64 = re.compile(r'[0-9a-f]{64}')
_LEFTOVERS = (f'.{Path(MANIFEST_NAME).stem}.*.tmp.json', f'{FEATURES_DIR}/.*.tmp.npz',
              f'{PACK_DIR}/.*.tmp.npy')

def feature_kind(model: str) -> str:
    """Feature kind of a model name ('teaching' -> 'ctc', ...); checks that it is known.

    Args:
        model (str): A kind or model name (see :func:`ctc_chroma_lib.kinds.resolve`)

    Returns:
        kind (str): The canonical name, for :func:`ctc_chroma_lib.chroma.compute_chroma`
    """
    from .kinds import resolve
    return resolve(model).name


def find_audio_files(root) -> List[Path]:
    """Audio files below a folder (recursive, by extension), sorted by relative path.

    Args:
        root (str or Path): Folder

    Returns:
        paths (list of Path): Absolute paths
    """
    root = Path(root)
    if not root.is_dir():
        raise CTCChromaError(f'{root}: audio folder not found')
    root = root.resolve()
    # paths stay below root (symbolic links are not resolved), hidden entries are skipped
    found = [p for p in root.rglob('*') if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
             and not any(part.startswith('.') for part in p.relative_to(root).parts)]
    return sorted(found)


def find_feature_files(root) -> List[Path]:
    """Feature files (``.npz``, as ``ctc-chroma chroma`` writes them) below a folder, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise CTCChromaError(f'{root}: feature folder not found')
    root = root.resolve()
    found = [p for p in root.rglob('*.npz') if p.is_file()
             and not any(part.startswith('.') for part in p.relative_to(root).parts)]
    return sorted(found)


def read_feature_file(path, kind: str, params: dict):
    """Chroma and times of a feature file computed elsewhere, checked against the index.

    The file must hold ``chroma`` (12 x T float32, unit-norm frames) and ``times`` (T,),
    and record the feature ``kind``, the ``weights`` fingerprint of what computed it and the
    ``chroma_version`` (``ctc-chroma chroma`` writes all three; a file without a version is
    of version 1); all must equal the index's.

    Returns:
        chroma (np.ndarray): 12 x T float32
        times (np.ndarray): T float32

    Raises:
        CTCChromaError: Unreadable file, missing arrays, another kind, other weights or
            another chroma version, invalid chroma; the message names the file
    """
    data = read_regular_file(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as e:
        raise CTCChromaError(f'{path}: not a feature file ({type(e).__name__}: {e})') from None
    missing = [key for key in ('chroma', 'times', 'kind', 'weights') if key not in arrays]
    if missing:
        raise CTCChromaError(f'{path}: feature file without {", ".join(missing)} (write it with '
                             f'ctc-chroma chroma)')
    file_kind, weights = str(arrays['kind']), str(arrays['weights'])
    if file_kind != kind:
        raise CTCChromaError(f'{path}: holds {file_kind!r} features, the index {kind!r}; an '
                             f'index never mixes kinds')
    if weights != params.get('weights', 'none'):
        raise CTCChromaError(f'{path}: {kind} features computed with other weights '
                             f'({weights}) than this installation has '
                             f'({params.get("weights", "none")})')
    try:
        version = int(arrays['chroma_version']) if 'chroma_version' in arrays else 1
    except (TypeError, ValueError):
        raise CTCChromaError(f'{path}: chroma_version is not a number') from None
    if version != params.get('chroma_version'):
        raise CTCChromaError(f'{path}: features of chroma version {version}, this installation '
                             f'computes version {params.get("chroma_version")}; recompute them '
                             f'with ctc-chroma chroma')
    chromagram, times = arrays['chroma'], arrays['times']
    if chromagram.ndim != 2 or chromagram.shape[1] == 0:
        raise CTCChromaError(f'{path}: no chroma frames (shape {chromagram.shape})')
    check_chromagram(chromagram, chromagram.shape[1], str(path))
    if times.shape != (chromagram.shape[1],) or not np.all(np.isfinite(times)):
        raise CTCChromaError(f'{path}: times do not match the {chromagram.shape[1]} frames')
    return chromagram, times.astype(np.float32)


def file_hash(path) -> str:
    """SHA-256 (hex) of a file's content."""
    return sha256_file(path)


def feature_params(kind: str) -> dict:
    """Parameters that make features of one kind comparable (a change means: rebuild).

    Args:
        kind (str): Feature kind

    Returns:
        params (dict): Feature rate, HCQT parameters, chroma cache version and, for learned
            kinds, a fingerprint of the model weights
    """
    from . import chroma
    params = {'feature_rate': FEATURE_RATE, 'hcqt': asdict(HCQT),
              'chroma_version': getattr(chroma, 'CACHE_VERSION', None)}
    fingerprint = chroma.kind_fingerprint(kind)
    if fingerprint != 'none':  # weights or a model behind the kind
        params['weights'] = fingerprint
    # JSON round trip, so that comparing with a stored manifest compares like with like
    return json.loads(json.dumps(params))


# manifest

def entry_problem(entry, checksum: bool = True) -> Optional[str]:
    """What is wrong with one manifest entry, or None if it is well-formed.

    Args:
        entry: The entry, as read from the manifest
        checksum (bool): Require the feature file's size and checksum (version 2)
            (Default value = True)

    Returns:
        problem (str): Description, or None
    """
    if not isinstance(entry, dict):
        return 'the entry is not an object'
    fields = [('size', int), ('mtime', (int, float)), ('sha256', str), ('npz', str),
              ('frames', int)]
    if checksum:
        fields += [('npz_size', int), ('npz_sha256', str)]
    for key, types in fields:
        value = entry.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            return f'field {key!r} is missing or invalid'
    if not NPZ_NAME.fullmatch(entry['npz']):
        return f'feature file {entry["npz"]!r} is not a file name of an index (outside features/?)'
    if entry['frames'] < 1 or entry['size'] < 0 or not math.isfinite(entry['mtime']):
        return 'frames, size or mtime out of range'
    if not _HEX64.fullmatch(entry['sha256']) or (checksum
                                                 and not _HEX64.fullmatch(entry['npz_sha256'])):
        return 'a checksum is not a SHA-256 hex digest'
    return None


def read_manifest(index_dir, strict: bool = True) -> dict:
    """Read and check an index manifest.

    Args:
        index_dir (str or Path): Index directory
        strict (bool): Also require every entry to be well-formed and the current index
            version (as queries do); ``index`` itself reads leniently and repairs
            (Default value = True)

    Returns:
        manifest (dict): ``format``, ``version``, ``kind``, ``params``, ``files``
            (relative path -> {size, mtime, sha256, npz, npz_size, npz_sha256, frames})

    Raises:
        CTCChromaError: The directory is not an index, or the manifest is corrupt
    """
    index_dir = Path(index_dir)
    path = index_dir / MANIFEST_NAME
    if not index_dir.is_dir():
        raise CTCChromaError(f'{index_dir}: index not found')
    if not path.exists():
        raise CTCChromaError(f'{index_dir}: not an index ({MANIFEST_NAME} missing)')
    try:
        manifest = json.loads(read_regular_file(path).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CTCChromaError(f'{path}: corrupt index manifest ({e})') from None
    if (not isinstance(manifest, dict) or manifest.get('format') != INDEX_FORMAT
            or not isinstance(manifest.get('files'), dict)
            or not isinstance(manifest.get('kind'), str)
            or not isinstance(manifest.get('params'), dict)):
        raise CTCChromaError(f'{path}: not a {INDEX_FORMAT} manifest')
    version = manifest.get('version')
    if version not in (1, 2, INDEX_VERSION) or isinstance(version, bool):
        raise CTCChromaError(f'{path}: index version {version!r} is not supported (expected '
                             f'{INDEX_VERSION}); rebuild the index')
    if strict:
        rate = manifest['params'].get('feature_rate')
        if rate != FEATURE_RATE:
            raise CTCChromaError(f'{path}: features at {rate!r} Hz, but queries are built at '
                                 f'{FEATURE_RATE:g} Hz; run ctc-chroma index on its folder to '
                                 f'rebuild it')
        if version == 1:
            raise CTCChromaError(f'{path}: index version {version} stores no feature '
                                 f'checksums; run ctc-chroma index on its folder once to '
                                 f'upgrade it')
        for rel, entry in manifest['files'].items():
            problem = entry_problem(entry)
            if problem:
                raise CTCChromaError(f'{path}: corrupt entry for {rel}: {problem}; run '
                                     f'ctc-chroma index on its folder to repair it')
    return manifest


def _write_manifest(index_dir: Path, manifest: dict) -> None:
    manifest['version'] = INDEX_VERSION
    with atomic_path(index_dir / MANIFEST_NAME) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True) + '\n')


def _new_manifest(kind, params, audio_dir, source):
    from . import __version__
    return {'format': INDEX_FORMAT, 'version': INDEX_VERSION, 'kind': kind, 'params': params,
            'library_version': __version__, 'audio_dir': str(audio_dir), 'source': source,
            'files': {}}


# feature files

def check_chromagram(chromagram: np.ndarray, frames: int, name: str) -> None:
    """Raise CTCChromaError unless ``chromagram`` is what an index stores.

    That is: float32, shape (12, ``frames``), finite, non-negative, and every column of
    unit Euclidean norm (within :data:`NORM_TOLERANCE`). Features scaled by a factor or
    stored as integers would otherwise rank first with a meaningless cost.

    Args:
        chromagram (np.ndarray): Features as loaded
        frames (int): Number of frames the manifest lists
        name (str): File name for the message
    """
    if chromagram.dtype != np.float32:
        raise CTCChromaError(f'{name}: features of dtype {chromagram.dtype}, expected float32')
    if chromagram.shape != (12, frames):
        raise CTCChromaError(f'{name}: features of shape {chromagram.shape}, expected '
                             f'(12, {frames})')
    if not np.all(np.isfinite(chromagram)):
        raise CTCChromaError(f'{name}: features contain NaN or infinite values')
    if chromagram.min() < 0:
        raise CTCChromaError(f'{name}: features contain negative values')
    norms = np.linalg.norm(chromagram.astype(np.float64), axis=0)
    worst = int(np.argmax(np.abs(norms - 1)))
    if abs(norms[worst] - 1) > NORM_TOLERANCE:
        raise CTCChromaError(f'{name}: frame {worst} has norm {norms[worst]:.6g}, expected '
                             f'unit-norm frames')


def _parse_npz(data: bytes, name: str) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return npz['chroma']
    except Exception as e:  # truncated, foreign or pickled content
        raise CTCChromaError(f'{name}: not a feature file ({type(e).__name__}: {e})') from None


def _verified_features(index_dir: Path, entry: dict) -> np.ndarray:
    path = index_dir / FEATURES_DIR / entry['npz']
    data = read_regular_file(path)
    if len(data) != entry['npz_size'] or sha256_bytes(data) != entry['npz_sha256']:
        raise CTCChromaError(f'{path}: does not match its checksum (changed or corrupted on '
                             f'disk)')
    chromagram = _parse_npz(data, str(path))
    check_chromagram(chromagram, entry['frames'], str(path))
    return chromagram


def load_features(index_dir, rel: str, entry: dict) -> np.ndarray:
    """The verified chromagram of one index entry.

    Args:
        index_dir (str or Path): Index directory
        rel (str): The recording's path relative to the audio folder (for messages)
        entry (dict): Its well-formed manifest entry (see :func:`entry_problem`)

    Returns:
        chromagram (np.ndarray): 12 x T float32, unit-norm columns

    Raises:
        CTCChromaError: The feature file is missing, not a regular file, does not match its
            checksum, or does not hold valid chroma; the message names it and the recording
    """
    try:
        return _verified_features(Path(index_dir), entry)
    except CTCChromaError as e:
        raise CTCChromaError(f'{e} (features of {rel}); run ctc-chroma index on its folder to '
                             f'recompute them') from None


def _stored_entry_problem(index_dir: Path, entry: dict) -> Optional[str]:
    """Problem of an entry's feature file as ``index`` sees it; adds a missing checksum."""
    problem = entry_problem(entry, checksum=False)
    if problem:
        return problem
    path = index_dir / FEATURES_DIR / entry['npz']
    try:
        data = read_regular_file(path)
    except CTCChromaError as e:
        return str(e)
    if 'npz_sha256' not in entry:  # version 1: adopt the checksum of valid content
        try:
            check_chromagram(_parse_npz(data, str(path)), entry['frames'], str(path))
        except CTCChromaError as e:
            return str(e)
        entry['npz_size'], entry['npz_sha256'] = len(data), sha256_bytes(data)
    if entry_problem(entry):
        return entry_problem(entry)
    if len(data) != entry['npz_size'] or sha256_bytes(data) != entry['npz_sha256']:
        return f'{path}: does not match its checksum'
    return None


# building

def _create_index_dir(index_dir: Path) -> bool:
    """Create the index directory if missing; True if this call created it."""
    if index_dir.exists() and not index_dir.is_dir():
        raise CTCChromaError(f'{index_dir}: exists and is not a directory; choose another --out')
    try:
        index_dir.mkdir(parents=True)
        return True
    except FileExistsError:
        if index_dir.is_dir():
            return False
        raise CTCChromaError(f'{index_dir}: cannot create the index directory (a parent is '
                             f'a file)') from None
    except OSError as e:
        raise CTCChromaError(f'{index_dir}: cannot create the index directory '
                             f'({e.strerror or e})') from None


def _remove_leftovers(index_dir: Path) -> None:
    """Temporary files of killed runs (only called while holding the lock)."""
    for pattern in _LEFTOVERS:
        for path in index_dir.glob(pattern):
            path.unlink(missing_ok=True)


def _only_index_files(index_dir: Path) -> bool:
    """True if the folder holds nothing but what an index run writes (a killed first run)."""
    for path in index_dir.iterdir():
        if path.name == LOCK_NAME:
            continue
        if path.name not in (FEATURES_DIR, PACK_DIR) or not path.is_dir():
            return False
        names = NPZ_NAME if path.name == FEATURES_DIR else PACK_NAME
        if any(not names.fullmatch(p.name) for p in path.iterdir()):
            return False
    return True


def _open_or_create(index_dir: Path, kind: str, params: dict, audio_dir: Path,
                    source: str) -> dict:
    if (index_dir / MANIFEST_NAME).exists():
        manifest = read_manifest(index_dir, strict=False)
        if manifest['kind'] != kind:
            raise CTCChromaError(f'{index_dir}: index holds {manifest["kind"]!r} features, not '
                                 f'{kind!r}; use --model {manifest["kind"]} or another --out')
        if manifest.get('source', 'audio') != source:
            raise CTCChromaError(f'{index_dir}: index was built from {manifest.get("source", "audio")}'
                                 f' files, not {source} files; use another --out')
        if manifest.get('params') != params:
            # e.g. retrained weights: all features are stale
            manifest['files'] = {}
        manifest['params'] = params
        manifest['audio_dir'] = str(audio_dir)
        return manifest
    if not _only_index_files(index_dir):
        raise CTCChromaError(f'{index_dir}: exists and is not an index; choose a new --out')
    return _new_manifest(kind, params, audio_dir, source)


def _remove_unreferenced(index_dir: Path, manifest: dict) -> None:
    referenced = {entry.get('npz') for entry in manifest['files'].values()
                  if isinstance(entry, dict)}
    features = index_dir / FEATURES_DIR
    if features.is_dir():
        for path in features.glob('*.npz'):
            if path.name not in referenced:
                path.unlink()
    pack = manifest.get('pack') if isinstance(manifest.get('pack'), dict) else {}
    kept = {part.get('file') for part in (pack.get('chroma'), pack.get('coarse'))
            if isinstance(part, dict)}
    if (index_dir / PACK_DIR).is_dir():
        for path in (index_dir / PACK_DIR).glob('*.npy'):
            if path.name not in kept and PACK_NAME.fullmatch(path.name):
                path.unlink()


def _check_removals(index_dir: Path, audio_dir: Path, manifest: dict, removed: List[str],
                    prune: bool) -> None:
    total = len(manifest['files'])
    if prune or not removed or (len(removed) <= PRUNE_LIMIT and len(removed) < total):
        return
    shown = ', '.join(removed[:3]) + (', ...' if len(removed) > 3 else '')
    raise CTCChromaError(
        f'{index_dir}: {len(removed)} of its {total} recordings are not in {audio_dir} '
        f'({shown}); nothing was changed. Is that the right folder, and is it mounted? '
        f'Pass --prune to remove them from the index')


def build_index(audio_dir, index_dir, model='ctc', feature_fn: Optional[Callable] = None,
                progress=True, prune=False, allow_empty=False, from_features=False,
                workers: int = 1, dask: Optional[str] = None) -> dict:
    """Create or update the index of all audio files below ``audio_dir``.

    Args:
        audio_dir (str or Path): Folder with recordings (searched recursively)
        index_dir (str or Path): Index directory (created if missing)
        model (str): Feature kind or model name (see :func:`feature_kind`) (Default value = 'ctc')
        feature_fn (callable): ``feature_fn(audio_path, kind) -> (chroma, times)``
            (Default value = None: ``compute_chroma(path, kind, cache=False)``)
        progress (bool): Progress bar on stderr (Default value = True)
        prune (bool): Allow dropping more than :data:`PRUNE_LIMIT` (or all) recordings that
            are no longer in the folder (Default value = False)
        allow_empty (bool): Accept a folder without audio files (Default value = False)
        from_features (bool): ``audio_dir`` holds feature files of ``ctc-chroma chroma``
            computed elsewhere (:func:`read_feature_file`), not audio (Default value = False)
        workers (int): Local worker processes computing the features (Default value = 1:
            in this process, a few recordings at once on threads when ``feature_fn`` is the
            default, see :mod:`ctc_chroma_lib.threads`)
        dask (str): Address of a dask.distributed scheduler whose workers compute the
            features (Default value = None); this process writes the index either way

    Returns:
        summary (dict): Counts ``added``, ``updated``, ``repaired``, ``removed``,
            ``unchanged``, ``total``

    Raises:
        CTCChromaError: Bad folder or model, unreadable audio, another run holding the lock,
            removals without ``prune``, an empty folder without ``allow_empty``
    """
    from . import chroma
    audio_dir, index_dir = Path(audio_dir).resolve(), Path(index_dir)
    kind = feature_kind(model)
    params = feature_params(kind)
    if workers < 1:
        raise CTCChromaError(f'--workers must be at least 1, got {workers}')
    parallel = dask is not None or workers > 1
    if parallel and (from_features or feature_fn is not None):
        raise CTCChromaError('workers compute features from audio with compute_chroma; '
                             'feature files and a custom feature_fn are read in this process')
    threads = 1  # feature files and a given feature_fn: one at a time
    if from_features:
        def feature_fn(path, kind):
            return read_feature_file(path, kind, params)
        files, check = find_feature_files(audio_dir), feature_fn
        looked_for = '.npz feature files'
    else:
        if feature_fn is None:
            def feature_fn(path, kind):
                return chroma.compute_chroma(path, kind, cache=False)
            threads = None  # compute_chroma is safe on threads: a few recordings at once
        files, check = find_audio_files(audio_dir), lambda path, kind: check_audio_duration(path)
        looked_for = f'audio files ({", ".join(AUDIO_EXTENSIONS)})'
    if not files and not allow_empty:
        raise CTCChromaError(f'{audio_dir}: no {looked_for} found; nothing was changed. Pass '
                             f'--allow-empty to accept an empty index')
    # connect to a cluster before the index is touched: an unreachable one changes nothing
    runner = DaskRunner(dask) if dask is not None else (
        process_pool_runner(workers) if workers > 1 else in_process_runner(threads))
    created = False
    try:
        created = _create_index_dir(index_dir)
        with exclusive_lock(index_dir / LOCK_NAME, str(index_dir)):
            return _update_index(audio_dir, index_dir, kind, params, files, feature_fn,
                                 check, progress, prune,
                                 'features' if from_features else 'audio', runner)
    except BaseException:
        if created and not (index_dir / MANIFEST_NAME).exists():
            shutil.rmtree(index_dir, ignore_errors=True)  # nothing was written: leave no trace
        raise
    finally:
        getattr(runner, 'close', lambda: None)()


def _update_index(audio_dir, index_dir, kind, params, files, feature_fn, check, progress,
                  prune, source, runner) -> dict:
    _remove_leftovers(index_dir)
    manifest = _open_or_create(index_dir, kind, params, audio_dir, source)
    current = {p.relative_to(audio_dir).as_posix(): p for p in files}
    removed = [rel for rel in manifest['files'] if rel not in current]
    _check_removals(index_dir, audio_dir, manifest, removed, prune)
    todo, unchanged = [], 0
    for rel, path in current.items():
        stat = path.stat()
        entry = manifest['files'].get(rel)
        status = 'added'
        if entry is not None:
            status = 'repaired' if _stored_entry_problem(index_dir, entry) else 'updated'
        if status == 'updated' and entry['size'] == stat.st_size \
                and entry['mtime'] == stat.st_mtime:
            unchanged += 1
            continue
        digest = file_hash(path)
        if status == 'updated' and entry['sha256'] == digest:
            entry['mtime'], entry['size'] = stat.st_mtime, stat.st_size  # touched, same content
            unchanged += 1
            continue
        todo.append((rel, path, stat, digest, status))
    # check every file to be (re)computed before writing anything
    for _, path, _, _, _ in todo:
        check(path, kind)

    for rel in removed:
        del manifest['files'][rel]
    (index_dir / FEATURES_DIR).mkdir(exist_ok=True)
    _write_manifest(index_dir, manifest)

    bar = None
    if progress and todo:
        import sys
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f'indexing ({kind})', file=sys.stderr, leave=False)
    last_write, done = time.monotonic(), 0
    results = runner(todo, kind, feature_fn, params)
    try:
        while True:
            try:
                (rel, path, stat, digest, _), features = next(results)
                entry = _store_entry(index_dir, rel, path, digest, features)
            except StopIteration:
                break
            except CTCChromaError as e:
                raise CTCChromaError(f'{e} (the index keeps the {done} recordings completed in '
                                     f'this run; fix or remove the file and run again)') from None
            if bar is not None:
                bar.update()
            entry.update(size=stat.st_size, mtime=stat.st_mtime)
            manifest['files'][rel] = entry
            done += 1
            # checkpoint: a killed run loses at most the last few seconds of work
            if time.monotonic() - last_write > MANIFEST_INTERVAL:
                _write_manifest(index_dir, manifest)
                last_write = time.monotonic()
    finally:
        results.close()  # stop computing: nothing more is stored after an error or interrupt
        # also on errors and interrupts: the manifest lists exactly the completed files
        if bar is not None:
            bar.close()
        _write_manifest(index_dir, manifest)
    _remove_unreferenced(index_dir, manifest)
    if not manifest['files']:
        manifest.pop('pack', None)
    elif pack_problem(index_dir, manifest) is not None:
        manifest['pack'] = _write_pack(index_dir, manifest, progress)
    _write_manifest(index_dir, manifest)
    _remove_unreferenced(index_dir, manifest)
    summary = {status: sum(1 for t in todo if t[4] == status)
               for status in ('added', 'updated', 'repaired')}
    summary.update(removed=len(removed), unchanged=unchanged, total=len(manifest['files']))
    return summary


# computing the features: serially, in local processes, or on a Dask cluster

def in_process_runner(threads):
    """A runner that computes the features in this process, ``threads`` recordings at once
    (:func:`ctc_chroma_lib.threads.map_in_order`: same order, same bits; None = its default,
    1 = one at a time in this thread)."""
    def run(todo, kind, feature_fn, params):
        from .threads import map_in_order
        yield from zip(todo, map_in_order(lambda task: feature_fn(task[1], kind), todo, threads))
    return run


def remote_features(path, kind):
    """Chroma, times and the fingerprint of what computed them, for a worker process.

    Runs in a local worker process or on a Dask worker; the fingerprint lets the writing
    process refuse features computed with other weights than its own.
    """
    from .chroma import compute_chroma, kind_fingerprint
    chromagram, times = compute_chroma(path, kind, cache=False)
    return np.asarray(chromagram, dtype=np.float32), np.asarray(times), kind_fingerprint(kind)


def _checked(task, result, params):
    chromagram, times, fingerprint = result
    if fingerprint != params.get('weights', 'none'):
        raise CTCChromaError(f'{task[1]}: a worker computed the features with other weights '
                             f'({fingerprint}) than this process has '
                             f'({params.get("weights", "none")}); install the same models on '
                             f'every worker')
    return task, (chromagram, times)


def _share_cores(threads: int) -> None:
    """Initializer of a local worker: TensorFlow, numba, BLAS and OpenMP use ``threads``
    threads each, so that the workers together do not oversubscribe the cores.

    TensorFlow and numba read the variables when they start, which is later in a worker;
    NumPy's BLAS has started already (unpickling this initializer imports this module), so
    its pool is limited directly."""
    for variable in ('TF_NUM_INTRAOP_THREADS', 'NUMBA_NUM_THREADS', 'OMP_NUM_THREADS'):
        os.environ.setdefault(variable, str(threads))
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads)


def _worker_pool(workers: int):
    """``workers`` spawned local processes that share the CPU cores (:func:`_share_cores`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(max_workers=workers, initializer=_share_cores,
                               initargs=(threads,),
                               mp_context=multiprocessing.get_context('spawn'))


def process_pool_runner(workers: int):
    """A runner that computes the features in ``workers`` local processes (:func:`_worker_pool`)."""
    def run(todo, kind, feature_fn, params):
        from concurrent.futures import as_completed
        with _worker_pool(workers) as pool:
            futures = {pool.submit(remote_features, str(task[1]), kind): task for task in todo}
            try:
                for future in as_completed(futures):
                    yield _checked(futures[future], future.result(), params)
            finally:
                for future in futures:
                    future.cancel()
    return run


class DaskRunner:
    """Computes the features on the workers of a dask.distributed scheduler.

    Connects when created (before the index is touched, so that an unreachable scheduler
    changes nothing). The workers need this package, the same models and the audio files at
    the same paths (a shared file system); the client (this process) writes the index.
    """

    def __init__(self, address: str):
        try:
            from dask.distributed import Client
        except ImportError:
            raise CTCChromaError('--dask needs dask.distributed: pip install '
                                 '"dask[distributed]"') from None
        try:
            self.client = Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise CTCChromaError(f'cannot connect to the Dask scheduler at {address}: '
                                 f'{e}') from None

    def __call__(self, todo, kind, feature_fn, params):
        from dask.distributed import as_completed
        futures = self.client.map(remote_features, [str(task[1]) for task in todo],
                                  [kind] * len(todo), pure=False)
        tasks = {future.key: task for future, task in zip(futures, todo)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                yield _checked(tasks[future.key], future.result(), params)
        finally:
            self.client.cancel(futures)

    def close(self):
        self.client.close()


def _store_entry(index_dir: Path, rel: str, path: Path, digest: str, features) -> dict:
    chromagram, times = features
    chromagram = np.asarray(chromagram, dtype=np.float32)
    if chromagram.ndim != 2 or chromagram.shape[0] != 12 or chromagram.shape[1] == 0:
        raise CTCChromaError(f'{path}: no chroma frames computed (shape {chromagram.shape})')
    check_chromagram(chromagram, chromagram.shape[1], str(path))
    key = hashlib.sha1(os.fsencode(rel)).hexdigest()[:12]
    npz = f'{key}-{digest[:16]}.npz'
    buffer = io.BytesIO()
    np.savez(buffer, chroma=chromagram, times=np.asarray(times, dtype=np.float32))
    data = buffer.getvalue()
    with atomic_path(index_dir / FEATURES_DIR / npz) as tmp:
        Path(tmp).write_bytes(data)
    return {'sha256': digest, 'npz': npz, 'npz_size': len(data), 'npz_sha256': sha256_bytes(data),
            'frames': int(chromagram.shape[1]), 'indexed_at': time.time()}


# packed features

def entries_digest(manifest: dict) -> str:
    """SHA-256 of what a pack holds: every recording's path and feature-file checksum, in order."""
    listing = [[rel, manifest['files'][rel].get('npz_sha256')] for rel in sorted(manifest['files'])]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def _pack_layout(manifest: dict):
    """Names, frame counts and first frames (full and coarse) of the recordings in a pack."""
    from .search import COARSE_FACTOR
    names = sorted(manifest['files'])
    frames = np.array([manifest['files'][rel]['frames'] for rel in names], dtype=np.int64)
    coarse = -(-frames // COARSE_FACTOR)
    starts = np.concatenate([[0], np.cumsum(frames)[:-1]]).astype(np.int64)
    coarse_starts = np.concatenate([[0], np.cumsum(coarse)[:-1]]).astype(np.int64)
    return names, frames, starts, coarse, coarse_starts


def _write_pack(index_dir: Path, manifest: dict, progress: bool) -> dict:
    """Write the packed features of all entries; returns the manifest's ``pack`` record."""
    from .search import COARSE_FACTOR, coarse_chroma
    names, frames, starts, coarse, coarse_starts = _pack_layout(manifest)
    digest = entries_digest(manifest)
    files = {part: f'{digest[:16]}.{part}.npy' for part in ('chroma', 'coarse')}
    folder = index_dir / PACK_DIR
    folder.mkdir(exist_ok=True)
    bar = None
    if progress:
        import sys
        from tqdm import tqdm
        bar = tqdm(total=len(names), desc='packing', file=sys.stderr, leave=False)
    with atomic_path(folder / files['chroma']) as tmp_chroma, \
            atomic_path(folder / files['coarse']) as tmp_coarse:
        chroma = np.lib.format.open_memmap(tmp_chroma, mode='w+', dtype=np.float16,
                                           shape=(int(frames.sum()), 12))
        coarse_rows = np.lib.format.open_memmap(tmp_coarse, mode='w+', dtype=np.float32,
                                                shape=(int(coarse.sum()), 12))
        for i, rel in enumerate(names):
            Y = load_features(index_dir, rel, manifest['files'][rel])
            chroma[starts[i]:starts[i] + frames[i]] = Y.T
            coarse_rows[coarse_starts[i]:coarse_starts[i] + coarse[i]] = coarse_chroma(Y).T
            if bar is not None:
                bar.update()
        chroma.flush()
        coarse_rows.flush()
        del chroma, coarse_rows
    if bar is not None:
        bar.close()
    record = {'version': PACK_VERSION, 'entries_digest': digest, 'coarse_factor': COARSE_FACTOR}
    for part, dtype, rows in (('chroma', 'float16', frames.sum()), ('coarse', 'float32', coarse.sum())):
        path = folder / files[part]
        record[part] = {'file': files[part], 'dtype': dtype, 'frames': int(rows),
                        'size': path.stat().st_size, 'sha256': sha256_file(path)}
    return record


def pack_problem(index_dir, manifest: dict, checksum: bool = False) -> Optional[str]:
    """Why an index's pack cannot serve queries (None if it can).

    Args:
        index_dir (str or Path): Index directory
        manifest (dict): Its manifest
        checksum (bool): Also compare the files' SHA-256 (reads them in full)
            (Default value = False: sizes and array headers only)

    Returns:
        problem (str): 'no packed features', 'stale', or what is wrong with a file; or None
    """
    from .search import COARSE_FACTOR
    pack = manifest.get('pack')
    if pack is None:
        return 'no packed features'
    if (not isinstance(pack, dict) or pack.get('version') != PACK_VERSION
            or pack.get('coarse_factor') != COARSE_FACTOR):
        return 'packed features of another version'
    if pack.get('entries_digest') != entries_digest(manifest):
        return 'stale (the recordings changed after the features were packed)'
    _, frames, _, coarse, _ = _pack_layout(manifest)
    for part, dtype, rows in (('chroma', 'float16', frames.sum()), ('coarse', 'float32', coarse.sum())):
        record = pack.get(part)
        if (not isinstance(record, dict) or not isinstance(record.get('file'), str)
                or not PACK_NAME.fullmatch(record['file']) or record.get('dtype') != dtype
                or record.get('frames') != int(rows) or not isinstance(record.get('size'), int)
                or not _HEX64.fullmatch(str(record.get('sha256')))):
            return f'the manifest\'s record of the {part} pack is corrupt'
        path = Path(index_dir) / PACK_DIR / record['file']
        try:
            info = os.lstat(path)
        except OSError:
            return f'{path}: missing'
        if not S_ISREG(info.st_mode):
            return f'{path}: not a regular file'
        if info.st_size != record['size']:
            return f'{path}: {info.st_size} bytes, the manifest says {record["size"]}'
        if checksum and sha256_file(path) != record['sha256']:
            return f'{path}: does not match its checksum (changed or corrupted on disk)'
    return None


class PackedFeatures:
    """The memory-mapped pack of an index, as :func:`ctc_chroma_lib.search.search` reads it.

    Attributes:
        names (list of str): Recordings (paths relative to the audio folder), in pack order
        frames, starts (np.ndarray): Frames and first row of every recording in the chroma
        coarse (np.ndarray): Coarse frames of all recordings (rows x 12, float32, mapped)
        coarse_starts, coarse_lengths: Their first row and number of rows per recording
    """

    def __init__(self, index_dir, manifest: dict):
        index_dir = Path(index_dir)
        pack = manifest['pack']
        self.names, self.frames, self.starts, self.coarse_lengths, self.coarse_starts = \
            _pack_layout(manifest)
        self.chroma_path = index_dir / PACK_DIR / pack['chroma']['file']
        coarse_path = index_dir / PACK_DIR / pack['coarse']['file']
        self.chroma = self._map(self.chroma_path, np.float16, pack['chroma']['frames'])
        self.coarse = self._map(coarse_path, np.float32, pack['coarse']['frames'])
        if not np.all(np.isfinite(self.coarse)) or self.coarse.min() < 0:
            raise CTCChromaError(f'{coarse_path}: coarse features with negative, NaN or '
                                 f'infinite values; run ctc-chroma index on its folder to '
                                 f'rebuild them')

    @staticmethod
    def _map(path, dtype, rows):
        try:
            array = np.load(path, mmap_mode='r', allow_pickle=False)
        except Exception as e:  # truncated or foreign content
            raise CTCChromaError(f'{path}: not a pack file ({type(e).__name__}: {e})') from None
        if array.dtype != dtype or array.shape != (rows, 12):
            raise CTCChromaError(f'{path}: {array.dtype} array of shape {array.shape}, the '
                                 f'manifest says {np.dtype(dtype)} ({rows}, 12)')
        return array

    def document(self, i) -> np.ndarray:
        """The chromagram of recording ``i``: 12 x T float32, unit-norm frames (checked).

        Raises:
            CTCChromaError: The packed frames are not finite, negative, or not unit-norm
        """
        rows = np.asarray(self.chroma[self.starts[i]:self.starts[i] + self.frames[i]],
                          dtype=np.float32)
        if not np.all(np.isfinite(rows)) or rows.min() < 0:
            raise CTCChromaError(f'{self.chroma_path}: features of {self.names[i]} contain '
                                 f'negative, NaN or infinite values; run ctc-chroma index on '
                                 f'its folder to rebuild them')
        norms = np.sqrt(np.einsum('ij,ij->i', rows, rows))
        if np.abs(norms - 1).max() > PACK_NORM_TOLERANCE:
            raise CTCChromaError(f'{self.chroma_path}: features of {self.names[i]} are not '
                                 f'unit-norm frames; run ctc-chroma index on its folder to '
                                 f'rebuild them')
        # undo the float16 rounding of the norms: unit frames for the cosine cost
        return np.ascontiguousarray((rows / norms[:, None]).T)


# reading

def load_index(index_dir, kind: Optional[str] = None) -> Tuple[dict, List[Tuple[str, np.ndarray]]]:
    """Read an index: its manifest and the verified chromagram of every recording.

    Args:
        index_dir (str or Path): Index directory
        kind (str): If given, the feature kind the index must hold (Default value = None)

    Returns:
        manifest (dict): See :func:`read_manifest`
        documents (list of (str, np.ndarray)): (relative path, chromagram 12 x T) pairs

    Raises:
        CTCChromaError: Not an index, another kind, no recordings, or a corrupt entry or
            feature file (see :func:`load_features`)
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if kind is not None:
        kind = feature_kind(kind)
        if manifest['kind'] != kind:
            raise CTCChromaError(f'{index_dir}: index holds {manifest["kind"]!r} features, '
                                 f'not {kind!r}')
    if not manifest['files']:
        raise CTCChromaError(f'{index_dir}: the index holds no recordings')
    documents = [(rel, load_features(index_dir, rel, manifest['files'][rel]))
                 for rel in sorted(manifest['files'])]
    return manifest, documents


def open_index(index_dir, kind: Optional[str] = None):
    """Open an index for queries: its pack, memory-mapped, or else its feature files.

    Args:
        index_dir (str or Path): Index directory
        kind (str): If given, the feature kind the index must hold (Default value = None)

    Returns:
        manifest (dict): See :func:`read_manifest`
        features (PackedFeatures or list): The pack, or (relative path, chromagram) pairs
            of every verified feature file when the index has no usable pack
        note (str or None): Why the feature files are read instead of the pack

    Raises:
        CTCChromaError: As :func:`load_index`, or a pack that exists but is corrupt
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if kind is not None and manifest['kind'] != feature_kind(kind):
        raise CTCChromaError(f'{index_dir}: index holds {manifest["kind"]!r} features, '
                             f'not {feature_kind(kind)!r}')
    if not manifest['files']:
        raise CTCChromaError(f'{index_dir}: the index holds no recordings')
    problem = pack_problem(index_dir, manifest)
    if problem is None:
        return manifest, PackedFeatures(index_dir, manifest), None
    if manifest.get('pack') is not None and not problem.startswith('stale'):
        raise CTCChromaError(f'{index_dir}: {problem}; run ctc-chroma index on its folder to '
                             f'rebuild the packed features')
    _, documents = load_index(index_dir, kind)
    return manifest, documents, (f'{index_dir}: {problem}; searching the feature files '
                                 f'exhaustively (run ctc-chroma index on its folder for the '
                                 f'fast search)')


def check_index(index_dir) -> Dict[str, list]:
    """Verify an index without changing it: every entry and every feature file.

    Args:
        index_dir (str or Path): Index directory

    Returns:
        report (dict): ``problems`` (list of str: what makes queries fail or mislead),
            ``notes`` (list of str: harmless findings such as leftover temporary files),
            ``total`` (number of recordings)

    Raises:
        CTCChromaError: Not an index, or a manifest that cannot be read at all
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir, strict=False)
    problems, notes = [], []
    if manifest['version'] == 1:
        problems.append(f'index version {manifest["version"]} stores no feature checksums; '
                        f'run ctc-chroma index on its folder once to upgrade it')
    referenced = set()
    for rel in sorted(manifest['files']):
        entry = manifest['files'][rel]
        problem = entry_problem(entry, checksum=manifest['version'] != 1)
        if problem is None:
            referenced.add(entry['npz'])
            if 'npz_sha256' in entry:
                try:
                    _verified_features(index_dir, entry)
                except CTCChromaError as e:
                    problem = str(e)
        if problem:
            problems.append(f'{rel}: {problem}')
    features = index_dir / FEATURES_DIR
    if features.is_dir():
        orphans = [p.name for p in features.glob('*.npz') if p.name not in referenced]
        if orphans:
            notes.append(f'{len(orphans)} feature file(s) not in the manifest (removed by the '
                         f'next index run)')
    if manifest['files']:
        problem = pack_problem(index_dir, manifest, checksum=True)
        if problem is not None and (problem.startswith('stale') or problem == 'no packed features'):
            notes.append(f'packed features: {problem}; queries read the feature files until '
                         f'the next index run packs them')
        elif problem is not None:
            problems.append(f'packed features: {problem}')
    leftovers = [p for pattern in _LEFTOVERS for p in index_dir.glob(pattern)]
    if leftovers:
        notes.append(f'{len(leftovers)} temporary file(s) of an interrupted run (removed by '
                     f'the next index run)')
    if is_locked(index_dir / LOCK_NAME):
        notes.append('an index run is updating the index right now')
    return {'problems': problems, 'notes': notes, 'total': len(manifest['files'])}
