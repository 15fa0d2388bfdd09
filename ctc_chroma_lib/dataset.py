"""Load the teaching dataset (or a local copy of the Musical Theme Dataset) as items.

Notebook: 01_Task_and_Data.ipynb

Expected layout of a dataset folder ``root`` (the teaching dataset ``data/MTD-teaching``
follows it; a local copy of the real MTD is read the same way, if arranged like this)::

    root/<name>.csv            metadata table, semicolon-separated, one row per item; the
                               file is MTD-teaching.csv, or else MTD.csv, or else the MTD
                               release's 03_MTD-medium.csv / 02_MTD-small.csv /
                               01_MTD-mini.csv, or else the only *.csv file, directly in
                               root or in root/data_META
    root/data_AUDIO/<MTDID>.ogg|.wav|.flac|.mp3   the recording (excerpt) of the item
                               (``<MTDID>_<anything>.<ext>`` is found as well)
    root/data_CSV/<MTDID>.csv  the theme as a note list, columns Start;Duration;Pitch
                               (score seconds), optionally StartBeat;DurationBeat
    root/data_ALIGNMENT/<MTDID>.csv   optional strong alignment, columns Start;End;Pitch
                               (seconds in the recording); items without it have
                               ``strong_alignment=None``

Required metadata columns: ``MTDID; WorkID; ComposerID; StartTime; EndTime`` (seconds, or
``MM:SS.s`` as in the MTD release). Optional:
``WorkTitle`` (default: WorkID) and ``Fold`` (1..5; default: derived from the WorkID, so
that no work is in two folds). All columns are kept in ``Item.metadata`` as strings.
The real MTD's own metadata and folder names (its release uses the MTDID, WorkID,
ComposerID, StartTime and EndTime columns and per-modality ``data_*`` folders) may need
renaming to this layout; the error messages name what is missing.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from .audio import AUDIO_EXTENSIONS
from .constants import N_FOLDS, PROJECT_DIR
from .errors import CTCChromaError
from .themes import (ThemeNote, check_monophonic, read_alignment_csv, read_semicolon_csv,
                     read_theme_csv)

DEFAULT_DATASET = PROJECT_DIR / 'data' / 'MTD-teaching'
REQUIRED_COLUMNS = ('MTDID', 'WorkID', 'ComposerID', 'StartTime', 'EndTime')
METADATA_NAMES = ('MTD-teaching.csv', 'MTD.csv', '03_MTD-medium.csv', '02_MTD-small.csv',
                  '01_MTD-mini.csv')
"""Metadata file names looked for, in this order (the last three are the MTD release's)."""


@dataclass(frozen=True)
class Item:
    """One theme occurrence: a theme, a recording and their alignment.

    Attributes:
        mtd_id (str): Item identifier (MTDID), e.g. 'MTDT0001'
        work_id (str): Work identifier (one score / movement)
        composer (str): ComposerID
        title (str): Work title
        audio_path (Path): The recording of the item
        theme (tuple of ThemeNote): Monophonic theme in score seconds, starting at 0
        weak_alignment (tuple of float): (StartTime, EndTime) of the theme in the audio (s)
        strong_alignment (tuple of ThemeNote): Theme notes in recording seconds, or None
        fold (int): Cross-validation fold 1..5 (split by work)
        metadata (dict): All metadata columns of the item (strings)
    """

    mtd_id: str
    work_id: str
    composer: str
    title: str
    audio_path: Path
    theme: Tuple[ThemeNote, ...]
    weak_alignment: Tuple[float, float]
    strong_alignment: Optional[Tuple[ThemeNote, ...]]
    fold: int
    metadata: dict


def find_metadata_file(root: Path) -> Path:
    """The metadata table of a dataset folder (see the module docstring for the search order).

    Args:
        root (Path): Dataset folder

    Returns:
        path (Path): Path of the metadata CSV file
    """
    root = Path(root)
    if not root.is_dir():
        raise CTCChromaError(f'{root}: dataset folder not found (run `make data` to generate '
                             f'the teaching dataset)')
    for folder in (root, root / 'data_META'):
        for name in METADATA_NAMES:
            if (folder / name).is_file():
                return folder / name
    for folder in (root, root / 'data_META'):
        candidates = sorted(folder.glob('*.csv')) if folder.is_dir() else []
        if len(candidates) == 1:
            return candidates[0]
    raise CTCChromaError(f'{root / "MTD-teaching.csv"}: metadata file not found (expected '
                         f'MTD-teaching.csv, MTD.csv or a single *.csv in {root} or '
                         f'{root / "data_META"})')


def read_metadata(path: Path) -> List[dict]:
    """Read the semicolon-separated metadata table and check its columns.

    Args:
        path (Path): Metadata CSV file

    Returns:
        rows (list of dict): One dict of strings per item
    """
    return read_semicolon_csv(path, REQUIRED_COLUMNS)


def parse_seconds(text):
    """Seconds from ``'12.5'``, ``'01:02.5'`` (MM:SS.s, as in the MTD release) or ``'1:01:02'``."""
    seconds = 0.0
    for part in str(text).strip().split(':'):
        seconds = seconds * 60 + float(part)
    if seconds != seconds or seconds < 0 or seconds == float('inf'):
        raise ValueError(text)
    return seconds


def _float(row, column, path):
    try:
        return parse_seconds(row[column])
    except (TypeError, ValueError):
        raise CTCChromaError(f'{path}: item {row.get("MTDID")}: invalid {column} '
                             f'{row[column]!r}') from None


def _default_fold(work_id: str) -> int:
    """A stable fold for metadata without a Fold column (hash of the WorkID)."""
    return int(hashlib.sha256(work_id.encode()).hexdigest(), 16) % N_FOLDS + 1


def _audio_file(root: Path, mtd_id: str) -> Path:
    for ext in AUDIO_EXTENSIONS:
        path = root / 'data_AUDIO' / f'{mtd_id}{ext}'
        if path.is_file():
            return path
    for ext in AUDIO_EXTENSIONS:
        matches = sorted((root / 'data_AUDIO').glob(f'{mtd_id}_*{ext}'))
        if matches:
            return matches[0]
    raise CTCChromaError(f'{root / "data_AUDIO" / (mtd_id + ".ogg")}: audio file of item '
                         f'{mtd_id} not found (also tried {", ".join(AUDIO_EXTENSIONS[1:])})')


def _item(root: Path, row: dict, metadata_path: Path) -> Item:
    mtd_id = row['MTDID']
    theme_path = root / 'data_CSV' / f'{mtd_id}.csv'
    if not theme_path.is_file():
        theme_path = next(iter(sorted((root / 'data_CSV').glob(f'{mtd_id}_*.csv'))), theme_path)
    if not theme_path.is_file():
        raise CTCChromaError(f'{theme_path}: theme note list of item {mtd_id} not found')
    theme = tuple(read_theme_csv(theme_path))
    check_monophonic(theme, str(theme_path))
    alignment_path = root / 'data_ALIGNMENT' / f'{mtd_id}.csv'
    strong = tuple(read_alignment_csv(alignment_path)) if alignment_path.is_file() else None
    start, end = _float(row, 'StartTime', metadata_path), _float(row, 'EndTime', metadata_path)
    if not end > start:
        raise CTCChromaError(f'{metadata_path}: item {mtd_id}: EndTime {end} is not after '
                             f'StartTime {start}')
    fold_text = (row.get('Fold') or '').strip()
    if fold_text:
        try:
            fold = int(fold_text)
        except ValueError:
            fold = -1
        if not 1 <= fold <= N_FOLDS:
            raise CTCChromaError(f'{metadata_path}: item {mtd_id}: invalid Fold {fold_text!r}')
    else:
        fold = _default_fold(row['WorkID'])
    return Item(mtd_id=mtd_id, work_id=row['WorkID'], composer=row['ComposerID'],
                title=row.get('WorkTitle') or row['WorkID'], audio_path=_audio_file(root, mtd_id),
                theme=theme, weak_alignment=(start, end), strong_alignment=strong, fold=fold,
                metadata=dict(row))


def load_dataset(root=None, *, folds: Optional[Iterable[int]] = None) -> List[Item]:
    """Load all items of a dataset folder (default: the teaching dataset).

    Notebook: 01_Task_and_Data.ipynb

    Args:
        root (str or Path): Dataset folder; None for :data:`DEFAULT_DATASET` (Default value = None)
        folds (iterable of int): Keep only items of these folds (1..5); None for all
            (Default value = None)

    Returns:
        items (list of Item): Items sorted by MTDID

    Raises:
        CTCChromaError: Folds outside 1-5, a missing or malformed metadata table
    """
    root = Path(root) if root is not None else DEFAULT_DATASET
    metadata_path = find_metadata_file(root)
    rows = read_metadata(metadata_path)
    wanted = None if folds is None else {int(f) for f in folds}
    if wanted is not None and not wanted <= set(range(1, N_FOLDS + 1)):
        raise CTCChromaError(f'invalid fold(s) {sorted(wanted - set(range(1, N_FOLDS + 1)))} '
                             f'(folds are 1..{N_FOLDS})')
    items = [_item(root, row, metadata_path) for row in rows]
    if wanted is not None:
        items = [item for item in items if item.fold in wanted]
    return sorted(items, key=lambda item: item.mtd_id)
