"""Per-turn time of a conversation agent without the model: what the agent itself costs.

    python -m bench.overhead [--sizes 25 200 500] [--turns 20]
    python -m bench.overhead --local [--sizes 200] [--turns 20]

For homes of 25, 200 and 500 exposed entities, our agent (`micropi`) and HA core's `ollama` agent
each answer the same sentence against a zero-latency Ollama wire-format server (the `fake`
back-end: it answers at once with a short text and no tool call). The time of a turn is then the
agent's own work: building the prompt and tools from the home, the HTTP round trip on 127.0.0.1,
parsing the stream, writing the answer. The sentence is a question no intent matches, so both
agents take their model path. Printed as p50/p95 per agent with the ratio ours/core.

With `--local`, the home is Hungarian (`language: hu`) and the sentences are ones our agent
carries out without the model: HA's own phrasing, a colloquial one only our templates match, an
inflected name, one without accents, two commands joined by "és" and a question about one thing.
Our agent's local path is timed beside HA's default agent on the same sentences (HA's matches
fewer of them, so its time is what matching alone costs).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from homeassistant.components import conversation
from homeassistant.core import Context

from bench.backends import Backend, fake_backend
from bench.datasets import Area, Device, EntitySpec, Home
from bench.eval import percentile
from bench.harness import AGENTS, build_home, home_assistant, quiet_logs

SENTENCE = "Tell me something nice about my home"
# A mix like a real home's: mostly lights, switches and sensors.
DOMAINS: list[tuple[str, str, dict[str, Any]]] = [
    ("light", "on", {"brightness": 200}),
    ("switch", "off", {}),
    ("sensor", "21.5", {"device_class": "temperature", "native_unit_of_measurement": "°C"}),
    ("binary_sensor", "off", {"device_class": "door"}),
    ("light", "off", {}),
    ("cover", "closed", {}),
    ("sensor", "48", {"device_class": "humidity", "native_unit_of_measurement": "%"}),
    ("media_player", "idle", {}),
    ("fan", "off", {}),
    ("climate", "heat", {"temperature": 21}),
    ("lock", "locked", {}),
    ("switch", "on", {}),
]


# The local-path home: Hungarian rooms (each said "in the X" with -ban/-ben), every room with a
# light and a shutter, the rest of the entities mixed as above, and the devices named in sentences.
HU_ROOMS = {
    "Nappali": "nappaliban", "Konyha": "konyhában", "Hálószoba": "hálószobában", "Fürdőszoba": "fürdőszobában",
    "Gyerekszoba": "gyerekszobában", "Dolgozószoba": "dolgozószobában", "Előszoba": "előszobában",
    "Garázs": "garázsban", "Kert": "kertben", "Pince": "pincében", "Kamra": "kamrában",
    "Mosókonyha": "mosókonyhában", "Vendégszoba": "vendégszobában", "Étkező": "étkezőben",
    "Műhely": "műhelyben", "Kisszoba": "kisszobában",
}  # fmt: skip
HU_NOUNS = {"light": "lámpa", "switch": "kapcsoló", "sensor": "érzékelő", "binary_sensor": "nyitásérzékelő",
            "cover": "redőny", "media_player": "hangszóró", "fan": "ventilátor", "climate": "termosztát",
            "lock": "zár"}  # fmt: skip
HU_NAMED: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("light", "Állólámpa", "off", {}),
    ("switch", "Kávéfőző", "off", {}),
    ("lock", "Bejárati ajtó", "unlocked", {}),
    ("sensor", "Terasz hőmérséklet", "3.5", {"device_class": "temperature", "native_unit_of_measurement": "°C"}),
)
# Said once per room, so that no sentence repeats (HA caches what it matched before).
ROOM_SENTENCES = (
    "gyújtsd fel a villanyt {room}",  # ours ("villany", "gyújtsd fel") with an inflected room
    "kapcsold le a lámpákat {room}",  # HA's own, the room's vowel lengthened
    "engedd le a redőnyt {room}",  # ours (a shutter's verb)
)
NAMED_SENTENCES = (
    "kapcsold fel az állólámpát",  # an inflected name
    "kapcsold le a kavefozot",  # no accents
    "kapcsold fel az állólámpát és indítsd el a kávéfőzőt",  # two commands
    "zárva van a bejárati ajtó?",  # a question about one thing
)
LOCAL_SENTENCES = (
    tuple(
        t.format(room=("az " if room[0] in "aáeéiíoóöőuúüű" else "a ") + room)
        for t in ROOM_SENTENCES
        for room in HU_ROOMS.values()
    )
    + NAMED_SENTENCES
)


def synthetic_home_hu(size: int) -> Home:
    """`size` entities with Hungarian names in sixteen rooms, the sentences' devices among them."""
    rooms = [Area(id=f"room_{i}", name=name) for i, name in enumerate(HU_ROOMS)]
    shutter = ("cover", "open", {"device_class": "shutter", "current_position": 100})
    kinds = [DOMAINS[0]] * len(rooms) + [shutter] * len(rooms)
    entities = []
    devices = []
    for index in range(size - len(HU_NAMED)):
        domain, state, attributes = kinds[index] if index < len(kinds) else DOMAINS[index % len(DOMAINS)]
        room = rooms[index % len(rooms)]
        name = f"{room.name} {HU_NOUNS.get(domain, domain)} {index}"
        object_id = f"{room.id}_{domain}_{index}"
        devices.append(Device(id=object_id, name=name, area=room.id))
        entities.append(EntitySpec(f"{domain}.{object_id}", name, room.id, object_id, state, attributes))
    for index, (domain, name, state, attributes) in enumerate(HU_NAMED):
        object_id, room_id = f"named_{index}", rooms[index].id
        devices.append(Device(id=object_id, name=name, area=room_id))
        entities.append(EntitySpec(f"{domain}.{object_id}", name, room_id, object_id, state, attributes))
    return Home(areas=tuple(rooms), devices=tuple(devices), entities=tuple(entities), language="hu")


