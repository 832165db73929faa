"""Predictions through the ModelDeployment's Service, RATE a second, for as long as it runs.
Every 5 s it logs how many answers came from each variant (the router's
X-Modeldeploy-Variant header; none outside a rollout, when the Service selects the stable
pods) and how many failed."""

import collections
import json
import os
import time
import urllib.error
import urllib.request

URL = os.environ.get("URL", "http://iris/v1/models/iris:predict")
RATE = float(os.environ.get("RATE", "5"))
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}).encode()


def predict() -> str:
    request = urllib.request.Request(URL, data=BODY, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.headers.get("X-Modeldeploy-Variant") or "stable (no router)"
    except urllib.error.HTTPError as err:
        return f"failed: HTTP {err.code} from {err.headers.get('X-Modeldeploy-Variant') or '?'}"
    except OSError as err:
        return f"failed: {type(err).__name__}"


def main() -> None:
    counts: collections.Counter[str] = collections.Counter()
    report = time.monotonic() + 5
    while True:
        started = time.monotonic()
        counts[predict()] += 1
        if time.monotonic() >= report:
            print(time.strftime("%H:%M:%S"), ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), flush=True)
            counts.clear()
            report += 5
        time.sleep(max(0.0, 1 / RATE - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
