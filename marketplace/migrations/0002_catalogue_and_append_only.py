from django.db import migrations


def load_catalogue(apps, schema_editor):
    from marketplace.catalogue import catalogue_load

    catalogue_load(
        hub_model=apps.get_model("marketplace", "Hub"),
        cluster_model=apps.get_model("marketplace", "Cluster"),
        class_model=apps.get_model("marketplace", "ComputeClass"),
    )


# The application never updates or deletes provenance events; the database refuses it too,
# so only someone who can disable the trigger can tamper — and the hash chain shows it.
APPEND_ONLY = """
CREATE FUNCTION marketplace_provenance_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'provenance events are append-only (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER provenance_append_only BEFORE UPDATE OR DELETE ON marketplace_provenanceevent
    FOR EACH ROW EXECUTE FUNCTION marketplace_provenance_append_only();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS provenance_append_only ON marketplace_provenanceevent;
DROP FUNCTION IF EXISTS marketplace_provenance_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]

    operations = [
        migrations.RunPython(load_catalogue, migrations.RunPython.noop),
        migrations.RunSQL(APPEND_ONLY, DROP_APPEND_ONLY),
    ]
