"""One-row INSERT .. ON CONFLICT (unique columns) DO NOTHING RETURNING id, for the till's hot path.

One round trip where the ORM needs a SAVEPOINT, the INSERT, a RELEASE and an IntegrityError path (plus, before
it, a read to find an existing row). Values go through each field's own pre_save/get_db_prep_save, so defaults,
auto_now_add and JSON adaptation stay the ORM's (crm.services.callbacks does the same for callback events). No
post_save signal is sent: nothing listens to the models written this way (purchases, ledger rows)."""

from __future__ import annotations

from django.db import connections, router
from django.db.models import Model

_sql: dict[tuple[str, str, tuple[str, ...]], str] = {}


def insert_unless_conflict(obj: Model, unique: tuple[str, ...]) -> bool:
    """Insert `obj`: True (obj.pk set) when stored; False when a row with the same `unique` fields exists, or a
    concurrent transaction inserting one commits (PostgreSQL waits for it, as it would for the ORM's INSERT)."""
    meta = obj._meta
    alias = router.db_for_write(type(obj), instance=obj)
    connection = connections[alias]
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    key = (alias, meta.label, unique)
    sql = _sql.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        # Identifiers come from the model, quoted; every value is a bound parameter.
        sql = _sql[key] = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({', '.join(qn(meta.get_field(name).column) for name in unique)}) DO NOTHING "
            f"RETURNING {qn(meta.pk.column)}"
        )
    params = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding, obj._state.db = False, alias
    return True


def insert_rows(objs: list[Model]) -> None:
    """Insert `objs` (one model) in one INSERT .. RETURNING id, setting each pk: bulk_create's statement without
    its per-call query compilation (the till writes a lot and the lines of every receipt)."""
    if not objs:
        return
    meta = objs[0]._meta
    alias = router.db_for_write(type(objs[0]))
    connection = connections[alias]
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    key = (alias, meta.label, ("*", str(len(objs))))
    sql = _sql.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        row = f"({', '.join(['%s'] * len(fields))})"
        sql = _sql[key] = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES {', '.join([row] * len(objs))} RETURNING {qn(meta.pk.column)}"
        )
    params = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [r[0] for r in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, alias
