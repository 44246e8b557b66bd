"""The zh_Hans catalogue is complete and current: every string of the console and the customer pages has a
translation, none is fuzzy, the committed .mo is what the .po compiles to, and makemessages finds no string the
catalogue lacks (a new UI string without its translation fails here)."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
from pathlib import Path

import polib
import pytest
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
PO = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SOURCES = ("crm", "loyalty", "templates")  # what makemessages reads (crm/management/commands/makemessages.py)


def _key(entry: polib.POEntry) -> tuple[str | None, str, str]:
    return entry.msgctxt, entry.msgid, entry.msgid_plural


def _catalogue() -> polib.POFile:
    return polib.pofile(str(PO))


def test_every_entry_is_translated_and_none_is_fuzzy():
    po = _catalogue()
    entries = [e for e in po if not e.obsolete]
    assert len(entries) > 100, "the catalogue looks empty"
    untranslated = [e.msgid for e in entries if not e.translated()]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert not untranslated, f"{len(untranslated)} without a translation: {untranslated[:10]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy: {fuzzy[:10]}"
    assert not [e for e in po if e.obsolete], "obsolete entries: run manage.py makemessages -l zh_Hans"


def test_placeholders_survive_translation():
    """A translation that drops or renames %(name)s or {{ var }} breaks at render time, or silently hides data."""
    placeholder = re.compile(r"%\(\w+\)[sd]|%[sd]")
    bad = []
    for entry in _catalogue():
        # Chinese has one plural form: it says what the plural says, placeholders and all.
        expected = set(placeholder.findall(entry.msgid_plural or entry.msgid))
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        bad += [(entry.msgid, text) for text in translations if set(placeholder.findall(text)) != expected]
    assert not bad, bad[:10]


def test_the_committed_mo_is_the_compiled_po():
    """make run needs no gettext: the .mo is committed, so it must match the .po (run manage.py compilemessages)."""
    with MO.open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)._catalog
    expected = {}
    for entry in _catalogue():
        if entry.obsolete or not entry.translated() or "fuzzy" in entry.flags:
            continue
        msgid = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        if entry.msgid_plural:
            for index, text in entry.msgstr_plural.items():
                expected[(msgid, int(index))] = text
        else:
            expected[msgid] = entry.msgstr
    compiled.pop("", None)  # the header
    assert compiled == expected


@pytest.mark.skipif(not shutil.which("xgettext") and os.environ.get("CI", "").lower() != "true",
                    reason="gettext tools (xgettext, msgmerge) are not installed here; CI has them")
def test_makemessages_finds_nothing_new(tmp_path):
    """Run the project's makemessages over a copy of the sources and compare the msgids it writes."""
    for name in SOURCES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(LOCALE, tmp_path / "locale")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
            call_command("makemessages", locale=["zh_Hans"], verbosity=0)
    finally:
        os.chdir(cwd)
    fresh = polib.pofile(str(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    committed = {_key(e) for e in _catalogue() if not e.obsolete}
    found = {_key(e) for e in fresh if not e.obsolete}
    missing = sorted(found - committed, key=str)
    gone = sorted(committed - found, key=str)
    assert not missing, (f"{len(missing)} strings in the code are not in locale/zh_Hans: run manage.py makemessages "
                         f"-l zh_Hans, translate them, then compilemessages: {missing[:10]}")
    assert not gone, f"{len(gone)} catalogue strings are no longer in the code (run makemessages): {gone[:10]}"
    untranslated = [e.msgid for e in fresh if not e.obsolete and (not e.translated() or "fuzzy" in e.flags)]
    assert not untranslated, f"a string changed and lost its translation: {untranslated[:10]}"


def test_gettext_tools_are_there_in_ci():
    if os.environ.get("CI", "").lower() == "true":
        subprocess.run(["xgettext", "--version"], check=True, capture_output=True)
