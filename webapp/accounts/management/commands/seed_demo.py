from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from webapp.serving import services as serving
from webapp.serving.models import LLM

MODELS: list[dict[str, Any]] = [
    {
        "slug": "deepseek-r1",
        "name": "DeepSeek-R1",
        "served_model_name": "deepseek-ai/DeepSeek-R1",
        "description": "671B-parameter Mixture-of-Experts reasoning model (37B active per token).",
        "context_length": 163_840,
        "default_params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        "max_params": {"temperature": 1.5, "top_p": 1.0, "max_tokens": 65_536},
        "price_prompt_per_mtok": 0.55,
        "price_completion_per_mtok": 2.19,
        "is_default": True,
        "position": 0,
    },
    {
        "slug": "r1-distill-qwen-32b",
        "name": "R1-Distill-Qwen-32B",
        "served_model_name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "description": "Dense 32B model distilled from DeepSeek-R1's reasoning traces.",
        "context_length": 131_072,
        "default_params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        "max_params": {"temperature": 1.5, "top_p": 1.0, "max_tokens": 32_768},
        "price_prompt_per_mtok": 0.12,
        "price_completion_per_mtok": 0.18,
        "position": 1,
    },
    {
        "slug": "deepseek-r1-zero",
        "name": "DeepSeek-R1-Zero",
        "served_model_name": "deepseek-ai/DeepSeek-R1-Zero",
        "description": "R1's pure-RL precursor: strong reasoning, rougher language.",
        "context_length": 163_840,
        "default_params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        "max_params": {"temperature": 1.5, "top_p": 1.0, "max_tokens": 65_536},
        "price_prompt_per_mtok": 0.55,
        "price_completion_per_mtok": 2.19,
        "position": 2,
    },
]


class Command(BaseCommand):
    help = "Create the demo users, groups, models and a sample campaign (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--engine-url",
            default=settings.ARBOR_EMULATOR_URL,
            help="base URL of the SGLang server (default: the local emulator)",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in ("user", "annotator")}
        users = get_user_model().objects
        for demo in settings.ARBOR_DEMO_USERS:
            user, created = users.get_or_create(username=demo["username"])
            if created:
                user.set_password(demo["password"])
            user.is_staff = user.is_superuser = demo["role"] == "admin"
            user.save()
            user.groups.add(groups["annotator" if demo["role"] == "annotator" else "user"])
            self.stdout.write(
                f"  {demo['role']:<10} {demo['username']:<10} "
                + (f"password: {demo['password']}" if created else "(exists; password unchanged)")
            )
        for spec in MODELS:
            llm = serving.upsert_llm(**spec)
            serving.ensure_endpoint(llm=llm, base_url=options["engine_url"])
            self.stdout.write(f"  model      {llm.slug:<22} -> {options['engine_url']}")
        # The sample annotation campaign, so the demo annotator has work (issue 4).
        from webapp.annotation.demo import seed_sample_campaign

        admins = [d["username"] for d in settings.ARBOR_DEMO_USERS if d["role"] == "admin"]
        admin = users.filter(username__in=admins, is_staff=True).order_by("pk").first()
        default = LLM.objects.filter(is_default=True).first()
        if admin is not None and default is not None:
            campaign, new_items = seed_sample_campaign(admin=admin, llm=default)
            self.stdout.write(f"  campaign   {campaign.name} ({new_items} new items)")
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))
