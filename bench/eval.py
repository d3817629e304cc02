"""Accuracy of conversation agents on home-control datasets, in real HA core, side by side.

    python -m bench.eval ../shared/datasets/ha-datasets/assist-mini --agent default
    python -m bench.eval DATASET --agent micropi --agent core-ollama --backend llamacpp --limit 10 --json out.json

Each sentence runs in a fresh HA home built from the dataset (see `bench.harness`); a sentence passes
when the home's states change exactly as expected (see `bench.compare`). `--json FILE` writes one
report object for one agent on one dataset, else a list of them (one per agent and dataset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.backends import Backend, make_backend
from bench.datasets import Case, DatasetError, LeftOut, load
from bench.harness import AGENTS, MODEL_AGENTS, AgentUnavailable, CaseResult, expected_changes, quiet_logs, run_case


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def is_wrong_action(result: CaseResult) -> bool:
    """The home changed, but not as asked: worse than doing nothing (a partial action counts too)."""
    return not result.passed and bool(result.got)


def _ratio(passed: int, total: int) -> float:
    return round(passed / total, 4) if total else 0.0


@dataclass
class Run:
    """The results of one agent on one dataset with one back-end."""

    agent: str
    backend: str
    model: str | None
    dataset: str
    results: list[CaseResult] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def report(self) -> dict[str, Any]:
        results = self.results
        passed = sum(r.passed for r in results)
        categories: dict[str, dict[str, Any]] = {}
        for result in results:
            entry = categories.setdefault(result.case.category, {"sentences": 0, "passed": 0, "wrong_actions": 0})
            entry["sentences"] += 1
            entry["passed"] += result.passed
            entry["wrong_actions"] += is_wrong_action(result)
        for entry in categories.values():
            entry["accuracy"] = _ratio(entry["passed"], entry["sentences"])
        count = len(results) or 1
        latencies = [r.latency_ms for r in results]
        return {
            "agent": self.agent,
            "backend": self.backend,
            "model": self.model,
            "dataset": self.dataset,
            "sentences": len(results),
            "passed": passed,
            "accuracy": _ratio(passed, len(results)),
            "wrong_actions": sum(is_wrong_action(r) for r in results),
            "by_category": dict(sorted(categories.items())),
            "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
            "model_calls_per_sentence": round(sum(r.model_calls for r in results) / count, 2),
            # Sentences that changed a device nobody spoke of (a subset of the wrong actions); answers
            # not for people; exceptions that escaped the turn.
            "unasked_actions": sum(bool(r.unasked_actions) for r in results),
            "machine_text_answers": sum(r.machine_text is not None for r in results),
            "crashes": sum(r.error is not None for r in results),
            "prompt_tokens_per_sentence": round(sum(r.prompt_tokens for r in results) / count, 1),
            # True when any count is characters/4 rather than the back-end's `prompt_eval_count`.
            "prompt_tokens_estimated": any(r.tokens_estimated for r in results),
            "prompt_chars_per_sentence": round(sum(r.prompt_chars for r in results) / count, 1),
            "duration_s": round(self.duration_s, 1),
            "left_out": self.left_out,
            "failures": [
                {
                    "sentence": r.case.sentence,
                    "category": r.case.category,
                    "expected": r.expected,
                    "got": r.got,
                    "answer": r.answer,
                    "problems": r.problems,
                    "wrong_action": is_wrong_action(r),
                    "model_calls": r.model_calls,
                    "machine_text": r.machine_text,
                }
                for r in results
                if not r.passed or r.machine_text
            ],
        }


def select(cases: list[Case], category: str | None, limit: int | None, stride: int = 1) -> list[Case]:
    """The slice to run: one category, every `stride`-th sentence (a spread over all), the first `limit`."""
    if category:
        cases = [c for c in cases if c.category == category]
    cases = cases[:: max(1, stride)]
    return cases[:limit] if limit else cases


def table(reports: list[dict[str, Any]]) -> str:
    header = (
        f"{'dataset':<14} {'agent':<12} {'backend':<10} {'n':>4} {'pass':>4} {'acc':>6} "
        f"{'wrong':>5} {'p50 ms':>8} {'p95 ms':>8} {'calls':>5} {'tok/sent':>9} {'unasked':>7} {'mach':>4} {'crash':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        tokens = f"{r['prompt_tokens_per_sentence']:.0f}{'~' if r['prompt_tokens_estimated'] else ''}"
        lines.append(
            f"{r['dataset'][:14]:<14} {r['agent']:<12} {str(r['backend'])[:10]:<10} "
            f"{r['sentences']:>4} {r['passed']:>4} "
            f"{r['accuracy']:>6.1%} {r['wrong_actions']:>5} "
            f"{r['latency_ms']['p50'] or 0:>8.0f} {r['latency_ms']['p95'] or 0:>8.0f} "
            f"{r['model_calls_per_sentence']:>5.1f} {tokens:>9} "
            f"{r['unasked_actions']:>7} {r['machine_text_answers']:>4} {r['crashes']:>5}"
        )
    categories = sorted({c for r in reports for c in r["by_category"]})
    if categories:
        lines += ["", f"{'category':<28} " + " ".join(f"{r['agent'][:16]:>16}" for r in reports)]
        for category in categories:
            cells = []
            for r in reports:
                if (entry := r["by_category"].get(category)) is None:
                    cells.append("")
                    continue
                score = f"{entry['passed']:>4}/{entry['sentences']:<3} {entry['accuracy']:>4.0%}"
                cells.append(f"{score} w{entry['wrong_actions']}")
            lines.append(f"{category[:28]:<28} " + " ".join(f"{c:>16}" for c in cells))
    lines.append("(~: tokens estimated as characters/4: the back-end reported no prompt_eval_count)")
    lines.append("(wrong / w: wrong actions, sentences after which the home changed but not as expected)")
    lines.append("(calls: model rounds per sentence; unasked: sentences that changed a device nobody spoke of;")
    lines.append(" mach: answers that were JSON, a correction for the model or another language; crash: exceptions)")
    return "\n".join(lines)


async def evaluate(  # noqa: PLR0917 - the CLI's options, one each
    datasets: list[Path],
    agents: list[str],
    backend_name: str,
    model: str | None,
    category: str | None,
    limit: int | None,
    progress: bool = True,
    stride: int = 1,
) -> list[Run]:
    backend: Backend | None = None
    if any(agent in MODEL_AGENTS for agent in agents):
        backend = await make_backend(backend_name, model)
    runs: list[Run] = []
    try:
        for dataset in datasets:
            left_out = LeftOut()
            cases = select(load(dataset, left_out), category, limit, stride)
            dataset_runs = {
                agent: Run(
                    agent,
                    backend.name if backend and agent in MODEL_AGENTS else "none",
                    backend.model if backend and agent in MODEL_AGENTS else None,
                    dataset.name,
                    left_out=dict(left_out.counts),
                )
                for agent in agents
            }
            for index, case in enumerate(cases, 1):
                try:
                    expected = await expected_changes(case)
                except ValueError as err:
                    for run in dataset_runs.values():
                        run.left_out[f"expected intent not checkable: {err}"[:160]] = (
                            run.left_out.get(f"expected intent not checkable: {err}"[:160], 0) + 1
                        )
                    continue
                for agent in agents:
                    run = dataset_runs[agent]
                    started = time.perf_counter()
                    result = await run_case(case, agent, backend if agent in MODEL_AGENTS else None, expected)
                    run.duration_s += time.perf_counter() - started
                    run.results.append(result)
                    if progress:
                        mark = "ok  " if result.passed else "FAIL"
                        print(
                            f"[{index}/{len(cases)}] {agent:<11} {mark} {result.latency_ms:7.0f} ms  {case.sentence}"
                            + ("" if result.passed else f"  -> {'; '.join(result.problems)[:200]}")
                            + (f"  [{result.model_calls} rounds] {result.answer[:100]!r}" if result.model_calls else "")
                            + (f"  MACHINE TEXT ({result.machine_text})" if result.machine_text else ""),
                            file=sys.stderr,
                            flush=True,
                        )
            runs.extend(dataset_runs.values())
    finally:
        if backend is not None:
            await backend.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="dataset directories (assist format or intents tests)")
    parser.add_argument(
        "--agent", action="append", choices=sorted(AGENTS), help="agent(s) to compare; repeatable (default: default)"
    )
    parser.add_argument("--backend", default="fake", help="fake | llamacpp | http(s)://ollama-url (default: fake)")
    parser.add_argument("--model", help="model name on an Ollama URL back-end (default: its first model)")
    parser.add_argument("--limit", type=int, help="only the first N sentences of each dataset")
    parser.add_argument("--stride", type=int, default=1, help="only every K-th sentence: a slice across categories")
    parser.add_argument("--category", help="only this category (assist: e.g. light; intents: e.g. HassTurnOn)")
    parser.add_argument("--json", type=Path, help="write the report(s) here")
    parser.add_argument("--quiet", action="store_true", help="no per-sentence progress on stderr")
    parser.add_argument(
        "--agent-log",
        action="store_true",
        help="our agent's own log on stderr (local matching, each tool call refused and why, each model round)",
    )
    args = parser.parse_args(argv)
    quiet_logs()
    if args.agent_log:
        logging.getLogger("custom_components.micropi_llm").setLevel(logging.DEBUG)
    agents = args.agent or ["default"]
    try:
        runs = asyncio.run(
            evaluate(
                args.datasets,
                agents,
                args.backend,
                args.model,
                args.category,
                args.limit,
                not args.quiet,
                args.stride,
            )
        )
    except (DatasetError, AgentUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reports = [run.report() for run in runs]
    print(table(reports))
    for report in reports:
        for reason, count in report["left_out"].items():
            print(f"left out ({report['dataset']}, {report['agent']}): {count} sentences - {reason}")
    if args.json:
        args.json.write_text(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
