"""PostgreSQL and several nodes: figures measured side by side with SQLite, in one run.

Run with ``scripts/bench --cluster`` (or ``.venv/bin/python bench/bench_cluster.py``).
It needs the PostgreSQL server at 127.0.0.1:5432 (or ``CLAUDE_GATEWAY_TEST_POSTGRES_URL``)
and makes (and drops) a database of its own. The mock model answers instantly.

  (p1) a warm turn through a gateway on PostgreSQL / the same on SQLite
                                                                 reported
  (p2) events written per second while one turn streams a long answer, PostgreSQL
       and SQLite                                                target: PG >= 0.5x SQLite
  (p3) a prompt sent to a session on another node (forwarded through the inbox)
       / the same prompt sent to the node that runs it           reported
  (p4) takeover after a SIGKILL: from the kill of the node running a session until
       another node has answered the session's next message, with the lease TTL
                                                                 target < TTL + 5 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo, for tests/
from bench.bench_sessions import (
    RESULTS,
    GatewayProcess,
    free_port,
    gateway_turn,
    isolate,
    median_ms,
    timed,
    wait_idle,
)
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.postgres import scratch_database

from claude_gateway.mock_model import MockModel, MockModelServer

LONG_ANSWER = "@reply " + "w " * 3000


async def warm_session(client: httpx.AsyncClient) -> str:
    session_id = str((await client.post("/v1/sessions")).json()["id"])
    await wait_idle(client, session_id)
    await gateway_turn(client, session_id, "@reply warm-up")
    return session_id


async def bench_warm_turns(sqlite: GatewayProcess, postgres: GatewayProcess, turns: int
                           ) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=sqlite.url, timeout=60) as on_sqlite, \
            httpx.AsyncClient(base_url=postgres.url, timeout=60) as on_postgres:
        s1, s2 = await warm_session(on_sqlite), await warm_session(on_postgres)
        times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        for i in range(turns):  # interleaved
            times["sqlite"].append(await timed(
                lambda i=i: gateway_turn(on_sqlite, s1, f"@reply s{i}")))
            times["postgres"].append(await timed(
                lambda i=i: gateway_turn(on_postgres, s2, f"@reply p{i}")))
    return times


async def events_per_second(client: httpx.AsyncClient, session_id: str) -> float:
    before = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
    took = await timed(lambda: gateway_turn(client, session_id, LONG_ANSWER))
    after = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
    return (after - before) / took


async def bench_throughput(sqlite: GatewayProcess, postgres: GatewayProcess, runs: int
                           ) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=sqlite.url, timeout=120) as on_sqlite, \
            httpx.AsyncClient(base_url=postgres.url, timeout=120) as on_postgres:
        s1, s2 = await warm_session(on_sqlite), await warm_session(on_postgres)
        rates: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        for _ in range(runs):
            rates["sqlite"].append(await events_per_second(on_sqlite, s1))
            rates["postgres"].append(await events_per_second(on_postgres, s2))
    return rates


def cluster_node(scratch: Path, mock: MockModelServer, database: str, name: str,
                 ttl: float) -> GatewayProcess:
    node = GatewayProcess.__new__(GatewayProcess)
    node.port = free_port()
    node.url = f"http://127.0.0.1:{node.port}"
    directory = scratch / name
    directory.mkdir()
    node.process = start_gateway_process(
        directory, mock.url, node.port, own_group=True, database_url=database, node_id=name,
        workspace_root=str(scratch / "shared"), lease_ttl_seconds=str(ttl),
        max_processes="2")
    return node


async def bench_forwarded(a: GatewayProcess, b: GatewayProcess, turns: int
                          ) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=a.url, timeout=60) as on_a, \
            httpx.AsyncClient(base_url=b.url, timeout=60) as on_b:
        session_id = await warm_session(on_a)
        times: dict[str, list[float]] = {"owner": [], "forwarded": []}
        for i in range(turns):
            times["owner"].append(await timed(
                lambda i=i: gateway_turn(on_a, session_id, f"@reply a{i}")))
            times["forwarded"].append(await timed(
                lambda i=i: gateway_turn(on_b, session_id, f"@reply b{i}")))
    return times


async def bench_takeover(scratch: Path, mock: MockModelServer, database: str, ttl: float,
                         runs: int) -> list[float]:
    took: list[float] = []
    survivor = cluster_node(scratch, mock, database, "survivor", ttl)
    await survivor.wait()
    try:
        async with httpx.AsyncClient(base_url=survivor.url, timeout=120) as on_survivor:
            for i in range(runs):
                victim = cluster_node(scratch, mock, database, f"victim-{i}", ttl)
                await victim.wait()
                async with httpx.AsyncClient(base_url=victim.url, timeout=60) as on_victim:
                    session_id = await warm_session(on_victim)
                os.killpg(victim.process.pid, signal.SIGKILL)
                victim.process.wait()
                killed = time.perf_counter()
                await gateway_turn(on_survivor, session_id, "@reply taken over")
                took.append(time.perf_counter() - killed)
    finally:
        survivor.stop()
    return took


async def main(quick: bool) -> dict[str, Any]:
    scratch = isolate()
    turns, throughput_runs, takeovers = (5, 1, 1) if quick else (30, 5, 3)
    ttl = 5.0
    mock = MockModelServer(MockModel()).start()
    with scratch_database("bench") as database:
        (scratch / "sqlite").mkdir()
        (scratch / "postgres").mkdir()
        sqlite = GatewayProcess(scratch / "sqlite", mock, max_processes="2")
        postgres = GatewayProcess(scratch / "postgres", mock, max_processes="2",
                                  database_url=database, node_id="single")
        try:
            await sqlite.wait()
            await postgres.wait()
            warm = await bench_warm_turns(sqlite, postgres, turns)
            rates = await bench_throughput(sqlite, postgres, throughput_runs)
        finally:
            sqlite.stop()
            postgres.stop()
        a = cluster_node(scratch, mock, database, "node-a", ttl)
        b = cluster_node(scratch, mock, database, "node-b", ttl)
        try:
            await a.wait()
            await b.wait()
            forwarded = await bench_forwarded(a, b, turns)
        finally:
            a.stop()
            b.stop()
        takeover = await bench_takeover(scratch, mock, database, ttl, takeovers)
    mock.stop()

    warm_ratio = round(median_ms(warm["postgres"]) / median_ms(warm["sqlite"]), 3)
    rate = {k: round(statistics.median(v)) for k, v in rates.items()}
    rate_ratio = round(rate["postgres"] / rate["sqlite"], 3)
    forward_ratio = round(median_ms(forwarded["forwarded"]) / median_ms(forwarded["owner"]), 3)
    takeover_s = round(statistics.median(takeover), 2)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "warm_turn_ms": {k: median_ms(v) for k, v in warm.items()},
        "warm_turn_ratio": warm_ratio,
        "events_per_second": rate, "events_ratio": rate_ratio,
        "forwarded_turn_ms": {k: median_ms(v) for k, v in forwarded.items()},
        "forwarded_ratio": forward_ratio,
        "takeover_seconds": takeover_s, "lease_ttl_seconds": ttl,
        "raw": {"warm": warm, "rates": rates, "forwarded": forwarded, "takeover": takeover},
    }
    print(f"(p1) warm turn: PostgreSQL {median_ms(warm['postgres'])} ms / SQLite "
          f"{median_ms(warm['sqlite'])} ms = {warm_ratio}")
    print(f"(p2) events/s in one streaming turn: PostgreSQL {rate['postgres']} / SQLite "
          f"{rate['sqlite']} = {rate_ratio}  target >= 0.5 "
          f"{'met' if rate_ratio >= 0.5 else 'NOT MET'}")
    print(f"(p3) a turn sent to another node / to the owner: "
          f"{median_ms(forwarded['forwarded'])} ms / {median_ms(forwarded['owner'])} ms "
          f"= {forward_ratio}")
    print(f"(p4) takeover after SIGKILL (lease TTL {ttl} s): median {takeover_s} s  "
          f"target < {ttl + 5} s {'met' if takeover_s < ttl + 5 else 'NOT MET'}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "cluster.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    asyncio.run(main(parser.parse_args().quick))
