from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crm.health import healthz, healthz_money, readyz

handler404 = "crm.api.guards.api_not_found"  # JSON under /api/
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("healthz/money", healthz_money, name="healthz-money"),
    path("readyz", readyz, name="readyz"),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the console's language switch
    path("admin/console/", include("crm.console.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # The loyalty routes first: the till's scan (their first pattern) is the busiest request a store sends, and
    # Django tries patterns in order (after crm.api's 76 it was the 90th match of every scan). No path of one
    # list matches a path of the other.
    path("", include("loyalty.urls")),
    path("", include("crm.api.urls")),
]
if settings.WECOM_SIM_ENABLED:  # the bundled simulator (make run, the tests); never part of a production deployment
    urlpatterns.append(path("wecom-sim/", include("wecom_sim.urls")))
