"""Session benchmarks: medians and ratios measured in one run on this machine.

Run with ``scripts/bench`` (or ``.venv/bin/python bench/bench_sessions.py``). The mock
model answers instantly, so the numbers are the gateway's and the CLI's own cost.

  (a) a turn on a warm session through the gateway's HTTP API
      vs the same turn through ClaudeSDKClient directly          target <= 1.10
  (b) a follow-up turn on a warm session
      vs one `claude -p --resume` process per message            target <= 0.15
  (c) the first message of a session created beforehand (process already started)
      vs spawning the process when the first message arrives    target <= 0.6
  (d) gateway RSS per idle session, CLI processes excluded       target < 1 MB
  (e) interrupt of a streaming turn until turn.interrupted       target < 1 s
  (f) a run in the default workspace with a spare process
      vs a run that spawns its CLI                               target <= 0.6
  (g) a stateless OpenAI chat completion, and a run by an API key in its own default
      workspace, with spare processes vs spawning the CLI        target <= 0.6
  (h) gateway RSS after 10,000 runs (and at 2,500 and 5,000), the agents being fakes
      so that only the gateway's own state counts; and after 300 runs of the real CLI
                                                                 target: flat
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient

from claude_gateway.mock_model import MockModel, MockModelServer
from claude_gateway.runtime.cli_binary import find_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo, for tests/
from tests.helpers.gateway_process import start_gateway_process

RESULTS = Path(__file__).parent / "results"


def isolate() -> Path:
    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "CLAUDE_")):
            del os.environ[key]
    scratch = Path(tempfile.mkdtemp(prefix="claude-gateway-bench-"))
    os.environ["HOME"] = str(scratch / "home")
    (scratch / "home").mkdir()
    return scratch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cli_env(scratch: Path, mock: MockModelServer) -> dict[str, str]:
    config = scratch / "direct-config"
    config.mkdir(exist_ok=True)
    return {"ANTHROPIC_BASE_URL": mock.url, "ANTHROPIC_API_KEY": "bench",
            "CLAUDE_CONFIG_DIR": str(config), "CLAUDE_CODE_MAX_RETRIES": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}


class GatewayProcess:
    def __init__(self, scratch: Path, mock: MockModelServer, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_gateway_process(scratch, mock.url, self.port, **settings)

    async def wait(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def wait_idle(client: httpx.AsyncClient, session_id: str) -> None:
    for _ in range(600):
        if (await client.get(f"/v1/sessions/{session_id}")).json()["status"] == "idle":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("session never became idle")


async def gateway_turn(client: httpx.AsyncClient, session_id: str, prompt: str) -> None:
    response = await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": prompt})
    assert response.json()["status"] == "completed", response.text


async def sdk_turn(sdk: ClaudeSDKClient, prompt: str) -> None:
    await sdk.query(prompt)
    async for _ in sdk.receive_response():
        pass


async def bench_warm_turns(scratch: Path, mock: MockModelServer, gateway: GatewayProcess,
                           turns: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        session_id = (await client.post("/v1/sessions")).json()["id"]
        await wait_idle(client, session_id)
        await gateway_turn(client, session_id, "@reply warm-up")
        workspace = scratch / "direct-ws"
        workspace.mkdir(exist_ok=True)
        options = ClaudeAgentOptions(cwd=workspace, cli_path=find_cli(),
                                     env=cli_env(scratch, mock), include_partial_messages=True,
                                     system_prompt={"type": "preset", "preset": "claude_code"})
        sdk = ClaudeSDKClient(options)
        await sdk.connect()
        await sdk_turn(sdk, "@reply warm-up")
        via_gateway, direct = [], []
        for i in range(turns):  # interleaved, so drift on the machine hits both alike
            via_gateway.append(await timed(
                lambda i=i: gateway_turn(client, session_id, f"@reply g{i}")))
            direct.append(await timed(lambda i=i: sdk_turn(sdk, f"@reply d{i}")))
        await sdk.disconnect()
        claude_id = (await client.get(f"/v1/sessions/{session_id}")).json()["claudeSessionId"]
    return {"gateway": via_gateway, "direct": direct, "claude_session_id": claude_id}


def bench_resume_per_message(scratch: Path, mock: MockModelServer, runs: int) -> list[float]:
    """What simple wrappers do: a new `claude -p --resume` process for each message."""
    env = {**os.environ, **cli_env(scratch, mock)}
    workspace = scratch / "resume-ws"
    workspace.mkdir(exist_ok=True)
    cli = str(find_cli())
    first = subprocess.run([cli, "-p", "@reply first", "--output-format", "json"], cwd=workspace,
                           env=env, capture_output=True, text=True, check=True, timeout=120)
    session_id = json.loads(first.stdout)["session_id"]
    times = []
    for i in range(runs):
        started = time.perf_counter()
        subprocess.run([cli, "-p", f"@reply again {i}", "--resume", session_id,
                        "--output-format", "json"], cwd=workspace, env=env,
                       capture_output=True, text=True, check=True, timeout=120)
        times.append(time.perf_counter() - started)
    return times


async def bench_first_message(scratch: Path, mock: MockModelServer, gateway: GatewayProcess,
                              runs: int) -> dict[str, list[float]]:
    prestarted, immediate, spawn_at_message = [], [], []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        for i in range(runs):
            session_id = (await client.post("/v1/sessions")).json()["id"]
            await wait_idle(client, session_id)  # the user is still typing
            prestarted.append(await timed(
                lambda sid=session_id, i=i: gateway_turn(client, sid, f"@reply p{i}")))
            await client.delete(f"/v1/sessions/{session_id}")

            async def create_and_send() -> None:
                new_id = (await client.post("/v1/sessions")).json()["id"]
                await gateway_turn(client, new_id, "@reply now")
                await client.delete(f"/v1/sessions/{new_id}")

            immediate.append(await timed(create_and_send))

            workspace = scratch / f"spawn-ws-{i}"
            workspace.mkdir()

            started = time.perf_counter()
            options = ClaudeAgentOptions(
                cwd=workspace, cli_path=find_cli(), env=cli_env(scratch, mock),
                include_partial_messages=True,
                system_prompt={"type": "preset", "preset": "claude_code"})
            sdk = ClaudeSDKClient(options)
            await sdk.connect()
            await sdk_turn(sdk, "@reply spawned")
            spawn_at_message.append(time.perf_counter() - started)
            await sdk.disconnect()
    return {"prestarted": prestarted, "immediate": immediate,
            "spawn_at_message": spawn_at_message}


async def bench_idle_memory(scratch: Path, mock: MockModelServer, sessions: int
                            ) -> dict[str, float]:
    (scratch / "mem").mkdir(exist_ok=True)
    gateway = GatewayProcess(scratch / "mem", mock, max_processes="1",
                             max_sessions=str(sessions + 10))
    try:
        await gateway.wait()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            warm = (await client.post("/v1/sessions")).json()["id"]
            await wait_idle(client, warm)
            await gateway_turn(client, warm, "@reply warm-up")
            for _ in range(3):
                await client.get("/v1/sessions")
            before = rss_kib(gateway.process.pid)
            for _ in range(sessions):
                response = await client.post("/v1/sessions", json={"metadata": {"k": "v"}})
                assert response.status_code == 201, response.text
            listed = await client.get("/v1/sessions", params={"limit": 200})
            assert listed.status_code == 200
            after = rss_kib(gateway.process.pid)
    finally:
        gateway.stop()
    return {"sessions": sessions, "rss_before_kib": before, "rss_after_kib": after,
            "per_session_kib": (after - before) / sessions}


async def bench_interrupt(gateway: GatewayProcess, runs: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        session_id = (await client.post("/v1/sessions")).json()["id"]
        await wait_idle(client, session_id)
        for _ in range(runs):
            last = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
            await client.post(f"/v1/sessions/{session_id}/messages",
                              json={"prompt": "@slow 0.5\n@reply " + "w " * 40, "timeoutMs": 0})
            async with client.stream("GET", f"/v1/sessions/{session_id}/events",
                                     params={"after": last}) as response:
                started = None
                async for line in response.aiter_lines():
                    if line.startswith("event: message.delta") and started is None:
                        started = time.perf_counter()
                        await client.post(f"/v1/sessions/{session_id}/interrupt")
                    if line.startswith("event: turn.") and line != "event: turn.queued" and (
                            line != "event: turn.started"):
                        assert started is not None
                        latencies.append(time.perf_counter() - started)
                        break
    return latencies


async def bench_runs(scratch: Path, mock: MockModelServer, runs: int) -> dict[str, list[float]]:
    """A run in the default workspace with a spare process vs one that spawns its CLI."""
    results: dict[str, list[float]] = {}
    for name, spares in (("spare", "1"), ("spawn", "0")):
        (scratch / name).mkdir(exist_ok=True)
        gateway = GatewayProcess(scratch / name, mock, spare_processes=spares,
                                 max_processes="4")
        times = []
        try:
            await gateway.wait()
            async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
                for i in range(runs):
                    for _ in range(600):  # let the pool refill, as between real requests
                        status = (await client.get("/v1/status")).json()
                        if spares == "0" or status["spares"].get("default") == 1:
                            break
                        await asyncio.sleep(0.05)
                    started = time.perf_counter()
                    run = (await client.post("/v1/runs", json={"prompt": f"@reply r{i}"})).json()
                    times.append(time.perf_counter() - started)
                    assert run["status"] == "completed", run
        finally:
            gateway.stop()
        results[name] = times
    return results


async def wait_for_spares(client: httpx.AsyncClient, *workspaces: str) -> None:
    """Let the pool refill every profile, as it would between real requests (a refill
    still spawning would share the CPU with the request being timed)."""
    for _ in range(1200):
        spares = (await client.get("/v1/status")).json()["spares"]
        if all(spares.get(workspace) == 1 for workspace in workspaces):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no spare for {workspaces}")


async def bench_spare_surfaces(scratch: Path, mock: MockModelServer, runs: int
                               ) -> dict[str, list[float]]:
    """Stateless OpenAI completions and keyed runs: with spares vs spawning each CLI."""
    results: dict[str, list[float]] = {}
    admin, user = "bench-admin-0123456789abcdef", "bench-user-0123456789abcdef"
    keys = json.dumps([{"name": "root", "key": admin, "admin": True},
                       {"name": "user", "key": user}])
    for name, spares in (("spare", "1"), ("spawn", "0")):
        (scratch / f"g-{name}").mkdir(exist_ok=True)
        gateway = GatewayProcess(scratch / f"g-{name}", mock, spare_processes=spares,
                                 max_spare_processes="4", max_processes="4", api_keys=keys,
                                 rate_limit="100000/minute")
        chats, keyed = [], []
        try:
            await gateway.wait()
            async with httpx.AsyncClient(base_url=gateway.url, timeout=60, headers={
                    "Authorization": f"Bearer {admin}"}) as watcher, httpx.AsyncClient(
                    base_url=gateway.url, timeout=60,
                    headers={"Authorization": f"Bearer {user}"}) as client:
                # One of each first: the pool learns the key's profiles from use.
                await client.post("/v1/runs", json={"prompt": "@reply learn"})
                await client.post("/v1/chat/completions", json={
                    "model": "sonnet", "messages": [{"role": "user", "content": "learn"}]})
                for i in range(runs):
                    if spares != "0":
                        await wait_for_spares(watcher, "user/openai", "user/default")
                    chats.append(await timed(lambda i=i: client.post(
                        "/v1/chat/completions", json={"model": "sonnet", "messages": [
                            {"role": "user", "content": f"@reply c{i}"}]})))
                    if spares != "0":
                        await wait_for_spares(watcher, "user/openai", "user/default")
                    keyed.append(await timed(lambda i=i: client.post(
                        "/v1/runs", json={"prompt": f"@reply r{i}"})))
        finally:
            gateway.stop()
        results[f"chat_{name}"] = chats
        results[f"keyed_{name}"] = keyed
    return results


def fake_gateway_process(directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(exist_ok=True)
    env = {**os.environ, "CLAUDE_GATEWAY_DATA_DIR": str(directory / "data"),
           "CLAUDE_GATEWAY_WORKSPACE_ROOT": str(directory / "ws"),
           "CLAUDE_GATEWAY_SPARE_PROCESSES": "0", "CLAUDE_GATEWAY_LOG_LEVEL": "WARNING",
           "CLAUDE_GATEWAY_RATE_LIMIT": "10000000/minute"}
    return subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_gateway.py"),
                             str(port)], env=env, cwd=directory, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def bench_soak(scratch: Path, mock: MockModelServer, fake_runs: int, real_runs: int
                     ) -> dict[str, Any]:
    """Gateway RSS as runs pile up: 10,000 with fake agents, a few hundred real ones."""
    port = free_port()
    fake = fake_gateway_process(scratch / "soak-fake", port)
    samples: dict[int, int] = {}
    started = time.perf_counter()
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for _ in range(600):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            marks = {fake_runs // 20, fake_runs // 4, fake_runs // 2, fake_runs}
            for i in range(1, fake_runs + 1):
                run = (await client.post("/v1/runs", json={"prompt": f"@reply {i}"})).json()
                assert run["status"] == "completed", run
                if i in marks:
                    samples[i] = rss_kib(fake.pid)
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=60)
    fake_seconds = time.perf_counter() - started
    (scratch / "soak-real").mkdir(exist_ok=True)
    gateway = GatewayProcess(scratch / "soak-real", mock, spare_processes="1",
                             max_processes="4")
    real: dict[int, int] = {}
    try:
        await gateway.wait()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            marks = {real_runs // 6, real_runs // 2, real_runs}
            for i in range(1, real_runs + 1):
                run = (await client.post("/v1/runs", json={"prompt": f"@reply {i}"})).json()
                assert run["status"] == "completed", run
                if i in marks:
                    real[i] = rss_kib(gateway.process.pid)
    finally:
        gateway.stop()
    return {"fake_rss_kib": samples, "fake_seconds": round(fake_seconds, 1),
            "real_rss_kib": real}


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


async def main(quick: bool) -> dict[str, Any]:
    scratch = isolate()
    turns, resumes, firsts, idle, interrupts, runs = (
        (5, 2, 2, 50, 2, 2) if quick else (30, 8, 6, 300, 5, 6))
    fake_runs, real_runs = (400, 30) if quick else (10_000, 300)
    mock = MockModelServer(MockModel()).start()
    gateway = GatewayProcess(scratch, mock, max_processes="4")
    try:
        await gateway.wait()
        warm = await bench_warm_turns(scratch, mock, gateway, turns)
        resume = bench_resume_per_message(scratch, mock, resumes)
        first = await bench_first_message(scratch, mock, gateway, firsts)
        interrupt = await bench_interrupt(gateway, interrupts)
    finally:
        gateway.stop()
    memory = await bench_idle_memory(scratch, mock, idle)
    run_times = await bench_runs(scratch, mock, runs)
    surfaces = await bench_spare_surfaces(scratch, mock, runs)
    soak = await bench_soak(scratch, mock, fake_runs, real_runs)
    mock.stop()

    rows = [
        ("a", "warm turn: gateway HTTP / direct SDK", median_ms(warm["gateway"]),
         median_ms(warm["direct"]), "<= 1.10"),
        ("b", "follow-up: warm session / claude -p --resume", median_ms(warm["gateway"]),
         median_ms(resume), "<= 0.15"),
        ("c", "first message: pre-started / spawn at message", median_ms(first["prestarted"]),
         median_ms(first["spawn_at_message"]), "<= 0.6"),
        ("f", "run: with a spare process / spawning one", median_ms(run_times["spare"]),
         median_ms(run_times["spawn"]), "<= 0.6"),
        ("g1", "OpenAI stateless chat: spare / spawning", median_ms(surfaces["chat_spare"]),
         median_ms(surfaces["chat_spawn"]), "<= 0.6"),
        ("g2", "keyed run, own workspace: spare / spawning",
         median_ms(surfaces["keyed_spare"]), median_ms(surfaces["keyed_spawn"]), "<= 0.6"),
    ]
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    results: dict[str, Any] = {"machine": machine,
                               "runs": {"turns": turns, "resumes": resumes, "first": firsts,
                                        "idle_sessions": idle, "interrupts": interrupts,
                                        "runs": runs, "soak_fake": fake_runs,
                                        "soak_real": real_runs},
                               "comparisons": [], "raw": {
                                   "warm": warm, "resume": resume, "first": first,
                                   "interrupt": interrupt, "memory": memory,
                                   "runs": run_times, "surfaces": surfaces, "soak": soak}}
    print(f"{'':3}{'comparison':48}{'ours ms':>10}{'theirs ms':>11}{'ratio':>8}  target")
    for key, name, ours, theirs, target in rows:
        ratio = round(ours / theirs, 3)
        limit = float(target.split()[-1])
        met = ratio <= limit
        results["comparisons"].append({"id": key, "name": name, "ours_ms": ours,
                                       "theirs_ms": theirs, "ratio": ratio, "target": target,
                                       "met": met})
        print(f"({key}) {name:46}{ours:>10}{theirs:>11}{ratio:>8}  {target} "
              f"{'met' if met else 'NOT MET'}")
    per_session_mb = memory["per_session_kib"] / 1024
    results["memory_per_idle_session_mb"] = round(per_session_mb, 4)
    print(f"(d) gateway RSS per idle session ({idle} sessions): {per_session_mb:.4f} MB"
          f"  target < 1 MB {'met' if per_session_mb < 1 else 'NOT MET'}")
    interrupt_ms = median_ms(interrupt)
    results["interrupt_ms"] = interrupt_ms
    print(f"(e) interrupt to turn.interrupted: median {interrupt_ms} ms  target < 1000 ms "
          f"{'met' if interrupt_ms < 1000 else 'NOT MET'}")
    fake_rss = {k: round(v / 1024, 1) for k, v in soak["fake_rss_kib"].items()}
    real_rss = {k: round(v / 1024, 1) for k, v in soak["real_rss_kib"].items()}
    results["soak_rss_mb"] = {"fake": fake_rss, "real": real_rss}
    first_mark, last_mark = min(fake_rss), max(fake_rss)
    growth = fake_rss[last_mark] - fake_rss[first_mark]
    print(f"(h) gateway RSS by runs (fake agents, {soak['fake_seconds']} s): "
          + ", ".join(f"{k}: {v} MB" for k, v in sorted(fake_rss.items()))
          + f"; growth {first_mark}..{last_mark}: {growth:.1f} MB")
    print("    real CLI: " + ", ".join(f"{k}: {v} MB" for k, v in sorted(real_rss.items())))
    immediate = median_ms(first["immediate"])
    results["create_and_send_immediately_ms"] = immediate
    print(f"    (create + send at once, no gap to hide the start-up: {immediate} ms)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sessions.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    asyncio.run(main(parser.parse_args().quick))
