"""Corp tags and tag groups in the console: add, rename and delete through crm.services.tags, which pushes the
change to WeCom first; the page says what WeCom did. What WeCom's own console changes comes back by callback."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from crm.admin.base import OutsideTransactionFormMixin, ServiceModelAdmin, add_service_error, adopt
from crm.errors import ApplicationError
from crm.models.tags import Tag, TagGroup
from crm.wecom.errors import WeComError

READ_ONLY = ["wecom_id", "order", "deleted_at"]


def _report(request: HttpRequest, change, done: str) -> None:
    messages.success(request, f"{done} {change.message}")


class OutsideTransactionDeleteMixin:
    """Django runs the delete view inside one transaction; the delete speaks WeCom first, and holding a transaction
    across that HTTP call keeps the database locked meanwhile (see OutsideTransactionFormMixin). The service writes
    in its own transaction after WeCom answered."""

    def delete_view(self, request, object_id, extra_context=None):
        if request.method != "POST":
            return super().delete_view(request, object_id, extra_context)
        try:
            return self._delete_view(request, object_id, extra_context)
        except (ApplicationError, WeComError) as exc:
            return self._refused(request, exc)


class TagAdminForm(forms.ModelForm):
    """The name is checked with the service's own rules before WeCom is asked; WeCom's refusal (a name it holds,
    a tag its console made) comes back as the page's message."""

    class Meta:
        model = Tag
        fields = ["group", "name"]

    def validate_unique(self):
        """tag_name_validate says it in words, on the field."""

    def clean(self):
        from crm.services.tags import tag_name_validate

        data = super().clean()
        group = data.get("group") or (self.instance.group if self.instance.pk else None)
        if group is not None and "name" in data:
            try:
                data["name"] = tag_name_validate(group, data["name"], tag=self.instance if self.instance.pk else None)
            except ApplicationError as exc:
                add_service_error(self, exc)
        return data


class TagGroupAdminForm(forms.ModelForm):
    class Meta:
        model = TagGroup
        fields = ["name"]

    def clean(self):
        from crm.services.tags import tag_group_name_validate

        data = super().clean()
        if "name" in data:
            try:
                data["name"] = tag_group_name_validate(data["name"], group=self.instance if self.instance.pk else None)
            except ApplicationError as exc:
                add_service_error(self, exc)
        return data


@admin.register(Tag)
class TagAdmin(OutsideTransactionDeleteMixin, OutsideTransactionFormMixin, ServiceModelAdmin):
    """Renaming or deleting a tag here renames or deletes it in WeCom (edit_corp_tag / del_corp_tag); a deleted tag
    is kept, marked deleted, and taken off every contact."""

    form = TagAdminForm
    list_display = ["name", "group", "wecom_id", "order", "deleted_at"]
    list_filter = ["group"]
    search_fields = ["name", "group__name", "wecom_id"]

    def get_readonly_fields(self, request, obj=None):
        return ["group", *READ_ONLY] if obj else READ_ONLY

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.deleted_at is None)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.deleted_at is None)

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.tags import tag_create, tag_rename

        if change:
            result = tag_rename(Tag.objects.get(pk=obj.pk), form.cleaned_data["name"])
            _report(request, result, _("Renamed."))
        else:
            result = tag_create(form.cleaned_data["group"], form.cleaned_data["name"])
            _report(request, result, _("Created."))
        adopt(obj, result.obj)

    def delete_model(self, request, obj) -> None:
        from crm.services.tags import tag_delete

        _report(request, tag_delete(obj), _("Deleted."))

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        for tag in queryset.filter(deleted_at__isnull=True):
            self.delete_model(request, tag)


@admin.register(TagGroup)
class TagGroupAdmin(OutsideTransactionDeleteMixin, OutsideTransactionFormMixin, ServiceModelAdmin):
    """Renaming a group renames it in WeCom; deleting it deletes its tags with it, there and here."""

    form = TagGroupAdminForm
    list_display = ["name", "wecom_id", "order", "deleted_at"]
    search_fields = ["name", "wecom_id"]
    readonly_fields = READ_ONLY
    actions = ["sync_from_wecom"]

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.deleted_at is None)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.deleted_at is None)

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.tags import tag_group_rename

        if change:
            result = tag_group_rename(TagGroup.objects.get(pk=obj.pk), form.cleaned_data["name"])
            _report(request, result, _("Renamed."))
            adopt(obj, result.obj)
        else:
            # A group exists in WeCom only with a tag in it: it is created there with its first tag.
            adopt(obj, TagGroup.objects.create(name=form.cleaned_data["name"]))

    def delete_model(self, request, obj) -> None:
        from crm.services.tags import tag_group_delete

        _report(request, tag_group_delete(obj), _("Deleted."))

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        for group in queryset.filter(deleted_at__isnull=True):
            self.delete_model(request, group)

    @admin.action(description=_("Sync corp tags from WeCom"))
    def sync_from_wecom(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.tags import tags_sync_from_wecom

        label = _("Tag sync")
        try:
            result = tags_sync_from_wecom()
        except WeComError as exc:
            messages.error(request, f"{label}: {exc}")
            return
        messages.success(request, f"{label}: {result}")
