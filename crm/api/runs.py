"""Staff API for campaign runs: each run's progress, and pause / resume / cancel of one run (marketing's perms)."""

from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import NotFound
from crm.selectors.campaigns import campaign_get
from crm.selectors.runs import run_get, run_progress, runs_of_campaign
from crm.services import run_control


class _Base(APIView):
    permission_classes = [HasStaffPerms]


def _run_or_404(run_id: int):
    run = run_get(run_id)
    if run is None:
        raise NotFound(_("Run %(id)s does not exist.") % {"id": run_id}, field="run_id")
    return run


class CampaignRunListApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",)}

    @extend_schema(tags=["campaigns"], summary="A campaign's runs (newest 50), each with its progress",
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign_get(campaign_id)  # 404 for an unknown campaign
        return Response([run_progress(run) for run in runs_of_campaign(campaign_id)[:50]])


class RunDetailApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",)}

    @extend_schema(tags=["campaigns"], summary="One run's progress: recipients, groups and messages per status",
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(run_progress(_run_or_404(run_id)))


class _RunActionApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}
    service = staticmethod(run_control.run_pause)

    @extend_schema(tags=["campaigns"], summary="Pause, resume or cancel the run; its progress after",
                   request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, run_id: int) -> Response:
        _run_or_404(run_id)
        return Response(run_progress(self.service(run_id)))


class RunPauseApi(_RunActionApi):
    service = staticmethod(run_control.run_pause)


class RunResumeApi(_RunActionApi):
    service = staticmethod(run_control.run_resume)


class RunCancelApi(_RunActionApi):
    service = staticmethod(run_control.run_cancel)


urlpatterns = [
    path("api/campaigns/<int:campaign_id>/runs", CampaignRunListApi.as_view(), name="campaign-runs"),
    path("api/runs/<int:run_id>/", RunDetailApi.as_view(), name="run-detail"),
    path("api/runs/<int:run_id>/pause", RunPauseApi.as_view(), name="run-pause"),
    path("api/runs/<int:run_id>/resume", RunResumeApi.as_view(), name="run-resume"),
    path("api/runs/<int:run_id>/cancel", RunCancelApi.as_view(), name="run-cancel"),
]
