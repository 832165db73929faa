# modeldeploy developer commands. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Cluster test modules run at the same time (pytest-xdist workers); hack/test.sh reads the same variable.
TEST_WORKERS ?= $(or $(MODELDEPLOY_TEST_WORKERS),3)
BENCH_ARGS ?=
# First in every target that needs a cluster, before anything slow: when none answers it says
# which one it tried and what to do (hack/need-cluster.sh), in seconds.
NEED_CLUSTER = @bash hack/need-cluster.sh "make $@"

.PHONY: help install test unit e2e lint crds manifests chart-lint run demo demo-clean deploy undeploy cluster-up cluster-down cluster-status kind-build kind-up kind-down images load-images bench bench-scale bench-logging bench-batch clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

install: ## create .venv and install the operator with its test tools (cached outside the checkout, hack/venv.sh)
	@VENV=$(VENV) bash hack/venv.sh

test: ## everything CI runs: lint, unit tests, then the cluster suite on a local (or $$KUBECONFIG) cluster
	bash hack/test.sh $(PYTEST_ARGS)

unit: install lint ## the tests that need no cluster
	$(VENV)/bin/pytest -m 'not e2e' $(PYTEST_ARGS)

e2e: ## the tests that need a cluster, against the one `hack/cluster-env.sh` selects, $(TEST_WORKERS) modules at a time
	$(NEED_CLUSTER)
	@$(MAKE) --no-print-directory install
	eval "$$(bash hack/cluster-env.sh)" && $(VENV)/bin/pytest -m e2e -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install ## import-linter contracts: pure layers stay free of kopf and the Kubernetes client
	$(VENV)/bin/lint-imports

crds: install ## regenerate crds/ from the API models (a unit test fails when it is stale)
	$(VENV)/bin/modeldeploy crd > crds/modeldeploy.io_modeldeployments.yaml
	$(VENV)/bin/modeldeploy crd --kind BatchPrediction > crds/modeldeploy.io_batchpredictions.yaml

manifests: install ## render manifests/ (kustomize base) from charts/modeldeploy and copy crds/ into the chart (tests fail when stale)
	$(VENV)/bin/python hack/render-manifests.py

chart-lint: ## helm lint charts/modeldeploy
	bash hack/helm.sh lint --strict charts/modeldeploy

run: ## run the operator locally against the selected cluster, all namespaces
	$(NEED_CLUSTER)
	@$(MAKE) --no-print-directory install
	eval "$$(bash hack/cluster-env.sh)" && bash hack/kubectl.sh apply --server-side -f crds/ && \
	$(VENV)/bin/modeldeploy operator --all-namespaces --liveness 127.0.0.1:8080

demo: ## the operator serving a model trained on the spot, then v2 rolled out as a canary (starts the local cluster if none runs)
	bash hack/demo.sh

demo-clean: ## remove the demo: its namespace and the Helm release
	bash hack/demo.sh clean

deploy: ## install the CRD and the operator (its image) into the selected cluster (kubectl apply -k manifests/; or: helm install, see README)
	$(NEED_CLUSTER)
	eval "$$(bash hack/cluster-env.sh)" && bash hack/kubectl.sh apply --server-side -k manifests/

undeploy: ## remove the operator and the CRD (and with it every ModelDeployment)
	$(NEED_CLUSTER)
	eval "$$(bash hack/cluster-env.sh)" && bash hack/kubectl.sh delete --ignore-not-found -k manifests/

cluster-up: ## start the local single-node Kubernetes (builds and caches its binaries on first use)
	bash hack/cluster-up.sh

cluster-down: ## stop it and remove every process, mount, iptables rule and device it made
	bash hack/cluster-down.sh

cluster-status: ## say what runs
	$(NEED_CLUSTER)
	bash hack/cluster-status.sh

kind-build: ## build kind and its node image locally (Go module proxy + debootstrap; cached; docs/kind.md)
	bash hack/kind-build.sh

kind-up: ## start the kind cluster modeldeploy-kind (kubeconfig ~/.cache/modeldeploy/kind/modeldeploy-kind.kubeconfig)
	bash hack/kind-up.sh

kind-down: ## delete the kind cluster modeldeploy-kind
	bash hack/kind-down.sh

images: ## build every image locally (docker; base image made with debootstrap)
	bash hack/images.sh

load-images: ## import the images into the cluster (local containerd, or kind load)
	$(NEED_CLUSTER)
	bash hack/load-images.sh

bench: install ## router overhead vs calling the model server directly (p50/p99, needs nginx)
	$(VENV)/bin/python bench/router_overhead.py

bench-logging: install ## what prediction logging costs a prediction: p50/p99 with logging off, a healthy, a slow and a dead sink (docker, vegeta)
	$(VENV)/bin/python bench/prediction_logging.py $(BENCH_ARGS)

bench-batch: install ## batch scoring rows/s per core, S3 Parquet to S3 Parquet, vs the model's in-memory predict and vs HTTP batches of 100 (docker)
	$(VENV)/bin/python bench/batch.py $(BENCH_ARGS)

bench-scale: ## 1,000 ModelDeployments on kwok fake nodes vs the control plane alone (root; --count etc. via BENCH_ARGS)
	$(NEED_CLUSTER)
	@$(MAKE) --no-print-directory install
	eval "$$(bash hack/cluster-env.sh)" && $(PY) bench/scale.py $(BENCH_ARGS)

clean: ## remove the virtualenv and caches inside the checkout
	rm -rf $(VENV) .pytest_cache build *.egg-info operator/*.egg-info
