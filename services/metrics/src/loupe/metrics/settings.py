"""Metrics service settings (env prefix ``LOUPE_METRICS_``) on top of the deployment-wide ones."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from loupe.metrics.controller import ControllerConfig
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.runtime.settings import ServiceSettings


class CostRates(BaseModel):
    """Money per hour of review and per label error that reaches downstream consumers."""

    hourly_cost: float = Field(default=30.0, ge=0.0)
    error_cost: float = Field(default=5.0, ge=0.0)


class MetricsSettings(ServiceSettings):
    """Everything the metrics service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_METRICS_", extra="ignore", populate_by_name=True
    )

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9330, ge=0, le=65_535)
    """Port of ``/metrics`` and ``/healthz`` (9330 by convention; 0 picks a free port)."""
    consumer_group: str = "loupe-metrics"
    """Group id used for client identification only: state is rebuilt from the earliest offset."""
    gateway_redis_prefix: str = Field(default=GATEWAY_REDIS_PREFIX, max_length=64)
    """Key prefix of the gateway's Redis working set (its ``LOUPE_GATEWAY_REDIS_PREFIX``)."""
    queue_poll_interval_s: float = Field(default=10.0, gt=0, le=3_600)
    queue_scan_limit: int = Field(default=200_000, ge=1, le=10_000_000)
    """Queued tasks inspected per tier and poll at most (bounds the Redis work)."""
    lag_poll_interval_s: float = Field(default=30.0, gt=0, le=3_600)
    lag_groups: list[str] = Field(default_factory=list)
    """Consumer groups whose lag on Loupe topics is exported (empty: every group found)."""
    max_lag_groups: int = Field(default=50, ge=0, le=1_000)
    disagreement_window: int = Field(default=200, ge=1, le=100_000)
    """Sliding disagreement rate: the last N multi-vote items per project and class."""
    min_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    """Boxes and tracks: IoU at which two labels' boxes count as the same object."""
    outlier_min_decisions: int = Field(default=30, ge=1)
    outlier_min_peers: int = Field(default=2, ge=1)
    outlier_margin: float = Field(default=0.15, ge=0.0, le=1.0)
    costs: CostRates = Field(default_factory=CostRates)
    project_costs: dict[str, CostRates] = Field(default_factory=dict)
    """Per-project overrides, e.g. ``{"demo": {"hourly_cost": 40, "error_cost": 12}}``."""
    adaptive_enabled: bool = True
    adaptive_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    adaptive_target_error: float = Field(default=0.05, gt=0.0, lt=1.0)
    adaptive_lower_below: float = Field(default=0.8, gt=0.0, le=1.0)
    """Lower review only when the upper bound is below target x this (a dead band)."""
    adaptive_min_samples_raise: int = Field(default=50, ge=1)
    adaptive_min_samples_lower: int = Field(default=200, ge=1)
    adaptive_spot_check_min: float = Field(default=0.01, ge=0.0, le=1.0)
    adaptive_spot_check_max: float = Field(default=0.5, ge=0.0, le=1.0)
    adaptive_threshold_min: float = Field(default=0.5, ge=0.0, le=1.0)
    adaptive_threshold_max: float = Field(default=0.99, ge=0.0, le=1.0)
    adaptive_threshold_up_step: float = Field(default=0.05, gt=0.0, le=1.0)
    adaptive_threshold_down_step: float = Field(default=0.01, gt=0.0, le=1.0)
    adaptive_adjust_spot_check: bool = True
    adaptive_adjust_threshold: bool = True
    transactional_id: str = "loupe-metrics-adaptive"
    """Transactional id of the producer publishing policy updates with their audit records."""

    def controller(self) -> ControllerConfig:
        """The adaptive controller's configuration (validated)."""
        return ControllerConfig(
            target_error=self.adaptive_target_error,
            lower_below=self.adaptive_lower_below,
            min_samples_raise=self.adaptive_min_samples_raise,
            min_samples_lower=self.adaptive_min_samples_lower,
            spot_check_min=self.adaptive_spot_check_min,
            spot_check_max=self.adaptive_spot_check_max,
            threshold_min=self.adaptive_threshold_min,
            threshold_max=self.adaptive_threshold_max,
            threshold_up_step=self.adaptive_threshold_up_step,
            threshold_down_step=self.adaptive_threshold_down_step,
            adjust_spot_check=self.adaptive_adjust_spot_check,
            adjust_threshold=self.adaptive_adjust_threshold,
        )

    def cost_rates(self, project: str) -> CostRates:
        """The cost rates for a project (its override, else the default)."""
        return self.project_costs.get(project, self.costs)


@lru_cache(maxsize=1)
def get_settings() -> MetricsSettings:
    """The process-wide settings, read once from the environment."""
    return MetricsSettings()
