"""Archive scale: ingest time, query latency, memory and agreement of the two-stage search.

Synthetic indexes of 1, 10, 100 (and 1000) hours are built from the teaching set's own
learned chroma (kind ``ctc``): "tracks" of about five minutes, each a concatenation of
recordings of folds 1-4 in random transpositions (cyclic chroma shifts), plus the
recordings of the first ``--queries`` fold-5 items, planted unchanged. Those items' themes
are the queries; each one's relevant recording is its planted one.

For every size:

- *ingest*: ``build_index(..., from_features=True)`` of the tracks' ``.npz`` files (as
  ``ctc-chroma chroma`` writes them), packing included; disk use of the index;
- *query*: one process per search mode opens the index and answers the batch of themes
  (``search.search``, two-stage with the default candidates, and ``exact=True``);
  wall time per query (the batch's total, index opening included, divided by its size)
  and the process's peak RSS;
- *agreement*: the share of the exact top 10 that the two-stage top 10 also holds, and the
  share of themes whose planted recording is in the two-stage top 10;
- *float16*: the share of themes whose exact top 10 (same order) from the float16 pack is
  the one from the float32 feature files, which a third process reads one by one as queries
  did before the pack (its time and memory are the last columns), and the largest difference
  between the two lists' costs at the same rank (*f16 dcost*): where the lists differ only
  by near-ties, it stays at the size of float16 rounding.

*Rivals* (``--rivals``, no archive built): how many distinct filler passages (recording,
transposition) beat each planted recording, and how often an archive of each size repeats
them, which is what limits *planted@10* in these synthetic archives.

    .venv/bin/python bench/bench_scale.py [--hours 1,10,100] [--queries 20] [--workdir DIR]
    .venv/bin/python bench/bench_scale.py --rivals [--hours 1,10,100,1000]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TRACK_FRAMES = 7500
"""Frames of a synthetic track (five minutes at 25 Hz)."""


def teaching_chroma():
    """Learned chroma (kind ctc) of every teaching recording, by fold."""
    from ctc_chroma_lib.chroma import compute_chroma
    from ctc_chroma_lib.dataset import load_dataset
    items = load_dataset()
    return items, {it.mtd_id: compute_chroma(it.audio_path, 'ctc')[0] for it in items}


def write_archive(folder, hours, items, chroma, n_queries, seed=0):
    """The ``.npz`` files of a synthetic archive; returns the planted items."""
    from ctc_chroma_lib.chroma import feature_file_provenance
    rng = np.random.default_rng(seed)
    fillers = [chroma[it.mtd_id] for it in items if it.fold != 5]
    planted = [it for it in items if it.fold == 5][:n_queries]
    provenance = feature_file_provenance('ctc')
    folder.mkdir(parents=True)

    def write(name, Y):
        np.savez(folder / f'{name}.npz', chroma=Y.astype(np.float32),
                 times=(np.arange(Y.shape[1]) / 25.0).astype(np.float32), **provenance)

    for it in planted:
        write(f'planted_{it.mtd_id}', chroma[it.mtd_id])
    target = hours * 3600 * 25 - sum(chroma[it.mtd_id].shape[1] for it in planted)
    written, track = 0, 0
    while written < target:
        parts, frames = [], 0
        while frames < min(TRACK_FRAMES, target - written):
            Y = np.roll(fillers[rng.integers(len(fillers))], rng.integers(12), axis=0)
            parts.append(Y)
            frames += Y.shape[1]
        write(f'track_{track:06d}', np.concatenate(parts, axis=1))
        written += frames
        track += 1
    return planted


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def du(path):
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file())


def query_worker(index, ids, mode):
    """Answer the themes of the items ``ids`` on ``index``; print JSON (run in a subprocess)."""
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.index import open_index
    from ctc_chroma_lib.query import build_queries
    from ctc_chroma_lib.search import search

    items = {it.mtd_id: it for it in load_dataset(folds=(5,))}
    queries = [build_queries(items[i].theme) for i in ids]
    started = time.perf_counter()
    if mode == 'files':  # the feature files, float32, as queries read them before the pack
        from ctc_chroma_lib.index import load_index
        features, note = load_index(index)[1], None
    else:
        _, features, note = open_index(index)
    opened = time.perf_counter() - started
    results, costs, seconds = [], [], []
    for X in queries:
        t0 = time.perf_counter()
        matches, info = search(features, X, top=10, exact=(mode == 'exact'))
        seconds.append(time.perf_counter() - t0)
        results.append([m.name for m in matches])
        costs.append([float(m.cost) for m in matches])
    total = time.perf_counter() - started
    print(json.dumps({'mode': mode, 'open_s': opened, 'total_s': total, 'per_query_s': seconds,
                      'results': results, 'costs': costs, 'note': note, 'stage': info['stage'],
                      'matched_exactly': info['candidates'],
                      'peak_rss_mb': peak_rss_mb()}))


def run_queries(index, ids, mode):
    out = subprocess.run([sys.executable, __file__, '--query-worker', str(index), mode, *ids],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_size(workdir, hours, items, chroma, n_queries):
    from ctc_chroma_lib.index import build_index
    folder = workdir / f'{hours}h'
    if folder.exists():
        shutil.rmtree(folder)
    planted = write_archive(folder / 'features', hours, items, chroma, n_queries)
    started = time.perf_counter()
    summary = build_index(folder / 'features', folder / 'index', model='ctc',
                          from_features=True, progress=False)
    ingest = time.perf_counter() - started
    ids = [it.mtd_id for it in planted]
    two = run_queries(folder / 'index', ids, 'two-stage')
    exact = run_queries(folder / 'index', ids, 'exact')
    files = run_queries(folder / 'index', ids, 'files')
    agreement = np.mean([len(set(a) & set(b)) / len(b)
                         for a, b in zip(two['results'], exact['results'])])
    found = np.mean([f'planted_{i}.npz' in r for i, r in zip(ids, two['results'])])
    found_exact = np.mean([f'planted_{i}.npz' in r for i, r in zip(ids, exact['results'])])
    pack = du(folder / 'index' / 'pack')
    row = {'hours': hours, 'recordings': summary['total'], 'ingest_s': ingest,
           'index_mb': du(folder / 'index') / 2**20, 'pack_mb': pack / 2**20,
           'two_stage_s_per_query': two['total_s'] / len(ids),
           'two_stage_median_search_s': float(np.median(two['per_query_s'])),
           'exact_s_per_query': exact['total_s'] / len(ids),
           'exact_median_search_s': float(np.median(exact['per_query_s'])),
           'two_stage_rss_mb': two['peak_rss_mb'], 'exact_rss_mb': exact['peak_rss_mb'],
           'top10_agreement': float(agreement), 'planted_in_top10': float(found),
           'planted_in_top10_exact': float(found_exact), 'candidates': two['matched_exactly'],
           'files_s_per_query': files['total_s'] / len(ids), 'files_rss_mb': files['peak_rss_mb'],
           'float16_top10_identical': float(np.mean([a == b for a, b in
                                                      zip(exact['results'], files['results'])])),
           'float16_max_cost_difference': float(max(
               np.max(np.abs(np.subtract(a, b))) for a, b in zip(exact['costs'], files['costs'])))}
    shutil.rmtree(folder / 'features')
    shutil.rmtree(folder)
    return row


def distinct_rivals(items, chroma, n_queries):
    """How many *distinct* filler passages beat each planted recording, and how often the
    archives repeat each of them.

    The fillers are the recordings of folds 1-4 in 12 transpositions; an archive of H hours
    holds each of these variants about ``H * 3600 * 25 / variant_frames`` times. A variant
    whose best match with a theme costs less than the planted recording's therefore takes
    about that many places in the top 10 of an H-hour archive. Returns ``(rivals, variant_frames)``: per planted
    theme, the number of variants (recording, transposition) that beat its planted recording
    (the same queries and step sizes as the search), and the frames of all variants.
    """
    from ctc_chroma_lib.query import build_queries
    from ctc_chroma_lib.retrieval import document_costs
    fillers = [(it.mtd_id, chroma[it.mtd_id]) for it in items if it.fold != 5]
    planted = [it for it in items if it.fold == 5][:n_queries]
    rivals = []
    for it in planted:
        queries = build_queries(it.theme)
        own = document_costs(queries, [(it.mtd_id, chroma[it.mtd_id])])[0]
        beaten = 0
        for shift in range(12):
            shifted = [(factor, np.roll(X, shift, axis=0)) for factor, X in queries]
            beaten += int(np.sum(document_costs(shifted, fillers) < own))
        rivals.append(beaten)
    return rivals, 12 * sum(Y.shape[1] for _, Y in fillers)


def report_rivals(items, chroma, n_queries, hours):
    rivals, variant_frames = distinct_rivals(items, chroma, n_queries)
    print(f'distinct filler passages (fold 1-4 recordings x 12 transpositions: '
          f'{variant_frames / 25 / 3600:.1f} h) that beat the planted recording, per theme: '
          f'{sorted(rivals)}')
    for top in (1, 10):
        print(f'  planted recording among the top {top} of the distinct passages: '
              f'{np.mean([r < top for r in rivals]):.2f} of the themes')
    for h in hours:
        print(f'  {h} h archive: each passage about {h * 3600 * 25 / variant_frames:.1f} times')
    return rivals


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    hours = [r['hours'] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    curves = [(ax1, 'two_stage_s_per_query', 'o-', 'two-stage'),
              (ax1, 'exact_s_per_query', 's--', 'exact (--exact)'),
              (ax2, 'two_stage_rss_mb', 'o-', 'two-stage, peak RSS'),
              (ax2, 'exact_rss_mb', 's--', 'exact, peak RSS'),
              (ax2, 'index_mb', '^:', 'index on disk')]
    for ax, key, style, label in curves:
        ax.loglog(hours, [r[key] for r in rows], style, label=label)
    for ax, ylabel in ((ax1, 'seconds per query (batch of 20)'), (ax2, 'MB')):
        ax.set_xlabel('archive (hours of audio)')
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which='both')
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hours', default='1,10,100')
    parser.add_argument('--queries', type=int, default=20)
    parser.add_argument('--workdir', default=None, help='scratch folder (default: a temporary one)')
    parser.add_argument('--json', default=None, help='also write the rows as JSON')
    parser.add_argument('--plot', default=None, help='write the cost plot (PNG)')
    parser.add_argument('--rivals', action='store_true',
                        help='only count the distinct filler passages that beat each planted '
                             'recording (no archives are built)')
    parser.add_argument('--query-worker', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query_worker:
        index, mode, *ids = args.query_worker
        return query_worker(index, ids, mode)
    import tempfile
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix='bench_scale_'))
    items, chroma = teaching_chroma()
    hours_list = [float(h) if '.' in h else int(h) for h in args.hours.split(',')]
    if args.rivals:
        return report_rivals(items, chroma, args.queries, hours_list)
    print(f'{os.cpu_count()} CPU cores; teaching chroma of {len(items)} recordings; '
          f'{args.queries} themes per batch', flush=True)
    header = (f'{"hours":>6} {"recs":>7} {"ingest s":>9} {"index MB":>9} {"2-stage s/q":>11} '
              f'{"exact s/q":>9} {"RSS MB 2st/ex":>14} {"top10 agree":>11} {"planted@10":>10} '
              f'{"f16=f32":>7} {"f16 dcost":>9} {"files s/q":>9} {"files MB":>8}')
    print(header, flush=True)
    rows = []
    for hours in hours_list:
        r = bench_size(workdir, hours, items, chroma, args.queries)
        rows.append(r)
        print(f'{r["hours"]:>6} {r["recordings"]:>7} {r["ingest_s"]:>9.1f} {r["index_mb"]:>9.0f} '
              f'{r["two_stage_s_per_query"]:>11.3f} {r["exact_s_per_query"]:>9.3f} '
              f'{r["two_stage_rss_mb"]:>6.0f}/{r["exact_rss_mb"]:<7.0f} '
              f'{r["top10_agreement"]:>11.3f} {r["planted_in_top10"]:>10.2f} '
              f'{r["float16_top10_identical"]:>7.2f} {r["float16_max_cost_difference"]:>9.1e} '
              f'{r["files_s_per_query"]:>9.3f} '
              f'{r["files_rss_mb"]:>8.0f}', flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + '\n')
    if args.plot:
        plot(rows, args.plot)


if __name__ == '__main__':
    main()
