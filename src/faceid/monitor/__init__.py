"""Monitor mode: an edge agent that watches a camera, stream or video file and reports who it saw.

``faceid monitor SOURCE`` (see ``faceid.cli.monitor_commands`` and ``docs/edge.md``). The pieces, from the
frames up: :mod:`~faceid.monitor.sources` (files, cameras, streams, reconnection),
:mod:`~faceid.monitor.tracker`, :mod:`~faceid.monitor.quality`, :mod:`~faceid.monitor.recognize` (per-frame
open-set decisions and the per-track vote), :mod:`~faceid.monitor.pipeline` (the loop),
:mod:`~faceid.monitor.events`, :mod:`~faceid.monitor.sinks`, :mod:`~faceid.monitor.outbox` (store-and-forward)
and :mod:`~faceid.monitor.connected` (the server's gallery), :mod:`~faceid.monitor.annotate` and
:mod:`~faceid.monitor.preview` (what a person watches), assembled by :mod:`~faceid.monitor.agent`.
It uses the vision core and the store, and talks to the server over HTTP only.
"""

from faceid.monitor.agent import Agent, AgentConfig, AgentResult
from faceid.monitor.events import MonitorEvent
from faceid.monitor.pipeline import Monitor, MonitorOptions, MonitorStats, PipelineOptions
from faceid.monitor.sources import SourceError, SourceUnavailableError, open_source

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentResult",
    "Monitor",
    "MonitorEvent",
    "MonitorOptions",
    "MonitorStats",
    "PipelineOptions",
    "SourceError",
    "SourceUnavailableError",
    "open_source",
]
