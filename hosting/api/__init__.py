"""The HTTP API's handlers, by area; `hosting.routes` gathers them into the one route table."""
