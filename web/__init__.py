"""The pages: agent desk, supervisor wallboard, department portal (aiohttp + htmx + SSE)."""
