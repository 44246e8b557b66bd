"""Console (admin) registrations for the loyalty coupons area."""
