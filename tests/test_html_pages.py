"""The HTML companion (``make run`` writes ``build/html/``) and the explorers, in a browser.

The export checks read the stored notebooks and need nothing else. The browser checks drive
a real Chromium through Playwright: the exported pages must typeset their formulas with no
network at all, and the explorers of notebooks 05 and 06 must redraw when a student changes
their menus in JupyterLab. They skip (with the reason) only where no Chromium can be found;
``.ci/run`` installs Debian's ``chromium``.
"""
import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'notebooks').glob('*.ipynb'))
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def load_tool():
    spec = importlib.util.spec_from_file_location('run_notebooks', ROOT / 'tools' / 'run_notebooks.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def pages(tool, tmp_path_factory):
    """The HTML pages of the stored notebooks, exported as ``make run`` does."""
    html_dir = tmp_path_factory.mktemp('site') / 'html'
    notebooks = [(path, nbformat.read(path, as_version=4)) for path in NOTEBOOKS]
    tool.export_pages(notebooks, html_dir)
    return html_dir


# export

def test_no_page_loads_a_script_from_the_network(tool, pages):
    for page in sorted(pages.glob('*.html')):
        assert tool.network_references(page.read_text()) == [], page.name
    assert (pages / 'mathjax' / 'MathJax.js').is_file()


def test_network_references_finds_cdn_scripts(tool):
    cdn = ('<script src="https://cdnjs.cloudflare.com/x.js"></script>'
           '<script type="module">import m from "https://cdn.example/m.mjs";</script>'
           '<link rel="stylesheet" href="//fonts.example/a.css">')
    assert len(tool.network_references(cdn)) == 3
    assert tool.network_references('<script src="mathjax/MathJax.js"></script>') == []


def test_links_between_notebooks_point_to_pages_that_exist(pages):
    for page in sorted(pages.glob('*.html')):
        text = page.read_text()
        assert '.ipynb"' not in text and '.ipynb#' not in text, page.name
        for target, anchor in re.findall(r'href="([\w-]+\.html)(?:#([^"]*))?"', text):
            assert (pages / target).is_file(), (page.name, target)
            if anchor:  # a heading of the target page
                assert f'id="{anchor}"' in (pages / target).read_text(), (page.name, anchor)


def test_every_page_links_to_its_neighbours_in_reading_order(pages):
    names = [path.with_suffix('.html').name for path in NOTEBOOKS]
    for i, name in enumerate(names):
        text = (pages / name).read_text()
        previous = re.findall(r'<a href="([\w-]+\.html)" rel="prev">', text)
        following = re.findall(r'<a href="([\w-]+\.html)" rel="next">', text)
        assert previous == ([names[i - 1]] * 2 if i else []), name
        assert following == ([names[i + 1]] * 2 if i + 1 < len(names) else []), name
    contents = (pages / 'index.html').read_text()
    assert re.findall(r'href="([\w-]+\.html)"', contents) == names


def test_widget_outputs_are_left_out_of_the_pages(tool):
    for path in NOTEBOOKS:
        page = tool.page_notebook(nbformat.read(path, as_version=4))
        assert 'widgets' not in page.metadata
        for cell in page.cells:
            for output in cell.get('outputs', []):
                assert tool.WIDGET_VIEW not in output.get('data', {}), path.name


# browser

def chromium_path():
    for name in (os.environ.get('CHROMIUM'),) + BROWSERS:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed')
    executable = chromium_path()
    if executable is None:
        pytest.skip('no Chromium found (install Debian\'s chromium, or set CHROMIUM=/path); '
                    'the browser tests need one')
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=['--no-sandbox', '--disable-gpu'])
        yield browser
        browser.close()


