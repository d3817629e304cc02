"""What the model must read per sentence: characters and tokens, ours beside HA core's ollama agent.

    python -m bench.prompt DATASET [DATASET ...] [--per-home 3]

For each home of each dataset, the first sentences are sent to both agents against a scripted
Ollama wire-format server whose model always calls one tool first and answers after the tool result,
so every turn that reaches the model includes a tool round trip; all model calls of a turn are added
up. Tokens are counted with the Qwen2.5 tokenizer and chat template of the llamacpp back-end when it
is prepared (`python -m bench.llamacpp prepare`), else estimated as characters / 4 (marked `~`).
A sentence our agent answers locally costs the model nothing; the per-call column shows the prompt
size when it does reach the model.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.backends import Backend, scripted_backend
from bench.datasets import Case, LeftOut, load
from bench.harness import expected_changes, quiet_logs, run_case

AGENTS = ["micropi", "core-ollama"]


def tokenizer() -> Callable[[dict[str, Any]], int] | None:
    """The llamacpp back-end's tokenizer (vocabulary only, no weights), if it is prepared."""
    from bench.llamacpp import LlamaResponder, LlamaUnavailable

    try:
        return LlamaResponder.load(vocab_only=True).count_tokens
    except LlamaUnavailable:
        return None


def homes(cases: list[Case], per_home: int) -> dict[str, list[Case]]:
    grouped: dict[str, list[Case]] = {}
    for case in cases:
        chosen = grouped.setdefault(case.dataset, [])
        if len(chosen) < per_home:
            chosen.append(case)
    return grouped


async def measure(datasets: list[Path], per_home: int) -> list[dict[str, Any]]:
    backend: Backend = scripted_backend(tokenizer())
    await backend.start()
    rows = []
    try:
        for dataset in datasets:
            for home, cases in homes(load(dataset, LeftOut()), per_home).items():
                for agent in AGENTS:
                    chars = tokens = calls = 0
                    estimated = False
                    scored = 0
                    for case in cases:
                        try:
                            expected = await expected_changes(case)
                        except ValueError:
                            continue
                        result = await run_case(case, agent, backend, expected)
                        chars += result.prompt_chars
                        tokens += result.prompt_tokens
                        calls += result.model_calls
                        estimated |= result.tokens_estimated
                        scored += 1
                    if scored:
                        rows.append(
                            {
                                "home": home,
                                "agent": agent,
                                "sentences": scored,
                                "chars_per_sentence": round(chars / scored),
                                "tokens_per_sentence": round(tokens / scored),
                                "calls_per_sentence": round(calls / scored, 2),
                                "tokens_per_call": round(tokens / calls) if calls else 0,
                                "estimated": estimated,
                            }
                        )
    finally:
        await backend.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'home':<34} {'agent':<12} {'n':>2} {'chars/sent':>10} {'tokens/sent':>11} {'calls':>5} "
        f"{'tokens/call':>11} {'ratio tok':>9}"
    )
    lines = [header, "-" * len(header)]
    by_key = {(r["home"], r["agent"]): r for r in rows}
    for row in rows:
        mark = "~" if row["estimated"] else ""
        ratio = ""
        core = by_key.get((row["home"], "core-ollama"))
        if row["agent"] == "micropi" and not row["calls_per_sentence"]:
            ratio = "local"  # answered without the model
        elif row["agent"] == "micropi" and core and core["tokens_per_sentence"]:
            ratio = f"{row['tokens_per_sentence'] / core['tokens_per_sentence']:.2f}"
        lines.append(
            f"{row['home'][:34]:<34} {row['agent']:<12} {row['sentences']:>2} {row['chars_per_sentence']:>10} "
            f"{str(row['tokens_per_sentence']) + mark:>11} {row['calls_per_sentence']:>5.2f} "
            f"{str(row['tokens_per_call']) + mark:>11} {ratio:>9}"
        )
    lines.append("(ratio: our tokens per sentence / core ollama's; local: no model call; ~: estimated as chars/4)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--per-home", type=int, default=3, help="sentences per home (default 3)")
    args = parser.parse_args(argv)
    quiet_logs()
    print(table(asyncio.run(measure(args.datasets, args.per_home))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
