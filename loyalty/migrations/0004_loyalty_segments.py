"""Segment conditions over loyalty data (loyalty.segment_fields) at 1M contacts, on PostgreSQL.

Till receipts reach a contact through their card (purchase -> card -> contact), and a SKU through its receipt
(line -> purchase): joins that cost a second per segment count at 1M contacts. So, as migration crm 0004 did for tags,
the rows carry what segments filter on, kept by triggers inside the writing transaction (every write path: the
scan service, the admin, raw SQL), and are deliberately not model fields (a stale save() cannot write them back):

- `loyalty_purchase.contact_id`: the card's contact (BEFORE INSERT; and when a card's contact changes);
- `loyalty_purchaseline.contact_id`, `.scanned_at`: the receipt's (BEFORE INSERT; and when the receipt's do);
- `loyalty_segment_last_purchase` (contact_id, till_at, order_at): each contact's latest receipt and latest
  Tmall/JD order line, upserted after inserts (order lines per statement, with a transition table, so a 1M-line
  import pays one set-based upsert, not one per line) and recomputed for the touched contacts after updates and
  deletes.

Covering indexes make each read index-only. Not maintained: loads run with session_replication_role = replica
(triggers off): rebuild with BACKFILL after those. SQLite (local tests) gets none of this; segment_fields reads
the joins there.
"""

from django.db import migrations

BACKFILL_ROWS = [
    "UPDATE loyalty_purchase p SET contact_id = c.contact_id FROM loyalty_card c "
    "WHERE c.id = p.card_id AND p.contact_id IS DISTINCT FROM c.contact_id",
    "UPDATE loyalty_purchaseline l SET contact_id = p.contact_id, scanned_at = p.scanned_at FROM loyalty_purchase p "
    "WHERE p.id = l.purchase_id AND (l.contact_id IS DISTINCT FROM p.contact_id "
    "OR l.scanned_at IS DISTINCT FROM p.scanned_at)",
]
BACKFILL_LATEST = [
    "TRUNCATE loyalty_segment_last_purchase",
    "INSERT INTO loyalty_segment_last_purchase (contact_id, till_at, order_at) "
    "SELECT contact_id, max(till_at), max(order_at) FROM ("
    "SELECT contact_id, max(scanned_at) till_at, NULL::timestamptz order_at FROM loyalty_purchase "
    "WHERE contact_id IS NOT NULL GROUP BY contact_id UNION ALL "
    "SELECT contact_id, NULL, max(ordered_at) FROM crm_sourceorderline WHERE contact_id IS NOT NULL "
    "GROUP BY contact_id) s GROUP BY contact_id",
]
BACKFILL = BACKFILL_ROWS + BACKFILL_LATEST

_RECOMPUTE = """
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO loyalty_segment_last_purchase AS l (contact_id, order_at)
        SELECT t.cid, (SELECT max(o.ordered_at) FROM crm_sourceorderline o WHERE o.contact_id = t.cid)
        FROM ({touched}) t(cid) WHERE t.cid IS NOT NULL
        ON CONFLICT (contact_id) DO UPDATE SET order_at = EXCLUDED.order_at;
        RETURN NULL;
    END $$
"""

