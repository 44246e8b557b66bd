"""Admin for staff, contacts, channels, tags, groups, consent and handovers: searchable, actions call services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action as unfold_action
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminIntegerFieldWidget

from crm.admin.base import (
    OutsideTransactionFormMixin,
    ServiceModelAdmin,
    add_service_error,
    adopt,
    console_list_action,
    console_page_action,
)
from crm.admin.segments import SavedSegmentFilter
from crm.errors import ApplicationError
from crm.models.channels import Channel
from crm.models.consent import ConsentRecord, DataSource, SourceAggregate, SourceEvent, SourceOrderLine
from crm.models.contacts import Contact, ContactEvent, FollowRelation, SyncRun, WelcomeMessage
from crm.models.groups import CustomerGroup, GroupJoinWay, GroupMember, VipInvite
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem, Staff
from crm.models.tags import ContactTag, Tag
from crm.wecom.errors import WeComError


def _run(request: HttpRequest, label: str, func, *args, **kwargs) -> None:
    """Run a service from an admin action and report its outcome (or the refusal) as a message."""
    try:
        result = func(*args, **kwargs)
    except (ApplicationError, WeComError) as exc:
        messages.error(request, f"{label}: {exc}")
        return
    messages.success(request, f"{label}: {result}")


class StaffAddForm(forms.ModelForm):
    """Staff mirror WeCom's directory: adding one takes only the userid, the rest is read from WeCom."""

    class Meta:
        model = Staff
        fields = ["userid"]

    def validate_unique(self):
        """staff_add says it in words (case-insensitive, as WeCom's userids are)."""


STAFF_SYNCED = ["userid", "name", "status", "has_customer_contact", "resigned_at", "synced_at", "created_at"]


class HandoverPermissionMixin:
    """The "handover" permission of unfold actions opening the wizard: crm.handover_staff, not just is_staff.
    (A method, not the dotted name: unfold's system check looks a dotted name up in the database, which fails
    before the first migrate.)"""

    def has_handover_permission(self, request: HttpRequest, obj=None) -> bool:
        from crm.services.roles import HANDOVER_STAFF

        return request.user.has_perm(HANDOVER_STAFF)


