"""Traces keep why they were graded as they were, so timed-out gradings can be redone."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_annotators_protected"),
    ]

    operations = [
        migrations.AddField(
            model_name="trace",
            name="grade_reason",
            field=models.CharField(blank=True, default="", max_length=16),
            preserve_default=False,
        ),
    ]
