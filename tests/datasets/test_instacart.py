"""Instacart adapter on the real sample: counts, product names, and the rebuilt timeline."""

from __future__ import annotations

from pathlib import Path

from personaminer import Workspace, ingest


def test_counts_and_monotone_timeline(instacart_dir: Path, tmp_path: Path) -> None:
    s = ingest(instacart_dir, tmp_path / "ws", progress=False)
    assert s.format == "instacart"
    assert s.actions_valid == 150_000 and s.users == 593 and s.quarantined == 0
    with Workspace(tmp_path / "ws") as ws:
        con = ws.con
        assert con.execute("SELECT count(DISTINCT attrs->>'order_id') FROM actions").fetchall()[0][0] == 15_183
        assert con.execute("SELECT count(DISTINCT item_id) FROM actions").fetchall()[0][0] == 14_190
        # Every user's actions, in order-number then cart order, have strictly increasing times.
        broken = con.execute("""
            SELECT count(*) FROM (
              SELECT ts, lag(ts) OVER (PARTITION BY user_id ORDER BY (attrs->>'order_number')::INT,
                                                   (attrs->>'add_to_cart_order')::INT) AS prev FROM actions)
            WHERE ts <= prev""").fetchall()[0][0]
        assert broken == 0
        # The day offsets follow days_since_prior_order.
        gaps = con.execute("""
            SELECT DISTINCT user_id, (attrs->>'order_number')::INT AS n, date_trunc('day', min(ts)) AS day,
                   any_value((attrs->>'days_since_prior_order')::DOUBLE) AS gap
            FROM actions WHERE user_id = '1' GROUP BY 1, 2 ORDER BY 2""").fetchall()
        for (_, _, day0, _), (_, _, day1, gap) in zip(gaps, gaps[1:], strict=False):
            assert (day1 - day0).days == int(gap)
        first = ws.user_actions("1")[0]
    assert first.text == "Soda" and first.attrs["aisle"] == "soft drinks" and first.attrs["department"] == "beverages"
    assert first.kind == "purchase" and first.item_id == "196"


def test_kaggle_layout(instacart_dir: Path, tmp_path: Path) -> None:
    """The same rows split into Kaggle's orders.csv + order_products__prior.csv give the same actions."""
    import duckdb

    src = instacart_dir / "orders_products_sample.csv"
    folder = tmp_path / "kaggle"
    folder.mkdir()
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT DISTINCT order_id, user_id, 'prior' AS eval_set, order_number, order_dow,
                    order_hour_of_day, days_since_prior_order FROM read_csv('{src}') ORDER BY user_id, order_number)
                    TO '{folder / 'orders.csv'}' (HEADER)""")
    con.execute(f"""COPY (SELECT order_id, product_id, CAST(add_to_cart_order AS INT) AS add_to_cart_order,
                    CAST(reordered AS INT) AS reordered FROM read_csv('{src}'))
                    TO '{folder / 'order_products__prior.csv'}' (HEADER)""")
    for name in ("products.csv", "aisles.csv", "departments.csv"):
        (folder / name).write_bytes((instacart_dir / name).read_bytes())
    a = ingest(instacart_dir, tmp_path / "a", progress=False)
    b = ingest(folder, tmp_path / "b", progress=False)
    assert b.format == "instacart" and b.actions_valid == a.actions_valid and b.quarantined == 0
    with Workspace(tmp_path / "a") as wa, Workspace(tmp_path / "b") as wb:
        assert [(x.ts, x.text) for x in wa.user_actions("7")] == [(x.ts, x.text) for x in wb.user_actions("7")]
