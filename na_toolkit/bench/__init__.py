"""`na-toolkit bench NAME`: benchmarks that print one JSON object (the figures behind `benchmarks/*.json`).

A benchmark is a `na_toolkit.bench.base.Benchmark` registered through the `na_register_benchmarks` hook,
like every other component: the core's own (`ir`, `latency`, `architecture`) by
`na_toolkit.builtin.benchmarks`, a plugin's by the plugin (the NAS-Bench-201 plugin registers
`nb201-search`, `predictor` and `fewshot-latency`). Each module here exposes its `BENCHMARK`; the `bench`
command (`na_toolkit.cli.bench`) builds one subcommand per registered benchmark and adds "params" and
"machine" to the figures `run(args, toolkit)` returns.
"""
