"""Execute the teaching notebooks in reading order and export them to HTML.

    python tools/run_notebooks.py --out build      # executed copies + build/html/index.html
    python tools/run_notebooks.py --in-place       # refresh the stored outputs (for nbval)

Notebooks run with the environment the nbval tests use (see ``notebook_environment``),
so stored outputs are exactly what a fresh run produces.
"""
import argparse
import html
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / 'notebooks'
CELL_TIMEOUT_S = 600


def notebook_environment():
    """Environment variables that make a notebook run quiet and deterministic."""
    return {'PYTHONHASHSEED': '0', 'TF_CPP_MIN_LOG_LEVEL': '3', 'TF_DETERMINISTIC_OPS': '1',
            'CUDA_VISIBLE_DEVICES': '', 'MPLBACKEND': 'module://matplotlib_inline.backend_inline'}


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    # no per-cell execution timestamps: they change on every run and would fill the history
    for cell in notebook.cells:
        cell.metadata.pop('execution', None)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name='python3',
                            resources={'metadata': {'path': str(path.parent)}},
                            store_widget_state=True, record_timing=False)
    client.execute()
    return canonical_outputs(notebook)


def canonical_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The executed notebook without what differs from run to run but means nothing.

    Consecutive stream outputs are merged (how a cell's prints are split into messages
    depends on flush timing), and the random ids of the widget models are replaced by ids
    numbered in the order the widgets were created, so that executing an unchanged
    notebook again leaves its file unchanged.
    """
    for cell in notebook.cells:
        if cell.cell_type != 'code':
            continue
        merged = []
        for output in cell.outputs:
            if (merged and output.output_type == 'stream' and merged[-1].output_type == 'stream'
                    and merged[-1].name == output.name):
                merged[-1].text += output.text
            else:
                merged.append(output)
        cell.outputs = merged
    widgets = notebook.metadata.get('widgets', {})
    state = widgets.get('application/vnd.jupyter.widget-state+json', {}).get('state', {})
    if not state:
        return notebook
    text = nbformat.writes(notebook)
    for number, model_id in enumerate(list(state), start=1):
        text = text.replace(model_id, f'{number:032x}')
    return nbformat.reads(text, as_version=4)


def write_index(html_dir: Path, pages):
    items = '\n'.join(f'<li><a href="{html.escape(name)}">{html.escape(title)}</a></li>'
                      for name, title in pages)
    (html_dir / 'index.html').write_text(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<title>CTC chroma teaching companion</title></head>\n<body>\n'
        '<h1>CTC chroma teaching companion</h1>\n'
        '<p>Learned chroma features from weakly aligned score-audio pairs for cross-modal '
        'theme retrieval (Zalkow &amp; Müller, ISMIR 2020).</p>\n'
        f'<ol>\n{items}\n</ol>\n</body></html>\n')


def notebook_title(notebook, default):
    for cell in notebook.cells:
        if cell.cell_type == 'markdown':
            for line in cell.source.splitlines():
                if line.startswith('# '):
                    return line[2:].strip()
    return default


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--out', type=Path, help='folder for executed copies and html/')
    group.add_argument('--in-place', action='store_true', help='overwrite the stored outputs')
    parser.add_argument('notebooks', nargs='*', type=Path, help='default: notebooks/*.ipynb')
    args = parser.parse_args(argv)

    paths = sorted(args.notebooks or NOTEBOOK_DIR.glob('*.ipynb'))
    if not paths:
        print('No notebooks in notebooks/ yet: nothing to execute.')
        return 0
    os.environ.update(notebook_environment())
    exporter = HTMLExporter()
    pages = []
    for path in paths:
        start = time.perf_counter()
        print(f'executing {path.name} ...', flush=True)
        notebook = execute(path)
        if args.in_place:
            nbformat.write(notebook, path)
        else:
            executed_dir, html_dir = args.out / 'notebooks', args.out / 'html'
            executed_dir.mkdir(parents=True, exist_ok=True)
            html_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, executed_dir / path.name)
            body, _ = exporter.from_notebook_node(notebook)
            html_name = path.with_suffix('.html').name
            (html_dir / html_name).write_text(body)
            pages.append((html_name, notebook_title(notebook, path.stem)))
        print(f'  done in {time.perf_counter() - start:.1f} s')
    if pages:
        write_index(args.out / 'html', pages)
        print(f'HTML: {args.out / "html" / "index.html"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
