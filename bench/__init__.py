"""crev's benchmarks: the test registry straight and through `python -m crev`, side by side.

`python -m bench` runs the comparison the table in `bench/README.md` reads; its subcommands
run the other scenarios (`public`, `load`, `bundle`). See `python -m bench --help`.
"""
