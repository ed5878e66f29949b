# Two commands do all the set-up on a fresh machine (Python 3.10+ with pip and venv):
#   make demo   the main job: tds viz examples/resnet.py
#   make test   the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean graphviz

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The `dot` program renders drawings. Installed with apt where we are root; otherwise tds still
# writes .dot files and says how to install Graphviz.
graphviz:
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || \
	  echo "note: Graphviz's dot is not installed (apt-get install graphviz); drawings stay .dot files"; }

demo: $(STAMP) graphviz
	$(VENV)/bin/tds viz examples/resnet.py -o resnet.png

test: $(STAMP) graphviz
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/train.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
