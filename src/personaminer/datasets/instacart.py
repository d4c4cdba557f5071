"""Instacart Online Grocery 2017: orders, their products, and the product catalogue.

Two layouts are read from one folder:

* the **sample** layout: ``orders_products_sample.csv`` (orders joined with their products, one
  row per product in an order) next to ``products.csv``;
* the **Kaggle** layout: ``orders.csv`` + ``order_products__prior.csv`` /
  ``order_products__train.csv`` + ``products.csv``.

``aisles.csv`` and ``departments.csv`` are joined when present. Each ordered product becomes a
``purchase`` action whose ``text`` is the product name (aisle and department in ``attrs``).

**Timeline.** Instacart has no dates, only each user's order sequence, the day of week, the
hour, and ``days_since_prior_order`` (capped at 30 in the source). We rebuild a monotone
per-user timeline, documented in ``docs/datasets.md``:

* day of order *n* = 2017-01-01 (UTC, an arbitrary anchor) + the cumulative sum of
  ``days_since_prior_order`` over orders 2..n (the first order is day 0);
* its time of day = the running maximum of ``order_hour_of_day`` over that user's orders on
  the same day (so a later order is never placed earlier), plus 5 minutes per earlier order
  on that day;
* product *k* in the cart (``add_to_cart_order``) = the order's time + *k* seconds.

``order_dow`` is kept in ``attrs`` but not used: it cannot be reconciled with capped gaps.

**Inconsistent order metadata.** An order's fields (number, day of week, hour, gap) are read from
every row that names the order (the sample layout repeats them on each product row; the Kaggle
layout should hold one ``orders.csv`` row per order). When they disagree, the order takes the
values written most often, ties going to the first row in the file; each row that disagrees is
quarantined as ``inconsistent order`` (the detail names the fields), so one bad row can neither
duplicate the order's products nor move its time. Values that are no time at all (an hour outside
0..23, a gap outside 0..365 days, a cart position outside 0..100,000) leave the row without a
time (``unparseable timestamp``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from personaminer.datasets.base import (
    InputError,
    SqlChunk,
    csv_chunk,
    read_header,
    require_file,
    sql_ident,
    sql_str,
)

NAME = "instacart"
ANCHOR = "2017-01-01 00:00:00"
SAMPLE_FILE = "orders_products_sample.csv"
ORDER_COLUMNS = ["order_id", "user_id", "order_number", "order_dow", "order_hour_of_day", "days_since_prior_order"]
ITEM_COLUMNS = ["order_id", "product_id", "add_to_cart_order", "reordered"]

#: An order's fields as parsed from one row (``{t}`` is the row alias); out-of-range values are NULL.
ORDER_FIELDS = {
    "order_number": "try_cast(trim({t}.order_number) AS INTEGER)",
    "order_dow": "try_cast(trim({t}.order_dow) AS INTEGER)",
    "order_hour_of_day": ("CASE WHEN try_cast(trim({t}.order_hour_of_day) AS DOUBLE) BETWEEN 0 AND 23 "
                          "THEN CAST(try_cast(trim({t}.order_hour_of_day) AS DOUBLE) AS INTEGER) END"),
    "days_since_prior_order": ("CASE WHEN try_cast(trim({t}.days_since_prior_order) AS DOUBLE) BETWEEN 0 AND 365 "
                               "THEN try_cast(trim({t}.days_since_prior_order) AS DOUBLE) END"),
}
_CART = ("CASE WHEN try_cast(trim(t.add_to_cart_order) AS DOUBLE) BETWEEN 0 AND 100000 "
         "THEN CAST(try_cast(trim(t.add_to_cart_order) AS DOUBLE) AS BIGINT) END")


def _fields(alias: str) -> str:
    """SQL: the parsed order fields of row ``alias``, named as in :data:`ORDER_FIELDS`."""
    return ", ".join(f"{sql.format(t=alias)} AS {name}" for name, sql in ORDER_FIELDS.items())


def _read(path: Path) -> str:
    """A tolerant read of an input file for the lookup tables: the header's columns, all text;
    malformed lines are skipped here (the product rows' own reader quarantines them)."""
    cols = ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in _header(path))
    return (f"(SELECT *, row_number() OVER () AS __row FROM read_csv({sql_str(path)}, header=true, "
            f"all_varchar=true, auto_detect=false, quote='\"', escape='\"', ignore_errors=true, "
            f"null_padding=false, columns={{{cols}}}))")


