from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The card & purchases panel on crm's contact page (crm cannot import loyalty, so loyalty registers it).
        from loyalty import console_panels

        console_panels.register()
        # Segment conditions over loyalty data (tier, points, spend, last purchase, bought), likewise.
        from loyalty import segment_fields

        segment_fields.register()
        # The red packets' purchase gate counts what segment spend counts.
        from crm.services.gates import register_purchase_total

        register_purchase_total(segment_fields.purchase_total)
        # A campaign's coupon, granted to each recipient once crm has stored their delivery.
        from crm.services.push_hooks import register_delivered_hook
        from loyalty.services.campaign_coupons import campaign_delivered_hook

        register_delivered_hook("loyalty.campaign_coupons", campaign_delivered_hook)
        # Lucky-draw coupon and points prizes, fulfilled for crm's group draws (crm.services.draws).
        from loyalty.services import draw_prizes

        draw_prizes.register()
        # Loyalty's part of a person's export and erasure (crm.services.erasure): card, ledger, purchases.
        from loyalty.services import erasure

        erasure.register()
        # The till's cached stores, bindings, rules and tiers follow every write of them (loyalty.till_cache).
        from loyalty import till_cache

        till_cache.connect_signals()
