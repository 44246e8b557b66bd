"""verify_draw <id> | --json FILE: recompute a revealed draw's winners from its seed and sorted entries."""

import json

from django.core.management.base import BaseCommand, CommandError

from crm.selectors.draws import draw_export
from crm.services.draws import draw_verify_export


class Command(BaseCommand):
    help = "Recompute a lucky draw's winners from the revealed seed and the sorted entry list."

    def add_arguments(self, parser):
        parser.add_argument("draw_id", nargs="?", type=int)
        parser.add_argument("--json", dest="json_path", help="Verify an export file, without the database.")
        parser.add_argument("--export", action="store_true", help="Print the draw's export (JSON) instead.")

    def handle(self, *args, draw_id=None, json_path=None, export=False, **options):
        if json_path:
            with open(json_path) as fh:
                data = json.load(fh)
        elif draw_id is not None:
            data = draw_export(draw_id)
            if data is None:
                raise CommandError(f"No revealed draw {draw_id}.")
        else:
            raise CommandError("Give a draw id or --json FILE.")
        if export:
            self.stdout.write(json.dumps(data, indent=2))
            return
        result = draw_verify_export(data)
        self.stdout.write(f"commitment sha256(seed) {'matches' if result['commitment_ok'] else 'DOES NOT match'}")
        self.stdout.write(f"recomputed winners: {', '.join(result['recomputed']) or '-'}")
        self.stdout.write(f"published winners:  {', '.join(data['winners']) or '-'}")
        if not result["matches"]:
            raise CommandError("The draw does NOT verify.")
        self.stdout.write(self.style.SUCCESS("matches"))