def _header(path: Path) -> list[str]:
    return ["row_index" if not c else c for c in read_header(path)]


class InstacartAdapter:
    """Reads an Instacart folder (sample or Kaggle layout)."""

    name = NAME

    def __init__(self, path: str | Path) -> None:
        p = require_file(Path(path))
        self.folder = p if p.is_dir() else p.parent
        self.products = require_file(self.folder / "products.csv", "Instacart products.csv")
        sample = self.folder / SAMPLE_FILE
        if p.is_file() and p.name != "products.csv":
            sample = p
        if sample.exists():
            self.layout, self.item_files = "sample", [require_file(sample)]
            self.orders = sample
        else:
            self.orders = require_file(self.folder / "orders.csv", "Instacart orders.csv")
            self.item_files = sorted(self.folder.glob("order_products__*.csv"))
            if not self.item_files:
                raise InputError(f"{self.folder}: no {SAMPLE_FILE} and no order_products__*.csv: not an Instacart folder")
            self.layout = "kaggle"
        for f in [self.orders, *self.item_files]:
            header = read_header(f)
            need = ORDER_COLUMNS if f == self.orders else ITEM_COLUMNS
            if missing := [c for c in need if c not in header]:
                raise InputError(f"{f} lacks columns {', '.join(missing)}: not an Instacart file")
        if missing := [c for c in ("product_id", "product_name") if c not in read_header(self.products)]:
            raise InputError(f"{self.products} lacks columns {', '.join(missing)}: not Instacart's products.csv")

    @property
    def _key(self) -> list[str]:
        """What identifies an order: its id within its user (sample layout), or its id (orders.csv)."""
        return ["user_id", "order_id"] if self.layout == "sample" else ["order_id"]

    def _setup(self) -> list[str]:
        aisles, depts = self.folder / "aisles.csv", self.folder / "departments.csv"
        aisle_join = f"LEFT JOIN {_read(aisles)} a ON a.aisle_id = p.aisle_id" if aisles.exists() else ""
        dept_join = f"LEFT JOIN {_read(depts)} d ON d.department_id = p.department_id" if depts.exists() else ""
        aisle = "a.aisle" if aisles.exists() else "NULL"
        dept = "d.department" if depts.exists() else "NULL"
        names = ", ".join(ORDER_FIELDS)
        key = ", ".join(self._key)
        # One row per order: the values written most often (ties: the first row in the file).
        return [
            f"""CREATE OR REPLACE TEMP TABLE _instacart_products AS
                SELECT trim(p.product_id) AS product_id, arg_min(p.product_name, p.__row) AS product_name,
                       arg_min({aisle}, p.__row) AS aisle, arg_min({dept}, p.__row) AS department
                FROM {_read(self.products)} p {aisle_join} {dept_join} GROUP BY 1""",
            f"""CREATE OR REPLACE TEMP TABLE _instacart_orders AS
                WITH o AS (SELECT trim(r.user_id) AS user_id, trim(r.order_id) AS order_id, {_fields('r')}, r.__row
                           FROM {_read(self.orders)} r),
                votes AS (SELECT user_id, order_id, {names}, count(*) AS n, min(__row) AS first_row
                          FROM o GROUP BY ALL),
                chosen AS (SELECT * FROM votes
                           QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY n DESC, first_row) = 1),
                d AS (SELECT *, sum(coalesce(days_since_prior_order, 0)) OVER w AS day,
                             order_number IS NOT NULL AND (order_number = 1 OR days_since_prior_order IS NOT NULL)
                                 AS gap_ok
                      FROM chosen WINDOW w AS (PARTITION BY user_id ORDER BY order_number, order_id
                                               ROWS UNBOUNDED PRECEDING)),
                h AS (SELECT *, max(order_hour_of_day) OVER s AS hour_mono, row_number() OVER s - 1 AS rank_in_day
                      FROM d WINDOW s AS (PARTITION BY user_id, day ORDER BY order_number, order_id
                                          ROWS UNBOUNDED PRECEDING))
                SELECT user_id, order_id, {names}, gap_ok,
                       TIMESTAMP '{ANCHOR}' + to_days(CAST(day AS INTEGER)) + to_hours(hour_mono)
                           + to_minutes(CAST(5 * rank_in_day AS INTEGER)) AS order_ts
                FROM h""",
        ]

    def _clash(self) -> str:
        """SQL naming each field in which row ``t`` disagrees with its order ``o`` (NULL when none does)."""
        fields = {"user_id": "trim(t.user_id)"} if self.layout == "kaggle" else {}
        fields |= {f: sql.format(t="t") for f, sql in ORDER_FIELDS.items()}
        parts = [f"CASE WHEN {row} IS DISTINCT FROM o.{f} THEN '{f} ' || coalesce(CAST({row} AS VARCHAR), 'missing') "
                 f"|| ' where the order has ' || coalesce(CAST(o.{f} AS VARCHAR), 'nothing') END"
                 for f, row in fields.items()]
        return f"nullif(concat_ws('; ', {', '.join(parts)}), '')"

    def _order_clashes(self, setup: list[str]) -> SqlChunk:
        """Kaggle layout: every ``orders.csv`` row that disagrees with the order it names, as a quarantine row."""
        header = _header(self.orders)
        select = f"""
            {sql_str(str(self.orders))} AS source_file, t.__row + 1 AS line, t.__row AS row_number, t.__row AS ord,
            concat_ws(',', {', '.join(f't.{sql_ident(c)}' for c in header)}) AS raw,
            trim(t.user_id) AS user_id, NULL::TIMESTAMP AS ts, NULL AS ts_raw, NULL AS kind, NULL AS text,
            NULL AS item_id, NULL AS attrs, 'inconsistent order' AS error,
            {self._clash()} || ': the order keeps the values most of its rows give' AS detail
        """
        chunk = csv_chunk(self.orders, select, columns=header,
                          extra_from="JOIN _instacart_orders o ON o.order_id = trim(t.order_id)",
                          where=f"WHERE {self._clash()} IS NOT NULL")
        chunk.sql += " ORDER BY t.__row"
        chunk.setup = setup
        return chunk

    def chunks(self) -> Iterator[SqlChunk]:
        setup = self._setup()
        own = self.layout == "sample"  # each row repeats its order's fields: check them against the order
        clash = self._clash() if own else "NULL"
        for f in self.item_files:
            header = _header(f)
            select = f"""
                {sql_str(str(f))} AS source_file, t.__row + 1 AS line, t.__row AS row_number, t.__row AS ord,
                concat_ws(',', {', '.join(f't.{sql_ident(c)}' for c in header)}) AS raw,
                o.user_id AS user_id,
                CASE WHEN o.gap_ok AND o.order_hour_of_day IS NOT NULL AND {_CART} IS NOT NULL
                     THEN o.order_ts + to_seconds({_CART}) END AS ts,
                CASE WHEN o.order_id IS NOT NULL THEN concat_ws(' ', 'order', o.order_number, 'hour',
                     o.order_hour_of_day, 'days_since_prior', coalesce(CAST(o.days_since_prior_order AS VARCHAR),
                     'first'), 'cart', t.add_to_cart_order) END AS ts_raw,
                'purchase' AS kind,
                p.product_name AS text,
                nullif(trim(t.product_id), '') AS item_id,
                CAST(to_json({{'aisle': p.aisle, 'department': p.department, 'order_id': trim(t.order_id),
                    'order_number': o.order_number, 'add_to_cart_order': {_CART}::INTEGER,
                    'reordered': try_cast(try_cast(t.reordered AS DOUBLE) AS INTEGER), 'order_dow': o.order_dow,
                    'order_hour_of_day': o.order_hour_of_day, 'days_since_prior_order': o.days_since_prior_order}})
                    AS VARCHAR) AS attrs,
                CASE WHEN o.order_id IS NULL THEN 'unknown order'
                     WHEN {clash} IS NOT NULL THEN 'inconsistent order'
                     WHEN p.product_id IS NULL THEN 'unknown item' END AS error,
                CASE WHEN o.order_id IS NULL THEN 'order ' || t.order_id || ' is not in ' || {sql_str(self.orders.name)}
                     WHEN {clash} IS NOT NULL THEN {clash} || ': the order keeps the values most of its rows give'
                     WHEN p.product_id IS NULL THEN 'product ' || t.product_id || ' is not in products.csv' END AS detail
            """
            # In the sample layout each row carries its own user; match the order on it too.
            user_match = "AND o.user_id = trim(t.user_id)" if own else ""
            chunk = csv_chunk(
                f, select, columns=header,
                extra_from=(f"LEFT JOIN _instacart_orders o ON o.order_id = trim(t.order_id) {user_match} "
                            "LEFT JOIN _instacart_products p ON p.product_id = trim(t.product_id)"))
            chunk.sql += " ORDER BY t.__row"
            chunk.setup = setup
            yield chunk
        if not own:
            yield self._order_clashes(setup)
