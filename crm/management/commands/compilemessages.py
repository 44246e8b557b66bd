"""Django's compilemessages, compiling only this project's locale/ (not the catalogues inside .venv or var/)."""

from __future__ import annotations

from django.core.management.commands import compilemessages

from crm.management.commands.makemessages import IGNORE


class Command(compilemessages.Command):
    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *(p for p in IGNORE if p != "locale")]
        return super().handle(*args, **options)
