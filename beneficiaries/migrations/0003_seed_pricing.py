from django.db import migrations


def forwards(apps, schema_editor):
    from beneficiaries.pricing_seed import seed_pricing

    seed_pricing(apps)


class Migration(migrations.Migration):
    dependencies = [("beneficiaries", "0002_registry")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
