"""``p13n import catalog``: products with names, images and categories through the admin API of
a running stack; a bad line is named and nothing of its part is written."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from ops.cli import main
from ops.imports.catalog import _parts
from ops.stack import StackInfo
from tests.support.ops import api

CSV = (
    "sku,stock,price,category,durable,name,image_url,category_path\n"
    "IMP-1,4,2.5,dairy,false,Whole milk,https://cdn.example/milk.jpg,Grocery > Dairy\n"
    "IMP-2,0,30,home,true,Kettle,https://cdn.example/kettle.jpg,Home > Kitchen\n"
)


def test_a_gzipped_csv_catalog_lands_with_its_labels(stack: StackInfo, tmp_path, capsys) -> None:
    path = tmp_path / "products.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode()))
    assert main(["import", "catalog", str(path), "--stack", stack.directory, "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["imported"] == 2 and report["out_of_stock"] == ["IMP-2"]
    milk = api(stack, "GET", "/v1/admin/catalog/IMP-1").json()
    assert (milk["name"], milk["image_url"], milk["category_path"]) == (
        "Whole milk", "https://cdn.example/milk.jpg", "Grocery > Dairy")  # fmt: skip


def test_a_bad_line_is_named_and_its_part_is_not_written(stack: StackInfo, tmp_path, capsys):
    rows = [{"sku": "IMP-7", "stock": 1, "price": 1, "category": "toys", "name": "Ball"},
            {"sku": "IMP-8", "stock": 1, "price": 1, "category": "toys",
             "image_url": "javascript:alert(1)"}]  # fmt: skip
    path = tmp_path / "products.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    assert main(["import", "catalog", str(path), "--stack", stack.directory]) == 1
    err = capsys.readouterr().err
    assert "products.jsonl lines 1-2: 400 line 2: image_url must be an absolute http(s) URL" in err
    assert api(stack, "GET", "/v1/admin/catalog/IMP-7").status_code == 404


def test_parts_keep_the_csv_header_and_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("sku,stock\n" + "".join(f"S{i},1\n" for i in range(5)))
    parts = list(_parts(path, 2))
    assert [(a, b) for a, b, _, _ in parts] == [(2, 3), (4, 5), (6, 6)]
    assert all(text.startswith("sku,stock\n") for _, _, _, text in parts)
