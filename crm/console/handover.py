"""The handover wizard: choose the leaver, see what they hold, choose takeovers, confirm, then follow every
transfer to its result on a live page.

Steps 1-3 are GET forms (nothing is written until the confirm step posts), so each step is a link that can be
reloaded or gone back to. The confirm step calls `handover_create` and `handover_start`; the work then runs in
the Celery worker, and the live page polls a fragment (htmx, bundled with unfold) until the handover is finished.
A refusal by the service is shown on the step whose field it names, with nothing written."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldBooleanSwitchWidget,
)

from crm.errors import ApplicationError, NotFound
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem, Staff
from crm.selectors.handover import (
    handover_leavers,
    handover_preview,
    handover_progress,
    handover_recent,
    round_robin_split,
    takeover_candidates,
)
from crm.services.handover import handover_check_results, handover_create, handover_start, handover_validate
from crm.services.roles import HANDOVER_STAFF
from crm.wecom.errors import WeComError

# Handing customers over is its own permission (the admin role has it, marketing not), not just is_staff.
HANDOVER_PERMISSION = HANDOVER_STAFF
STEPS = ("leaver", "customers", "takeovers", "confirm")
KIND_LABELS = {
    Handover.Kind.RESIGNED: _("Resigned: hand over a leaver's customers (离职继承)"),
    Handover.Kind.ON_THE_JOB: _("On the job: move a working colleague's customers (在职继承)"),
}
# Which step owns each input the service may name in a refusal.
FIELD_STEP = {"handover_userid": ("leaver", "leaver"), "kind": ("leaver", "kind"),
              "takeover_userids": ("takeovers", "takeovers"), "transfer_message": ("takeovers", "transfer_message")}
STATUS_VARIANT = {
    HandoverItem.Status.DONE: "success",
    HandoverItem.Status.WAITING: "info",
    HandoverItem.Status.PLANNED: "",
    HandoverItem.Status.REFUSED: "danger",
    HandoverItem.Status.LIMIT: "warning",
    HandoverItem.Status.FAILED: "danger",
}
STATUS_LABELS = {
    HandoverItem.Status.PLANNED: _("Planned"),
    HandoverItem.Status.WAITING: _("Waiting"),
    HandoverItem.Status.DONE: _("Done"),
    HandoverItem.Status.REFUSED: _("Refused"),
    HandoverItem.Status.LIMIT: _("Takeover at limit"),
    HandoverItem.Status.FAILED: _("Failed"),
}
GROUP_STATUS_LABELS = {
    GroupHandoverItem.Status.PLANNED: _("Planned"),
    GroupHandoverItem.Status.DONE: _("Done"),
    GroupHandoverItem.Status.FAILED: _("Failed"),
}
HANDOVER_STATUS_LABELS = {
    Handover.Status.PLANNED: _("Planned"),
    Handover.Status.SUBMITTING: _("Submitting to WeCom"),
    Handover.Status.WAITING: _("Waiting for WeCom's results"),
    Handover.Status.FINISHED: _("Finished"),
}


def handover_permission_required(view):
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(HANDOVER_PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _render(request: HttpRequest, template: str, context: dict, status: int = 200) -> TemplateResponse:
    request.current_app = admin.site.name
    return TemplateResponse(request, template, {**admin.site.each_context(request), **context}, status=status)


class LeaverForm(forms.Form):
    leaver = forms.ModelChoiceField(
        queryset=Staff.objects.order_by("userid"), to_field_name="userid", label=_("Staff member who leaves"),
        widget=UnfoldAdminSelectWidget, error_messages={"invalid_choice": _("Choose a staff member from the list.")},
    )
    kind = forms.ChoiceField(
        choices=list(KIND_LABELS.items()), required=False, label=_("Kind of handover"),
        help_text=_("Left empty: resigned for a staff member who has left, on the job otherwise."),
        widget=UnfoldAdminRadioSelectWidget,
    )

    def clean(self) -> dict:
        data = super().clean()
        leaver = data.get("leaver")
        if leaver is not None and not data.get("kind"):
            data["kind"] = Handover.Kind.ON_THE_JOB if leaver.is_active else Handover.Kind.RESIGNED
        return data


class TakeoverForm(forms.Form):
    takeovers = forms.ModelMultipleChoiceField(
        queryset=Staff.objects.none(), to_field_name="userid", label=_("Takeovers"),
        help_text=_("One person takes everything; with several, customers and groups are shared round robin."),
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        error_messages={"required": _("Choose at least one takeover."),
                        "invalid_choice": _("%(value)s cannot take over customers.")},
    )
    transfer_message = forms.CharField(
        max_length=200, required=False, label=_("Message to the customers"),
        help_text=_("Sent by WeCom with an on-the-job transfer (at most 200 characters)."),
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
    )
    include_groups = forms.BooleanField(
        required=False, initial=True, label=_("Also hand over the customer groups they own"),
        widget=UnfoldBooleanSwitchWidget,
    )

    def __init__(self, *args, leaver: Staff, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["takeovers"].queryset = takeover_candidates(exclude=leaver)
        self.fields["takeovers"].label_from_instance = _takeover_label


def _takeover_label(staff: Staff) -> str:
    held = getattr(staff, "customers", None)
    return f"{staff.name or staff.userid} ({staff.userid})" + (f" · {held}" if held is not None else "")


def _params(leaver: LeaverForm, takeover: TakeoverForm | None = None, **extra: str) -> str:
    """The query string that carries the answers so far to the next (or previous) step."""
    pairs: list[tuple[str, str]] = [("leaver", leaver.cleaned_data["leaver"].userid),
                                    ("kind", leaver.cleaned_data["kind"])]
    if takeover is not None and takeover.is_bound and takeover.is_valid():
        pairs += [("takeovers", s.userid) for s in takeover.cleaned_data["takeovers"]]
        pairs += [("transfer_message", takeover.cleaned_data["transfer_message"])]
        if takeover.cleaned_data["include_groups"]:
            pairs += [("include_groups", "on")]
    pairs += list(extra.items())
    return "?" + urlencode(pairs)


def _takeover_initial(data) -> dict:
    """Answers carried back from the confirm step to prefill step 3."""
    if "takeovers" not in data:
        return {}
    return {"takeovers": data.getlist("takeovers"), "transfer_message": data.get("transfer_message", ""),
            "include_groups": bool(data.get("include_groups"))}


@require_http_methods(["GET", "POST"])
@handover_permission_required
def handover_wizard(request: HttpRequest) -> HttpResponse:
    """Steps 1-4. GET shows the step named by `step` once the answers it needs are valid; POST confirms."""
    data = request.POST if request.method == "POST" else request.GET
    step = "confirm" if request.method == "POST" else data.get("step") or "leaver"
    if step not in STEPS:
        step = "leaver"
    leaver_form = LeaverForm(data if "leaver" in data else None)
    if step == "leaver" or not leaver_form.is_valid():
        return _render_step(request, "leaver", leaver_form, status=400 if leaver_form.errors else 200)
    leaver = leaver_form.cleaned_data["leaver"]
    refusal = _refusal(leaver_form)  # e.g. a resigned handover of someone on the job: said on step 1, not step 4
    if refusal is not None:
        return _refuse(request, refusal, leaver_form)
    if step == "customers":
        return _render_step(request, "customers", leaver_form)
    bound = step == "confirm"
    takeover_form = TakeoverForm(data if bound else None, leaver=leaver,
                                 initial=None if bound else _takeover_initial(data))
    if step == "takeovers" or not takeover_form.is_valid():
        return _render_step(request, "takeovers", leaver_form, takeover_form,
                            status=400 if takeover_form.errors else 200)
    refusal = _refusal(leaver_form, takeover_form)
    if refusal is not None:
        return _refuse(request, refusal, leaver_form, takeover_form)
    if request.method == "POST":
        return _confirm(request, leaver_form, takeover_form)
    return _render_step(request, "confirm", leaver_form, takeover_form)


def _refusal(leaver_form: LeaverForm, takeover_form: TakeoverForm | None = None) -> ApplicationError | None:
    """The service's own checks on the answers so far (writing nothing); before the takeovers are chosen, only
    what concerns the leaver counts."""
    try:
        handover_validate(
            kind=leaver_form.cleaned_data["kind"],
            handover_userid=leaver_form.cleaned_data["leaver"].userid,
            takeover_userids=[s.userid for s in takeover_form.cleaned_data["takeovers"]] if takeover_form else [],
            transfer_message=takeover_form.cleaned_data["transfer_message"] if takeover_form else "",
        )
    except ApplicationError as exc:
        if takeover_form is None and exc.field in ("takeover_userids", "transfer_message"):
            return None
        return exc
    return None


def _refuse(request: HttpRequest, exc: ApplicationError, leaver_form: LeaverForm,
            takeover_form: TakeoverForm | None = None) -> TemplateResponse:
    """Show a refusal on the step whose input it names (inline on that field), or on the confirm step."""
    step, field = FIELD_STEP.get(exc.field or "", ("confirm", None))
    form = leaver_form if step == "leaver" else takeover_form if step == "takeovers" else None
    if form is not None:
        form.add_error(field, exc.message)
    elif takeover_form is None:  # a refusal about no step before the takeovers: shown on step 1
        step = "leaver"
    return _render_step(request, step, leaver_form, takeover_form, error=None if form else exc.message,
                        status=exc.status_code)


def _confirm(request: HttpRequest, leaver_form: LeaverForm, takeover_form: TakeoverForm) -> HttpResponse:
    leaver = leaver_form.cleaned_data["leaver"]
    kind = leaver_form.cleaned_data["kind"]
    try:
        with transaction.atomic():  # a refused start leaves no handover behind
            handover = handover_create(
                kind=kind,
                handover_userid=leaver.userid,
                takeover_userids=[s.userid for s in takeover_form.cleaned_data["takeovers"]],
                transfer_message=takeover_form.cleaned_data["transfer_message"] if kind == Handover.Kind.ON_THE_JOB
                else "",
                include_groups=takeover_form.cleaned_data["include_groups"],
                created_by=request.user.get_username(),
            )
            handover_start(handover.pk)
    except WeComError:  # the service asks WeCom whether the leaver has really left
        return _render_step(request, "confirm", leaver_form, takeover_form,
                            error=_("WeCom could not be reached to check the leaver. Nothing was started; try again."),
                            status=503)
    except ApplicationError as exc:  # e.g. WeCom says the "resigned" leaver is still on the job
        return _refuse(request, exc, leaver_form, takeover_form)
    messages.success(request, _("Handover #%(id)s started: follow every transfer below.") % {"id": handover.pk})
    return redirect("console:handover-detail", handover_id=handover.pk)


def _render_step(request: HttpRequest, step: str, leaver_form: LeaverForm, takeover_form: TakeoverForm | None = None,
                 *, error: str | None = None, status: int = 200) -> TemplateResponse:
    context: dict = {
        "title": _("Handover"),
        "subtitle": _("Step %(n)s of 5") % {"n": STEPS.index(step) + 1},
        "step": step,
        "steps": [(name, label, i + 1) for i, (name, label) in enumerate(_step_labels())],
        "step_number": STEPS.index(step) + 1,
        "leaver_form": leaver_form,
        "takeover_form": takeover_form,
        "error": error,
        "kind_labels": KIND_LABELS,
    }
    if step == "leaver":
        context["leavers"] = [s for s in handover_leavers()[:200] if not s.is_active and s.customers + s.owned_groups]
        context["recent"] = [(h, HANDOVER_STATUS_LABELS.get(h.status, h.status)) for h in handover_recent()]
        return _render(request, "console/handover_wizard.html", context, status=status)
    leaver = leaver_form.cleaned_data["leaver"]
    kind = leaver_form.cleaned_data["kind"]
    context.update(leaver=leaver, kind=kind, kind_label=KIND_LABELS[kind], preview=handover_preview(leaver),
                   back_to_leaver=_params(leaver_form, step="leaver"),
                   back_to_customers=_params(leaver_form, step="customers"),
                   to_takeovers=_params(leaver_form, takeover_form, step="takeovers"))
    if step == "confirm" and takeover_form is not None and takeover_form.is_valid():
        takeovers = list(takeover_form.cleaned_data["takeovers"])
        context.update(
            takeovers=takeovers,
            split=round_robin_split(context["preview"]["customers_count"], takeovers),
            group_split=round_robin_split(context["preview"]["groups_count"], takeovers)
            if takeover_form.cleaned_data["include_groups"] else [],
            transfer_message=takeover_form.cleaned_data["transfer_message"] if kind == Handover.Kind.ON_THE_JOB
            else "",
            include_groups=takeover_form.cleaned_data["include_groups"],
        )
    return _render(request, "console/handover_wizard.html", context, status=status)


def _step_labels() -> list[tuple[str, str]]:
    return [("leaver", _("Leaver")), ("customers", _("Customers and groups")), ("takeovers", _("Takeovers")),
            ("confirm", _("Confirm")), ("follow", _("Follow the transfers"))]


def _progress_context(handover_id: int) -> dict:
    try:
        progress = handover_progress(handover_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    handover = progress["handover"]
    return {
        "progress": progress,
        "handover": handover,
        "status_label": HANDOVER_STATUS_LABELS.get(handover.status, handover.status),
        "kind_label": KIND_LABELS.get(handover.kind, handover.kind),
        "rows": [(item, STATUS_LABELS[item.status], STATUS_VARIANT[item.status]) for item in progress["items"]],
        "group_rows": [(item, GROUP_STATUS_LABELS[item.status]) for item in progress["group_items"]],
        "counts": [(s, STATUS_LABELS[s], progress["customers"][s], STATUS_VARIANT[s]) for s in HandoverItem.Status],
        "can_check": handover.status == Handover.Status.WAITING,
    }


@require_GET
@handover_permission_required
def handover_detail(request: HttpRequest, handover_id: int) -> HttpResponse:
    """Step 5: the live page. Its progress block re-reads itself every few seconds until the handover is final."""
    context = _progress_context(handover_id)
    context.update(title=_("Handover #%(id)s") % {"id": handover_id}, subtitle=context["status_label"],
                   steps=[(name, label, i + 1) for i, (name, label) in enumerate(_step_labels())], step_number=5)
    return _render(request, "console/handover_detail.html", context)


@require_GET
@handover_permission_required
def handover_progress_fragment(request: HttpRequest, handover_id: int) -> HttpResponse:
    """The live block alone, for htmx to swap in."""
    return _render(request, "console/handover_progress.html", _progress_context(handover_id))


@require_POST
@handover_permission_required
def handover_check(request: HttpRequest, handover_id: int) -> HttpResponse:
    """Ask WeCom for the results now rather than at beat's next poll. From htmx the live block comes back with
    the outcome in it (no reload); a plain form post is redirected to the live page with a message."""
    try:
        handover_check_results(handover_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ApplicationError as exc:
        notice = ("error", exc.message)
    else:
        notice = ("info", _("Asked WeCom for the latest results; this page updates by itself."))
    if request.headers.get("HX-Request"):
        context = {**_progress_context(handover_id), "notice": notice}
        return _render(request, "console/handover_progress.html", context)
    getattr(messages, notice[0])(request, notice[1])
    return redirect(reverse("console:handover-detail", kwargs={"handover_id": handover_id}))
