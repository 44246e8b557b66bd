"""Console (admin) of the earning area: the earning rules (written through loyalty.services.earning) and the preview
screen "what would this receipt earn?". Owner: marketing / admin (earningrule permissions, preview_earning)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from crm.admin.base import ServiceModelAdmin, adopt
from crm.console.render import console_render, permission_required
from crm.errors import ApplicationError
from loyalty.admin import ReadOnlyAdminMixin, ServiceDeleteMixin, ServiceForm
from loyalty.models import EarningBonusGrant, EarningRule, Store, Tier
from loyalty.services.earning import (
    RULE_FIELDS,
    earn_preview,
    earning_rule_delete,
    earning_rule_save,
    earning_rule_validate,  # fmt: skip
)


class EarningRuleForm(ServiceForm):
    class Meta:
        model = EarningRule
        fields = RULE_FIELDS

    def service_validate(self, data: dict) -> None:
        earning_rule_validate(data)


@admin.register(EarningRule)
class EarningRuleAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The rules; the form's refusals come from the service, on the field they name."""

    form = EarningRuleForm
    list_display = ["name", "kind", "is_active", "multiplier_pct", "fen_per_point", "tier", "store", "starts_on",
                    "ends_on", "category", "sku", "cap_points", "bonus_points"]  # fmt: skip
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "sku", "category"]
    delete_service = staticmethod(earning_rule_delete)
    change_list_template = "loyalty/earning/rule_changelist.html"

    def save_model(self, request, obj, form, change) -> None:
        adopt(obj, earning_rule_save(form.cleaned_data, rule_id=obj.pk if change else None))

    def get_urls(self):
        view = self.admin_site.admin_view(permission_required("loyalty.preview_earning")(earning_preview_page))
        return [path("preview/", view, name="loyalty_earningrule_preview"), *super().get_urls()]


@admin.register(EarningBonusGrant)
class EarningBonusGrantAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Bonus events paid, one per contact and event (and year, for the birthday; written by the scan)."""

    list_display = ["created_at", "contact", "event", "period", "points", "rule", "purchase"]
    list_filter = ["event"]
    search_fields = ["contact__name", "contact__external_userid"]
    list_select_related = ["contact", "rule", "purchase"]


class PreviewForm(forms.Form):
    store = forms.ModelChoiceField(Store.objects.all(), label=_("Store"), required=False, to_field_name="code")
    tier = forms.ModelChoiceField(Tier.objects.all(), label=_("Tier"), required=False)
    card = forms.CharField(label=_("Card number"), required=False, help_text=_("Instead of a tier."))
    amount_fen = forms.IntegerField(label=_("Amount (fen)"))
    lines = forms.CharField(
        label=_("Lines"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One line per item: SKU and amount in fen, e.g. TEA-001 9800"),
    )  # fmt: skip
    at = forms.DateTimeField(label=_("Date and time"), required=False, help_text=_("Asia/Shanghai; now if empty."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # unfold's reset leaves bare inputs borderless
            field.widget.attrs.setdefault("class", "border rounded px-2 py-1 w-full max-w-xl")

    def clean_lines(self) -> list[dict]:
        items = []
        for number, raw in enumerate(self.cleaned_data.get("lines", "").splitlines(), start=1):
            if not raw.strip():
                continue
            parts = raw.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise forms.ValidationError(_("Line %(n)s: write a SKU and an amount in fen.") % {"n": number})
            items.append({"sku": parts[0], "amount_fen": int(parts[1])})
        return items


# Which form field shows a service refusal naming a field.
_FIELD_OF = {"amount_fen": "amount_fen", "store": "store", "card": "card", "tier": "tier"}


def earning_preview_page(request):
    """The preview: the same evaluation as a scan, nothing written."""
    form = PreviewForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        at = data.get("at")
        if at is not None and timezone.is_naive(at):
            at = timezone.make_aware(at, dt.timezone(dt.timedelta(hours=8)))
        try:
            result = earn_preview(
                store_code=data["store"].code if data.get("store") else None,
                amount_fen=data["amount_fen"],
                lines=data["lines"] or None,
                card_number=data.get("card") or None,
                tier_id=data["tier"].pk if data.get("tier") else None,
                at=at,
            )
        except ApplicationError as exc:
            field = exc.field or ""
            form.add_error(_FIELD_OF.get(field, "lines" if field.startswith("items") else None), exc.message)
    lines = form.cleaned_data.get("lines", []) if form.is_bound and hasattr(form, "cleaned_data") else []
    rows = list(zip(lines, result.line_points, strict=False)) if result else []
    return console_render(
        request,
        "loyalty/earning/preview.html",
        {
            "form": form,
            "result": result,
            "line_rows": rows,
            "rules_url": reverse("admin:loyalty_earningrule_changelist"),
        },
        title=_("What would this receipt earn?"),
    )
