"""The demo's Prometheus config scrapes every service under Loupe's job names."""

from __future__ import annotations

import json
from pathlib import Path

from loupe.demo.prometheus import RULES_DIR, scrape_config


def test_scrape_config_lists_every_target_with_loupe_job_names() -> None:
    text = scrape_config(
        {"router": "127.0.0.1:1001", "gateway": "127.0.0.1:1002"}, [Path("/r/loupe.rules.yml")]
    )
    config = json.loads(text)
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs == {"loupe-gateway": ["127.0.0.1:1002"], "loupe-router": ["127.0.0.1:1001"]}
    assert config["rule_files"] == ["/r/loupe.rules.yml"]
    assert config["global"]["scrape_interval"] == "5s"


def test_rules_are_found_in_the_source_tree() -> None:
    assert (RULES_DIR / "loupe.rules.yml").is_file()
