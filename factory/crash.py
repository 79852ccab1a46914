"""Named crash sites for fault-injection tests (RELIABILITY.md R2).

`FACTORY_CRASH_AT=<site>` (or `<site>@<n>`: the n-th time) makes the process kill itself with
SIGKILL when execution reaches that site — no cleanup, no flush, exactly like `kill -9` or a
power cut at that instruction. Tests set it to prove that every step of writing samples and
publishing tables is safe to die in. Unset, a site costs one comparison.
"""

from __future__ import annotations

import os
import signal

SITES = {
    "response_received": "a teacher's answer is in hand but not yet journaled",
    "seal_mid_write": "a sealed sample shard is half written in staging",
    "seal_before_rename": "a sealed sample shard is fsynced in staging, not yet renamed",
    "seal_before_index": "a sealed sample shard is renamed into place, not yet in index.json",
    "seal_before_journal_reset": "index.json lists the new shard; the journal still holds it",
    "shard_mid_write": "an output parquet part is half written in staging",
    "publish_mid_rename": "some output shards are renamed into the new version, not all",
    "publish_before_swap": "the new version is complete with its manifest, not yet current",
    "publish_after_swap": "the new version is current; the old one is not yet removed",
}


def _target() -> tuple[str | None, int]:
    value = os.environ.get("FACTORY_CRASH_AT")
    if not value:
        return None, 0
    site, _, nth = value.partition("@")
    if site not in SITES or (nth and not nth.isdigit()):
        raise SystemExit(
            f"FACTORY_CRASH_AT={value!r}: expected <site> or <site>@<n> with a site among "
            f"{', '.join(SITES)}"
        )
    return site, int(nth or 1)


_SITE, _NTH = _target()
_hits = 0


def crash_point(site: str) -> None:
    global _hits
    if site != _SITE:
        return
    _hits += 1
    if _hits == _NTH:
        os.kill(os.getpid(), signal.SIGKILL)
