"""tools/run_notebooks.py: stored notebooks do not change when executed again."""
import importlib.util
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'run_notebooks.py'


def load_tool():
    spec = importlib.util.spec_from_file_location('run_notebooks', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def executed(ids):
    """A notebook as nbclient leaves it: split prints and widgets with the given model ids."""
    a, b = ids
    cell = new_code_cell('print(1); print(2); display(w)', id='only-cell', outputs=[
        new_output('stream', name='stdout', text='1\n'),
        new_output('stream', name='stdout', text='2\n'),
        new_output('stream', name='stderr', text='warning\n'),
        new_output('display_data', data={'application/vnd.jupyter.widget-view+json':
                                         {'model_id': b, 'version_major': 2, 'version_minor': 0}}),
    ])
    notebook = new_notebook(cells=[cell])
    notebook.metadata['widgets'] = {'application/vnd.jupyter.widget-state+json': {
        'state': {a: {'model_name': 'LayoutModel', 'state': {}},
                  b: {'model_name': 'HTMLModel', 'state': {'layout': f'IPY_MODEL_{a}'}}},
        'version_major': 2, 'version_minor': 0}}
    return notebook


def test_canonical_outputs_merge_streams_and_number_widget_ids():
    tool = load_tool()
    first = tool.canonical_outputs(executed(('9f' * 16, 'c3' * 16)))
    second = tool.canonical_outputs(executed(('17' * 16, 'ab' * 16)))
    assert nbformat.writes(first) == nbformat.writes(second)
    outputs = first.cells[0].outputs
    assert [(o.output_type, o.get('name')) for o in outputs] == [
        ('stream', 'stdout'), ('stream', 'stderr'), ('display_data', None)]
    assert outputs[0].text == '1\n2\n'
    state = first.metadata['widgets']['application/vnd.jupyter.widget-state+json']['state']
    layout_id, html_id = f'{1:032x}', f'{2:032x}'
    assert list(state) == [layout_id, html_id]
    assert state[html_id]['state']['layout'] == f'IPY_MODEL_{layout_id}'
    view = outputs[2].data['application/vnd.jupyter.widget-view+json']
    assert view['model_id'] == html_id
