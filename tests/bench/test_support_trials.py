"""The support bench's trials: the compared servers take turns, and the goal is judged on the
trials' medians."""

from __future__ import annotations

from typing import Any

from bench.bench_support import medians, trial_order


def test_compared_servers_take_turns_and_the_stock_client_runs_once() -> None:
    assert trial_order(["kervan", "socketio", "socketio-stock"], 3) == [
        (1, "kervan"),
        (1, "socketio"),
        (1, "socketio-stock"),
        (2, "socketio"),
        (2, "kervan"),
        (3, "kervan"),
        (3, "socketio"),
    ]
    assert trial_order(["socketio"], 2) == [(1, "socketio"), (2, "socketio")]


def _trial(trial: int, ratio: float, kervan_p99: float, socketio_p99: float) -> dict[str, Any]:
    return {
        "case": "1 process",
        "load": "max",
        "trial": trial,
        "throughput_ratio": ratio,
        "kervan_p99_ms": kervan_p99,
        "socketio_p99_ms": socketio_p99,
        "cpu_ratio": 6.0,
        "total_cpu_ratio": 3.0,
        "goal_met": ratio >= 3.0 and kervan_p99 < socketio_p99,
    }


def test_the_goal_is_judged_on_the_medians_and_each_trial_is_counted() -> None:
    # One trial misses on p99, one on throughput: the medians (4x, 200 vs 250 ms) meet it.
    ratios = [_trial(1, 4.0, 260.0, 250.0), _trial(2, 2.5, 200.0, 300.0), _trial(3, 5.0, 190, 210)]
    (row,) = medians(ratios)
    assert (row["throughput_ratio"], row["kervan_p99_ms"], row["socketio_p99_ms"]) == (
        4.0,
        200.0,
        250.0,
    )
    assert row["goal_met"] is True
    assert (row["goal_met_trials"], row["trials"]) == (1, 3)
    # One trial met it, but kervan's median p99 is the higher: missed.
    (row,) = medians(
        [_trial(1, 4.0, 180.0, 250.0), _trial(2, 4.0, 300.0, 240.0), _trial(3, 4, 260, 245)]
    )
    assert row["kervan_p99_ms"] == 260.0 and row["socketio_p99_ms"] == 245.0
    assert row["goal_met"] is False and row["goal_met_trials"] == 1


def test_the_database_server_is_found_only_on_this_machine() -> None:
    import os

    from bench.bench_support import local_database_pids, processes_cpu_seconds

    assert local_database_pids("mariadb+aiomysql://root@db.example.com:3306/test") == []
    for pid in local_database_pids("mariadb+aiomysql://root@127.0.0.1:3306/test"):
        with open(f"/proc/{pid}/comm") as comm:
            assert comm.read().strip() in ("mariadbd", "mysqld")
    # CPU seconds are the processes' own: this one has used some; a process that cannot exist
    # (above Linux's highest pid) adds nothing.
    assert processes_cpu_seconds([os.getpid()]) > 0
    assert processes_cpu_seconds([2**22 + 1]) == 0
