from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import REPO


def _import_with(value: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import factory.crash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "FACTORY_CRASH_AT": value},
    )


def test_an_unknown_crash_site_is_refused_with_the_list_of_sites():
    bad = _import_with("seal_mid_wirte")
    assert (
        bad.returncode == 1
        and "seal_mid_write" in bad.stderr
        and "publish_after_swap" in bad.stderr
    )
    assert _import_with("seal_mid_write@x").returncode == 1
    assert _import_with("seal_mid_write@3").returncode == 0
