"""The topics `init` creates: names, partitions, compaction and, on a replicated cluster,
the in-sync replicas an acknowledged write needs."""

from __future__ import annotations

from interest_stream.streams.admin import topic_plan
from interest_stream.streams.settings import load_settings


def test_single_broker_plan_has_compacted_outputs_and_no_isr_setting() -> None:
    plan = topic_plan(load_settings(topic_prefix="p-", partitions=4))
    assert set(plan) == {
        "p-clicks",
        "p-reviews",
        "p-queries",
        "p-profile-updates",
        "p-items",
        "p-interest-stream-dlq",
        "p-events-by-user",
    }
    assert {spec["num_partitions"] for spec in plan.values()} == {4}
    assert plan["p-profile-updates"]["configs"] == {"cleanup.policy": "compact"}
    assert plan["p-items"]["configs"] == {"cleanup.policy": "compact"}
    assert plan["p-clicks"]["configs"] == {}


def test_three_replicas_need_two_in_sync_for_every_topic() -> None:
    plan = topic_plan(load_settings(replication_factor=3))
    for name, spec in plan.items():
        assert spec["replication_factor"] == 3, name
        assert spec["configs"]["min.insync.replicas"] == "2", name
    assert plan["profile-updates"]["configs"]["cleanup.policy"] == "compact"
