"""Profile quotas on local workloads: quantities, admission, waiting with a reason, waking, refusal."""

import pytest

from flowdeck.runtime.quotas import Demand, QuotaError, QuotaGate, limits_from_hard, parse_quantity


@pytest.mark.parametrize(("text", "value"), [("2", 2.0), ("500m", 0.5), ("1.5", 1.5), ("2Gi", 2 * 2**30),
                                             ("1G", 1e9), (3, 3.0), ("128Mi", 128 * 2**20), ("512K", 512e3),
                                             ("1Ei", 2**60), ("100u", 1e-4)])
def test_kubernetes_quantities(text: object, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "two", "1Xi", "-1", "1.2.3"])
def test_bad_quantities_name_the_value(text: str) -> None:
    with pytest.raises(QuotaError, match="is not a quantity"):
        parse_quantity(text)


def test_quota_keys_map_to_what_they_limit() -> None:
    hard = {"cpu": "2", "requests.memory": "4Gi", "requests.nvidia.com/gpu": "1", "pods": "3",
            "persistentvolumeclaims": "1"}
    assert limits_from_hard(hard) == {"cpu": 2.0, "memory": 4 * 2**30, "gpu": 1.0, "workloads": 3.0}


def test_admission_waits_with_a_reason_and_wakes_on_release() -> None:
    gate = QuotaGate(lambda namespace: {"cpu": "1"} if namespace == "team-a" else None)
    woken: list[str] = []
    assert gate.try_admit("team-a", "first", Demand(cpu=1), wake=lambda: woken.append("first")).admitted
    second = gate.try_admit("team-a", "second", Demand(cpu=1), wake=lambda: woken.append("second"))
    assert not second.admitted and not second.never_fits
    assert second.reason == "waiting for quota: profile team-a allows 1 CPU and 1 CPU are in use"
    assert gate.try_admit("other", "free", Demand(cpu=8), wake=lambda: None).admitted  # no quota there
    gate.release("team-a", "first")
    assert woken == ["second"]
    assert gate.try_admit("team-a", "second", Demand(cpu=1), wake=lambda: None).admitted


def test_a_demand_above_the_quota_itself_never_fits() -> None:
    gate = QuotaGate(lambda _namespace: {"memory": "1Gi", "pods": "2"})
    refused = gate.try_admit("team-a", "big", Demand(memory=2 * 2**30), wake=lambda: None)
    assert refused.never_fits
    assert refused.reason == "it asks for 2 GiB of memory and profile team-a allows 1 GiB of memory in all"
    assert gate.try_admit("team-a", "a", Demand(), wake=lambda: None).admitted
    assert gate.try_admit("team-a", "b", Demand(), wake=lambda: None).admitted
    third = gate.try_admit("team-a", "c", Demand(), wake=lambda: None)
    assert not third.admitted and "2 running workloads are in use" in third.reason
