"""Console (admin) registrations for the loyalty till area."""
