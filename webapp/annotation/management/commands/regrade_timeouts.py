from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.annotation.batch import regrade_timeouts
from webapp.annotation.models import Campaign


class Command(BaseCommand):
    help = "Grade again a campaign's batch traces whose automatic grading timed out."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="the campaign's id")
        parser.add_argument(
            "--include-errors", action="store_true", help="also retry gradings that failed"
        )
        parser.add_argument("--limit", type=int, default=None, help="at most this many traces")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            campaign = Campaign.objects.get(pk=options["campaign"])
        except (Campaign.DoesNotExist, ValueError, ValidationError) as exc:
            raise CommandError(f"No campaign {options['campaign']!r}.") from exc
        result = regrade_timeouts(
            campaign=campaign, include_errors=options["include_errors"], limit=options["limit"]
        )
        self.stdout.write(
            f"{result.regraded} trace(s) graded again, {result.undecided} still undecided"
        )
