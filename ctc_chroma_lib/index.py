"""A retrieval index: chroma features of every recording in a folder, built incrementally.

Notebook: 06_Retrieval.ipynb

Layout of an index directory::

    manifest.json                 feature kind, parameters, and one entry per recording
    features/<key>-<hash>.npz     chroma (12 x T float32) and times (T,) of one recording

Every ``.npz`` is written atomically before the manifest that lists it; the manifest is
rewritten atomically every few seconds and when the run ends (normally, by an error or an
interrupt), so an interrupted or even killed run leaves a valid index that lists only
completed recordings; the next run continues from there. A recording is
recomputed when its size or modification time changed *and* its content hash differs;
recordings no longer in the folder are dropped. The ``.npz`` name contains the content hash,
so a changed recording never overwrites the features the current manifest points to.

Unreadable audio is an error (naming the file), detected before any feature is written:
a silently incomplete index would make retrieval results misleading.
"""
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from .audio import check_audio_duration
from .constants import FEATURE_RATE, HCQT
from .errors import CTCChromaError
from .fileio import atomic_path

INDEX_FORMAT = 'ctc-chroma-index'
INDEX_VERSION = 1
MANIFEST_NAME = 'manifest.json'
FEATURES_DIR = 'features'
AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.oga', '.mp3', '.m4a', '.aif', '.aiff', '.aifc',
                    '.opus', '.wma', '.au')

MANIFEST_INTERVAL = 2.0
"""Seconds between manifest checkpoints while indexing."""

MODEL_ALIASES = {'teaching': 'ctc', 'teaching-ctc': 'ctc', 'teaching-strong': 'strong',
                 'teaching-linear': 'linear'}
"""Model names accepted for the feature kinds of :func:`ctc_chroma_lib.chroma.compute_chroma`."""


def feature_kind(model: str) -> str:
    """Feature kind of a model name ('teaching' -> 'ctc', ...); checks that it is known.

    Notebook: 06_Retrieval.ipynb

    Args:
        model (str): ctc/teaching, strong, linear, published:<ID>, cqt or cens

    Returns:
        kind (str): Kind for :func:`ctc_chroma_lib.chroma.compute_chroma`
    """
    from .chroma import resolve_kind
    kind = MODEL_ALIASES.get(model, model)
    resolve_kind(kind)
    return kind


