"""Operations: request ids, metrics (Prometheus, one registry per engine), readiness, JSON logs.

Nothing here imports the web framework: ``engine.api.observability`` adapts it to HTTP."""
from engine.observability.context import REQUEST_ID, accept_request_id, current_request_id
from engine.observability.health import readiness
from engine.observability.metrics import Metrics, engine_metrics, observe

__all__ = ["REQUEST_ID", "Metrics", "accept_request_id", "current_request_id", "engine_metrics", "observe",
           "readiness"]
