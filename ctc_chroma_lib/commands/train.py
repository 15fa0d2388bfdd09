"""``ctc-chroma train``: train the teaching models (CTC, strong, linear) on a dataset.

Notebook: 04_Model_and_Training.ipynb
"""
import sys
from dataclasses import fields

from ..errors import CTCChromaError
from ..kinds import SPLITS, TRAINING_KINDS, parse_split, split_model_name
from ..training import KIND_DEFAULTS, MONITORS, WEIGHTS_DIR, TrainingConfig


def _folds(text):
    return tuple(int(f) for f in text.split(',') if f.strip())


def _kind_default(key):
    """'default: 20 for ctc, 8 for strong, 8 for linear', from training.KIND_DEFAULTS."""
    return 'default: ' + ', '.join(f'{values.get(key, getattr(TrainingConfig, key))!r} for {kind}'
                                   for kind, values in KIND_DEFAULTS.items())


def add_parser(subparsers):
    defaults = TrainingConfig()
    parser = subparsers.add_parser(
        'train', help='train a chroma model from weakly aligned score-audio pairs',
        description='Train the reduced deep-salience chroma model with the CTC loss on weak '
                    'alignments (kind ctc), or frame-wise on strong alignments (strong) or on '
                    'linearly stretched weak alignments (linear). Writes <name>.weights.h5, '
                    '.json, .log.csv and .png to --out; an interrupted run resumes.')
    parser.add_argument('--kind', choices=TRAINING_KINDS, default='ctc')
    parser.add_argument('--dataset', default=None,
                        help='dataset folder (default: the teaching dataset)')
    parser.add_argument('--out', default=str(WEIGHTS_DIR),
                        help='output folder (default: the package weights folder)')
    parser.add_argument('--name', default=None, help='output base name (default teaching-KIND)')
    parser.add_argument('--split', choices=SPLITS, default=None,
                        help='a cross-validation split (sets the folds and the default name '
                             'teaching-KIND-SPLIT; train123valid4 is the shipped teaching-KIND)')
    parser.add_argument('--train-folds', type=_folds, default=None,
                        help=f'default: {",".join(map(str, defaults.train_folds))}')
    parser.add_argument('--valid-folds', type=_folds, default=None,
                        help=f'default: {",".join(map(str, defaults.valid_folds))}')
    parser.add_argument('--epochs', type=int, default=None, help=_kind_default('epochs'))
    parser.add_argument('--batch-frames', type=int, default=defaults.batch_frames)
    parser.add_argument('--learning-rate', type=float, default=None,
                        help=_kind_default('learning_rate'))
    parser.add_argument('--patience', type=int, default=None,
                        help='epochs without improvement before stopping; '
                             + _kind_default('patience'))
    parser.add_argument('--monitor', choices=MONITORS, default=None,
                        help='what selects the shipped epoch; ' + _kind_default('monitor'))
    parser.add_argument('--margin', type=float, default=defaults.margin,
                        help='seconds added around the weak segment')
    parser.add_argument('--random-margin', type=float, default=None,
                        help='up to this many seconds more on either side, drawn every epoch; '
                             + _kind_default('random_margin'))
    parser.add_argument('--pitch-shift', type=int, default=None,
                        help='random transposition of every example by up to this many '
                             'semitones; ' + _kind_default('pitch_shift'))
    parser.add_argument('--warmup-epochs', type=float, default=None,
                        help='linear learning-rate warm-up; ' + _kind_default('warmup_epochs'))
    parser.add_argument('--lr-decay', choices=('constant', 'cosine'), default=None,
                        help='learning rate after the warm-up; ' + _kind_default('lr_decay'))
    parser.add_argument('--clipnorm', type=float, default=None,
                        help='clip every gradient to this norm; ' + _kind_default('clipnorm'))
    parser.add_argument('--weight-average', type=float, default=None, metavar='MOMENTUM',
                        help='validate and ship a moving average of the weights with this '
                             'momentum per step (e.g. 0.99), 0 for none; '
                             + _kind_default('weight_average'))
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--init', default=None,
                        help='initial weights: "" for random (the paper), blank-prior (random, the '
                             'blank starting at its prior), harmonic-prior, or a model spec; '
                             + _kind_default('init'))
    parser.add_argument('--jit', dest='jit_compile', action='store_true',
                        help='compile the training step with XLA: about 1.7x faster on CPUs '
                             'without bfloat16; compiles once per batch shape, seeded but '
                             'without op determinism')
    parser.add_argument('--precision', choices=('auto', 'float32', 'mixed_bfloat16'),
                        default=defaults.precision,
                        help='compute precision (auto: bfloat16 where the CPU supports it)')
    parser.add_argument('--keep-epochs', type=_folds, default=(), metavar='N,N,...',
                        help='also keep the weights after these epochs as NAME.epochN.weights.h5')
    parser.add_argument('--restart', action='store_true',
                        help='discard the backup of an interrupted run and start over')
    parser.set_defaults(func=run)


def run(args):
    from ..dataset import load_dataset
    from ..training import split_items, train

    defaults = TrainingConfig()
    if args.split:
        if args.train_folds is not None or args.valid_folds is not None:
            raise CTCChromaError('--split sets the folds; give either --split or '
                                 '--train-folds/--valid-folds')
        args.train_folds, args.valid_folds, _ = parse_split(args.split)
        args.name = args.name or split_model_name(args.kind, args.split)
    args.train_folds = args.train_folds or defaults.train_folds
    args.valid_folds = args.valid_folds or defaults.valid_folds
    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(TrainingConfig)})
    items = load_dataset(args.dataset)
    train_items, valid_items = split_items(items, config.train_folds, config.valid_folds)
    summary = train(config, train_items, valid_items, args.out, name=args.name,
                    resume=not args.restart, keep_epochs=args.keep_epochs)
    mrr = summary.get('best_val_mrr')
    print(f"{summary['name']}: best validation loss {summary['best_val_loss']:.3f}"
          f"{'' if mrr is None else f', validation MRR {mrr:.3f}'} at epoch "
          f"{summary['best_epoch']} of {summary['epochs_run']}; "
          f"{summary['median_train_frames_per_second']} frames/s; "
          f"weights in {args.out}/{summary['weights']}", file=sys.stdout)
    return 0
