# Digit Lab: `make install` then `make run`.
PY ?= python3
VENV := .venv
SHARED_MNIST := ../shared/datasets/mnist

.PHONY: install run test worker ingest
install:  ## venv + requirements + the MNIST dataset (FROM=DIR, else ../shared if present, else download, else offline sample)
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	@# the dataset's warning (the offline sample is not full MNIST) is repeated as the last line, after pip's hundreds
	@$(MAKE) --no-print-directory ingest FROM="$(or $(FROM),$(wildcard $(SHARED_MNIST)))" >.ingest.log 2>&1; \
	status=$$?; cat .ingest.log; grep '^WARNING' .ingest.log; rm -f .ingest.log; exit $$status

PORT ?= 8501
run:  ## the dashboard on http://localhost:$(PORT) (make run PORT=8502 for another port)
	$(VENV)/bin/python -m streamlit run dashboard/app.py --server.port $(PORT)

test:
	$(VENV)/bin/python -m pytest

worker:
	$(VENV)/bin/python -m core worker

ingest:  ## MNIST into data/mnist.h5: FROM=DIR (four IDX files or a mnist.npz), else download, else offline sample
	$(VENV)/bin/python -m core ingest $(if $(strip $(FROM)),--from "$(strip $(FROM))")
