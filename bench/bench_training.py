"""Training throughput: the project's trainer against a plain Keras ``fit`` of the same model.

Both train the same model with the CTC loss on the same examples (HCQT segments with the
length distribution of the teaching dataset's weak segments; content does not change the
cost). The plain baseline is what a Keras example would do: random 250-frame crops in
batches of 8, default ``compile``. The trainer uses length-grouped batches of whole
segments padded to a few shapes, runs the model on fixed-size windows of them
(``training.windowed_model``) and computes in bfloat16 where the CPU supports it; it is
timed as it runs by default (op determinism, no XLA), with ``--jit`` (XLA, no op
determinism: Keras compiles with XLA only then), and with ``--jit --weight-average 0.995``
(the optimizer also updates a moving average of the weights every step). The trainer's
optimizer is the recipe's (``training.make_optimizer``: its learning-rate schedule and
gradient clipping); the plain baseline uses Keras's default Adam.
Throughput counts real frames (padding excluded); medians over the timed epochs. Every
configuration trains in one ``fit`` call, as the trainer does, timed per epoch by the
trainer's own clock (``training.epoch_timer``); the first epoch compiles and is not counted.
Timing one ``fit`` call per epoch would also time the end of each call: with ``--jit``,
TensorFlow then sometimes spends about 8 s releasing the ``tf.data`` pipeline, which made
the rate of one configuration differ by 1.7x from one call to the next.

    .venv/bin/python bench/bench_training.py [--epochs 3]
"""
import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def segment_lengths(n_items):
    """Weak-segment lengths (frames) of the teaching dataset, or a stand-in distribution."""
    try:
        from ctc_chroma_lib.dataset import load_dataset
        from ctc_chroma_lib.constants import FEATURE_RATE
        items = [it for it in load_dataset() if it.fold in (1, 2, 3)]
        lengths = [int((it.weak_alignment[1] - it.weak_alignment[0]) * FEATURE_RATE) + 1
                   for it in items]
        source = 'teaching dataset folds 1-3'
    except Exception:  # noqa: BLE001 - a benchmark falls back instead of failing
        lengths = list(np.random.default_rng(0).integers(100, 400, size=n_items))
        source = 'uniform 100-400 frames (dataset unavailable)'
    rng = np.random.default_rng(0)
    lengths = [lengths[i] for i in rng.permutation(len(lengths))[:n_items]]
    return lengths, source


def make_examples(lengths):
    from ctc_chroma_lib import batching
    rng = np.random.default_rng(1)
    examples = []
    for i, t in enumerate(lengths):
        x = rng.random((t, 216, 6), dtype=np.float32)
        labels = rng.integers(0, 12, size=max(2, t // 12)).astype(np.int32)
        examples.append(batching.Example(str(i), x, labels, np.zeros(t, np.int32)))
    return examples


def plain_batches(examples, crop=250, batch=8):
    """Random crops of ``crop`` frames, ``batch`` per batch (labels cut proportionally)."""
    rng = np.random.default_rng(2)
    xs, ys = [], []
    for e in examples:
        t = len(e.x)
        start = int(rng.integers(0, max(1, t - crop + 1)))
        x = np.zeros((crop,) + e.x.shape[1:], np.float32)
        x[:min(crop, t)] = e.x[start:start + crop]
        n_labels = max(1, round(len(e.labels) * min(crop, t) / t))
        y = np.zeros(2 + 40, np.int32)
        y[0], y[1], y[2:2 + n_labels] = min(crop, t), n_labels, e.labels[:n_labels]
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys), batch


def time_epochs(model, data, epochs, frames_per_epoch, **fit_args):
    """Median real frames per second of ``model.fit`` over ``epochs`` timed epochs of one
    call (the first, which compiles, is not counted)."""
    from ctc_chroma_lib import training
    timer = training.epoch_timer(frames_per_epoch)
    model.fit(*data, epochs=epochs + 1, verbose=0, callbacks=[timer], **fit_args)
    return float(np.median(timer.rates[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--items', type=int, default=48)
    parser.add_argument('--epochs', type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    from ctc_chroma_lib import batching, losses, training
    from ctc_chroma_lib.model import build_model

    lengths, source = segment_lengths(args.items)
    examples = make_examples(lengths)
    real_frames = sum(lengths)
    print(f'{len(examples)} segments ({source}), {real_frames} frames, '
          f'{args.epochs} timed epochs (median), {os.cpu_count()} CPU cores')

    keras.utils.set_random_seed(0)
    x, y, batch = plain_batches(examples)
    plain = build_model()
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.ctc_loss)
    plain_frames = int(y[:, 0].sum())
    plain_rate = time_epochs(plain, (x, y), args.epochs, plain_frames, batch_size=batch)

    config = training.TrainingConfig()
    precision = training.resolve_precision(config.precision)
    rows = [('plain Keras fit (8 x 250-frame crops)', plain_rate)]
    # the trainer's default, --jit (XLA), and --jit with a moving average of the weights
    for jit, average in ((False, 0.0), (True, 0.0), (True, 0.995)):
        training._set_determinism(0, ops=not jit)
        trainer = training.windowed_model(training.build_training_model(precision))
        data, steps = batching.make_tf_dataset(examples, 'ctc', config.batch_frames, seed=0)
        run = dataclasses.replace(config, jit_compile=jit, weight_average=average)
        trainer.compile(optimizer=training.make_optimizer(run, steps), loss=losses.ctc_loss,
                        jit_compile=jit)
        rate = time_epochs(trainer, (data,), args.epochs, real_frames, steps_per_epoch=steps)
        rows.append((f'trainer ({training.TRAINING_WINDOW}-frame windows, {precision}'
                     f'{", --jit" if jit else ""}'
                     f'{f", --weight-average {average}" if average else ""})',
                     rate))

    print(f'{"training": <72}{"frames/s":>10}')
    for name, rate in rows:
        print(f'{name: <72}{rate:>10.0f}')
    print(f'speedup over plain fit: trainer {rows[1][1] / rows[0][1]:.2f}x, with --jit '
          f'{rows[2][1] / rows[0][1]:.2f}x; --jit over the trainer {rows[2][1] / rows[1][1]:.2f}x '
          f'(tensorflow {tf.__version__}); the weight average '
          f'changes --jit\'s throughput by {rows[3][1] / rows[2][1] - 1:+.0%}')


if __name__ == '__main__':
    main()