async def measure_local(agent: str, size: int, turns: int, backend: Backend) -> dict[str, Any]:
    """Our agent's (or HA's) time for sentences said locally in a Hungarian home of `size` entities."""
    async with home_assistant("hu") as hass:
        await build_home(hass, synthetic_home_hu(size))
        agent_id = await AGENTS[agent](hass, backend)
        timings = []
        # Warm what is built once per home (templates, names) with a sentence not timed.
        await conversation.async_converse(hass, "kapcsold fel a kisszoba lámpa 15-öt", None, Context(), "hu", agent_id)
        calls_before = len(backend.meter.calls)
        sentences = LOCAL_SENTENCES[:turns] if turns else LOCAL_SENTENCES
        for sentence in sentences:
            started = time.perf_counter()
            await conversation.async_converse(hass, sentence, None, Context(), language="hu", agent_id=agent_id)
            timings.append((time.perf_counter() - started) * 1000)
        calls = backend.meter.calls[calls_before:]
        turns = len(sentences)
    return {
        "agent": agent,
        "entities": size,
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "model_calls_per_turn": round(len(calls) / turns, 2),
        "prompt_chars_per_turn": round(sum(c.prompt_chars for c in calls) / turns),
    }


def synthetic_home(size: int) -> Home:
    """`size` entities spread over rooms of about ten devices each."""
    rooms = [Area(id=f"room_{i}", name=f"Room {i}") for i in range(1, max(2, size // 10) + 1)]
    entities = []
    devices = []
    for index in range(size):
        domain, state, attributes = DOMAINS[index % len(DOMAINS)]
        room = rooms[index % len(rooms)]
        name = f"{room.name} {domain.replace('_', ' ')} {index}"
        object_id = f"{room.id}_{domain}_{index}"
        devices.append(Device(id=object_id, name=name, area=room.id))
        entities.append(EntitySpec(f"{domain}.{object_id}", name, room.id, object_id, state, attributes))
    return Home(areas=tuple(rooms), devices=tuple(devices), entities=tuple(entities))


async def measure(agent: str, size: int, turns: int, backend: Backend) -> dict[str, Any]:
    async with home_assistant() as hass:
        await build_home(hass, synthetic_home(size))
        agent_id = await AGENTS[agent](hass, backend)
        timings = []
        calls_before = len(backend.meter.calls)
        for turn in range(turns + 2):
            started = time.perf_counter()
            await conversation.async_converse(hass, SENTENCE, None, Context(), language="en", agent_id=agent_id)
            if turn >= 2:  # the first two warm caches (templates, intents) once per home
                timings.append((time.perf_counter() - started) * 1000)
        calls = backend.meter.calls[calls_before:]
    return {
        "agent": agent,
        "entities": size,
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "model_calls_per_turn": round(len(calls) / (turns + 2), 2),
        "prompt_chars_per_turn": round(sum(c.prompt_chars for c in calls) / (turns + 2)),
    }


async def run(sizes: list[int], turns: int, agents: list[str], *, local: bool = False) -> list[dict[str, Any]]:
    backend = fake_backend()
    await backend.start()
    how = measure_local if local else measure
    try:
        return [await how(agent, size, turns, backend) for size in sizes for agent in agents]
    finally:
        await backend.stop()


def table(rows: list[dict[str, Any]], ours: str = "micropi", core: str = "core-ollama") -> str:
    lines = [
        f"{'entities':>8} {'agent':<12} {'p50 ms':>8} {'p95 ms':>8} {'calls':>5} {'prompt chars':>12}",
        "-" * 58,
    ]
    by_key = {(r["entities"], r["agent"]): r for r in rows}
    for row in rows:
        lines.append(
            f"{row['entities']:>8} {row['agent']:<12} {row['p50']:>8.1f} {row['p95']:>8.1f} "
            f"{row['model_calls_per_turn']:>5.2f} {row['prompt_chars_per_turn']:>12}"
        )
        mine, theirs = by_key.get((row["entities"], ours)), by_key.get((row["entities"], core))
        if row["agent"] == core and mine and theirs and theirs["p50"] and theirs["p95"]:
            lines.append(
                f"{'':>8} {'ratio ours/core':<21} p50 {mine['p50'] / theirs['p50']:.2f}  "
                f"p95 {mine['p95'] / theirs['p95']:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 200, 500], help="exposed entities per home")
    parser.add_argument("--turns", type=int, default=20, help="timed turns per agent and home (--local: at most 52)")
    parser.add_argument("--agent", action="append", choices=["micropi", "core-ollama", "default"], help="default: both")
    parser.add_argument("--local", action="store_true", help="Hungarian sentences carried out locally (see above)")
    args = parser.parse_args(argv)
    quiet_logs()
    agents = args.agent or (["micropi", "default"] if args.local else ["micropi", "core-ollama"])
    rows = asyncio.run(run(args.sizes, args.turns, agents, local=args.local))
    print(table(rows, core="default" if args.local else "core-ollama"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
