# Two commands do all the set-up on a fresh machine (Python 3.10+ with pip and venv):
#   make demo   the main job: tds viz examples/resnet.py
#   make test   the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean graphviz chromium vendor

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

# Debian's chromium runs the interactive page's tests headless (Playwright drives it); without
# it those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	   >/dev/null) || \
	  echo "note: chromium is not installed (apt-get install chromium); the browser tests skip"; }

# Development time only: refresh the vendored layout library from npm (pages never fetch it).
DAGRE ?= 3.1.3
vendor:
	cd /tmp && npm pack @dagrejs/dagre@$(DAGRE) >/dev/null && tar xzf dagrejs-dagre-$(DAGRE).tgz
	cp /tmp/package/dist/dagre.min.js viz/static/dagre.min.js
	{ cat /tmp/package/LICENSE; echo; echo "---- licences of the code bundled in \
	dist/dagre.min.js (dist/dagre.min.js.LEGAL.txt) ----"; \
	  cat /tmp/package/dist/dagre.min.js.LEGAL.txt; } > viz/static/dagre.LICENSE.txt
	echo "@dagrejs/dagre $(DAGRE)" > viz/static/VERSION

demo: $(STAMP) graphviz
	$(VENV)/bin/tds viz examples/resnet.py -o resnet.png

test: $(STAMP) graphviz chromium
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/program.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
