"""Django's makemessages, with this project's defaults, so `manage.py makemessages -l zh_Hans` needs no flags.

It collects the CRM's own strings (crm/, loyalty/, templates/) into locale/ and leaves out what is not ours to
translate: the WeCom simulator stands for Tencent's server and stays English, and tests, benchmarks, scripts, the
virtualenv and var/ are not UI. Strings gone from the code are dropped (no obsolete entries) and references name
the file only, so a catalogue diff shows changed strings, not moved lines.

django-unfold ships no Chinese catalogue, so the strings of the parts of it the console uses (its templates and
Python, and the filters and forms contribs in INSTALLED_APPS) are collected into the same catalogue; Django's own
admin strings come translated with Django.
"""

from __future__ import annotations

import os
from pathlib import Path

import unfold
from django.core.management.commands import makemessages

IGNORE = ["wecom_sim", "tests", "bench", "scripts", "docs", "var", ".venv", "node_modules", "locale"]
UNFOLD_DIR = Path(unfold.__file__).resolve().parent
UNFOLD_CONTRIBS_USED = ("filters", "forms")


def _unfold_file_used(path: Path) -> bool:
    parts = path.relative_to(UNFOLD_DIR).parts
    return not (parts[0] == "contrib" and len(parts) > 1 and parts[1] not in UNFOLD_CONTRIBS_USED)


class Command(makemessages.Command):
    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *IGNORE]
        options["no_obsolete"] = True
        options["no_wrap"] = True
        options["add_location"] = options.get("add_location") or "file"
        result = super().handle(*args, **options)
        self._relative_unfold_references()
        return result

    def find_files(self, root):
        files = super().find_files(root)
        if root == ".":
            files += [f for f in super().find_files(str(UNFOLD_DIR)) if _unfold_file_used(Path(f.path))]
        return sorted(files)

    def _relative_unfold_references(self) -> None:
        """References to unfold's files name them from the package ("unfold/templates/..."), not from this
        machine's virtualenv, so the catalogue is the same wherever it is made."""
        prefix = str(UNFOLD_DIR.parent) + os.sep
        for locale_dir in self.locale_paths:
            for po in Path(locale_dir).glob("*/LC_MESSAGES/django.po"):
                text = po.read_text(encoding="utf-8")
                if prefix in text:
                    po.write_text(text.replace(prefix, ""), encoding="utf-8")
