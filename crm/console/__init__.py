"""Console pages beyond the admin's change lists: product pages (contact, channel, pool, campaign, handover).

Each page is a view in its own module here, wrapped by `admin.site.admin_view`, rendered in the console's theme,
and listed in `crm/console/urls.py` (mounted under /admin/console/)."""
