"""Constants of the MicroPi LLM integration."""

DOMAIN = "micropi_llm"
