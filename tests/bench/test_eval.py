"""The evaluation end to end in real HA core on a tiny shipped home, and its report."""

import json
import logging
from pathlib import Path

from bench.eval import main, percentile

FIXTURES = Path(__file__).parent / "fixtures"
REPORT_KEYS = {
    "agent",
    "backend",
    "sentences",
    "passed",
    "accuracy",
    "by_category",
    "latency_ms",
    "model_calls_per_sentence",
    "prompt_tokens_per_sentence",
    "prompt_tokens_estimated",
    "failures",
}


def test_default_agent_and_core_ollama_on_the_fake_backend(tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = [str(FIXTURES / "assist-tiny"), "--agent", "default", "--agent", "core-ollama"]
    assert main([*argv, "--backend", "fake", "--json", str(out), "--quiet"]) == 0
    default, core = json.loads(out.read_text())

    assert set(default) >= REPORT_KEYS and set(core) >= REPORT_KEYS
    # HA's built-in agent understands all three sentences and calls no model.
    assert (default["agent"], default["backend"], default["sentences"], default["passed"]) == ("default", "none", 3, 3)
    assert default["accuracy"] == 1.0
    assert default["model_calls_per_sentence"] == 0
    assert default["failures"] == []
    assert default["by_category"] == {"light": {"sentences": 3, "passed": 3, "accuracy": 1.0, "wrong_actions": 0}}
    assert (default["wrong_actions"], core["wrong_actions"]) == (0, 0)
    assert default["latency_ms"]["p50"] > 0

    # The fake model answers one short text and never calls a tool: only "leave the home alone" passes.
    assert (core["agent"], core["backend"], core["passed"]) == ("core-ollama", "fake", 1)
    assert core["model_calls_per_sentence"] == 1.0
    assert core["prompt_tokens_per_sentence"] > 100
    assert core["prompt_tokens_estimated"] is True
    failed = {f["sentence"]: f for f in core["failures"]}
    assert set(failed) == {"Turn on the kitchen light", "Pause the porch speaker"}
    light = failed["Turn on the kitchen light"]
    assert light["expected"] == {"light.kitchen_light": {"state": "on"}}
    assert light["got"] == {}
    assert light["answer"] == "Done."

    printed = capsys.readouterr().out
    assert "core-ollama" in printed and "100.0%" in printed


def test_hungarian_case_scored_against_the_expected_intents_effect(tmp_path):
    out = tmp_path / "hu.json"
    assert main([str(FIXTURES / "intents-tiny"), "--limit", "1", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert (report["sentences"], report["passed"]) == (1, 1)
    assert report["left_out"] == {"HassStartTimer: changes no state the bench can check": 1}


def test_assist_home_in_hungarian_is_understood_in_hungarian(tmp_path):
    """The home's `language: hu` makes HA's Hungarian templates match; in English nothing would."""
    out = tmp_path / "hu-home.json"
    argv = [str(FIXTURES / "assist-hu"), "--agent", "default", "--agent", "micropi", "--backend", "fake"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    default, micropi = json.loads(out.read_text())
    assert (default["sentences"], default["passed"]) == (4, 2)
    # HA's own agent: "the kitchen light" turns on every kitchen light, a wrong action counted as
    # such; "the TV in the garage" it does not understand.
    failures = {f["sentence"]: f for f in default["failures"]}
    assert set(failures) == {"kapcsold fel a konyhai lámpát", "kapcsold be a tévét a garázsban"}
    assert failures["kapcsold fel a konyhai lámpát"]["wrong_action"] is True
    assert set(failures["kapcsold fel a konyhai lámpát"]["got"]) == {"light.konyhai_lampa", "light.pultvilagitas"}
    assert default["wrong_actions"] == default["by_category"]["light"]["wrong_actions"] == 1
    # Ours, without a model: the light of that name, the garage's TV, and neither TV when it is unclear which.
    assert (micropi["passed"], micropi["wrong_actions"], micropi["model_calls_per_sentence"]) == (4, 0, 0.25)


def test_agent_log_turns_on_our_agents_debug_log(tmp_path):
    ours = logging.getLogger("custom_components.micropi_llm")
    argv = [str(FIXTURES / "assist-hu"), "--agent", "micropi", "--backend", "fake", "--quiet"]
    try:
        assert main(argv) == 0
        assert ours.level == logging.NOTSET  # by default the bench shows only its table
        assert main([*argv, "--agent-log"]) == 0
        assert ours.level == logging.DEBUG
    finally:
        ours.setLevel(logging.NOTSET)


def test_bad_dataset_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
