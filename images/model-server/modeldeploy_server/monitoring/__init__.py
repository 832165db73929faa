"""Prediction logging and drift monitoring of the served model (spec.monitoring).

``setup`` reads the configuration the operator rendered (config.py), starts the prediction
log's sender thread (logger.py), puts the request-id middleware (middleware.py) in front
of the inference endpoints and registers the drift windows (drift.py) on /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigError, MonitoringConfig
from .drift import DriftMonitor, ProfileError
from .logger import PredictionLog, make_sink


@dataclass
class Monitoring:
    config: MonitoringConfig
    plog: PredictionLog | None = None
    drift: DriftMonitor | None = None

    def stop(self) -> None:
        if self.plog is not None:
            self.plog.stop()


def from_env() -> Monitoring:
    """The configuration and the prediction log (started); ConfigError names a bad field."""
    config = MonitoringConfig.from_env()
    plog = None
    if config.logging is not None:
        plog = PredictionLog(config.logging, make_sink(config.logging, config.identity)).start()
    return Monitoring(config, plog)


__all__ = ["ConfigError", "Monitoring", "ProfileError", "from_env"]
