"""The public sources the replaced system collected from, shipped inactive: staff review and
activate them (their feeds' URLs change over time; an active source that 404s only logs)."""

from django.db import migrations

EXAMPLES = [
    {
        "name": "NILE (National Institute for Lifelong Education) notices",
        "url": "https://www.nile.or.kr/",
        "kind": "html",
        "description": "국가평생교육진흥원: lifelong education notices and programmes.",
    },
    {
        "name": "MOHW (Ministry of Health and Welfare) press releases",
        "url": "https://www.mohw.go.kr/",
        "kind": "html",
        "description": "보건복지부: welfare policy press releases.",
    },
    {
        "name": "KICCE (Korea Institute of Child Care and Education) publications",
        "url": "https://kicce.re.kr/",
        "kind": "html",
        "description": "육아정책연구소: childcare and early education research.",
    },
]


def add_examples(apps, schema_editor):
    DataSource = apps.get_model("enrichment", "DataSource")
    for example in EXAMPLES:
        DataSource.objects.get_or_create(
            name=example["name"], defaults={**example, "active": False, "schedule": "0 6 * * *"}
        )


def remove_examples(apps, schema_editor):
    DataSource = apps.get_model("enrichment", "DataSource")
    DataSource.objects.filter(name__in=[example["name"] for example in EXAMPLES], active=False).delete()


class Migration(migrations.Migration):
    dependencies = [("enrichment", "0001_initial")]
    operations = [migrations.RunPython(add_examples, remove_examples)]
