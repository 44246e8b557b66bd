"""Console (admin) registrations for the loyalty earning area."""
