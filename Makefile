# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both create the virtual environment at .venv, install faceid into it and fetch/build its models.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.faceid-installed
EXTRAS ?= full,setup,test,train

.PHONY: run demo test setup lint bench-anchors clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/faceid models fetch
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/faceid serve $(ARGS)

demo: $(STAMP)
	$(BIN)/faceid demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# What the benchmarks compare with (bench/RESULTS.md): dlib-bin comes with the test extra; face_recognition 1.3.0
# goes beside it without its declared dependencies, which would build dlib from source.
bench-anchors: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy src/faceid

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
