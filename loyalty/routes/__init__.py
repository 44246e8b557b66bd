"""Routes of the loyalty areas (issue 12), one module per area, combined in loyalty.urls."""
