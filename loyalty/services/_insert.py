"""One-row INSERT .. ON CONFLICT (unique columns) DO NOTHING RETURNING id, for the till's hot path.

One round trip where the ORM needs a SAVEPOINT, the INSERT, a RELEASE and an IntegrityError path (plus, before
it, a read to find an existing row). Values go through each field's own pre_save/get_db_prep_save, so defaults,
auto_now_add and JSON adaptation stay the ORM's (crm.services.callbacks does the same for callback events). No
post_save signal is sent: nothing listens to the models written this way (purchases, ledger rows)."""

from __future__ import annotations

from django.db import connections, models, router
from django.db.models import Model

_sql: dict[tuple[str, str, tuple[str, ...]], str] = {}
_PLAIN = (models.IntegerField, models.CharField, models.TextField, models.BooleanField)
_AS_IS = frozenset({int, str, bool, type(None)})
_plans: dict[tuple, list] = {}


def _plain(field) -> bool:
    if isinstance(field, models.ForeignKey):  # its target's adaptation: an integer key is the integer
        return _plain(field.target_field)
    return (
        isinstance(field, _PLAIN)
        and type(field).get_db_prep_save is models.Field.get_db_prep_save
        and not getattr(field, "auto_now", False)
        and not getattr(field, "auto_now_add", False)
    )


def prep_values(obj: Model, fields: list, connection) -> list:
    """Each field's value for an INSERT, as f.get_db_prep_save(f.pre_save(obj, add=True), connection) gives it.
    A plain field's (integers, text, booleans, integer foreign keys: no custom adaptation) int, str, bool or None
    value is bound as it is: what those calls return for it, at a fraction of the cost (a till scan binds ~30)."""
    key = (type(obj), tuple(f.name for f in fields))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = [(f, _plain(f)) for f in fields]
    out = []
    for field, plain in plan:
        value = getattr(obj, field.attname) if plain else None
        # Exactly these types only: a str subclass (a TextChoices member) must be its str(), as the field makes it.
        if not plain or type(value) not in _AS_IS:
            value = field.get_db_prep_save(field.pre_save(obj, add=True), connection)
        out.append(value)
    return out


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
    params = prep_values(obj, fields, connection)
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
    params = [value for obj in objs for value in prep_values(obj, fields, connection)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [r[0] for r in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, alias


def children_cte(connection, meta, fk: str, fields: list, count: int) -> str:
    """`c AS (INSERT INTO <meta's table> (<fk>, fields..) SELECT p.id, .. FROM p, (VALUES ..) RETURNING id)`: `count`
    children of the parent CTE `p`'s row, their parameters (ord, then each field's value) per child in order.
    Each value is cast to its column's type (the client binds literals); ord keeps the children's order for
    their ids (one sequence, assigned in the SELECT's order)."""
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] + [f"CAST(%s AS {f.db_type(connection)})" for f in fields]) + ")"
    names = ", ".join(f"c{i}" for i in range(len(fields)))
    return (
        f"c AS (INSERT INTO {qn(meta.db_table)} "  # noqa: S608
        f"({qn(meta.get_field(fk).column)}, {', '.join(qn(f.column) for f in fields)}) "
        f"SELECT p.id, {names} FROM p, (VALUES {', '.join([row] * count)}) AS v(ord, {names}) "
        f"ORDER BY ord RETURNING {qn(meta.pk.column)} AS id)"
    )


def insert_with_children(
    obj: Model, unique: tuple[str, ...], children: list[Model], fk: str, count_sql: str = "", count_params=None
) -> tuple[bool, int | None]:
    """PostgreSQL: insert_unless_conflict(obj) and insert_rows(children) (their `fk` pointing at obj) as one
    statement of data-modifying CTEs, and, in the same round trip, an optional `count_sql` scalar subquery (it
    sees the committed rows, not this statement's own; `count_params(obj)` gives its parameters, after obj's
    pre_save has set its defaults). -> (stored, count). Nothing is written on a conflict:
    the children's INSERT selects from the parent's RETURNING, empty then."""
    meta = obj._meta
    alias = router.db_for_write(type(obj), instance=obj)
    connection = connections[alias]
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    child_meta = children[0]._meta if children else None
    child_fields = [f for f in child_meta.concrete_fields if not f.primary_key and f.name != fk] if children else []
    key = (alias, meta.label, unique, "children", str(len(children)), count_sql)
    sql = _sql.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        parts = [
            f"WITH p AS (INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({', '.join(qn(meta.get_field(name).column) for name in unique)}) DO NOTHING "
            f"RETURNING {qn(meta.pk.column)} AS id)"
        ]
        children_out = "NULL"
        if children:
            parts.append(", " + children_cte(connection, child_meta, fk, child_fields, len(children)))
            children_out = "(SELECT array_agg(id ORDER BY id) FROM c)"
        # count_sql is the caller's own constant SQL (velocity_count_sql), never input.
        parts.append(f" SELECT p.id, {children_out}, {f'({count_sql})' if count_sql else 'NULL'} FROM p")  # noqa: S608
        sql = _sql[key] = "".join(parts)
    params = prep_values(obj, fields, connection)
    for n, child in enumerate(children):
        params.append(n)
        params.extend(prep_values(child, child_fields, connection))
    if count_sql:
        params.extend(count_params(obj))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False, None
    obj.pk = row[0]
    obj._state.adding, obj._state.db = False, alias
    for child, pk in zip(children, row[1] or [], strict=True):
        setattr(child, fk, obj)
        child.pk = pk
        child._state.adding, child._state.db = False, alias
    return True, row[2]
