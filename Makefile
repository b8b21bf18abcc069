# Digit Lab: `make install` then `make run`.
PY ?= python3
VENV := .venv
SHARED_MNIST := ../shared/datasets/mnist

.PHONY: install run test worker ingest
install:  ## venv + requirements + the MNIST dataset (from ../shared if present, else download, else offline sample)
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	if [ -d $(SHARED_MNIST) ]; then $(VENV)/bin/python -m core ingest --from $(SHARED_MNIST); \
	else $(VENV)/bin/python -m core ingest; fi

run:  ## the dashboard on http://localhost:8501
	$(VENV)/bin/python -m streamlit run dashboard/app.py

test:
	$(VENV)/bin/python -m pytest

worker:
	$(VENV)/bin/python -m core worker

ingest:
	$(VENV)/bin/python -m core ingest
