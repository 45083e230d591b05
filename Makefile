# The two commands of the README, and a few more. Every target installs what it needs first.
.PHONY: demo test up down bench eval

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

# Judge the twin on real corpora (not part of `make test`, which reads only the repository's fixtures):
# every ../shared/corpora/<name>/dev.jsonl, or CORPUS=path/to/transcripts.jsonl. Prints each table and
# writes the HTML report (index.html) and its JSON (summary.json) to reports/eval/<name>/. EVAL_ARGS
# passes more options to `twin eval` (e.g. EVAL_ARGS="--limit 10 --seed 3").
CORPUS ?=
EVAL_ARGS ?=
eval:
	@if [ -n "$(CORPUS)" ]; then corpora="$(CORPUS)"; else corpora=$$(ls ../shared/corpora/*/dev.jsonl 2>/dev/null); fi; \
	if [ -z "$$corpora" ]; then \
		echo "make eval: no corpus: give CORPUS=path/to/transcripts.jsonl, or put <name>/dev.jsonl under ../shared/corpora" >&2; \
		exit 1; fi; \
	for c in $$corpora; do [ -f "$$c" ] || { echo "make eval: no such file: $$c" >&2; exit 1; }; done; \
	infra/up || exit 1; \
	failed=0; \
	for c in $$corpora; do \
		name=$$(basename "$$c"); name=$${name%.*}; \
		if [ "$$name" = dev ]; then name=$$(basename "$$(dirname "$$c")"); fi; \
		out=reports/eval/$$name; mkdir -p "$$out"; rm -f "$$out/summary.json"; \
		echo "== twin eval --corpus $$c --report $$out $(EVAL_ARGS)"; \
		if .venv/bin/twin eval --corpus "$$c" --report "$$out" $(EVAL_ARGS) && [ -s "$$out/summary.json" ]; then \
			echo "wrote $$out/index.html and $$out/summary.json"; \
		else echo "make eval: twin eval failed on $$c" >&2; failed=1; fi; \
	done; \
	exit $$failed
