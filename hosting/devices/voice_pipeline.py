"""A device's place in its owner's HA: its Wyoming satellite entry and our Assist pipeline (the owner's
language, our agent, the central speech-to-text and text-to-speech), through `hosting.ha_client`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from hosting.ha_client import HomeAssistantClient, HomeAssistantError, in_domain
from hosting.settings import Settings

PIPELINE_NAME = "MicroPi voice"


async def add_satellite(ha: HomeAssistantClient, host: str, port: int | None) -> str:
    """A Wyoming entry in the owner's HA for the device's relay endpoint; its config entry id."""
    entry = await ha.config_flow("wyoming", {"user": {"host": host, "port": port}})
    return str(entry["entry_id"])


async def configure_voice_pipeline(
    ha: HomeAssistantClient, entry_id: str, settings: Settings, speech_uris: Mapping[str, str] | None = None
) -> None:
    """Points the satellite of config entry `entry_id` at our Assist pipeline: the owner's language, our agent,
    the central speech-to-text and text-to-speech. The pipeline is found by name before it is created.
    `speech_uris` ("stt", "tts"): the owner's own speech endpoints (hosting.gateway.speech), which take the
    place of `settings.stt_uri`/`tts_uri`."""
    speech_uris = speech_uris or {}
    language = await ha.language()
    pipelines = await ha.command({"type": "assist_pipeline/pipeline/list"})
    if not any(p["name"] == PIPELINE_NAME for p in pipelines["pipelines"]):
        stt_engine = await _speech_entity(ha, speech_uris.get("stt", settings.stt_uri), "stt")
        tts_engine = await _speech_entity(ha, speech_uris.get("tts", settings.tts_uri), "tts")
        # Engines name languages their own way (piper: "en_US"); HA matches them to the pipeline's.
        stt_language = await _engine_language(ha, "stt", stt_engine, language)
        tts_language = await _engine_language(ha, "tts", tts_engine, language)
        # The voice the central piper has for this language (it may list voices it would have to download).
        tts_voice = settings.tts_voices.get(language.split("-")[0]) if tts_engine else None
        await ha.command(
            {
                "type": "assist_pipeline/pipeline/create",
                "name": PIPELINE_NAME,
                "language": language,
                "conversation_engine": settings.conversation_agent,
                "conversation_language": language,
                "stt_engine": stt_engine,
                "stt_language": stt_language,
                "tts_engine": tts_engine,
                "tts_language": tts_language,
                "tts_voice": tts_voice,
                "wake_word_entity": None,
                "wake_word_id": None,
                "prefer_local_intents": True,
            }
        )

    # The satellite's "Assist pipeline" select (the one offering our pipeline) chooses where its voice goes;
    # it appears once HA has set the new entry up.
    async def offers_our_pipeline(entity: dict[str, Any]) -> bool:
        entity_id = str(entity["entity_id"])
        if not entity_id.startswith("select."):
            return False
        return PIPELINE_NAME in (await ha.state(entity_id)).get("attributes", {}).get("options", [])

    select = await ha.wait_for_entity(
        entry_id,
        offers_our_pipeline,
        within=15,
        missing=f"no pipeline select among the entities of satellite entry {entry_id}",
    )
    await ha.command(
        {
            "type": "call_service",
            "domain": "select",
            "service": "select_option",
            "service_data": {"entity_id": select, "option": PIPELINE_NAME},
        }
    )


async def remove_voice_pipeline(ha: HomeAssistantClient) -> None:
    """Deletes our Assist pipeline (found by name, as `configure_voice_pipeline` finds it), if it is there."""
    pipelines = await ha.command({"type": "assist_pipeline/pipeline/list"})
    for pipeline in pipelines["pipelines"]:
        if pipeline["name"] == PIPELINE_NAME:
            await ha.command({"type": "assist_pipeline/pipeline/delete", "pipeline_id": pipeline["id"]})


async def _engine_language(ha: HomeAssistantClient, kind: str, engine: str | None, language: str) -> str | None:
    if engine is None:
        return None
    engines = await ha.command({"type": f"{kind}/engine/list", "language": language})
    for provider in engines["providers"]:
        if provider["engine_id"] == engine and provider["supported_languages"]:
            return str(provider["supported_languages"][0])
    raise HomeAssistantError(f"{engine} has no {language} {'model' if kind == 'stt' else 'voice'}; install one")


async def _speech_entity(ha: HomeAssistantClient, uri: str, domain: str) -> str | None:
    """A Wyoming entry for the central speech service at `uri`; returns its stt./tts. entity id."""
    if not uri:
        return None
    parsed = urlparse(uri)
    entry = await ha.config_flow("wyoming", {"user": {"host": parsed.hostname, "port": parsed.port}})
    return await ha.wait_for_entity(
        str(entry["entry_id"]),
        in_domain(domain),
        within=10,
        missing=f"the Wyoming service at {uri} gave HA no {domain} entity",
    )
