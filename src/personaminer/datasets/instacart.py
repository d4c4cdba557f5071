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
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from personaminer.datasets.base import InputError, SqlChunk, csv_chunk, read_header, require_file, sql_str

NAME = "instacart"
ANCHOR = "2017-01-01 00:00:00"
SAMPLE_FILE = "orders_products_sample.csv"
ORDER_COLUMNS = ["order_id", "user_id", "order_number", "order_dow", "order_hour_of_day", "days_since_prior_order"]
ITEM_COLUMNS = ["order_id", "product_id", "add_to_cart_order", "reordered"]


def _csv(path: Path) -> str:
    return f"read_csv({sql_str(path)}, header=true, all_varchar=true)"


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

    def _setup(self) -> list[str]:
        aisles, depts = self.folder / "aisles.csv", self.folder / "departments.csv"
        aisle_join = f"LEFT JOIN {_csv(aisles)} a ON a.aisle_id = p.aisle_id" if aisles.exists() else ""
        dept_join = f"LEFT JOIN {_csv(depts)} d ON d.department_id = p.department_id" if depts.exists() else ""
        aisle = "a.aisle" if aisles.exists() else "NULL"
        dept = "d.department" if depts.exists() else "NULL"
        orders = f"""
            SELECT DISTINCT trim(user_id) AS user_id, trim(order_id) AS order_id,
                   try_cast(order_number AS INTEGER) AS order_number, order_dow,
                   try_cast(order_hour_of_day AS INTEGER) AS hour,
                   try_cast(days_since_prior_order AS DOUBLE) AS gap
            FROM {_csv(self.orders)}"""
        return [
            f"""CREATE OR REPLACE TEMP TABLE _instacart_products AS
                SELECT trim(p.product_id) AS product_id, p.product_name, {aisle} AS aisle, {dept} AS department
                FROM {_csv(self.products)} p {aisle_join} {dept_join}""",
            f"""CREATE OR REPLACE TEMP TABLE _instacart_orders AS
                WITH o AS ({orders}),
                d AS (SELECT *, sum(coalesce(gap, 0)) OVER w AS day, order_number = 1 OR gap IS NOT NULL AS gap_ok
                      FROM o WINDOW w AS (PARTITION BY user_id ORDER BY order_number ROWS UNBOUNDED PRECEDING)),
                h AS (SELECT *, max(hour) OVER s AS hour_mono, row_number() OVER s - 1 AS rank_in_day
                      FROM d WINDOW s AS (PARTITION BY user_id, day ORDER BY order_number ROWS UNBOUNDED PRECEDING))
                SELECT user_id, order_id, order_number, order_dow, hour, gap, gap_ok,
                       TIMESTAMP '{ANCHOR}' + to_days(CAST(day AS INTEGER)) + to_hours(hour_mono)
                           + to_minutes(CAST(5 * rank_in_day AS INTEGER)) AS order_ts
                FROM h""",
        ]

    def chunks(self) -> Iterator[SqlChunk]:
        setup = self._setup()
        for f in self.item_files:
            header = ["row_index" if not c else c for c in read_header(f)]
            select = f"""
                {sql_str(str(f))} AS source_file, t.__row + 1 AS line, t.__row AS row_number, t.__row AS ord,
                concat_ws(',', {', '.join(f't."{c}"' for c in header)}) AS raw,
                o.user_id AS user_id,
                CASE WHEN o.gap_ok AND o.hour IS NOT NULL AND try_cast(t.add_to_cart_order AS DOUBLE) IS NOT NULL
                     THEN o.order_ts + to_seconds(CAST(try_cast(t.add_to_cart_order AS DOUBLE) AS BIGINT)) END AS ts,
                CASE WHEN o.order_id IS NOT NULL THEN concat_ws(' ', 'order', o.order_number, 'hour', o.hour,
                     'days_since_prior', coalesce(CAST(o.gap AS VARCHAR), 'first'), 'cart', t.add_to_cart_order) END
                     AS ts_raw,
                'purchase' AS kind,
                p.product_name AS text,
                nullif(trim(t.product_id), '') AS item_id,
                CAST(to_json({{'aisle': p.aisle, 'department': p.department, 'order_id': trim(t.order_id),
                    'order_number': o.order_number, 'add_to_cart_order': try_cast(t.add_to_cart_order AS DOUBLE)::INTEGER,
                    'reordered': try_cast(t.reordered AS DOUBLE)::INTEGER, 'order_dow': try_cast(o.order_dow AS INTEGER),
                    'order_hour_of_day': o.hour, 'days_since_prior_order': o.gap}}) AS VARCHAR) AS attrs,
                CASE WHEN o.order_id IS NULL THEN 'unknown order'
                     WHEN p.product_id IS NULL THEN 'unknown item' END AS error,
                CASE WHEN o.order_id IS NULL THEN 'order ' || t.order_id || ' is not in ' || {sql_str(self.orders.name)}
                     WHEN p.product_id IS NULL THEN 'product ' || t.product_id || ' is not in products.csv' END AS detail
            """
            # In the sample layout each row carries its own user; match the order on it too.
            user_match = "AND o.user_id = trim(t.user_id)" if self.layout == "sample" else ""
            chunk = csv_chunk(
                f, select, columns=header,
                extra_from=(f"LEFT JOIN _instacart_orders o ON o.order_id = trim(t.order_id) {user_match} "
                            "LEFT JOIN _instacart_products p ON p.product_id = trim(t.product_id)"))
            chunk.sql += " ORDER BY t.__row"
            chunk.setup = setup
            yield chunk
