"""Helpers only the tests use: the client daemons, stand-in upstreams, crev in the test process,
refusals and the wire. What the benchmarks drive too lives in `rig/`."""
