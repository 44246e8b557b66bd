"""The filter language at 1M contacts (crm.services.segments): PostgreSQL-only covering indexes, so that each kind
of condition reads an index-only range and joins the contacts once (hash semi/anti-join), never a probe per contact.

Raw SQL, not Meta.indexes: INCLUDE columns and partial predicates tuned for these queries, and SQLite (local tests)
needs none of them.
"""

from django.db import migrations

FORWARD = [
    # consent: the latest version per (purpose, contact) read in order off the index (DISTINCT ON), granted with it.
    "CREATE INDEX IF NOT EXISTS consent_purpose_contact_version ON crm_consentrecord "
    "(purpose, contact_id, version DESC) INCLUDE (granted)",
    # spend / last purchase from Tmall, JD order lines: the window by ordered_at, with contact and amount.
    "CREATE INDEX IF NOT EXISTS orderline_ordered_contact_amount ON crm_sourceorderline "
    "(ordered_at) INCLUDE (contact_id, amount_fen) WHERE contact_id IS NOT NULL",
    # bought (SKUs, categories) on order lines.
    "CREATE INDEX IF NOT EXISTS orderline_sku_contact ON crm_sourceorderline "
    "(sku) INCLUDE (contact_id, ordered_at) WHERE contact_id IS NOT NULL",
    # source: contacts with lines from one source.
    "CREATE INDEX IF NOT EXISTS orderline_source_contact ON crm_sourceorderline "
    "(source_id, contact_id) WHERE contact_id IS NOT NULL",
    # group / vip_group: current members of given groups.
    "CREATE INDEX IF NOT EXISTS groupmember_present_group_contact ON crm_groupmember "
    "(group_id, contact_id) WHERE left_at IS NULL AND contact_id IS NOT NULL",
]

BACKWARD = [
    "DROP INDEX IF EXISTS consent_purpose_contact_version",
    "DROP INDEX IF EXISTS orderline_ordered_contact_amount",
    "DROP INDEX IF EXISTS orderline_sku_contact",
    "DROP INDEX IF EXISTS orderline_source_contact",
    "DROP INDEX IF EXISTS groupmember_present_group_contact",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("crm", "0007_campaign_engine")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
