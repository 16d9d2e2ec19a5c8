"""Which column of a file feeds which field: a default mapping per kind, overridable.

Column names are matched loosely: case, surrounding spaces and runs of spaces, hyphens
and underscores do not matter ("First Name", "first-name" and "FIRST_NAME" are all
`first_name`). For each target the first alias found in the file wins, unless the
mapping names the column (`target=column`); `target=` (no column) turns a target off,
and the target `ignore` lists columns to leave out entirely. Columns that feed no
target are kept: as traits (customers), order properties (orders) or as they are for
the catalog's own parser (products: `attr.<name>`, `name.<locale>`...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shopkeeper.imports.model import KINDS, ImportFailure

IGNORE = "ignore"

# target -> aliases, in the order they are tried. Documented in docs/imports.md.
DEFAULT_MAPPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "user_id": ("customer_id", "id", "user_id", "userid", "customer_number", "customer_no",
                    "external_id"),
        "email": ("email", "email_address", "e_mail", "e_mail_address", "mail"),
        "phone": ("phone", "phone_number", "mobile", "mobile_phone", "cell", "telephone", "tel"),
        "first_name": ("first_name", "firstname", "given_name"),
        "last_name": ("last_name", "lastname", "surname", "family_name"),
        "name": ("name", "full_name", "fullname", "customer_name"),
        "birthday": ("birthday", "birth_date", "birthdate", "date_of_birth", "dob"),
        "gender": ("gender", "sex"),
        "street": ("street", "street_address", "address1", "address_line_1", "address_line1",
                   "address"),
        "city": ("city", "town"),
        "postal_code": ("postal_code", "postcode", "post_code", "zip", "zip_code", "zipcode"),
        "state": ("state", "province", "region"),
        "country": ("country", "country_code"),
        "created_at": ("created_at", "signup_date", "signed_up_at", "registered_at",
                       "registration_date", "customer_since"),
        "updated_at": ("updated_at", "last_modified", "modified_at"),
        "email_opt_in": ("email_opt_in", "accepts_marketing", "accepts_email_marketing",
                         "email_marketing", "newsletter", "marketing_opt_in"),
        "sms_opt_in": ("sms_opt_in", "accepts_sms_marketing", "sms_marketing"),
        "locale": ("locale", "language", "preferred_language"),
    },
    "orders": {
        "order_id": ("order_id", "id", "order_number", "order_no", "receipt_id",
                     "receipt_number", "transaction_id"),
        "user_id": ("customer_id", "user_id", "userid", "customer_number", "customer_no"),
        "email": ("email", "customer_email", "email_address"),
        "phone": ("phone", "customer_phone", "phone_number"),
        "date": ("created_at", "order_date", "date", "ordered_at", "completed_at",
                 "purchase_date", "timestamp"),
        "total": ("total", "order_total", "grand_total", "total_price", "amount"),
        "revenue": ("revenue",),
        "subtotal": ("subtotal", "sub_total"),
        "tax": ("tax", "tax_amount", "vat"),
        "shipping": ("shipping", "shipping_cost", "shipping_amount"),
        "discount": ("discount", "discount_amount"),
        "coupon": ("coupon", "coupon_code", "discount_code", "promo_code"),
        "currency": ("currency", "currency_code"),
        "store": ("store", "location", "store_name", "store_id", "shop"),
        "status": ("status", "order_status"),
        "products": ("products", "items", "line_items"),
        "product_id": ("product_id", "item_id"),
        "sku": ("sku", "product_sku"),
        "product_name": ("product_name", "name", "item_name", "product", "title"),
        "category": ("category", "product_category"),
        "brand": ("brand",),
        "variant": ("variant",),
        "price": ("price", "unit_price", "item_price"),
        "quantity": ("quantity", "qty", "units"),
    },
    "products": {
        "id": ("id", "product_id", "item_id"),
        "sku": ("sku",),
        "name": ("name", "title", "product_name"),
        "description": ("description",),
        "category": ("category", "category_path", "product_type"),
        "brand": ("brand", "vendor", "manufacturer"),
        "price": ("price", "regular_price"),
        "sale_price": ("sale_price", "special_price"),
        "currency": ("currency",),
        "stock_quantity": ("stock_quantity", "stock", "inventory", "inventory_quantity",
                           "qty", "quantity"),
        "url": ("url", "link", "product_url"),
        "image_url": ("image_url", "image", "image_link"),
        "attributes": ("attributes",),
        "locales": ("locales",),
    },
}  # fmt: skip

# Fields a file must have a column for (any one of each group), checked before reading.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "customers": (("user_id", "email", "phone"),),
    "orders": (("order_id",), ("date",), ("user_id", "email", "phone")),
    "products": (("id",), ("name",)),
}

_SEPARATORS = re.compile(r"[\s_\-]+")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@lru_cache(maxsize=4096)
def canonical(column: str) -> str:
    """The loose form columns are matched in: "E-Mail Address" -> "e_mail_address"."""
    return _SEPARATORS.sub("_", column.strip().casefold()).strip("_")


@lru_cache(maxsize=4096)
def extra_name(column: str) -> str:
    """The trait or property name of a column no target takes: kept when it is already
    a name ("loyaltyTier", "vip"), else its loose form ("Loyalty Tier" -> loyalty_tier)."""
    text = column.strip()
    return text if _IDENTIFIER.match(text) else canonical(text)


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """A kind's mapping with the overrides applied, before it meets a file's columns."""

    kind: str
    # target -> column (canonical form); "" turns the target off.
    overrides: dict[str, str] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()

    @property
    def targets(self) -> Mapping[str, tuple[str, ...]]:
        return DEFAULT_MAPPINGS[self.kind]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A mapping met with one set of columns: target -> column, and the other columns."""

    fields: dict[str, str]
    extras: tuple[tuple[str, str], ...]  # (column, trait/property name)


