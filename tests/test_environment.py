"""environment.yml and pyproject.toml must pin the same packages to the same versions."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalize(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def _pins(lines):
    pins = {}
    for line in lines:
        match = re.match(r'^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)', line)
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def _environment_pip_lines():
    text = (ROOT / 'environment.yml').read_text()
    section = text.split('- pip:', 1)[1]
    return [re.sub(r'^\s*-\s*', '', line) for line in section.splitlines() if line.strip()]


def test_environment_yml_pins_same_versions_as_pyproject():
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    assert _pins(_environment_pip_lines()) == _pins(project['dependencies'])


def test_every_pyproject_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    assert len(_pins(project['dependencies'])) == len(project['dependencies'])


def test_environment_yml_installs_fluidsynth_from_conda_forge():
    text = (ROOT / 'environment.yml').read_text()
    assert 'conda-forge' in text and re.search(r'^\s*-\s*fluidsynth', text, re.M)
