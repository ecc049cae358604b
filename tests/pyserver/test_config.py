from __future__ import annotations

from pathlib import Path

import pytest

from bidscore import settings
from pyserver.config import ServerConfig, parse_aliases, parse_models
from pyserver.errors import ConfigError


def test_defaults_follow_the_issue(bidscore_home: Path) -> None:
    config = ServerConfig()
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 50051, 1)
    assert config.models == ("ctr", "cvr")
    assert config.alias == "production"
    assert config.poll_interval == 2.0
    assert config.registry_url == settings.default_registry_url()
    assert str(bidscore_home) in config.registry_url
    assert config.store_url == settings.default_store_url()
    assert config.cache_dir == bidscore_home / "serve-cache"
    assert config.metrics_port == 0
    assert config.transport_max_bytes > config.max_request_bytes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "--port"),
        ({"workers": 0}, "--workers"),
        ({"workers": 2, "port": 0}, "cannot be shared"),
        ({"models": ()}, "--models"),
        ({"models": ("ctr", "ctr")}, "twice"),
        ({"poll_interval": 0}, "--poll-interval"),
        ({"max_concurrent_rpcs": 0}, "--max-concurrent-rpcs"),
        ({"max_candidates": 0}, "--max-candidates"),
        ({"max_models": 0}, "--max-models"),
        ({"max_candidates": 1_000_000, "max_models": 16}, "do not fit in a response"),
        ({"max_request_bytes": 10}, "--max-request-bytes"),
        ({"specs": "features.bid"}, "module:attribute"),
        ({"grace_seconds": -1}, "--grace"),
    ],
)
def test_rejects_settings_that_cannot_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_parse_models() -> None:
    assert parse_models(" ctr, cvr ,,") == ("ctr", "cvr")


def test_alias_is_one_for_all_or_per_model() -> None:
    models = ("ctr", "cvr")
    assert parse_aliases("production", models) == {"ctr": "production", "cvr": "production"}
    assert parse_aliases("canary", models) == {"ctr": "canary", "cvr": "canary"}
    # A model not named follows the default alias.
    assert parse_aliases("ctr=canary", models) == {"ctr": "canary", "cvr": "production"}
    assert parse_aliases(" ctr = canary , cvr=blue ", models) == {"ctr": "canary", "cvr": "blue"}
    config = ServerConfig(models=models, alias="ctr=canary")
    assert (config.alias_of("ctr"), config.alias_of("cvr")) == ("canary", "production")
    for text, message in [
        ("win=canary", "'win', which is not served"),
        ("ctr=canary,ctr=blue", "'ctr' twice"),
        ("ctr=", "is not model=alias"),
        ("canary,blue", "one alias"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ServerConfig(models=models, alias=text)
