"""The console's dashboard (UNFOLD["DASHBOARD_CALLBACK"]). Placeholder until the dashboard lands."""


def dashboard_callback(request, context):
    return context
