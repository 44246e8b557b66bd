"""Console (admin) registrations for the loyalty lots area."""
