from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYSWEEP = shutil.which("keysweep", path=os.path.dirname(sys.executable)) or "keysweep"


@pytest.fixture
def keysweep_bin() -> str:
    return KEYSWEEP


pytest_plugins = ["tests.keyservice_fixture"]
