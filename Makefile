# The two commands of the README, and a few more. Every target installs what it needs first.
.PHONY: demo test up down bench

demo:
	infra/bootstrap
	.venv/bin/twin demo

test:
	infra/up
	.venv/bin/python -m pytest

up:
	infra/up

down:
	infra/down

bench:
	infra/up
	.venv/bin/python benchmarks/run_all.py
