"""Model, field and choice names of the CRM's own apps, shown in the console in the staff member's language.

The models name most things by their Python names (a field `scheduled_at` is "scheduled at", a model `LuckyDraw`
is "lucky draw"), which are not gettext strings in the source. Rather than spell a verbose_name=_() on some 350
fields (and rewrite every model file and migration for a change the database never sees), each name is turned into
gettext_lazy(<the same English text>) as the model class is prepared, before the admin reads it:
- the English stays exactly what it was, so migrations see no change (lazy strings compare equal, and
  deconstruct() reads the arguments the field was given, not these attributes);
- names already written with gettext in the source are left alone;
- `crm.management.commands.makemessages` collects the msgids from MODEL_STRINGS into the catalogue, and the
  catalogue test (tests/test_locale.py) fails when a new model or field has no translation.
Simulator models (wecom_sim) stand for Tencent's server and stay English.
"""

from __future__ import annotations

from django.db import models
from django.db.models.signals import class_prepared
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

# msgid -> where it is used ("crm.contact.status"), for the catalogue's references.
MODEL_STRINGS: dict[str, set[str]] = {}
_APP_LABELS: set[str] = set()


def _lazy(text, where: str):
    if isinstance(text, Promise) or not text:
        return text
    text = str(text)
    MODEL_STRINGS.setdefault(text, set()).add(where)
    return gettext_lazy(text)


def _lazy_choices(choices, where: str):
    out = []
    for value, label in choices:
        if isinstance(label, (list, tuple)):  # a named group of choices
            out.append((_lazy(value, where), _lazy_choices(label, where)))
        else:
            out.append((value, _lazy(label, where)))
    return out


def translate(model: type[models.Model]) -> None:
    opts = model._meta
    where = f"{opts.app_label}.{opts.model_name}"
    opts.verbose_name = _lazy(opts.verbose_name, where)
    if "verbose_name_plural" not in opts.original_attrs:
        # Derived as format_lazy("{}s", verbose_name): translate the English plural Django shows.
        opts.verbose_name_plural = str(opts.verbose_name_plural)
    opts.verbose_name_plural = _lazy(opts.verbose_name_plural, where)
    for field in opts.local_fields + opts.local_many_to_many:
        field_where = f"{where}.{field.name}"
        field.verbose_name = _lazy(field.verbose_name, field_where)
        if isinstance(field.help_text, str):
            field.help_text = _lazy(field.help_text, field_where)
        if field.choices:
            field.choices = _lazy_choices(field.choices, field_where)


def _on_class_prepared(sender, **kwargs) -> None:
    from django.apps import apps

    # Historical models built by migrations live in their own registry: leave them as they are.
    if sender._meta.app_label in _APP_LABELS and sender._meta.apps is apps and not sender._meta.auto_created:
        translate(sender)


def translate_as_prepared(app_labels: tuple[str, ...]) -> None:
    """Translate the names of these apps and their models as each class is prepared (call before their models
    import: AppConfig.import_models of the first of them)."""
    from django.apps import apps

    _APP_LABELS.update(app_labels)
    for label in app_labels:
        config = apps.get_app_config(label)
        config.verbose_name = _lazy(config.verbose_name, label)
    class_prepared.connect(_on_class_prepared, dispatch_uid="crm.model_names")
