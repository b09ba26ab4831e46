import Foundation

/// Cortex's own alert rules (the design's: master down, worker pool empty, budget above 90 %, Redis
/// unreachable, catalog-api latency, dead-lettered work), as a Prometheus rule file. The chart ships
/// this text (`cortexctl docs alerts`; a test fails when the chart's copy drifts) and the monitoring
/// master writes and checks it with promtool.
public enum CortexAlerts {
    public static let ruleFile = """
# Cortex alert rules: a plain Prometheus rule file (checked with `promtool check rules` and unit-tested
# with `promtool test rules` against cortex-alerts.test.yaml) that the chart also ships as a
# PrometheusRule. Every expression uses metrics the Cortex processes export (docs/metrics.md).
groups:
  - name: cortex
    rules:
      - alert: CortexMasterDown
        expr: min by (master) (cortex_masters_live) == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.master }}-master has no live instance"
          description: "The coordinator sees no heartbeat from {{ $labels.master }}-master; its tasks are held until an instance returns. kubectl logs deploy/{{ $labels.master }}-master"
      - alert: CortexWorkerPoolEmpty
        expr: max by (pool) (cortex_workers_live) == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "No live worker serves pool {{ $labels.pool }}"
          description: "Work for pool {{ $labels.pool }} queues up until a worker serving it runs; scale with workers.<pool>.replicas."
      - alert: CortexTokenBudgetAbove90Percent
        expr: (cortex_tokens_spent / (cortex_tokens_budget > 0)) > 0.9
        for: 1m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.agent }} has spent {{ $value | humanizePercentage }} of its token budget"
          description: "Further LLM calls of {{ $labels.agent }} need a budget request; the coordinator grants them from unused budgets or the reserve."
      - alert: CortexRedisUnreachable
        expr: min by (instance) (cortex_redis_connected) == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} cannot reach Redis"
          description: "Cortex processes queue nothing new while Redis is away; they reconnect with backoff and lose no acknowledged work."
      - alert: CortexCatalogAPISlow
        expr: histogram_quantile(0.99, sum by (le) (rate(cortex_catalog_request_seconds_bucket[5m]))) > 1
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "catalog-api p99 latency is {{ $value | humanizeDuration }}"
          description: "The 99th percentile of catalog-api requests has been above 1 s for 10 minutes."
      - alert: CortexWorkDeadLettered
        expr: sum by (reason) (increase(cortex_dead_letters_total[15m])) > 0
        labels:
          severity: warning
        annotations:
          summary: "Work was dead-lettered ({{ $labels.reason }})"
          description: "Entries that failed too often or were malformed were moved to the dead-letter stream; cortexctl events shows them."

"""
}
