"""One function per question `bench/README.md` answers, each returning the figures it measured."""

from .blobs import blob_streaming
from .bundle import Deployment, deployment
from .failover import FailoverRun, failover_pulls
from .failover import render as render_failover
from .load import LoadOptions, LoadRun, sustained_load
from .manifests import concurrent_throughput, connection_reuse, warm_manifest_latency
from .moving import moving_registries
from .moving import render as render_moving
from .parts import request_cpu
from .public import Pull, public_routes, public_routes_redirecting
from .pulls import copy_cpu, copy_time, first_pull_requests, warm_pull_requests

__all__ = [
    "Deployment",
    "FailoverRun",
    "LoadOptions",
    "LoadRun",
    "Pull",
    "blob_streaming",
    "concurrent_throughput",
    "connection_reuse",
    "copy_cpu",
    "copy_time",
    "deployment",
    "failover_pulls",
    "first_pull_requests",
    "moving_registries",
    "public_routes",
    "public_routes_redirecting",
    "render_failover",
    "render_moving",
    "request_cpu",
    "sustained_load",
    "warm_manifest_latency",
    "warm_pull_requests",
]