@admin.register(Staff)
class StaffAdmin(HandoverPermissionMixin, OutsideTransactionFormMixin, ServiceModelAdmin):
    """Staff are WeCom's members, kept by the sync (crm.services.staff): added by userid from WeCom's directory,
    re-read from it, never edited or deleted here (a leaver's customers are handed over, and their history stays)."""

    add_form = StaffAddForm
    list_display = ["userid", "name", "status", "has_customer_contact", "resigned_at", "synced_at"]
    list_filter = ["status", "has_customer_contact"]
    search_fields = ["userid", "name"]
    readonly_fields = STAFF_SYNCED
    actions = ["sync_from_wecom"]
    actions_list = ["open_handover_wizard"]
    actions_row = ["hand_over"]
    actions_detail = ["refresh_from_wecom", "hand_over"]

    open_handover_wizard = console_list_action("handover", _("Handover wizard"), icon="move_up",
                                               perms=("handover",))
    hand_over = console_page_action("handover", _("Hand over their customers"), icon="move_up",
                                    perms=("handover",), args=lambda object_id: [],
                                    query=lambda object_id: _leaver_query(object_id))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return STAFF_SYNCED if obj is not None else []

    def get_fields(self, request, obj=None):
        return STAFF_SYNCED if obj is not None else ["userid"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a contact belongs to the company: a leaver is handed over, not deleted

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.staff import staff_add

        if not change:
            adopt(obj, staff_add(form.cleaned_data["userid"]))

    @admin.action(description=_("Sync all staff from WeCom"))
    def sync_from_wecom(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.staff import staff_sync

        _run(request, _("Staff sync"), staff_sync)

    @unfold_action(description=_("Re-read from WeCom"), icon="sync", permissions=["view"])
    def refresh_from_wecom(self, request: HttpRequest, object_id: str):
        from crm.services.staff import staff_refresh

        try:
            staff = staff_refresh(int(object_id))
            messages.success(request, _("%(staff)s re-read from WeCom: %(status)s.")
                             % {"staff": staff, "status": staff.get_status_display()})
        except (ApplicationError, WeComError) as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("admin:crm_staff_change", args=[object_id]))


def _leaver_query(staff_id) -> str:
    """The wizard's step 2 (their customers and groups) for this leaver."""
    from urllib.parse import urlencode

    userid = Staff.objects.filter(pk=staff_id).values_list("userid", flat=True).first() or ""
    return urlencode({"step": "customers", "leaver": userid})


class FollowInline(TabularInline):
    model = FollowRelation
    extra = 0
    fields = ["staff", "remark", "state", "add_way", "added_at", "deleted_by_staff_at", "deleted_by_customer_at"]
    readonly_fields = fields
    can_delete = False


class ContactTagInline(TabularInline):
    """The contact's tags, read here; added and removed with the form's tag fields (through crm.services.tags)."""

    model = ContactTag
    extra = 0
    fields = ["tag", "staff", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ContactEventInline(TabularInline):
    model = ContactEvent
    extra = 0
    fields = ["occurred_at", "kind", "staff", "data"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-occurred_at"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ContactForm(forms.ModelForm):
    """A contact is WeCom's record of a customer, kept by sync and callbacks: the console changes only its tags,
    through the tag service (pushed to WeCom after commit, a timeline row each), as the API does."""

    add_tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.filter(deleted_at__isnull=True).select_related("group").order_by("group__name", "name"),
        required=False, label=_("Add tags"),
    )
    remove_tags = forms.ModelMultipleChoiceField(queryset=Tag.objects.none(), required=False, label=_("Remove tags"))

    class Meta:
        model = Contact
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["remove_tags"].queryset = Tag.objects.filter(contact_tags__contact=self.instance).order_by(
                "group__name", "name")

    def clean(self):
        data = super().clean()
        both = set(data.get("add_tags") or []) & set(data.get("remove_tags") or [])
        if both:
            self.add_error("remove_tags", _("A tag cannot be added and removed at once: %(tags)s")
                           % {"tags": ", ".join(sorted(str(t) for t in both))})
        return data


@admin.register(Contact)
class ContactAdmin(ServiceModelAdmin):
    form = ContactForm
    list_display = ["id", "name", "external_userid", "type", "channel", "first_added_at"]
    list_filter = ["type", "gender", "channel", SavedSegmentFilter]  # one filter language (crm/admin/segments.py)
    search_fields = ["name", "external_userid", "unionid", "follows__remark"]
    readonly_fields = ["external_userid", "name", "type", "gender", "avatar", "corp_name", "unionid", "channel",
                       "phone_encrypted", "phone_hash", "birthday", "first_added_at", "synced_at", "created_at",
                       "updated_at"]
    inlines = [FollowInline, ContactTagInline, ContactEventInline]
    actions = ["refresh_from_wecom", "invite_to_vip"]
    actions_detail = ["open_contact_page"]
    actions_row = ["open_contact_page"]

    open_contact_page = console_page_action("contact", _("Contact page"), icon="person")

    def get_fields(self, request, obj=None):
        return [*self.readonly_fields, "add_tags", "remove_tags"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # contacts come from WeCom (callbacks, sync)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a contact belongs to the company; erasure is its own, audited operation

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.tags import contact_tag_add, contact_tag_remove

        for tag in form.cleaned_data.get("add_tags") or []:
            contact_tag_add(obj, tag, source="console")
        for tag in form.cleaned_data.get("remove_tags") or []:
            contact_tag_remove(obj, tag, source="console")

    def get_search_results(self, request, queryset, search_term):
        """A phone number in the search box is matched by its keyed hash (phones are encrypted at rest)."""
        from crm.services.contacts import phone_hash

        results, distinct = super().get_search_results(request, queryset, search_term)
        compact = search_term.translate(str.maketrans("", "", "+-() "))
        if compact.isdigit() and len(compact) >= 7:
            try:
                results = results | queryset.filter(phone_hash=phone_hash(search_term))
            except ApplicationError:
                pass
        return results, distinct

    @admin.action(description=_("Re-read selected contacts from WeCom"))
    def refresh_from_wecom(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.contacts import contact_refresh

        for contact in queryset[:200]:
            _run(request, contact.external_userid, contact_refresh, contact.external_userid, source="admin")

    @admin.action(description=_("Invite selected contacts to the VIP group"))
    def invite_to_vip(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.vip import invite_to_vip_group

        for contact in queryset[:500]:
            _run(request, str(contact), invite_to_vip_group, contact.id)


@admin.register(FollowRelation)
class FollowRelationAdmin(ModelAdmin):
    list_display = ["contact", "staff", "remark", "state", "add_way", "added_at", "deleted_by_staff_at",
                    "deleted_by_customer_at"]
    list_filter = ["add_way"]
    search_fields = ["contact__name", "contact__external_userid", "staff__userid", "remark", "state"]
    raw_id_fields = ["contact", "staff"]


@admin.register(ContactEvent)
class ContactEventAdmin(ModelAdmin):
    list_display = ["occurred_at", "contact", "kind", "staff"]
    list_filter = ["kind"]
    search_fields = ["contact__name", "contact__external_userid", "staff__userid"]
    raw_id_fields = ["contact", "staff"]
    date_hierarchy = "occurred_at"


@admin.register(WelcomeMessage)
class WelcomeMessageAdmin(ModelAdmin):
    list_display = ["id", "follow", "status", "errcode", "event_time", "sent_at"]
    list_filter = ["status"]
    search_fields = ["follow__contact__external_userid", "follow__staff__userid", "idempotency_key"]
    raw_id_fields = ["follow"]


@admin.register(SyncRun)
class SyncRunAdmin(ModelAdmin):
    list_display = ["id", "kind", "status", "pages", "contacts_seen", "started_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["error"]
    readonly_fields = ["checkpoint", "report"]
    actions = ["start_full_sync", "resume"]

    @admin.action(description=_("Start a new full sync (in the background)"))
    def start_full_sync(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.sync import sync_start
        from crm.tasks.contacts import sync_contacts

        run = sync_start()
        sync_contacts.delay(run.pk)
        messages.success(request, _("Full sync #%(id)s queued over %(n)s staff.")
                         % {"id": run.pk, "n": len(run.checkpoint["staff"])})

    @admin.action(description=_("Resume selected runs from their checkpoint"))
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.tasks.contacts import sync_contacts

        for run in queryset.filter(status=SyncRun.Status.RUNNING):
            sync_contacts.delay(run.pk)
            messages.success(request, _("Sync #%(id)s queued to resume.") % {"id": run.pk})


class ChannelAdminForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "state", "staff", "welcome_text", "active_from", "active_until"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            from crm.services.channels import channel_validate

            try:
                channel_validate(name=data.get("name", ""), state=data.get("state", ""),
                                 staff_userids=[s.userid for s in data.get("staff") or []])
            except ApplicationError as exc:
                add_service_error(self, exc, {"staff_userids": "staff"})
        return data


class SimulateAddsForm(BaseDialogForm):
    customers = forms.IntegerField(label=_("Shoppers who scan the QR"), min_value=1, max_value=500, initial=20,
                                   widget=UnfoldAdminIntegerFieldWidget)


@admin.register(Channel)
class ChannelAdmin(OutsideTransactionFormMixin, ServiceModelAdmin):
    """Written through crm.services.channels: adding a channel creates its contact way (QR) in WeCom, changing its
    name or staff updates it there; the channel page (console:channel) shows the QR to print, its chart and adds."""

    form = ChannelAdminForm
    list_display = ["name", "state", "config_id", "active_from", "active_until", "created_at"]
    search_fields = ["name", "state", "config_id"]
    readonly_fields = ["config_id", "qr_code"]
    filter_horizontal = ["staff"]
    actions_detail = ["open_channel_page", "simulate_adds"]
    actions_row = ["open_channel_page", "simulate_adds"]

    open_channel_page = console_page_action("channel", _("Channel page (QR, chart, adds)"), icon="qr_code_2")

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "state"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.channels import channel_create, channel_update

        data = form.cleaned_data
        fields = {"name": data["name"], "staff_userids": [s.userid for s in data.get("staff") or []],
                  "welcome_text": data.get("welcome_text") or "", "active_from": data.get("active_from"),
                  "active_until": data.get("active_until")}
        if change:
            adopt(obj, channel_update(obj.pk, **fields))
        else:
            adopt(obj, channel_create(state=data["state"], **fields))

    def save_related(self, request, form, formsets, change) -> None:
        """The service set the channel's staff."""

    def response_add(self, request, obj, post_url_continue=None):
        """A channel is made for its QR: "Save" goes on to its page, where the QR is downloaded."""
        if "_continue" in request.POST or "_addanother" in request.POST or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, _("Channel %(name)s created; its QR is ready to download.") % {"name": obj.name},
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("console:channel", args=[obj.pk]))

    def has_simulate_adds_permission(self, request: HttpRequest, obj=None) -> bool:
        from crm.services.simulator import simulator_admin_url

        return simulator_admin_url() is not None and self.has_change_permission(request)

    @unfold_action(description=_("Simulate adds (demo shoppers scan the QR)"), icon="group_add",
                   permissions=["simulate_adds"],
                   dialog={"title": _("Simulate adds"), "form_class": SimulateAddsForm,
                           "description": _("New shoppers in the WeCom simulator scan this channel's QR; their "
                                            "contacts arrive through WeCom's callbacks.")})
    def simulate_adds(self, request: HttpRequest, form, object_id: str):
        from crm.services.simulator import channel_simulate_adds

        try:
            added = channel_simulate_adds(int(object_id), form.cleaned_data["customers"])
            messages.success(request, _("%(n)d shoppers scanned the QR; their contacts arrive as WeCom calls back.")
                             % {"n": added})
        except ApplicationError as exc:
            messages.error(request, exc.message)
        # The dialog posts through htmx, which follows HX-Redirect back to the page it was opened from.
        back = request.headers.get("referer") or reverse("admin:crm_channel_change", args=[object_id])
        return HttpResponse(headers={"HX-Redirect": back})


class ContactTagForm(forms.ModelForm):
    class Meta:
        model = ContactTag
        fields = ["contact", "tag"]

    def validate_unique(self):
        """Tagging twice is a no-op in the service, not an error."""


@admin.register(ContactTag)
class ContactTagAdmin(ServiceModelAdmin):
    """Tag and untag through crm.services.tags (pushed to WeCom, written to the timeline); a tagging is not edited."""

    form = ContactTagForm
    list_display = ["contact", "tag", "staff", "created_at"]
    search_fields = ["contact__name", "contact__external_userid", "tag__name"]
    raw_id_fields = ["contact"]
    autocomplete_fields = ["tag"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.tags import contact_tag_add

        contact, tag = form.cleaned_data["contact"], form.cleaned_data["tag"]
        contact_tag_add(contact, tag, source="console")
        adopt(obj, ContactTag.objects.get(contact=contact, tag=tag))

    def delete_model(self, request, obj) -> None:
        from crm.services.tags import contact_tag_remove

        contact_tag_remove(obj.contact, obj.tag, source="console")

    def delete_queryset(self, request, queryset) -> None:
        for contact_tag in queryset.select_related("contact", "tag"):
            self.delete_model(request, contact_tag)


class GroupMemberInline(TabularInline):
    model = GroupMember
    extra = 0
    fields = ["member_id", "type", "contact", "name", "join_scene", "join_state", "joined_at", "left_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(CustomerGroup)
class CustomerGroupAdmin(ModelAdmin):
    list_display = ["name", "chat_id", "owner", "is_vip", "status", "member_version", "synced_at"]
    list_filter = ["is_vip", "status"]
    search_fields = ["name", "chat_id", "owner__userid"]
    inlines = [GroupMemberInline]
    actions = ["mark_vip", "resync"]

    @admin.action(description=_("Mark selected groups as VIP groups"))
    def mark_vip(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.groups import group_mark_vip

        groups = list(queryset)
        for group in groups:
            group_mark_vip(group)
        messages.success(request, _("%(n)d group(s) marked VIP") % {"n": len(groups)})

    @admin.action(description=_("Re-read selected groups from WeCom"))
    def resync(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.groups import group_sync

        for group in queryset[:100]:
            _run(request, group.chat_id, group_sync, group.chat_id)


@admin.register(GroupMember)
class GroupMemberAdmin(ModelAdmin):
    list_display = ["group", "member_id", "type", "contact", "join_scene", "joined_at", "left_at"]
    list_filter = ["type", "join_scene"]
    search_fields = ["member_id", "name", "group__name", "group__chat_id"]
    raw_id_fields = ["group", "contact"]


@admin.register(GroupJoinWay)
class GroupJoinWayAdmin(ModelAdmin):
    list_display = ["state", "config_id", "is_vip", "created_at"]
    search_fields = ["state", "config_id"]


@admin.register(VipInvite)
class VipInviteAdmin(ModelAdmin):
    list_display = ["contact", "state", "status", "sender", "msgid", "sent_at", "joined_at"]
    list_filter = ["status"]
    search_fields = ["contact__name", "contact__external_userid", "msgid"]
    raw_id_fields = ["contact", "sender", "join_way"]


class HandoverItemInline(TabularInline):
    model = HandoverItem
    extra = 0
    fields = ["external_userid", "takeover", "status", "errcode", "batch_no", "takeover_time", "finished_at"]
    readonly_fields = fields
    can_delete = False


class GroupHandoverItemInline(TabularInline):
    model = GroupHandoverItem
    extra = 0
    fields = ["group", "new_owner", "status", "errcode", "errmsg"]
    readonly_fields = fields
    can_delete = False


HANDOVER_FIELDS = ["kind", "handover_staff", "takeovers", "transfer_message", "include_groups"]


class HandoverForm(forms.ModelForm):
    class Meta:
        model = Handover
        fields = HANDOVER_FIELDS

    def clean(self):
        from crm.services.handover import handover_validate

        data = super().clean()
        if self.errors or "kind" not in self.fields:
            return data
        try:
            handover_validate(kind=data["kind"], handover_userid=data["handover_staff"].userid,
                              takeover_userids=[s.userid for s in data.get("takeovers") or []],
                              transfer_message=data.get("transfer_message") or "")
        except ApplicationError as exc:
            add_service_error(self, exc, {"handover_userid": "handover_staff", "takeover_userids": "takeovers"})
        return data


@admin.register(Handover)
class HandoverAdmin(HandoverPermissionMixin, ServiceModelAdmin):
    """Created through crm.services.handover (a resigned handover of someone still on the job is refused, naming the
    on-the-job transfer); once created, WeCom's transfer owns it: started and followed with the actions."""

    form = HandoverForm
    list_display = ["id", "kind", "handover_staff", "status", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["handover_staff__userid", "handover_staff__name"]
    filter_horizontal = ["takeovers"]
    readonly_fields = ["status", "created_by", "finished_at"]
    inlines = [HandoverItemInline, GroupHandoverItemInline]
    actions = ["start", "refresh_results", "show_report"]
    actions_list = ["open_handover_wizard"]
    actions_detail = ["open_live_page"]
    actions_row = ["open_live_page"]

    open_handover_wizard = console_list_action("handover", _("Handover wizard"), icon="move_up",
                                               perms=("handover",))
    open_live_page = console_page_action("handover-detail", _("Follow live"), icon="monitoring",
                                         perms=("handover",))

    def get_readonly_fields(self, request, obj=None):
        return [*HANDOVER_FIELDS, *self.readonly_fields] if obj is not None else self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Moving a leaver's customers needs the handover permission, not just the model's add permission.
        return super().has_add_permission(request) and self.has_handover_permission(request)

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.handover import handover_create

        if change:
            return
        data = form.cleaned_data
        adopt(obj, handover_create(
            kind=data["kind"], handover_userid=data["handover_staff"].userid,
            takeover_userids=[s.userid for s in data["takeovers"]], transfer_message=data.get("transfer_message") or "",
            include_groups=data.get("include_groups", True), created_by=request.user.get_username(),
        ))

    def save_related(self, request, form, formsets, change) -> None:
        """The service set the takeovers; the inlines are read-only."""
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.action(description=_("Plan and submit to WeCom (in the background)"), permissions=["handover"])
    def start(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.handover import handover_start

        for handover in queryset:
            _run(request, _("Handover #%(id)s") % {"id": handover.pk}, handover_start, handover.pk)

    @admin.action(description=_("Refresh transfer results from WeCom"), permissions=["handover"])
    def refresh_results(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.handover import handover_poll

        for handover in queryset:
            _run(request, _("Handover #%(id)s") % {"id": handover.pk}, handover_poll, handover.pk)

    @admin.action(description=_("Show the handover report"))
    def show_report(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm.services.handover import handover_report

        for handover in queryset:
            _run(request, _("Handover #%(id)s") % {"id": handover.pk}, handover_report, handover.pk)


@admin.register(HandoverItem)
class HandoverItemAdmin(ModelAdmin):
    list_display = ["handover", "external_userid", "takeover", "status", "errcode", "takeover_time"]
    list_filter = ["status"]
    search_fields = ["external_userid", "contact__name", "takeover__userid"]
    raw_id_fields = ["handover", "contact", "takeover"]


@admin.register(GroupHandoverItem)
class GroupHandoverItemAdmin(ModelAdmin):
    list_display = ["handover", "group", "new_owner", "status", "errcode"]
    list_filter = ["status"]
    search_fields = ["group__chat_id", "group__name", "new_owner__userid"]
    raw_id_fields = ["handover", "group", "new_owner"]


class ConsentRecordForm(forms.ModelForm):
    class Meta:
        model = ConsentRecord
        fields = ["contact", "purpose", "granted", "policy_version"]


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ServiceModelAdmin):
    """Consent history is append-only: a grant or withdrawal recorded here is the next version for its purpose
    (crm.services.consent, source "console:<user>"); no version is ever changed or deleted."""

    form = ConsentRecordForm
    list_display = ["contact", "purpose", "version", "granted", "source", "policy_version", "recorded_at"]
    list_filter = ["purpose", "granted", "source"]
    search_fields = ["contact__name", "contact__external_userid"]
    raw_id_fields = ["contact"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ConsentRecord._meta.fields] if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        from crm.services.consent import consent_record

        data = form.cleaned_data
        adopt(obj, consent_record(contact_id=data["contact"].pk, purpose=data["purpose"], granted=data["granted"],
                                  source=f"console:{request.user.get_username()}",
                                  policy_version=data.get("policy_version") or ""))


@admin.register(DataSource)
class DataSourceAdmin(ModelAdmin):
    list_display = ["code", "name", "openness"]
    list_filter = ["openness"]
    search_fields = ["code", "name"]


@admin.register(SourceEvent)
class SourceEventAdmin(ModelAdmin):
    list_display = ["source", "event_id", "contact", "kind", "occurred_at"]
    list_filter = ["source", "kind"]
    search_fields = ["event_id", "contact__external_userid"]
    raw_id_fields = ["contact"]


@admin.register(SourceOrderLine)
class SourceOrderLineAdmin(ModelAdmin):
    list_display = ["source", "order_id", "line_no", "contact", "sku", "quantity", "amount_fen", "ordered_at"]
    list_filter = ["source"]
    search_fields = ["order_id", "sku", "phone_hash"]
    raw_id_fields = ["contact"]


@admin.register(SourceAggregate)
class SourceAggregateAdmin(ModelAdmin):
    list_display = ["source", "day", "metric", "bucket", "value"]
    list_filter = ["source", "metric"]
    search_fields = ["metric", "bucket"]