def find_audio_files(root) -> List[Path]:
    """Audio files below a folder (recursive, by extension), sorted by relative path.

    Notebook: 06_Retrieval.ipynb

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


def file_hash(path) -> str:
    """SHA-256 (hex) of a file's content.

    Notebook: 06_Retrieval.ipynb
    """
    hasher = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                hasher.update(block)
    except OSError as e:
        raise CTCChromaError(f'{path}: cannot read ({e.strerror or e})') from None
    return hasher.hexdigest()


def feature_params(kind: str) -> dict:
    """Parameters that make features of one kind comparable (a change means: rebuild).

    Notebook: 06_Retrieval.ipynb

    Args:
        kind (str): Feature kind

    Returns:
        params (dict): Feature rate, HCQT parameters, chroma cache version and, for learned
            kinds, a fingerprint of the model weights
    """
    from . import chroma
    params = {'feature_rate': FEATURE_RATE, 'hcqt': asdict(HCQT),
              'chroma_version': getattr(chroma, 'CACHE_VERSION', None)}
    spec = chroma.resolve_kind(kind)
    fingerprint = getattr(chroma, '_model_fingerprint', None)
    if spec is not None and fingerprint is not None:
        params['weights'] = fingerprint(spec)
    # JSON round trip, so that comparing with a stored manifest compares like with like
    return json.loads(json.dumps(params))


def read_manifest(index_dir) -> dict:
    """Read and check an index manifest.

    Notebook: 06_Retrieval.ipynb

    Args:
        index_dir (str or Path): Index directory

    Returns:
        manifest (dict): ``format``, ``version``, ``kind``, ``params``, ``files``
            (relative path -> {size, mtime, sha256, npz, frames})
    """
    index_dir = Path(index_dir)
    path = index_dir / MANIFEST_NAME
    if not index_dir.is_dir():
        raise CTCChromaError(f'{index_dir}: index not found')
    if not path.is_file():
        raise CTCChromaError(f'{index_dir}: not an index ({MANIFEST_NAME} missing)')
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CTCChromaError(f'{path}: corrupt index manifest ({e})') from None
    if (not isinstance(manifest, dict) or manifest.get('format') != INDEX_FORMAT
            or not isinstance(manifest.get('files'), dict) or 'kind' not in manifest):
        raise CTCChromaError(f'{path}: not a {INDEX_FORMAT} manifest')
    if manifest.get('version') != INDEX_VERSION:
        raise CTCChromaError(f'{path}: index version {manifest.get("version")!r} is not '
                             f'supported (expected {INDEX_VERSION}); rebuild the index')
    return manifest


def _write_manifest(index_dir: Path, manifest: dict) -> None:
    with atomic_path(index_dir / MANIFEST_NAME) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True) + '\n')


def _new_manifest(kind, params, audio_dir):
    from . import __version__
    return {'format': INDEX_FORMAT, 'version': INDEX_VERSION, 'kind': kind, 'params': params,
            'library_version': __version__, 'audio_dir': str(audio_dir), 'files': {}}


def _open_or_create(index_dir: Path, kind: str, params: dict, audio_dir: Path) -> dict:
    if (index_dir / MANIFEST_NAME).is_file():
        manifest = read_manifest(index_dir)
        if manifest['kind'] != kind:
            raise CTCChromaError(f'{index_dir}: index holds {manifest["kind"]!r} features, not '
                                 f'{kind!r}; use --model {manifest["kind"]} or another --out')
        if manifest.get('params') != params:
            # e.g. retrained weights: all features are stale
            manifest['files'] = {}
        manifest['params'] = params
        manifest['audio_dir'] = str(audio_dir)
        return manifest
    if index_dir.exists() and (not index_dir.is_dir() or any(index_dir.iterdir())):
        raise CTCChromaError(f'{index_dir}: exists and is not an index; choose a new --out')
    return _new_manifest(kind, params, audio_dir)


def _remove_unreferenced(index_dir: Path, manifest: dict) -> None:
    referenced = {entry['npz'] for entry in manifest['files'].values()}
    features = index_dir / FEATURES_DIR
    if features.is_dir():
        for path in features.glob('*.npz'):
            if path.name not in referenced:
                path.unlink()


def build_index(audio_dir, index_dir, model='ctc', feature_fn: Optional[Callable] = None,
                progress=True) -> dict:
    """Create or update the index of all audio files below ``audio_dir``.

    Notebook: 06_Retrieval.ipynb

    Args:
        audio_dir (str or Path): Folder with recordings (searched recursively)
        index_dir (str or Path): Index directory (created if missing)
        model (str): Feature kind or model name (see :func:`feature_kind`) (Default value = 'ctc')
        feature_fn (callable): ``feature_fn(audio_path, kind) -> (chroma, times)``
            (Default value = None: ``compute_chroma(path, kind, cache=False)``)
        progress (bool): Progress bar on stderr (Default value = True)

    Returns:
        summary (dict): Counts ``added``, ``updated``, ``removed``, ``unchanged``, ``total``
    """
    from . import chroma
    audio_dir, index_dir = Path(audio_dir).resolve(), Path(index_dir)
    kind = feature_kind(model)
    if feature_fn is None:
        def feature_fn(path, kind):
            return chroma.compute_chroma(path, kind, cache=False)
    files = find_audio_files(audio_dir)
    params = feature_params(kind)
    manifest = _open_or_create(index_dir, kind, params, audio_dir)

    current = {p.relative_to(audio_dir).as_posix(): p for p in files}
    removed = [rel for rel in manifest['files'] if rel not in current]
    todo, unchanged = [], 0
    for rel, path in current.items():
        stat = path.stat()
        entry = manifest['files'].get(rel)
        if entry and entry['size'] == stat.st_size and entry['mtime'] == stat.st_mtime:
            unchanged += 1
            continue
        digest = file_hash(path)
        if entry and entry['sha256'] == digest:
            entry['mtime'], entry['size'] = stat.st_mtime, stat.st_size  # touched, same content
            unchanged += 1
            continue
        todo.append((rel, path, stat, digest, entry is not None))
    # check every file to be (re)computed before writing anything
    for _, path, _, _, _ in todo:
        check_audio_duration(path)

    for rel in removed:
        del manifest['files'][rel]
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / FEATURES_DIR).mkdir(exist_ok=True)
    _write_manifest(index_dir, manifest)

    iterator = todo
    if progress and todo:
        import sys
        from tqdm import tqdm
        iterator = tqdm(todo, desc=f'indexing ({kind})', file=sys.stderr, leave=False)
    last_write = time.monotonic()
    try:
        for rel, path, stat, digest, _ in iterator:
            chromagram, times = feature_fn(path, kind)
            chromagram = np.asarray(chromagram, dtype=np.float32)
            if chromagram.ndim != 2 or chromagram.shape[0] != 12 or chromagram.shape[1] == 0:
                raise CTCChromaError(f'{path}: no chroma frames computed '
                                     f'(shape {chromagram.shape})')
            key = hashlib.sha1(rel.encode()).hexdigest()[:12]
            npz = f'{key}-{digest[:16]}.npz'
            with atomic_path(index_dir / FEATURES_DIR / npz) as tmp:
                np.savez(tmp, chroma=chromagram, times=np.asarray(times, dtype=np.float32))
            manifest['files'][rel] = {'size': stat.st_size, 'mtime': stat.st_mtime,
                                      'sha256': digest, 'npz': npz,
                                      'frames': int(chromagram.shape[1]),
                                      'indexed_at': time.time()}
            # checkpoint: a killed run loses at most the last few seconds of work
            if time.monotonic() - last_write > MANIFEST_INTERVAL:
                _write_manifest(index_dir, manifest)
                last_write = time.monotonic()
    finally:
        # also on errors and interrupts: the manifest lists exactly the completed files
        _write_manifest(index_dir, manifest)
    _remove_unreferenced(index_dir, manifest)
    added = sum(1 for t in todo if not t[4])
    return {'added': added, 'updated': len(todo) - added, 'removed': len(removed),
            'unchanged': unchanged, 'total': len(manifest['files'])}


def load_index(index_dir, kind: Optional[str] = None) -> Tuple[dict, List[Tuple[str, np.ndarray]]]:
    """Read an index: its manifest and the chromagram of every recording.

    Notebook: 06_Retrieval.ipynb

    Args:
        index_dir (str or Path): Index directory
        kind (str): If given, the feature kind the index must hold (Default value = None)

    Returns:
        manifest (dict): See :func:`read_manifest`
        documents (list of (str, np.ndarray)): (relative path, chromagram 12 x T) pairs
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if kind is not None:
        kind = MODEL_ALIASES.get(kind, kind)
        if manifest['kind'] != kind:
            raise CTCChromaError(f'{index_dir}: index holds {manifest["kind"]!r} features, '
                                 f'not {kind!r}')
    if not manifest['files']:
        raise CTCChromaError(f'{index_dir}: the index holds no recordings')
    documents = []
    for rel in sorted(manifest['files']):
        path = index_dir / FEATURES_DIR / str(manifest['files'][rel].get('npz', ''))
        try:
            with np.load(path) as data:
                chromagram = np.asarray(data['chroma'], dtype=np.float32)
        except Exception as e:  # missing, truncated or foreign file
            raise CTCChromaError(f'{path}: corrupt index entry for {rel} '
                                 f'({type(e).__name__}: {e}); rebuild the index') from None
        if chromagram.ndim != 2 or chromagram.shape[0] != 12 or chromagram.shape[1] == 0:
            raise CTCChromaError(f'{path}: corrupt index entry for {rel} '
                                 f'(chroma shape {chromagram.shape})')
        documents.append((rel, chromagram))
    return manifest, documents
