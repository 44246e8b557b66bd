"""Loyalty HTTP API: the till (scans, redemptions; cashiers) and the staff API (cards, tiers, stores, adjust)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.urls import path
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.guards import query_int
from crm.api.permissions import HasStaffPerms
from crm.api.throttles import RedisThrottledView, RedisWindowThrottle, Stale
from crm.errors import ApplicationError, NotFound
from crm.services.customer_links import card_link
from loyalty import selectors
from loyalty.models import Card, Coupon, PointsLedger, Purchase, Reward, Store, Tier
from loyalty.permissions import IsCashier
from loyalty.qr import qr_token_verify
from loyalty.scoping import scope_to_user_stores
from loyalty.selectors_tiers import tier_progress
from loyalty.services import points_adjust, redemption_create, scan_record
from loyalty.services.scans import MAX_AMOUNT_FEN, MAX_ITEMS
from loyalty.services.velocity import MISSING, store_p99_key, velocity_check
from loyalty.till_cache import VERSION_KEY as TILL_CONFIG_VERSION_KEY
from loyalty.till_cache import (
    redis_client,
    till_config,
    till_config_confirm,
    till_config_held,
    till_config_pinned,
    till_config_pinned_unchecked,
    till_user_perms_prime,
)

# --- Till rate limits ---------------------------------------------------------------------------------------
# DRF throttles counted in Redis (crm/api/throttles.py: one Lua call per request for all of a view's throttles,
# with the till configuration's version check and the view's cache reads on the same round trip); rates are
# REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (LOYALTY_TILL_RATE, LOYALTY_CARD_RATE). Over the rate -> 429 code
# "throttled" with Retry-After.

class TillThrottle(RedisWindowThrottle):
    """Per till: each till signs in as its own cashier user (cashier_ensure), so the user is the till."""

    scope = "loyalty_till"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class CardThrottle(RedisWindowThrottle):
    """Per card, whichever till scans it: the card number the QR token names (forged ones count too)."""

    scope = "loyalty_card"

    def get_cache_key(self, request, view):
        token = request.data.get("qr_token") if hasattr(request.data, "get") else None
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 32:
            return None  # nothing to key on: the view refuses it as malformed
        return self.cache_format % {"scope": self.scope, "ident": parts[1]}


# --- Output serializers -------------------------------------------------------------------------------------


class TierOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tier
        fields = ["id", "name", "min_points", "is_vip", "rank"]


class StoreOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Store
        fields = ["id", "code", "name", "city", "is_active"]


class RewardOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reward
        fields = ["id", "name", "points_cost", "stock", "is_active"]


class CardOutputSerializer(serializers.ModelSerializer):
    tier = serializers.CharField(source="tier.name", default=None)
    is_vip = serializers.BooleanField(source="tier.is_vip", default=False)
    contact_id = serializers.IntegerField()
    contact_name = serializers.CharField(source="contact.name")
    external_userid = serializers.CharField(source="contact.external_userid")

    class Meta:
        model = Card
        fields = [
            "id",
            "number",
            "contact_id",
            "contact_name",
            "external_userid",
            "tier",
            "is_vip",
            "points_balance",
            "lifetime_points",
            "created_at",
        ]


class LedgerOutputSerializer(serializers.ModelSerializer):
    receipt_id = serializers.CharField(source="purchase.receipt_id", default=None)
    store = serializers.CharField(source="purchase.store.code", default=None)

    class Meta:
        model = PointsLedger
        fields = [
            "id",
            "delta",
            "kind",
            "reason",
            "balance_after",
            "idempotency_key",
            "receipt_id",
            "store",
            "created_at",
        ]


class PurchaseLineOutputSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    qty = serializers.IntegerField()
    amount_fen = serializers.IntegerField()


class PurchaseOutputSerializer(serializers.ModelSerializer):
    store = serializers.CharField(source="store.code")
    lines = PurchaseLineOutputSerializer(many=True)

    class Meta:
        model = Purchase
        fields = ["id", "store", "receipt_id", "amount_fen", "points", "balance_after", "scanned_at", "lines"]


class TierProgressOutputSerializer(serializers.Serializer):
    basis = serializers.CharField(help_text="What the tier rules count: points (earned) or spend (fen).")
    window_days = serializers.IntegerField(help_text="The rolling window counted; 0: all history.")
    value = serializers.IntegerField(help_text="Points earned or spend (fen) in the window.")
    needed = serializers.IntegerField(help_text="The next tier's threshold on that basis.")
    remaining = serializers.IntegerField(help_text="What is still missing, on that basis.")


class CardDetailOutputSerializer(serializers.Serializer):
    card = CardOutputSerializer()
    ledger_sum = serializers.IntegerField(help_text="Sum of the ledger; always equals points_balance.")
    next_tier = TierOutputSerializer(allow_null=True, help_text="The tier above the card's own; null at the top.")
    next_tier_progress = TierProgressOutputSerializer(
        allow_null=True, help_text="Progress to next_tier on the tier rules' basis and window (not lifetime points)."
    )
    ledger = LedgerOutputSerializer(many=True)
    purchases = PurchaseOutputSerializer(many=True)


# --- Till: scans --------------------------------------------------------------------------------------------


class ScanItemInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    qty = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    amount_fen = serializers.IntegerField(min_value=0, max_value=MAX_AMOUNT_FEN)


class ScanInputSerializer(serializers.Serializer):
    qr_token = serializers.CharField(max_length=256, help_text="What the till read from the card page's QR.")
    receipt_id = serializers.CharField(max_length=64)
    store = serializers.CharField(max_length=32, help_text="Store code, e.g. store-sh-001.")
    amount_fen = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT_FEN, help_text="Receipt total in fen.")
    items = ScanItemInputSerializer(many=True, required=False, max_length=MAX_ITEMS)


class ScanOutputSerializer(serializers.Serializer):
    purchase_id = serializers.IntegerField()
    receipt_id = serializers.CharField()
    store = serializers.CharField()
    card_number = serializers.CharField()
    amount_fen = serializers.IntegerField()
    points = serializers.IntegerField(help_text="Points this receipt credited.")
    points_balance = serializers.IntegerField(help_text="Card balance right after this receipt.")
    tier = serializers.CharField(allow_null=True)
    tier_changed = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="True when this receipt was already recorded (nothing credited).")
    flagged = serializers.BooleanField(help_text="True when a velocity rule put this scan in the review queue.")
    scanned_at = serializers.DateTimeField()


_DATETIME = serializers.DateTimeField()  # the output's scanned_at, as ScanOutputSerializer renders it


def _scan_output(purchase: Purchase, duplicate: bool, flagged: bool = False) -> dict:
    # ScanOutputSerializer's fields, in its order and representation, without building a serializer per scan.
    return {
        "purchase_id": purchase.pk,
        "receipt_id": purchase.receipt_id,
        "store": purchase.store.code,
        "card_number": purchase.card.number,
        "amount_fen": purchase.amount_fen,
        "points": purchase.points,
        "points_balance": purchase.balance_after,
        "tier": purchase.tier_after.name if purchase.tier_after else None,
        "tier_changed": purchase.tier_after_id != purchase.tier_before_id,
        "duplicate": bool(duplicate),
        "flagged": bool(flagged),
        "scanned_at": _DATETIME.to_representation(purchase.scanned_at),
    }


def _text(value, max_length: int, blank: bool = False) -> str | None:
    """A CharField's validated value when `value` is plainly valid text, else None (the serializer decides)."""
    if type(value) is not str or not value.isprintable():  # isprintable: no NUL, surrogates or controls
        return None
    value = value.strip()
    return value if (blank or value) and len(value) <= max_length else None


