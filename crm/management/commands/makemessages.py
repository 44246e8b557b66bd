"""Django's makemessages, with this project's defaults, so `manage.py makemessages -l zh_Hans` needs no flags.

It collects the CRM's own strings (crm/, loyalty/, templates/) into locale/ and leaves out what is not ours to
translate: the WeCom simulator stands for Tencent's server and stays English, and tests, benchmarks, scripts, the
virtualenv and var/ are not UI. Strings gone from the code are dropped (no obsolete entries) and references name
the file only, so a catalogue diff shows changed strings, not moved lines.

django-unfold ships no Chinese catalogue, so the strings of the parts of it the console uses (its templates and
Python, and the filters and forms contribs in INSTALLED_APPS) are collected into the same catalogue; Django's own
admin strings come translated with Django. The names of the CRM's models, fields and choices are not gettext
literals in the source (crm/model_names.py): they are written to a generated file for xgettext, one
"Translators:" comment naming where each is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import unfold
from django.core.management.commands import makemessages

from crm.model_names import MODEL_STRINGS

IGNORE = ["wecom_sim", "tests", "bench", "scripts", "docs", "var", ".venv", "node_modules", "locale"]
UNFOLD_DIR = Path(unfold.__file__).resolve().parent
UNFOLD_CONTRIBS_USED = ("filters", "forms")
MODEL_NAMES_FILE = "crm-model-names.py"


def _unfold_file_used(path: Path) -> bool:
    parts = path.relative_to(UNFOLD_DIR).parts
    return not (parts[0] == "contrib" and len(parts) > 1 and parts[1] not in UNFOLD_CONTRIBS_USED)


class Command(makemessages.Command):
    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *IGNORE]
        options["no_obsolete"] = True
        options["no_wrap"] = True
        options["add_location"] = options.get("add_location") or "file"
        self._model_names_dir = tempfile.mkdtemp(prefix="crm-makemessages-")
        try:
            result = super().handle(*args, **options)
        finally:
            shutil.rmtree(self._model_names_dir, ignore_errors=True)
        self._relative_references()
        return result

    def find_files(self, root):
        files = super().find_files(root)
        if root == ".":
            files += [f for f in super().find_files(str(UNFOLD_DIR)) if _unfold_file_used(Path(f.path))]
            files.append(self._model_names_file())
        return sorted(files)

    def _model_names_file(self):
        lines = []
        for msgid in sorted(MODEL_STRINGS):
            lines.append(f"# Translators: {', '.join(sorted(MODEL_STRINGS[msgid]))}")
            lines.append(f"gettext_noop({json.dumps(msgid, ensure_ascii=False)})")
        Path(self._model_names_dir, MODEL_NAMES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.translatable_file_class(self._model_names_dir, MODEL_NAMES_FILE, self.default_locale_path)

    def _relative_references(self) -> None:
        """References name unfold's files from the package ("unfold/templates/...") and the model names by the
        generated file's name, not by this machine's paths, so the catalogue is the same wherever it is made."""
        prefixes = [str(UNFOLD_DIR.parent) + os.sep, self._model_names_dir + os.sep]
        for locale_dir in self.locale_paths:
            for po in Path(locale_dir).glob("*/LC_MESSAGES/django.po"):
                text = original = po.read_text(encoding="utf-8")
                for prefix in prefixes:
                    text = text.replace(prefix, "")
                if text != original:
                    po.write_text(text, encoding="utf-8")
