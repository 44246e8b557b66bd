"""Console (admin) registrations for the loyalty tiers area."""
