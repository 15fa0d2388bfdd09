"""``ctc-chroma chroma``: chroma features of audio files, one ``.npz`` per file.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

Each ``DIR/<stem>.npz`` holds ``chroma`` (12 x T float32, unit-norm columns),
``times`` (T,) and, for learned models, ``probs`` (13 x T, blank last). Every input and
the model are checked before the first file is written. The feature kind and the
fingerprint of what computed it (``kind``, ``weights``) are recorded too, so that
``ctc-chroma index --from-features`` can index the files and refuse to mix kinds.
"""
from pathlib import Path

from ..errors import CTCChromaError
from ..kinds import COMPUTED_KINDS

def add_parser(subparsers):
    """Register the ``chroma`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'chroma', help='compute learned (or standard) chroma features of audio files',
        description='Compute chroma features (25 Hz) of audio files; writes DIR/<stem>.npz '
                    'with chroma (12 x T), probs (13 x T, blank last; learned models only), times (T).')
    parser.add_argument('audio', nargs='+', metavar='AUDIO', help='audio files')
    parser.add_argument('--model', default='teaching',
                        help="model: teaching (default), teaching-strong, teaching-linear, "
                             "teaching-KIND-SPLIT, published:<ID>, or a .weights.h5 file")
    parser.add_argument('--features', choices=COMPUTED_KINDS,
                        help='standard chroma baseline, or Basic Pitch notes folded to chroma, '
                             'instead of a learned model (no probs)')
    parser.add_argument('--out', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--no-cache', action='store_true', help='do not read or write caches')
    parser.set_defaults(func=run)
    return parser


def resolve_model(name):
    """The model behind ``--model``, checked before TensorFlow starts.

    Args:
        name (str): A learned kind or model name ('teaching', 'strong',
            'teaching-ctc-train234valid5', 'published:<ID>') or a ``.weights.h5`` file, see
            :func:`ctc_chroma_lib.kinds.resolve`

    Returns:
        spec (str): Model spec for :func:`ctc_chroma_lib.model.load_model`
        kind (Kind): The kind it computes

    Raises:
        CTCChromaError: Unknown name or published ID, weights not trained yet, a computed
            kind, or a weights file that does not exist
    """
    from ..kinds import resolve
    kind = resolve(name)
    if not kind.learned:
        raise CTCChromaError(f'{name!r} is computed without a model; use --features {name}')
    kind.check()
    return kind.model, kind


def run(args):
    """Compute and write the chroma of every input file.

    Args:
        args (argparse.Namespace): Parsed arguments (audio, model, features, out, no_cache)

    Returns:
        status (int): 0 on success
    """
    import numpy as np
    from tqdm import tqdm

    from .. import chroma as chroma_lib
    from ..audio import check_audio_duration
    from ..fileio import atomic_path
    from ..threads import map_in_order

    paths = [Path(p) for p in args.audio]
    stems = {}
    for path in paths:
        check_audio_duration(path)
        if path.stem in stems and stems[path.stem] != path.resolve():
            raise CTCChromaError(f'two inputs would write {path.stem}.npz: {stems[path.stem]} and {path}')
        stems[path.stem] = path.resolve()
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CTCChromaError(f'output path exists and is not a folder: {out_dir}')

    if args.features:
        from ..kinds import resolve
        kind = resolve(args.features)
    else:
        spec, kind = resolve_model(args.model)
        from ..model import load_model
        model = load_model(spec)
    provenance = chroma_lib.feature_file_provenance(kind)

    def compute(path):
        arrays = {}
        if args.features:
            chroma, times = chroma_lib.compute_chroma(path, args.features, cache=not args.no_cache)
        else:
            chroma, probs, times = chroma_lib.learned_chroma(path, model=model, cache=not args.no_cache,
                                                             smoothing=kind.smoothing)
            arrays['probs'] = probs
        arrays['chroma'] = np.asarray(chroma, dtype=np.float32)
        arrays['times'] = np.asarray(times)
        arrays.update(provenance)
        return arrays

    paths = list(dict.fromkeys(paths))
    # a few files at once on threads (same bits); each is written as soon as it is its turn
    results = map_in_order(compute, paths)
    try:
        for path, arrays in zip(paths, tqdm(results, total=len(paths), desc='chroma', unit='file')):
            with atomic_path(out_dir / f'{path.stem}.npz') as tmp:
                np.savez(tmp, **arrays)
    finally:
        results.close()
    return 0
