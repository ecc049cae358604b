"""The model catalogue seam: one `module:attribute` for every command, env var included."""

from __future__ import annotations

import pytest

from features import bid, catalog
from features.catalog import Catalog, CatalogError
from features.spec import Target


def test_default_is_the_bundled_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(catalog.SPECS_ENV, raising=False)
    loaded = catalog.load()
    assert loaded is bid.CATALOG
    assert loaded.names == ["ctr", "cvr"]
    assert loaded.target("cvr") == Target(label="conversion", where="click")


def test_env_var_names_another_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(catalog.SPECS_ENV, "features.bid:SPECS")
    loaded = catalog.load()
    assert loaded.specs == bid.SPECS
    assert loaded.target("cvr") == catalog.DEFAULT_TARGET  # a bare dict has no targets


def test_errors_name_the_problem() -> None:
    with pytest.raises(CatalogError, match="module:attribute"):
        catalog.load("features.bid")
    with pytest.raises(CatalogError, match=r"cannot load specs 'nope\.nope:X'"):
        catalog.load("nope.nope:X")
    with pytest.raises(CatalogError, match="neither"):
        catalog.load("features.bid:TARGETS")
    with pytest.raises(CatalogError, match=r"unknown model 'win' \(the catalogue has: ctr, cvr\)"):
        bid.CATALOG.spec("win")
    with pytest.raises(CatalogError, match="without a spec: win"):
        Catalog(bid.SPECS, {"win": Target("win")})