def test_exported_pages_typeset_their_formulas_offline(pages, browser):
    context = browser.new_context()
    requested = []

    def offline(route):  # nothing but the files beside the page (and in-page data)
        if not route.request.url.startswith(('file://', 'about:', 'data:', 'blob:')):
            requested.append(route.request.url)
            return route.abort()
        return route.continue_()
    context.route('**/*', offline)
    page = context.new_page()
    page.goto((pages / '03_CTC.html').as_uri())
    page.wait_for_function('window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 '
                           '&& !MathJax.Hub.queue.running', timeout=60_000)
    typeset = page.locator('.MathJax, .MathJax_Display, .MathJax_CHTML').count()
    errors = page.locator('.MathJax_Error, merror').count()
    context.close()
    assert requested == []
    assert typeset >= 20 and errors == 0


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def jupyterlab(tool, tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a free port and a token, over copies of 05 and 06."""
    root = tmp_path_factory.mktemp('lab')
    for path in NOTEBOOKS:
        if path.name.startswith(('05_', '06_')):  # as a student opens them: no outputs yet
            notebook = nbformat.read(path, as_version=4)
            notebook.metadata.pop('widgets', None)
            for cell in notebook.cells:
                if cell.cell_type == 'code':
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(notebook, root / path.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, **tool.notebook_environment())
    for name in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR', 'JUPYTERLAB_SETTINGS_DIR',
                 'JUPYTERLAB_WORKSPACES_DIR'):
        env[name] = str(root / '.jupyter' / name.lower())
    env.pop('MPLBACKEND', None)  # the kernel's inline backend
    server = subprocess.Popen(
        [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1',
         f'--ServerApp.port={port}', '--ServerApp.port_retries=0',
         f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
         '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=',
         '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
        + (['--allow-root'] if hasattr(os, 'geteuid') and os.geteuid() == 0 else []),
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / 'server.log', 'w'))
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail('JupyterLab did not start: '
                                + (root / 'server.log').read_text()[-2000:])
                time.sleep(0.5)
        yield base, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


RUN_ALL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    await app.commands.execute('notebook:run-all-cells');
}"""

DONE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.sessionContext.session || !panel.sessionContext.session.kernel)
        return false;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    return panel.sessionContext.session.kernel.status === 'idle'
        && cells.every(c => c.model.executionCount !== null);
}"""

ERRORS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .flatMap(c => c.model.outputs.toJSON())
    .filter(o => o.output_type === 'error')
    .map(o => o.ename + ': ' + o.evalue)"""


def figure_after(image, before, timeout=300):
    """The rendered figure's bytes once they differ from ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = image.screenshot()
        if current != before:
            return current
        time.sleep(1.0)
    return before


@pytest.mark.parametrize('notebook,first_menu,second_menu', [
    ('05_Blank_Removal_and_Normalization.ipynb', 'Item', {'label': 'CENS'}),
    ('06_Retrieval.ipynb', 'Query', {'index': 1})])
def test_explorers_redraw_when_a_student_changes_their_menus(browser, jupyterlab, notebook,
                                                             first_menu, second_menu):
    base, token, _ = jupyterlab
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    try:
        # a workspace of its own, reset: only this notebook is open, and it is the current one
        workspace = notebook.split('_')[0]
        page.goto(f'{base}/lab/workspaces/nb{workspace}/tree/{notebook}?reset&token={token}')
        page.wait_for_function(
            '(path) => window.jupyterapp && window.jupyterapp.shell.currentWidget'
            ' && window.jupyterapp.shell.currentWidget.context'
            ' && window.jupyterapp.shell.currentWidget.context.path === path',
            arg=notebook, timeout=120_000)
        page.evaluate(RUN_ALL)
        page.wait_for_function(DONE, timeout=900_000, polling=1000)
        assert page.evaluate(ERRORS) == []

        menus = page.locator('.jp-OutputArea .widget-dropdown select')
        image = page.locator('.jp-OutputArea img.widget-image').first
        assert menus.count() == 2
        label = page.locator('.jp-OutputArea .widget-dropdown label').first
        assert label.inner_text().strip() == first_menu
        figure = image.screenshot()

        current = menus.nth(0).input_value()
        options = menus.nth(0).locator('option').evaluate_all('os => os.map(o => o.value)')
        menus.nth(0).select_option(next(o for o in options if o != current))
        changed = figure_after(image, figure)
        assert changed != figure, 'the figure did not change with the first menu'

        menus.nth(1).select_option(**second_menu)
        assert figure_after(image, changed) != changed, \
            'the figure did not change with the second menu'
        assert page.evaluate(ERRORS) == []
    finally:
        page.close()