@dataclass(slots=True)
class MappedRow:
    """One record through the mapping: values by target, the remaining columns by their
    trait/property name, and where each value came from (for error messages)."""

    line: int
    values: dict[str, Any]
    extras: dict[str, Any]
    columns: dict[str, str]

    def label(self, target: str) -> str:
        """How an error names a field: the target, with the column when it differs."""
        column = self.columns.get(target)
        if column is None or canonical(column) == target:
            return target
        return f"{target} (column {column!r})"


def parse_map_options(items: Sequence[str]) -> dict[str, Any]:
    """CLI `--map target=column` options into a mapping (`ignore=` may repeat)."""
    mapping: dict[str, Any] = {}
    for item in items:
        target, sep, column = item.partition("=")
        target = target.strip()
        if not sep or not target:
            raise ImportFailure(f"--map takes target=column, not {item!r}")
        if target.casefold() == IGNORE:
            mapping.setdefault(IGNORE, []).append(column.strip())
        else:
            mapping[target] = column.strip()
    return mapping


def build_map(kind: str, mapping: Mapping[str, Any] | None) -> ColumnMap:
    if kind not in KINDS:
        raise ImportFailure(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    targets = DEFAULT_MAPPINGS[kind]
    overrides: dict[str, str] = {}
    ignored: set[str] = set()
    for raw_target, column in (mapping or {}).items():
        target = canonical(str(raw_target))
        if target == IGNORE:
            columns = [column] if isinstance(column, str) else column
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise ImportFailure("mapping: ignore takes a column name or a list of them")
            ignored.update(canonical(c) for c in columns if c.strip())
            continue
        if target not in targets:
            raise ImportFailure(
                f"mapping: {raw_target!r} is not a field of {kind}; the fields are "
                f"{', '.join(targets)} (and ignore)"
            )
        if column is not None and not isinstance(column, str):
            raise ImportFailure(f"mapping: the column for {target} must be a name")
        overrides[target] = canonical(column or "")
    return ColumnMap(kind, overrides, frozenset(ignored))


def resolve(column_map: ColumnMap, columns: Iterable[str], *, strict: bool) -> Resolved:
    """Match the mapping to a file's columns. `strict` (CSV, whose columns are known up
    front): a column named in the mapping must exist."""
    by_form: dict[str, str] = {}
    for column in columns:
        form = canonical(column)
        if form in by_form and strict:
            raise ImportFailure(
                f"columns {by_form[form]!r} and {column!r} name the same thing; rename or "
                "ignore one of them"
            )
        by_form.setdefault(form, column)
    taken: set[str] = set(column_map.ignored)
    fields: dict[str, str] = {}
    for target, form in column_map.overrides.items():
        if not form:
            continue
        if form not in by_form:
            if strict:
                raise ImportFailure(
                    f"mapping: there is no column {form!r} for {target} in the file"
                )
            continue
        fields[target] = by_form[form]
        taken.add(form)
    for target, aliases in column_map.targets.items():
        if target in column_map.overrides:
            continue
        for alias in aliases:
            if alias in by_form and alias not in taken:
                fields[target] = by_form[alias]
                taken.add(alias)
                break
    # The catalog's parser reads its own column conventions (attr.<name>, name.<locale>),
    # so product columns keep their names.
    name = str.strip if column_map.kind == "products" else extra_name
    extras = tuple((column, name(column)) for form, column in by_form.items() if form not in taken)
    return Resolved(fields, extras)


def check_required(kind: str, resolved: Resolved) -> None:
    """A CSV file without a column for a required field would reject every row: say so
    once, before reading. Names only the fields, never the file's header (a file without
    a header line has a customer's data there)."""
    for group in REQUIRED[kind]:
        if not any(target in resolved.fields for target in group):
            wanted = " or ".join(group)
            aliases = ", ".join(
                alias for target in group for alias in DEFAULT_MAPPINGS[kind][target]
            )
            raise ImportFailure(
                f"the file has no column for {wanted} (looked for {aliases}); name it with "
                f"a mapping, e.g. --map {group[0]}=COLUMN"
            )


def _present(value: Any) -> Any:
    """None for what counts as "no value": null, and text that is empty once trimmed."""
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return value


class RowMapper:
    """Applies a mapping to records; JSON Lines records may each have other keys, so their
    resolutions are cached by key set."""

    def __init__(self, column_map: ColumnMap, columns: Sequence[str] | None) -> None:
        self.column_map = column_map
        self._fixed = resolve(column_map, columns, strict=True) if columns is not None else None
        self._cache: dict[tuple[str, ...], Resolved] = {}

    @property
    def fixed(self) -> Resolved | None:
        return self._fixed

    def _resolved(self, values: Mapping[str, Any]) -> Resolved:
        if self._fixed is not None:
            return self._fixed
        keys = tuple(values)
        found = self._cache.get(keys)
        if found is None:
            if len(self._cache) > 1000:
                self._cache.clear()  # files whose every line has other keys
            found = self._cache[keys] = resolve(self.column_map, keys, strict=False)
        return found

    def map(self, line: int, values: Mapping[str, Any]) -> MappedRow:
        resolved = self._resolved(values)
        mapped: dict[str, Any] = {}
        for target, column in resolved.fields.items():
            value = _present(values.get(column))
            if value is not None:
                mapped[target] = value
        extras: dict[str, Any] = {}
        for column, name in resolved.extras:
            value = _present(values.get(column))
            if value is not None:
                extras[name] = value
        return MappedRow(line, mapped, extras, resolved.fields)
