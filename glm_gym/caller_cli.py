"""The eval's ``--caller*`` options: who plays the caller, and the model's endpoint."""

from __future__ import annotations

from typing import Any

import click

from glm_gym.callers import DEFAULT_MODEL, OPENAI_URL, CallerConfigError, CallerOptions
from glm_realtime.cli_group import F

__all__ = ["caller_from", "caller_options"]

_MODEL_OPTIONS = ("caller_model", "caller_url", "caller_temperature", "caller_retries")


def caller_options(command: F) -> F:
    """``--caller``, ``--caller-model``, ``--caller-url``, ``--caller-temperature``,
    ``--caller-retries`` (read back with :func:`caller_from`)."""
    options = [
        click.option(
            "--caller",
            "caller_kind",
            type=click.Choice(["scripted", "openai"]),
            default="scripted",
            show_default=True,
            help="Who plays the caller: the scenario's script, or a chat model given the brief "
            "(any OpenAI-compatible endpoint; key from OPENAI_API_KEY).",
        ),
        click.option(
            "--caller-model",
            default=DEFAULT_MODEL,
            show_default=True,
            help="With --caller openai: the model.",
        ),
        click.option(
            "--caller-url",
            envvar="OPENAI_BASE_URL",
            default=OPENAI_URL,
            show_default=True,
            help="With --caller openai: the API's base URL (env OPENAI_BASE_URL).",
        ),
        click.option(
            "--caller-temperature",
            type=click.FloatRange(0.0, 2.0),
            default=0.0,
            show_default=True,
            help="With --caller openai: the sampling temperature.",
        ),
        click.option(
            "--caller-retries",
            type=click.IntRange(0, 10),
            default=4,
            show_default=True,
            help="With --caller openai: resends of a request that met no connection, a timeout, "
            "429 or 5xx (with backoff).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def caller_from(values: dict[str, Any]) -> CallerOptions:
    """The caller's options, taken out of the command's ``values``; a ``--caller-*`` value
    given without ``--caller openai`` is refused, not ignored."""
    kind = values.pop("caller_kind")
    model, url = values.pop("caller_model"), values.pop("caller_url")
    temperature, retries = values.pop("caller_temperature"), values.pop("caller_retries")
    if kind == "scripted":
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_', '-')}"
            for name in _MODEL_OPTIONS
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise CallerConfigError(f"{', '.join(given)} needs --caller openai")
        return CallerOptions()
    return CallerOptions(kind=kind, model=model, url=url, temperature=temperature, retries=retries)
