"""Consent per purpose (versioned, append-only) and the data sources whose openness bounds what we may keep."""

from django.db import models

__all__ = ["ConsentRecord", "DataSource", "SourceAggregate", "SourceEvent", "SourceOrderLine"]


class ConsentRecord(models.Model):
    """One consent decision (grant or withdrawal) for a purpose; the latest version per purpose is in force."""

    class Purpose(models.TextChoices):
        MARKETING = "marketing", "Marketing pushes"
        BEHAVIOUR = "behaviour", "Behavioural data collection"
        PROFILING = "profiling", "Profiling and segments"

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    granted = models.BooleanField()
    source = models.CharField(max_length=64, help_text="Where it was given, e.g. wecom, card_page, admin.")
    policy_version = models.CharField(max_length=32, blank=True, help_text="Version of the text agreed to.")
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["contact", "purpose", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["contact", "purpose", "version"], name="uniq_consent_version"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.purpose} v{self.version} {'granted' if self.granted else 'withdrawn'}"


class DataSource(models.Model):
    """An ecosystem data source with its openness level (what grain of data it may give us)."""

    class Openness(models.TextChoices):
        OPEN = "open", "Open: individual events, with consent"
        SEMI_OPEN = "semi_open", "Semi-open: phone and order lines"
        CLOSED = "closed", "Closed: daily aggregates only"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    openness = models.CharField(max_length=16, choices=Openness.choices)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.openness})"


class SourceEvent(models.Model):
    """An individual behavioural event from an open source, kept only with behaviour consent."""

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="events")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="source_events")
    event_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=64)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="uniq_source_event")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.event_id} {self.kind}"


class SourceOrderLine(models.Model):
    """An order line from a semi-open source (Tmall, JD), matched to a contact by phone hash."""

    # Indexed through uniq_source_order_line (source first) and Meta.indexes: no extra index per line imported.
    # No database constraint either: a 1M-line import would check 1M times that its one source exists, about a
    # tenth of the import's time. Sources are seeded rows that are never deleted, and PROTECT still guards the
    # ORM's deletes.
    source = models.ForeignKey(
        DataSource, on_delete=models.PROTECT, related_name="order_lines", db_index=False, db_constraint=False
    )
    order_id = models.CharField(max_length=64)
    line_no = models.PositiveIntegerField(default=1)
    phone_hash = models.CharField(max_length=64)
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="source_order_lines"
    )
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField(default=1)
    amount_fen = models.BigIntegerField()
    ordered_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "order_id", "line_no"], name="uniq_source_order_line"),
        ]
        # A Meta index, not db_index=True: on PostgreSQL that adds a varchar_pattern_ops twin for LIKE, which a
        # hash never needs and every imported line would pay for.
        indexes = [models.Index(fields=["phone_hash"], name="sourceorderline_phone_hash")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.order_id}/{self.line_no}"


class SourceAggregate(models.Model):
    """A daily aggregate from a closed source (Douyin, Weibo...): no individual identifiers."""

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="aggregates")
    day = models.DateField()
    metric = models.CharField(max_length=32)
    bucket = models.CharField(max_length=64, blank=True, help_text="Demographic bucket, e.g. female_25_34.")
    value = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "day", "metric", "bucket"], name="uniq_source_aggregate"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} {self.day} {self.metric}[{self.bucket}]={self.value}"
