"""Fixtures shared by the test modules."""
import shutil

import pytest

from ctc_chroma_lib import constants


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty stand-in for the package's weights folder; ``install(name, source)`` copies a
    ``.weights.h5`` file in as ``<name>.weights.h5`` (e.g. 'teaching-ctc')."""
    folder = tmp_path / 'weights'
    folder.mkdir()
    monkeypatch.setattr(constants, 'WEIGHTS_DIR', folder)

    def install(name, source):
        target = folder / f'{name}.weights.h5'
        shutil.copyfile(source, target)
        return target

    install.folder = folder
    return install
