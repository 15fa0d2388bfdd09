"""Docstrings point to the notebooks that teach a function, and only to those."""
import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.name: '\n'.join(cell.source for cell in nbformat.read(path, as_version=4).cells)
             for path in sorted((ROOT / 'notebooks').glob('*.ipynb'))}
TAG = re.compile(r'^\s*Notebook:\s*(.*)$', re.M)


def used_in(name, text):
    """True if a notebook's cells call, import or name ``name`` as code."""
    pattern = r'(\.{0}\b|\b{0}\(|`{0}`|import[^\n]*\b{0}\b)'.format(re.escape(name))
    return re.search(pattern, text) is not None


def tagged_definitions():
    for path in sorted((ROOT / 'ctc_chroma_lib').rglob('*.py')):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith('_'):
                match = TAG.search(ast.get_docstring(node) or '')
                if match:
                    yield f'{path.stem}.{node.name}', node.name, match.group(1)


DEFINITIONS = list(tagged_definitions())


def test_there_are_notebook_tags_to_check():
    assert len(DEFINITIONS) > 50


@pytest.mark.parametrize('qualified,name,tag', DEFINITIONS, ids=[d[0] for d in DEFINITIONS])
def test_a_notebook_tag_names_notebooks_that_use_the_function(qualified, name, tag):
    notebooks = re.findall(r'\d\d_\w+\.ipynb', tag)
    assert notebooks, f'{qualified}: no notebook file name in "Notebook: {tag}"'
    for notebook in notebooks:
        assert notebook in NOTEBOOKS, f'{qualified}: {notebook} does not exist'
        assert used_in(name, NOTEBOOKS[notebook]), f'{qualified}: {notebook} never uses it'


# A bibliography entry: "- A. B. Surname, C. Other: *Title.* Venue, year ..."
REFERENCE = re.compile(r'^- (?:[A-Z]\.(?: ?[A-Z]\.)* [^\s:,]+(?:, |: | et al\.: ))+\*[^*]+\*.*$', re.M)
LINK = re.compile(r'\]\(https?://[^)\s]+\)')


def references():
    for name, text in NOTEBOOKS.items():
        for line in REFERENCE.findall(text):
            yield name, line


def test_the_notebooks_have_references():
    assert len(list(references())) > 30


def test_every_reference_in_a_notebook_has_a_link():
    """Students read the HTML pages offline and follow a DOI or URL to the source."""
    missing = [f'{name}: {line[:80]}' for name, line in references() if not LINK.search(line)]
    assert not missing, 'references without a DOI or URL:\n' + '\n'.join(missing)
