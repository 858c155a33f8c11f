"""What importing the package does to its process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_inrcodec_shortens_openmp_spinning_unless_the_user_chose(tmp_path: Path) -> None:
    code = "import inrcodec, os; print(os.environ['GOMP_SPINCOUNT'])"
    env = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
    env["PYTHONPATH"] = str(ROOT)
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip() == "1000"
    env["GOMP_SPINCOUNT"] = "7"
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip() == "7"
