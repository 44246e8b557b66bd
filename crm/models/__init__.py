"""CRM models, split by sub-domain and re-exported here."""
