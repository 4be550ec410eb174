from django.db import migrations

# The published SLA credit ladder (after the AWS compute SLA): delivered below 99.9 % earns
# 10 % of the allocation's value, below 99 % 25 %, below 95 % all of it.
DEFAULT_STEPS = [(9990, 1000), (9900, 2500), (9500, 10000)]


def add_steps(apps, schema_editor):
    step = apps.get_model("settlement", "SlaCreditStep")
    for below_bp, credit_bp in DEFAULT_STEPS:
        step.objects.get_or_create(below_bp=below_bp, defaults={"credit_bp": credit_bp})


class Migration(migrations.Migration):
    dependencies = [("settlement", "0001_initial")]
    operations = [migrations.RunPython(add_steps, migrations.RunPython.noop)]
