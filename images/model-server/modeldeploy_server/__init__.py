"""modeldeploy model server: one KServe-based image for sklearn, xgboost, lightgbm and onnx.

Speaks KServe v1 (`/v1/models/{name}:predict`) and the Open Inference Protocol v2
(`/v2/models/{name}/infer`, `/v2/health/ready`, ...) through `kserve.ModelServer`, checks
every request against the model's input signature (400 with the offending input named,
never a 500), and exports per-model request counters and a latency histogram on /metrics.

Run: ``python -m modeldeploy_server --model_name=NAME --model_dir=DIR [--http_port=8080]
[--model_format=sklearn|xgboost|lightgbm|onnx]``.
"""

__version__ = "0.1.0"
