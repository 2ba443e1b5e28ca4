from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.accounts.services import create_api_key, get_user_by_username


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_by_username(username=options["username"])
        except Exception as exc:
            raise CommandError(f"No user named {options['username']!r}.") from exc
        _key, raw = create_api_key(user=user, name=options["name"])
        self.stdout.write(raw)
