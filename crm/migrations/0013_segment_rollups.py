"""Segment counts at 1M contacts: each contact's consent in force per purpose, kept as a rollup on PostgreSQL.

`consent` asks for the latest version per (contact, purpose). Read off the consent records that is a DISTINCT ON
over every record of the purpose (420k index entries at 1M contacts) in each count, and again in each parallel
worker. `crm_segment_consent` (purpose, contact_id, version, granted) holds that latest version, one row per
(contact, purpose), so a count reads an index-only range of the contacts granted (or withdrawn) and nothing else.

Kept by statement-level triggers on crm_consentrecord inside the writing transaction (every write path: the consent
service, the admin, raw SQL, a bulk import pays one set-based statement): an insert upserts the pair's row when its
version is not older; an update or delete recomputes the touched pairs from the records left (a pair with no
record left loses its row: a deleted contact's consents go with it); a TRUNCATE empties it, so that it only ever
names live contacts (a one-condition count counts its ids without the contacts). Not a model (a stale save()
could not write it wrongly; nothing but the triggers writes it). Loads that run with session_replication_role =
replica (triggers off) rebuild it with BACKFILL. SQLite (local tests) gets none of this; segments.py reads the
records there.
"""

from django.db import migrations

BACKFILL = [
    "TRUNCATE crm_segment_consent",
    "INSERT INTO crm_segment_consent (purpose, contact_id, version, granted) "
    "SELECT DISTINCT ON (purpose, contact_id) purpose, contact_id, version, granted FROM crm_consentrecord "
    "ORDER BY purpose, contact_id, version DESC",
]

# The touched pairs' latest record, read again; pairs with none left lose their row.
_RECOMPUTE = """
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        WITH touched AS (SELECT DISTINCT purpose, contact_id FROM ({touched}) t),
        latest AS (
            SELECT DISTINCT ON (r.purpose, r.contact_id) r.purpose, r.contact_id, r.version, r.granted
            FROM crm_consentrecord r JOIN touched t ON t.purpose = r.purpose AND t.contact_id = r.contact_id
            ORDER BY r.purpose, r.contact_id, r.version DESC
        ),
        gone AS (
            DELETE FROM crm_segment_consent s USING touched t
            WHERE s.purpose = t.purpose AND s.contact_id = t.contact_id
            AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.purpose = t.purpose AND l.contact_id = t.contact_id)
        )
        INSERT INTO crm_segment_consent AS s (purpose, contact_id, version, granted)
        SELECT purpose, contact_id, version, granted FROM latest
        ON CONFLICT (purpose, contact_id) DO UPDATE SET version = EXCLUDED.version, granted = EXCLUDED.granted;
        RETURN NULL;
    END $$
"""

FORWARD = [
    "CREATE TABLE IF NOT EXISTS crm_segment_consent (purpose varchar(32) NOT NULL, contact_id bigint NOT NULL, "
    "version integer NOT NULL, granted boolean NOT NULL, PRIMARY KEY (purpose, contact_id))",
    # Filled before the triggers exist, with the writers held off until they are in place (the migration's
    # transaction keeps the lock to its end).
    "LOCK TABLE crm_consentrecord IN SHARE ROW EXCLUSIVE MODE",
    *BACKFILL,
    """
    CREATE OR REPLACE FUNCTION crm_segment_consent_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO crm_segment_consent AS s (purpose, contact_id, version, granted)
        SELECT DISTINCT ON (purpose, contact_id) purpose, contact_id, version, granted FROM new_rows
        ORDER BY purpose, contact_id, version DESC
        ON CONFLICT (purpose, contact_id) DO UPDATE SET version = EXCLUDED.version, granted = EXCLUDED.granted
        WHERE s.version <= EXCLUDED.version;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER crm_segment_consent_insert AFTER INSERT ON crm_consentrecord "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_segment_consent_insert()",
    _RECOMPUTE.format(
        name="crm_segment_consent_update",
        touched="SELECT purpose, contact_id FROM old_rows UNION ALL SELECT purpose, contact_id FROM new_rows",
    ),
    "CREATE TRIGGER crm_segment_consent_update AFTER UPDATE ON crm_consentrecord "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION crm_segment_consent_update()",
    _RECOMPUTE.format(name="crm_segment_consent_delete", touched="SELECT purpose, contact_id FROM old_rows"),
    "CREATE TRIGGER crm_segment_consent_delete AFTER DELETE ON crm_consentrecord "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_segment_consent_delete()",
    # A TRUNCATE (Django's flush between transactional tests, a reset) fires no row trigger: empty it with them.
    """
    CREATE OR REPLACE FUNCTION crm_segment_consent_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        TRUNCATE crm_segment_consent;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER crm_segment_consent_truncate AFTER TRUNCATE ON crm_consentrecord "
    "FOR EACH STATEMENT EXECUTE FUNCTION crm_segment_consent_truncate()",
    # The count's read: the contacts whose consent in force for a purpose is granted (or withdrawn).
    "CREATE INDEX IF NOT EXISTS segment_consent_granted_contact ON crm_segment_consent "
    "(purpose, granted) INCLUDE (contact_id)",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS crm_segment_consent_insert ON crm_consentrecord",
    "DROP TRIGGER IF EXISTS crm_segment_consent_update ON crm_consentrecord",
    "DROP TRIGGER IF EXISTS crm_segment_consent_delete ON crm_consentrecord",
    "DROP TRIGGER IF EXISTS crm_segment_consent_truncate ON crm_consentrecord",
    "DROP FUNCTION IF EXISTS crm_segment_consent_truncate()",
    "DROP FUNCTION IF EXISTS crm_segment_consent_insert()",
    "DROP FUNCTION IF EXISTS crm_segment_consent_update()",
    "DROP FUNCTION IF EXISTS crm_segment_consent_delete()",
    "DROP TABLE IF EXISTS crm_segment_consent",  # drops its index with it
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("crm", "0012_recipient_write_path")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
