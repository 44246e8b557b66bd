"""Segment counts over 1M contacts: a covering probe index for "followed by one of these staff", and on PostgreSQL a
denormalised `crm_contact.tag_ids` (bigint[], GIN-indexed) that segments filter on instead of joining ContactTag.

The column is kept in step by a trigger on crm_contacttag, not by the services: every write path (the tag services,
sync's bulk_create, the admin, the cascade when a Tag or Contact is deleted, raw SQL) goes through it, inside the
writing transaction. The trigger edits the array in place (append / remove) rather than re-reading ContactTag, so
two transactions tagging one contact at once both land: the second UPDATE waits for the row lock and re-applies
its append to the committed array. The column is deliberately not a model field: a Contact.save() from a stale
instance would otherwise write an old array back. Not maintained: TRUNCATE of crm_contacttag alone, and loads run
with session_replication_role = replica (which skips triggers); rebuild with BACKFILL after those.
SQLite (local tests) gets neither; segments there use EXISTS over ContactTag.
"""

from django.db import migrations, models

BACKFILL = (
    "UPDATE crm_contact c SET tag_ids = s.ids FROM (SELECT contact_id, array_agg(tag_id ORDER BY tag_id) ids "
    "FROM crm_contacttag GROUP BY contact_id) s WHERE s.contact_id = c.id"
)

FORWARD = [
    # A constant default: no table rewrite on PostgreSQL >= 11.
    "ALTER TABLE crm_contact ADD COLUMN tag_ids bigint[] NOT NULL DEFAULT '{}'",
    """
    CREATE FUNCTION crm_contact_tag_ids_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            UPDATE crm_contact SET tag_ids = array_remove(tag_ids, OLD.tag_id) WHERE id = OLD.contact_id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            -- remove first: idempotent even if the array already held the id
            UPDATE crm_contact SET tag_ids = array_append(array_remove(tag_ids, NEW.tag_id), NEW.tag_id)
            WHERE id = NEW.contact_id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER crm_contacttag_tag_ids AFTER INSERT OR DELETE OR UPDATE OF contact_id, tag_id "
    "ON crm_contacttag FOR EACH ROW EXECUTE FUNCTION crm_contact_tag_ids_sync()",
    BACKFILL,
    "CREATE INDEX contact_tag_ids_gin ON crm_contact USING gin (tag_ids)",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS crm_contacttag_tag_ids ON crm_contacttag",
    "DROP FUNCTION IF EXISTS crm_contact_tag_ids_sync()",
    "ALTER TABLE crm_contact DROP COLUMN IF EXISTS tag_ids",  # drops the GIN index with it
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0003_orderline_source_no_db_constraint"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="followrelation",
            index=models.Index(
                condition=models.Q(("deleted_by_staff_at__isnull", True)),
                fields=["contact", "staff"],
                name="follow_active_contact_staff",
            ),
        ),
        migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False),
    ]