def _whole(value, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _scan_input(data) -> dict:
    """ScanInputSerializer's validated_data. A plainly valid body (the tills' every scan) is read directly; any
    doubt goes through the serializer, which answers the errors (and the rest) exactly as before."""
    fast = _scan_input_fast(data) if type(data) is dict else None
    return fast if fast is not None else _valid(ScanInputSerializer, data)


def _scan_input_fast(data: dict) -> dict | None:
    out = {
        "qr_token": _text(data.get("qr_token"), 256),
        "receipt_id": _text(data.get("receipt_id"), 64),
        "store": _text(data.get("store"), 32),
        "amount_fen": _whole(data.get("amount_fen"), 1, MAX_AMOUNT_FEN),
    }
    if None in out.values():
        return None
    if "items" in data:
        items = data["items"]
        if type(items) is not list or len(items) > MAX_ITEMS:
            return None
        out["items"] = []
        for item in items:
            if type(item) is not dict:
                return None
            line = {
                "sku": _text(item.get("sku"), 64),
                "name": _text(item.get("name", ""), 128, blank=True),
                "qty": _whole(item.get("qty", 1), 1, 100_000),
                "amount_fen": _whole(item.get("amount_fen"), 0, MAX_AMOUNT_FEN),
            }
            if None in line.values():
                return None
            out["items"].append(line)
    return out


class TillTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, then the till user's permissions from the cache (loyalty.till_cache): the
    permission checks of a scan cost no query."""

    def authenticate_credentials(self, key):
        # DRF's Token.objects.select_related("user").get(key=key), as one statement compiled once, its row kept
        # in the till cache (no query for a known token until the configuration changes). A fresh instance per
        # request: nothing of one request's user object leaks into the next.
        row = till_config().token_user(key, _token_user_row)
        user = None
        if row is not None:
            users = get_user_model()
            user = users.from_db(connection.alias, _token_user_columns(), row[:-1])
            user.token_created = row[-1]
        if user is None:
            raise exceptions.AuthenticationFailed(gettext_lazy("Invalid token."))  # DRF's messages
        if not user.is_active:
            raise exceptions.AuthenticationFailed(gettext_lazy("User inactive or deleted."))
        till_user_perms_prime(user)
        token = Token(key=key, user=user, created=user.token_created)
        token._state.adding, token._state.db = False, user._state.db
        return user, token


class TillTokenScheme(OpenApiAuthenticationExtension):
    """The till's token in the schema: DRF's `Authorization: Token <key>`, under a name of its own (a second class
    documented as DRF's "tokenAuth" would collide with it)."""

    target_class = TillTokenAuthentication
    name = "tillTokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'Token-based authentication with required prefix "Token"'}


_TOKEN_SQL: dict[str, str] = {}


def _token_user_columns() -> list[str]:
    return [f.attname for f in get_user_model()._meta.concrete_fields]


def _token_user_row(key: str) -> tuple | None:
    """The user's field values (converted as the ORM does) and the token's created, or None."""
    user = next(iter(get_user_model().objects.raw(_token_user_sql(), [key])), None)
    if user is None:
        return None
    return (*(getattr(user, name) for name in _token_user_columns()), user.token_created)


def _token_user_sql() -> str:
    sql = _TOKEN_SQL.get(connection.vendor)
    if sql is None:
        qn, users = connection.ops.quote_name, get_user_model()._meta
        token = Token._meta
        columns = ", ".join(f"u.{qn(f.column)}" for f in users.concrete_fields)
        sql = _TOKEN_SQL[connection.vendor] = (
            f"SELECT {columns}, t.{qn('created')} AS token_created FROM {qn(token.db_table)} t"  # noqa: S608
            f" JOIN {qn(users.db_table)} u ON u.{qn(users.pk.column)} = t.{qn('user_id')} WHERE t.{qn('key')} = %s"
        )
    return sql


class ScanCreateApi(RedisThrottledView):
    authentication_classes = [SessionAuthentication, TillTokenAuthentication]
    permission_classes = [IsCashier]
    throttle_classes = [TillThrottle, CardThrottle]

    def dispatch(self, request, *args, **kwargs):
        if redis_client() is None or till_config_held().version is None:  # no Redis, or nothing held yet
            with till_config_pinned():  # one check of the cached configuration for the whole request
                return super().dispatch(request, *args, **kwargs)
        # The configuration this process holds, confirmed in the throttles' Redis call (one round trip fewer):
        # authentication and the permission check run on it first; the throttles count only when its version
        # is still Redis's, else the permissions are checked again on the reloaded one (a revoked till is
        # refused before anything counts), and a refusal is only answered on a confirmed configuration.
        self._confirmed = False
        with till_config_pinned_unchecked():
            return super().dispatch(request, *args, **kwargs)

    def _reconfirm(self, request, version=None) -> None:
        held = till_config_held()
        if till_config_confirm(version) is not held and isinstance(
            request.successful_authenticator, TillTokenAuthentication
        ):
            # The token was answered from the configuration just replaced (it may have been revoked since):
            # asked again on the current one (that authenticator only: DRF's own re-run would now find the
            # token's user on the Django request and take it for a session); a refused token answers 401 here.
            again = request.successful_authenticator.authenticate(request)
            if again is None:  # the header it read is gone: cannot be, but never a user without credentials
                raise exceptions.NotAuthenticated()
            request.user, request.auth = again
        self._confirmed = True
        user = getattr(request, "user", None)
        if user is not None and hasattr(user, "_perm_cache"):
            del user._perm_cache  # primed from the configuration just replaced
            till_user_perms_prime(user)

    def check_permissions(self, request):
        try:
            super().check_permissions(request)
        except (exceptions.PermissionDenied, exceptions.NotAuthenticated):
            if getattr(self, "_confirmed", True):
                raise
            self._reconfirm(request)
            super().check_permissions(request)

    def check_throttles(self, request):
        if getattr(self, "_confirmed", True):
            return super().check_throttles(request)
        throttles = self.get_throttles()
        for _ in range(3):
            allowed = RedisWindowThrottle.allow_all(
                throttles, request, self, self.throttle_read_keys(request), till_config().version,
                version_key=cache.make_key(TILL_CONFIG_VERSION_KEY),
            )
            if not isinstance(allowed, Stale):
                break
            self._reconfirm(request, allowed.version)  # None: the token is gone, read (and remade) below
            self._confirmed = False
            super().check_permissions(request)  # on the configuration now current; refuses before counting
        else:  # the token keeps changing: read it, check again on that, count without the version check
            self._reconfirm(request)
            super().check_permissions(request)
            return super().check_throttles(request)
        self._confirmed = True
        durations = [t.wait() for t, ok in zip(throttles, allowed, strict=True) if not ok]
        if durations:
            self.throttled(request, max((d for d in durations if d is not None), default=None))

    def throttle_read_keys(self, request) -> list[str]:
        # The store's cached amount p99 (the velocity rule reads it after the credit): with the throttles, one
        # round trip fewer. Only for a store this process already holds (no query before the throttles).
        code = request.data.get("store") if isinstance(request.data, dict) else None
        self._p99_store = till_config().cached_store(code) if isinstance(code, str) else None
        return [cache.make_key(store_p99_key(self._p99_store.pk))] if self._p99_store is not None else []

    def _p99_cached(self, store_id: int):
        """What cache.get(store_p99_key) would answer, from the throttles' read; MISSING when not read."""
        if self.throttle_reads is None or getattr(self, "_p99_store", None) is None or self._p99_store.pk != store_id:
            return MISSING
        raw = self.throttle_reads[0]
        if raw is None:
            return None
        try:
            return int(raw)  # Django's RedisSerializer stores an int as its digits
        except ValueError:
            return MISSING

    @extend_schema(
        tags=["loyalty-till"],
        summary="Record a till scan",
        description=(
            "Verifies the card's rotating QR token, records the purchase and its lines, credits points once per "
            "(store, receipt_id) and re-evaluates the tier. 201 when recorded; 200 with `duplicate: true` and the "
            "original result when the receipt was recorded before; 409 for the same receipt with another amount "
            "or card (`receipt_amount_mismatch` names `amount_fen`); 400/403 naming `qr_token` for an expired/forged "
            "token (`qr_expired`, `qr_forged`), 409 `token_reused` for a token already used for another receipt; "
            "400 `store_unknown`, 403 `store_forbidden` (a till not bound to the store); 429 `throttled` with "
            "Retry-After per till and per card. A scan a velocity rule flags is still credited (`flagged: true`)."
        ),
        request=ScanInputSerializer,
        responses={201: ScanOutputSerializer, 200: ScanOutputSerializer},
    )
    def post(self, request):
        data = _scan_input(request.data)
        result = scan_record(
            qr_token=data["qr_token"],
            store_code=data["store"],
            receipt_id=data["receipt_id"],
            amount_fen=data["amount_fen"],
            items=data.get("items"),
            cashier=request.user,
        )
        code = status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
        # After the credit committed: a flag never refuses the scan, it queues it for review.
        flagged = (
            not result.duplicate
            and velocity_check(result.purchase, result.recent_scans, self._p99_cached(result.purchase.store_id))
            is not None
        )
        return Response(_scan_output(result.purchase, result.duplicate, flagged), status=code)


# --- Till: redemptions --------------------------------------------------------------------------------------


class RedemptionInputSerializer(serializers.Serializer):
    qr_token = serializers.CharField(max_length=256, required=False, help_text="The card's QR (at the till).")
    card = serializers.IntegerField(required=False, help_text="Card id (staff tools); give this or qr_token.")
    reward = serializers.IntegerField()
    idempotency_key = serializers.CharField(max_length=128, help_text="One per redemption request; retry with it.")
    store = serializers.CharField(max_length=32, required=False)

    def validate(self, attrs):
        if not attrs.get("qr_token") and not attrs.get("card"):
            raise serializers.ValidationError({"qr_token": "Give qr_token (or card)."})
        return attrs


class RedemptionCouponSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField(help_text="The single-use code; the card page shows it as a QR the till scans once.")
    expires_at = serializers.DateTimeField(allow_null=True)
    card_page_url = serializers.CharField(
        help_text="The card page where the customer finds the coupon's QR (the same link for everyone: WeChat "
        "OAuth says whose card; no per-customer secret is handed to the till)."
    )


class RedemptionOutputSerializer(serializers.Serializer):
    redemption_id = serializers.IntegerField()
    card_number = serializers.CharField()
    reward = serializers.CharField()
    points = serializers.IntegerField()
    points_balance = serializers.IntegerField()
    duplicate = serializers.BooleanField()
    coupon = RedemptionCouponSerializer(allow_null=True, help_text="The coupon the redemption issued.")


def _redemption_coupon(redemption) -> dict | None:
    coupon = Coupon.objects.filter(redemption=redemption).first()
    if coupon is None:  # a redemption from before coupons existed
        return None
    return {"id": coupon.pk, "code": coupon.code, "expires_at": coupon.expires_at, "card_page_url": card_link()}


class RedemptionCreateApi(RedisThrottledView):
    permission_classes = [IsCashier]
    throttle_classes = [TillThrottle, CardThrottle]

    @extend_schema(
        tags=["loyalty-till"],
        summary="Redeem a reward",
        request=RedemptionInputSerializer,
        responses={201: RedemptionOutputSerializer, 200: RedemptionOutputSerializer},
    )
    def post(self, request):
        data = _valid(RedemptionInputSerializer, request.data)
        if data.get("qr_token"):
            number = qr_token_verify(data["qr_token"]).card_number
            card = Card.objects.filter(number=number).first()
            if card is None:
                raise ApplicationError("No card has this number.", code="unknown_card", field="qr_token")
            card_id = card.pk
        else:
            card_id = data["card"]
        redemption, created = redemption_create(
            card_id=card_id,
            reward_id=data["reward"],
            idempotency_key=data["idempotency_key"],
            store_code=data.get("store"),
            user=request.user,
        )
        card = selectors.card_get(redemption.card_id)
        body = RedemptionOutputSerializer(
            {
                "redemption_id": redemption.pk,
                "card_number": card.number,
                "reward": redemption.reward.name,
                "points": redemption.points,
                "points_balance": card.points_balance,
                "duplicate": not created,
                "coupon": _redemption_coupon(redemption),
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# --- Staff: cards, tiers, stores, rewards, adjust -----------------------------------------------------------


class CardListApi(generics.ListAPIView):
    serializer_class = CardOutputSerializer
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_card",)}

    @extend_schema(
        tags=["loyalty"],
        parameters=[
            OpenApiParameter("search", str, description="Card number, contact name or exact external_userid."),
            OpenApiParameter("tier", int, description="Tier id."),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        tier = query_int(self.request, "tier")
        cards = selectors.card_list(search=self.request.query_params.get("search"), tier_id=tier)
        return scope_to_user_stores(cards, self.request.user)


class CardDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_card",)}

    @extend_schema(tags=["loyalty"], responses=CardDetailOutputSerializer)
    def get(self, request, card_id: int):
        card = selectors.card_get(card_id)
        if not scope_to_user_stores(Card.objects.filter(pk=card.pk), request.user).exists():
            raise NotFound("No such card.", field="card")  # another store's card: as if it did not exist
        progress = tier_progress(card)
        body = CardDetailOutputSerializer(
            {
                "card": card,
                "ledger_sum": selectors.card_ledger_sum(card.pk),
                "next_tier": progress.next_tier,
                "next_tier_progress": progress if progress.next_tier else None,
                "ledger": selectors.card_ledger(card.pk),
                "purchases": selectors.card_purchases(card.pk),
            }
        ).data
        return Response(body)


class AdjustInputSerializer(serializers.Serializer):
    delta = serializers.IntegerField(min_value=-10_000_000, max_value=10_000_000)
    reason = serializers.CharField(max_length=255)
    idempotency_key = serializers.CharField(max_length=128)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("delta must not be 0.")
        return value


class CardAdjustApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("loyalty.add_pointsledger",)}

    @extend_schema(
        tags=["loyalty"],
        summary="Manually adjust a card's points (admin)",
        request=AdjustInputSerializer,
        responses={201: LedgerOutputSerializer},
    )
    def post(self, request, card_id: int):
        data = _valid(AdjustInputSerializer, request.data)
        selectors.card_get(card_id)
        entry = points_adjust(
            card_id=card_id,
            delta=data["delta"],
            reason=data["reason"],
            idempotency_key=data["idempotency_key"],
            user=request.user,
        )
        return Response(LedgerOutputSerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema_view(get=extend_schema(tags=["loyalty"]))
class TierListApi(generics.ListAPIView):
    serializer_class = TierOutputSerializer
    pagination_class = None
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_tier",)}

    def get_queryset(self):
        return selectors.tier_list()


@extend_schema_view(get=extend_schema(tags=["loyalty"]))
class StoreListApi(generics.ListAPIView):
    serializer_class = StoreOutputSerializer
    pagination_class = None
    permission_classes = [IsCashier | HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_store",)}

    def get_queryset(self):
        return scope_to_user_stores(selectors.store_list(), self.request.user)  # a till sees its own store(s)


@extend_schema_view(get=extend_schema(tags=["loyalty"]))
class RewardListApi(generics.ListAPIView):
    serializer_class = RewardOutputSerializer
    pagination_class = None
    permission_classes = [IsCashier | HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_reward",)}

    def get_queryset(self):
        return selectors.reward_list()


def _valid(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


urlpatterns = [
    path("api/loyalty/scans", ScanCreateApi.as_view(), name="scan-create"),
    path("api/loyalty/redemptions", RedemptionCreateApi.as_view(), name="redemption-create"),
    path("api/loyalty/cards", CardListApi.as_view(), name="card-list"),
    path("api/loyalty/cards/<int:card_id>", CardDetailApi.as_view(), name="card-detail"),
    path("api/loyalty/cards/<int:card_id>/adjust", CardAdjustApi.as_view(), name="card-adjust"),
    path("api/loyalty/tiers", TierListApi.as_view(), name="tier-list"),
    path("api/loyalty/stores", StoreListApi.as_view(), name="store-list"),
    path("api/loyalty/rewards", RewardListApi.as_view(), name="reward-list"),
]
