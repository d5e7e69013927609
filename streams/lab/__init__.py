"""The lab: evaluation, benchmarks and their workloads. Nothing in the product imports it;
its commands reach the CLI through the `interest_stream.commands` entry points."""
