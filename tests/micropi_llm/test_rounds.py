"""Loops end early; nothing meant for the model is taken for an answer (the wiring: test_tool_errors)."""

from typing import Any

from homeassistant.components import conversation
from homeassistant.helpers import llm

from custom_components.micropi_llm.rounds import (
    CHOICES,
    REASON,
    UNKNOWN_TOOL,
    RoundWatch,
    Stop,
    machine_text,
    spoken_choices,
)


def round_of(*calls: tuple[str, dict[str, Any], dict[str, Any]]) -> list[conversation.Content]:
    """One tool round: the model's calls and their results."""
    inputs = [llm.ToolInput(tool_name=name, tool_args=args) for name, args, _ in calls]
    contents: list[conversation.Content] = [conversation.AssistantContent(agent_id="a", tool_calls=inputs)]
    contents += [
        conversation.ToolResultContent(
            agent_id="a",
            tool_call_id=tool_input.id,
            tool_name=tool_input.tool_name,
            result=llm.ToolResult(data=data, error="error" in data),
        )
        for tool_input, (_, _, data) in zip(inputs, calls, strict=True)
    ]
    return contents


REFUSED = {"error": "refused", "error_text": "There is no device named 'x'. Exposed names: A, B.", CHOICES: ["A", "B"]}
DONE = {"response_type": "action_done", "data": {"success": []}}


def watch_rounds(*rounds: list[conversation.Content]) -> tuple[RoundWatch, list[Stop | None]]:
    watch = RoundWatch()
    log: list[conversation.Content] = []
    stops = []
    for contents in rounds:
        log += contents
        stops.append(watch.observe(log))
    return watch, stops


def test_the_same_call_refused_twice_stops() -> None:
    same = ("intent__HassTurnOn", {"name": "x"}, REFUSED)
    watch, stops = watch_rounds(round_of(same), round_of(same))
    assert stops == [None, Stop.REPEATED]
    assert watch.choices == ["A", "B"]
    assert watch.corrections == [REFUSED["error_text"]] * 2


def test_an_action_done_and_made_again_stops() -> None:
    # A small model that does not see its action is done makes it again, round after round.
    again = ("intent__HassTurnOn", {"area": "Konyha", "domain": ["light"]}, DONE)
    watch, stops = watch_rounds(round_of(again), round_of(again))
    assert stops == [None, Stop.REPEATED]
    assert watch.acted == 2  # so the household hears that it is done
    # Another action, or a question asked again (its answer may have changed), goes on.
    other = ("intent__HassTurnOn", {"area": "Nappali", "domain": ["light"]}, DONE)
    question = ("GetLiveContext", {}, {"success": True, "result": "..."})
    _, stops = watch_rounds(round_of(again), round_of(other), round_of(question), round_of(question))
    assert stops == [None, None, None, None]
    watch, _ = watch_rounds(round_of(question))
    assert (watch.succeeded, watch.acted) == (1, 0)  # read, not done: "done" would be no answer


def test_refusals_in_a_row_stop_and_a_success_resets_them() -> None:
    def refused(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return ("intent__HassTurnOn", {"name": f"x{n}"}, REFUSED)

    _, stops = watch_rounds(round_of(refused(1)), round_of(refused(2)), round_of(refused(3)))
    assert stops == [None, None, Stop.REFUSALS]
    _, stops = watch_rounds(
        round_of(refused(1)), round_of(refused(2)), round_of(("intent__HassTurnOn", {}, DONE)), round_of(refused(3))
    )
    assert stops == [None, None, None, None]


def test_an_invented_tool_twice_stops() -> None:
    unknown = {"error": "refused", "error_text": "There is no tool 'a'.", REASON: UNKNOWN_TOOL}
    watch, stops = watch_rounds(round_of(("a", {}, unknown)), round_of(("b", {"x": 1}, unknown)))
    assert stops == [None, Stop.UNKNOWN_TOOL]
    assert watch.succeeded == 0


def test_machine_text_is_never_an_answer() -> None:
    assert machine_text('{"error":"refused","error_text":"There is no tool"}', "hu")
    assert machine_text('[{"nam', "hu")  # a truncated call
    assert not machine_text("[1] Az első lépés.", "hu")
    assert machine_text("There is no floor '1st Floor'. Floors: Emelet, Földszint.", "hu")
    assert machine_text("Calling intent__HassTurnOn now", "en")
    assert machine_text('You can use:\n```json\n{"name": "todo__HassListAddItem"}\n```', "en")
    assert machine_text("I have turned on the light for you.", "hu")
    assert machine_text("OK, I turned on the Nappali lámpa.", "hu")
    correction = "Nappali TV is not reachable now; try the other one"
    assert machine_text("Nappali TV is not reachable now, try another one.", "hu", [correction])
    assert not machine_text("Felkapcsoltam a nappali lámpát.", "hu")
    assert not machine_text("I have turned on the light for you.", "en")
    assert not machine_text("Nappali TV", "hu")
    assert not machine_text("", "hu")
    # Another language than the user spoke: a Hungarian answer to an English sentence, and back.
    assert machine_text("A garázs csalózóát zárta.", "en", asked="Close the garage door")
    assert not machine_text("A garázskapu bezárva.", "en", asked="Csukd be a garázskaput")
    assert not machine_text("The Nappali lámpa is on.", "en", asked="Is the living room lamp on?")
    assert machine_text("The light is on now.", "hu", asked="Kapcsold fel a lámpát")
    assert not machine_text("The light is on now.", "hu", asked="Turn on the light please")


def test_choices_are_spoken_as_a_list() -> None:
    assert spoken_choices(["A", "B", "C"], "vagy") == "A, B vagy C"
    assert spoken_choices(["A"], "or") == "A"