FORWARD = [
    "ALTER TABLE loyalty_purchase ADD COLUMN IF NOT EXISTS contact_id bigint",
    "ALTER TABLE loyalty_purchaseline ADD COLUMN IF NOT EXISTS contact_id bigint",
    "ALTER TABLE loyalty_purchaseline ADD COLUMN IF NOT EXISTS scanned_at timestamptz",
    "CREATE TABLE IF NOT EXISTS loyalty_segment_last_purchase (contact_id bigint PRIMARY KEY, "
    "till_at timestamptz, order_at timestamptz)",
    # Filled before the triggers exist (they would redo it row by row), with the writers held off until the
    # triggers are in place: the migration's transaction keeps these locks to its end.
    "LOCK TABLE loyalty_card, crm_sourceorderline IN SHARE ROW EXCLUSIVE MODE",
    *BACKFILL,
    """
    CREATE OR REPLACE FUNCTION loyalty_purchase_contact() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.contact_id := (SELECT contact_id FROM loyalty_card WHERE id = NEW.card_id);
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER loyalty_purchase_contact BEFORE INSERT OR UPDATE OF card_id ON loyalty_purchase "
    "FOR EACH ROW EXECUTE FUNCTION loyalty_purchase_contact()",
    """
    CREATE OR REPLACE FUNCTION loyalty_purchaseline_denorm() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        SELECT contact_id, scanned_at INTO NEW.contact_id, NEW.scanned_at FROM loyalty_purchase
        WHERE id = NEW.purchase_id;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER loyalty_purchaseline_denorm BEFORE INSERT OR UPDATE OF purchase_id ON loyalty_purchaseline "
    "FOR EACH ROW EXECUTE FUNCTION loyalty_purchaseline_denorm()",
    # A card moved to another contact, a receipt re-dated: carry it down.
    """
    CREATE OR REPLACE FUNCTION loyalty_card_contact_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE loyalty_purchase SET contact_id = NEW.contact_id WHERE card_id = NEW.id;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_card_contact_moved AFTER UPDATE OF contact_id ON loyalty_card "
    "FOR EACH ROW WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id) "
    "EXECUTE FUNCTION loyalty_card_contact_moved()",
    """
    CREATE OR REPLACE FUNCTION loyalty_purchase_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE loyalty_purchaseline SET contact_id = NEW.contact_id, scanned_at = NEW.scanned_at
        WHERE purchase_id = NEW.id;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_purchase_moved AFTER UPDATE OF card_id, contact_id, scanned_at ON loyalty_purchase "
    "FOR EACH ROW WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id OR OLD.scanned_at IS DISTINCT FROM "
    "NEW.scanned_at) EXECUTE FUNCTION loyalty_purchase_moved()",
    # The latest receipt per contact: up on insert; recomputed for the contacts an update or delete touched.
    """
    CREATE OR REPLACE FUNCTION loyalty_purchase_last() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.contact_id IS NOT NULL THEN
                INSERT INTO loyalty_segment_last_purchase AS l (contact_id, till_at) VALUES (NEW.contact_id,
                    NEW.scanned_at) ON CONFLICT (contact_id) DO UPDATE
                    SET till_at = GREATEST(l.till_at, EXCLUDED.till_at);
            END IF;
            RETURN NULL;
        END IF;
        INSERT INTO loyalty_segment_last_purchase AS l (contact_id, till_at)
        SELECT t.cid, (SELECT max(p.scanned_at) FROM loyalty_purchase p WHERE p.contact_id = t.cid)
        FROM (SELECT OLD.contact_id cid UNION SELECT NEW.contact_id) t WHERE t.cid IS NOT NULL
        ON CONFLICT (contact_id) DO UPDATE SET till_at = EXCLUDED.till_at;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_purchase_last AFTER INSERT OR DELETE OR UPDATE OF contact_id, scanned_at "
    "ON loyalty_purchase FOR EACH ROW EXECUTE FUNCTION loyalty_purchase_last()",
    """
    CREATE OR REPLACE FUNCTION loyalty_orderline_last_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO loyalty_segment_last_purchase AS l (contact_id, order_at)
        SELECT contact_id, max(ordered_at) FROM new_rows WHERE contact_id IS NOT NULL GROUP BY contact_id
        ON CONFLICT (contact_id) DO UPDATE SET order_at = GREATEST(l.order_at, EXCLUDED.order_at);
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_orderline_last_insert AFTER INSERT ON crm_sourceorderline "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION loyalty_orderline_last_insert()",
    # An update or delete of order lines: the touched contacts' latest order line, read again.
    _RECOMPUTE.format(name="loyalty_orderline_last_delete", touched="SELECT contact_id FROM old_rows"),
    _RECOMPUTE.format(name="loyalty_orderline_last_update",
                      touched="SELECT contact_id FROM old_rows UNION SELECT contact_id FROM new_rows"),
    "CREATE TRIGGER loyalty_orderline_last_update AFTER UPDATE ON crm_sourceorderline "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION loyalty_orderline_last_update()",
    "CREATE TRIGGER loyalty_orderline_last_delete AFTER DELETE ON crm_sourceorderline "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION loyalty_orderline_last_delete()",
    # spend: the window of receipts by scanned_at, with contact and amount.
    "CREATE INDEX IF NOT EXISTS purchase_scanned_contact_amount ON loyalty_purchase "
    "(scanned_at) INCLUDE (contact_id, amount_fen)",
    # bought: a SKU's lines (in a window) with their contact.
    "CREATE INDEX IF NOT EXISTS purchaseline_sku_scanned_contact ON loyalty_purchaseline "
    "(sku, scanned_at) INCLUDE (contact_id)",
    # tier / points: the cards of a tier or a balance range, with their contact.
    "CREATE INDEX IF NOT EXISTS card_tier_contact ON loyalty_card (tier_id) INCLUDE (contact_id)",
    "CREATE INDEX IF NOT EXISTS card_points_contact ON loyalty_card (points_balance) INCLUDE (contact_id)",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS loyalty_orderline_last_insert ON crm_sourceorderline",
    "DROP TRIGGER IF EXISTS loyalty_orderline_last_update ON crm_sourceorderline",
    "DROP TRIGGER IF EXISTS loyalty_orderline_last_delete ON crm_sourceorderline",
    "DROP TRIGGER IF EXISTS loyalty_purchase_last ON loyalty_purchase",
    "DROP TRIGGER IF EXISTS loyalty_card_contact_moved ON loyalty_card",
    "DROP TRIGGER IF EXISTS loyalty_purchase_moved ON loyalty_purchase",
    "DROP TRIGGER IF EXISTS loyalty_purchaseline_denorm ON loyalty_purchaseline",
    "DROP TRIGGER IF EXISTS loyalty_purchase_contact ON loyalty_purchase",
    "DROP FUNCTION IF EXISTS loyalty_orderline_last_insert()",
    "DROP FUNCTION IF EXISTS loyalty_orderline_last_update()",
    "DROP FUNCTION IF EXISTS loyalty_orderline_last_delete()",
    "DROP FUNCTION IF EXISTS loyalty_purchase_last()",
    "DROP FUNCTION IF EXISTS loyalty_card_contact_moved()",
    "DROP FUNCTION IF EXISTS loyalty_purchase_moved()",
    "DROP FUNCTION IF EXISTS loyalty_purchaseline_denorm()",
    "DROP FUNCTION IF EXISTS loyalty_purchase_contact()",
    "DROP TABLE IF EXISTS loyalty_segment_last_purchase",
    "DROP INDEX IF EXISTS card_tier_contact",
    "DROP INDEX IF EXISTS card_points_contact",
    "ALTER TABLE loyalty_purchaseline DROP COLUMN IF EXISTS contact_id",  # drops its index with it
    "ALTER TABLE loyalty_purchaseline DROP COLUMN IF EXISTS scanned_at",
    "ALTER TABLE loyalty_purchase DROP COLUMN IF EXISTS contact_id",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0003_product")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
