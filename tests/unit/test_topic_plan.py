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
    assert plan["p-profile-updates"]["configs"] == {
        "cleanup.policy": "compact",
        # an erased user's earlier updates are compacted away within a day by default
        "max.compaction.lag.ms": "86400000",
        "segment.ms": "86400000",
        "delete.retention.ms": "86400000",
    }
    assert plan["p-items"]["configs"] == {"cleanup.policy": "compact"}
    assert plan["p-clicks"]["configs"] == {}


def test_three_replicas_need_two_in_sync_for_every_topic() -> None:
    plan = topic_plan(load_settings(replication_factor=3))
    for name, spec in plan.items():
        assert spec["replication_factor"] == 3, name
        assert spec["configs"]["min.insync.replicas"] == "2", name
    assert plan["profile-updates"]["configs"]["cleanup.policy"] == "compact"


def test_the_erasure_bounds_of_profile_updates_follow_the_settings() -> None:
    plan = topic_plan(
        load_settings(updates_max_compaction_lag_s=3600, updates_delete_retention_s=600)
    )
    configs = plan["profile-updates"]["configs"]
    assert configs["max.compaction.lag.ms"] == configs["segment.ms"] == "3600000"
    assert configs["delete.retention.ms"] == "600000"
    assert "max.compaction.lag.ms" not in plan["items"]["configs"]
