"""Merge helpers' Chinese translations (/tmp/h/zh_*.json, {msgid: msgstr}) into the catalogue and compile it.

A development aid for parallel work: each engineer writes their msgids to their own JSON file instead of editing the
.po at once; this folds them in (existing translations are kept unless empty) under a lock, then compiles the .mo.
The lead runs makemessages afterwards so the catalogue's source references are right."""

from __future__ import annotations

import fcntl
import glob
import json
import sys
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def main(pattern: str = "/tmp/h/zh_*.json") -> int:  # noqa: S108 (a dev aid, not run in production)
    with open(str(PO) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        catalogue = polib.pofile(str(PO))
        added = updated = 0
        for path in sorted(glob.glob(pattern)):
            for msgid, msgstr in json.loads(Path(path).read_text(encoding="utf-8")).items():
                entry = catalogue.find(msgid)
                if entry is None:
                    catalogue.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
                    added += 1
                elif not entry.msgstr or "fuzzy" in entry.flags:
                    entry.msgstr = msgstr
                    if "fuzzy" in entry.flags:
                        entry.flags.remove("fuzzy")
                    updated += 1
        catalogue.save(str(PO))
        catalogue.save_as_mofile(str(PO.with_suffix(".mo")))
    print(f"zh catalogue: {added} added, {updated} filled")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
