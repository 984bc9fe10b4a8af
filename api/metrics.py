"""A few process metrics in the Prometheus text format (no client library needed for these)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    latency_buckets: Counter[tuple[str, float]] = field(default_factory=Counter)
    latency_sum: dict[str, float] = field(default_factory=dict)
    latency_count: Counter[str] = field(default_factory=Counter)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds
        self.latency_count[route] += 1
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                self.latency_buckets[(route, bound)] += 1

    def render(self) -> str:
        lines = [
            "# HELP ledgerline_http_requests_total HTTP requests by method, route and status.",
            "# TYPE ledgerline_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'ledgerline_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP ledgerline_http_request_duration_seconds Request latency.",
            "# TYPE ledgerline_http_request_duration_seconds histogram",
        ]
        for route in sorted(self.latency_count):
            for bound in LATENCY_BUCKETS:
                n = self.latency_buckets[(route, bound)]
                lines.append(f'ledgerline_http_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {n}')
            count = self.latency_count[route]
            lines.append(f'ledgerline_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {count}')
            lines.append(f'ledgerline_http_request_duration_seconds_sum{{route="{route}"}} {self.latency_sum[route]}')
            lines.append(f'ledgerline_http_request_duration_seconds_count{{route="{route}"}} {count}')
        return "\n".join(lines) + "\n"
