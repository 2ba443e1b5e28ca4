"""Export snapshots are written by a Celery task: a status, an error and timestamps.

Every snapshot frozen before this was written in its request, so existing rows are
`ready` (finished when created); new rows start `pending`.
"""

from django.db import migrations, models

STATUSES = [
    ("pending", "Pending"),
    ("writing", "Writing"),
    ("ready", "Ready"),
    ("failed", "Failed"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0003_item_once"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportsnapshot",
            name="status",
            field=models.CharField(choices=STATUSES, default="ready", max_length=8),
        ),
        migrations.AlterField(
            model_name="exportsnapshot",
            name="status",
            field=models.CharField(choices=STATUSES, default="pending", max_length=8),
        ),
        migrations.AddField(
            model_name="exportsnapshot",
            name="error",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="exportsnapshot",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="exportsnapshot",
            name="finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunSQL(
            "UPDATE annotation_exportsnapshot SET finished_at = created_at",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="exportsnapshot",
            name="sha256",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
