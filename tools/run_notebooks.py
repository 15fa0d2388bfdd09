"""Execute the teaching notebooks in reading order and export them to HTML.

    python tools/run_notebooks.py --out build      # executed copies + build/html/index.html
    python tools/run_notebooks.py --in-place       # refresh the stored outputs (for nbval)
    python tools/run_notebooks.py --html-only --out build   # export the stored outputs

Notebooks run with the environment the nbval tests use (see ``notebook_environment``),
so stored outputs are exactly what a fresh run produces.

The HTML pages are for reading offline: formulas are typeset by a copy of MathJax beside
them (``build/html/mathjax``, from the jupyter-server-mathjax package), links between
notebooks point to their pages, every page has previous / next links, and no page loads a
script from the network (:func:`network_references` finds any). The explorers' widgets
need a running kernel, so a page shows only their static figure, which the notebook
displays in the next cell.
"""
import argparse
import copy
import html
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / 'notebooks'
TEMPLATE_DIR = Path(__file__).resolve().parent / 'templates'
CELL_TIMEOUT_S = 600
MATHJAX_URL = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'
"""MathJax 2.7 as bundled beside the pages (see :func:`copy_mathjax`)."""
WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'
NOTEBOOK_LINK = re.compile(r'(\]\(|href=["\'])((?:\./)?[\w-]+)\.ipynb(#[^)"\'\s]*)?')
"""A link to a notebook beside this one, in Markdown ``](x.ipynb#a)`` or HTML ``href="x.ipynb"``."""
NETWORK_SCRIPT = re.compile(r'<script[^>]*\bsrc=["\']?(?:https?:)?//[^>]*>|'
                            r'\bimport\b[^;\n]*?["\'](?:https?:)?//[^"\']*|'
                            r'<link[^>]*\bhref=["\']?(?:https?:)?//[^>]*>', re.I)


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
        'theme retrieval (Zalkow &amp; Müller, ISMIR 2020). Read the notebooks in this '
        'order.</p>\n'
        f'<ol>\n{items}\n</ol>\n</body></html>\n')


def notebook_title(notebook, default):
    for cell in notebook.cells:
        if cell.cell_type == 'markdown':
            for line in cell.source.splitlines():
                if line.startswith('# '):
                    return line[2:].strip()
    return default


def page_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed notebook as its HTML page shows it.

    Links to notebooks point to their ``.html`` pages, and widget outputs (an empty
    ``Out[]`` without a kernel) and the widget state are left out.
    """
    page = copy.deepcopy(notebook)
    page.metadata.pop('widgets', None)
    for cell in page.cells:
        if cell.cell_type == 'markdown':
            cell.source = NOTEBOOK_LINK.sub(lambda m: f'{m[1]}{m[2]}.html{m[3] or ""}',
                                            cell.source)
        elif cell.cell_type == 'code':
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get('data', {})]
    return page


def html_exporter() -> HTMLExporter:
    """nbconvert's JupyterLab page with the companion's template (offline, navigation)."""
    return HTMLExporter(template_name='companion', extra_template_basedirs=[str(TEMPLATE_DIR)],
                        mathjax_url=MATHJAX_URL)


def copy_mathjax(html_dir: Path) -> None:
    """Copy MathJax 2.7 (from jupyter-server-mathjax) to ``html_dir/mathjax``."""
    import jupyter_server_mathjax
    source = Path(jupyter_server_mathjax.__file__).parent / 'static'
    shutil.copytree(source, html_dir / 'mathjax', dirs_exist_ok=True)


def export_pages(notebooks, html_dir: Path):
    """Write one page per (path, executed notebook), the contents page and MathJax.

    Returns:
        pages (list of (str, str)): (file name, title) of every page, in reading order
    """
    html_dir.mkdir(parents=True, exist_ok=True)
    exporter = html_exporter()
    pages = [(path.with_suffix('.html').name, notebook_title(nb, path.stem))
             for path, nb in notebooks]
    for i, (_, notebook) in enumerate(notebooks):
        nav = {'previous': ({'href': pages[i - 1][0], 'title': pages[i - 1][1]} if i else None),
               'next': ({'href': pages[i + 1][0], 'title': pages[i + 1][1]}
                        if i + 1 < len(pages) else None)}
        body, _ = exporter.from_notebook_node(page_notebook(notebook),
                                              resources={'companion_nav': nav})
        (html_dir / pages[i][0]).write_text(body)
    write_index(html_dir, pages)
    copy_mathjax(html_dir)
    return pages


def network_references(page: str):
    """Scripts and style sheets a page would load from the network (should be none)."""
    return [m.group(0) for m in NETWORK_SCRIPT.finditer(page)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--out', type=Path, help='folder for executed copies and html/')
    group.add_argument('--in-place', action='store_true', help='overwrite the stored outputs')
    parser.add_argument('--html-only', action='store_true',
                        help='with --out: export the stored outputs, execute nothing')
    parser.add_argument('notebooks', nargs='*', type=Path, help='default: notebooks/*.ipynb')
    args = parser.parse_args(argv)
    if args.html_only and not args.out:
        parser.error('--html-only needs --out')

    paths = sorted(args.notebooks or NOTEBOOK_DIR.glob('*.ipynb'))
    if not paths:
        print('No notebooks in notebooks/ yet: nothing to execute.')
        return 0
    os.environ.update(notebook_environment())
    executed = []
    for path in paths:
        if args.html_only:
            executed.append((path, nbformat.read(path, as_version=4)))
            continue
        start = time.perf_counter()
        print(f'executing {path.name} ...', flush=True)
        notebook = execute(path)
        if args.in_place:
            nbformat.write(notebook, path)
        else:
            executed_dir = args.out / 'notebooks'
            executed_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, executed_dir / path.name)
            executed.append((path, notebook))
        print(f'  done in {time.perf_counter() - start:.1f} s')
    if executed:
        export_pages(executed, args.out / 'html')
        print(f'HTML: {args.out / "html" / "index.html"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
