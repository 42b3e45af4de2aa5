#!/usr/bin/env python3
"""Writes the Grafana dashboards under provisioning/dashboards/ from the tables below, so that
every panel has the same data-source wiring and layout. Edit here, then run
`python3 grafana/generate_dashboards.py`; the JSON files are committed.

Every query must use metrics from docs/metrics.md: `metrics::tests::every_dashboard_metric_is_exported`
checks the names against the registry, and tests/compat/prometheus_test.py runs every query
against a real Prometheus scraping a loaded broker and requires data. Template variables are
always matched with `=~` (their "All" value is `.*`)."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "provisioning", "dashboards")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
I = 'instance=~"$instance"'
RI = "[$__rate_interval]"


def var(name, label, query):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
    }


DATASOURCE = {
    "name": "DS_PROMETHEUS",
    "label": "Data source",
    "type": "datasource",
    "query": "prometheus",
    "current": {},
    "hide": 0,
    "refresh": 1,
}
INSTANCE = var("instance", "Instance", "label_values(esker_build_info, instance)")
TOPIC = var("topic", "Topic", "label_values(kafka_server_brokertopicmetrics_bytesin_total, topic)")
GROUP = var("group", "Consumer group", "label_values(kafka_consumergroup_members, consumergroup)")
STREAM = var("stream", "Stream", "label_values(esker_kinesis_incoming_records_total, stream)")
REQUEST = var("request", "API", "label_values(kafka_network_requestmetrics_requests_total, request)")


def stat(title, expr, unit="none"):
    return {"type": "stat", "title": title, "unit": unit, "targets": [(expr, "")], "w": 4, "h": 4}


def ts(title, *targets, unit="short", w=12, h=8, stack=False):
    """targets: (expr, legend) pairs."""
    return {"type": "timeseries", "title": title, "unit": unit, "targets": list(targets), "w": w,
            "h": h, "stack": stack}


def row(title):
    return {"type": "row", "title": title, "w": 24, "h": 1}


def panel_json(p, pid, x, y):
    out = {
        "id": pid,
        "type": p["type"],
        "title": p["title"],
        "gridPos": {"x": x, "y": y, "w": p["w"], "h": p["h"]},
    }
    if p["type"] == "row":
        out["collapsed"] = False
        out["panels"] = []
        return out
    out["datasource"] = DS
    out["fieldConfig"] = {"defaults": {"unit": p["unit"]}, "overrides": []}
    if p["type"] == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value",
                          "graphMode": "area"}
    else:
        custom = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        if p.get("stack"):
            custom["stacking"] = {"mode": "normal", "group": "A"}
        out["fieldConfig"]["defaults"]["custom"] = custom
        out["options"] = {"legend": {"displayMode": "table", "placement": "bottom",
                                     "calcs": ["lastNotNull", "max"]},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    out["targets"] = [
        {"datasource": DS, "expr": e, "legendFormat": legend or "__auto", "refId": chr(65 + i),
         "range": True}
        for i, (e, legend) in enumerate(p["targets"])
    ]
    return out


def dashboard(uid, title, description, variables, panels):
    out_panels, x, y, line_h, pid = [], 0, 0, 0, 1
    for p in panels:
        if x + p["w"] > 24 or p["type"] == "row":
            if x > 0:
                y += line_h
            x, line_h = 0, 0
        out_panels.append(panel_json(p, pid, x, y))
        pid += 1
        x += p["w"]
        line_h = max(line_h, p["h"])
        if x >= 24:
            x, y, line_h = 0, y + line_h, 0
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["esker", "kafka"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [DATASOURCE, INSTANCE] + variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["esker"], "asDropdown": True,
                   "title": "Esker dashboards"}],
        "panels": out_panels,
    }


def btm(name, extra=""):
    return f'kafka_server_brokertopicmetrics_{name}_total{{{I},topic=~"$topic"{extra}}}'


OVERVIEW = dashboard(
    "esker-overview", "Esker overview",
    "Cluster health, traffic and latency at a glance (Kafka JMX-exporter metric names).",
    [TOPIC],
    [
        stat("Partitions", f"sum(kafka_server_replicamanager_partitioncount{{{I}}})"),
        stat("Leaders", f"sum(kafka_server_replicamanager_leadercount{{{I}}})"),
        stat("Under-replicated", f"sum(kafka_server_replicamanager_underreplicatedpartitions{{{I}}})"),
        stat("Offline partitions", f"sum(kafka_controller_kafkacontroller_offlinepartitionscount{{{I}}})"),
        stat("Active controllers", f"sum(kafka_controller_kafkacontroller_activecontrollercount{{{I}}})"),
        stat("Open connections", f"sum(kafka_server_socketservermetrics_connections{{{I}}})"),
        stat("Consumer groups", f"sum(kafka_coordinator_group_groupmetadatamanager_numgroups{{{I}}})"),
        stat("Total consumer lag", f"sum(kafka_consumergroup_topic_lag{{{I}}})"),
        stat("Uptime", f"time() - max(process_start_time_seconds{{{I}}})", unit="s"),
        stat("CPU", f"sum(rate(process_cpu_seconds_total{{{I}}}{RI}))", unit="percentunit"),
        stat("Resident memory", f"sum(process_resident_memory_bytes{{{I}}})", unit="bytes"),
        stat("Version", f"count by (version) (esker_build_info{{{I}}})"),
        ts("Bytes in per topic", (f"sum by (topic) (rate({btm('bytesin')}{RI}))", "{{topic}}"), unit="Bps"),
        ts("Bytes out per topic", (f"sum by (topic) (rate({btm('bytesout')}{RI}))", "{{topic}}"), unit="Bps"),
        ts("Messages in per topic", (f"sum by (topic) (rate({btm('messagesin')}{RI}))", "{{topic}}"), unit="ops"),
        ts("Failed produce / fetch per topic",
           (f"sum by (topic) (rate({btm('failedproducerequests')}{RI}))", "produce {{topic}}"),
           (f"sum by (topic) (rate({btm('failedfetchrequests')}{RI}))", "fetch {{topic}}"), unit="ops"),
        ts("Request rate per API",
           (f"sum by (request) (rate(kafka_network_requestmetrics_requests_total{{{I}}}{RI}))", "{{request}}"),
           unit="reqps"),
        ts("p99 latency per API",
           (f"histogram_quantile(0.99, sum by (request, le) (rate(kafka_network_requestmetrics_totaltimems_bucket{{{I}}}{RI})))",
            "{{request}}"), unit="ms"),
        ts("Error rate per API",
           (f"sum by (request, error) (rate(kafka_network_requestmetrics_errors_total{{{I}}}{RI}))",
            "{{request}} {{error}}"), unit="ops"),
        ts("Connections created per listener",
           (f"sum by (listener) (rate(kafka_server_socketservermetrics_connection_creation_total{{{I}}}{RI}))",
            "{{listener}}"), unit="ops"),
        ts("Connections refused / closed by limits",
           (f"sum by (listener, reason) (rate(esker_connections_rejected_total{{{I}}}{RI}))",
            "refused {{listener}} {{reason}}"),
           (f"sum by (listener, reason) (rate(esker_connections_closed_total{{{I}}}{RI}))",
            "closed {{listener}} {{reason}}"), unit="ops"),
        ts("Requests in flight (queued.max.requests)",
           (f"sum(esker_request_queue_requests{{{I}}})", "requests")),
        ts("Log size per topic", (f'sum by (topic) (kafka_log_log_size{{{I},topic=~"$topic"}})', "{{topic}}"),
           unit="bytes"),
        ts("Fsync rounds per shard",
           (f"sum by (shard) (rate(esker_shard_flushes_total{{{I}}}{RI}))", "shard {{shard}}"), unit="ops"),
        row("Replication (cluster)"),
        ts("Under-replicated partitions per broker",
           (f"sum by (instance) (kafka_server_replicamanager_underreplicatedpartitions{{{I}}})", "{{instance}}"),
           (f"sum by (instance) (kafka_server_replicamanager_underminisrpartitioncount{{{I}}})",
            "under min ISR {{instance}}"), w=8),
        ts("ISR shrinks / expands",
           (f"sum by (instance) (rate(kafka_server_replicamanager_isrshrinks_total{{{I}}}{RI}))", "shrinks {{instance}}"),
           (f"sum by (instance) (rate(kafka_server_replicamanager_isrexpands_total{{{I}}}{RI}))", "expands {{instance}}"),
           unit="ops", w=8),
        ts("Max replica lag (offsets)",
           (f"max by (instance) (kafka_server_replicafetchermanager_maxlag{{{I}}})", "{{instance}}"), w=8),
        ts("Leaders per broker",
           (f"sum by (instance) (kafka_server_replicamanager_leadercount{{{I}}})", "{{instance}}"), w=12),
        ts("Partitions per broker",
           (f"sum by (instance) (kafka_server_replicamanager_partitioncount{{{I}}})", "{{instance}}"), w=12),
        row("Transactions"),
        ts("Open transactions",
           (f"sum by (instance) (esker_transactions_open{{{I}}})", "{{instance}}"), w=8),
        ts("Commits / aborts",
           (f"sum by (instance) (rate(esker_transactions_committed_total{{{I}}}{RI}))", "commits {{instance}}"),
           (f"sum by (instance) (rate(esker_transactions_aborted_total{{{I}}}{RI}))", "aborts {{instance}}"),
           (f"sum by (instance) (rate(esker_transactions_timed_out_total{{{I}}}{RI}))", "timed out {{instance}}"),
           unit="ops", w=8),
        ts("Last stable offset lag (max over partitions)",
           (f"max by (instance) (esker_log_last_stable_offset_lag_max{{{I}}})", "{{instance}}"), w=8),
        row("Log cleaner (compaction)"),
        ts("Cleaner bytes read / written",
           (f"sum by (instance) (rate(esker_log_cleaner_read_bytes_total{{{I}}}{RI}))", "read {{instance}}"),
           (f"sum by (instance) (rate(esker_log_cleaner_written_bytes_total{{{I}}}{RI}))", "written {{instance}}"),
           unit="Bps", w=8),
        ts("Records removed by compaction",
           (f"sum by (instance) (rate(esker_log_cleaner_removed_records_total{{{I}}}{RI}))", "{{instance}}"),
           unit="ops", w=8),
        ts("Max dirty ratio of compacted logs",
           (f"max by (instance) (esker_log_cleaner_max_dirty_ratio{{{I}}})", "{{instance}}"),
           unit="percentunit", w=8),
    ],
)

TP = f'{I},topic=~"$topic"'
TOPICS = dashboard(
    "esker-topics", "Esker topics",
    "Per-topic traffic and per-partition logs (BrokerTopicMetrics and Log MBeans).",
    [TOPIC],
    [
        ts("Bytes in", (f"sum by (topic) (rate({btm('bytesin')}{RI}))", "{{topic}}"), unit="Bps", w=8),
        ts("Bytes out", (f"sum by (topic) (rate({btm('bytesout')}{RI}))", "{{topic}}"), unit="Bps", w=8),
        ts("Messages in", (f"sum by (topic) (rate({btm('messagesin')}{RI}))", "{{topic}}"), unit="ops", w=8),
        ts("Produce requests (per partition)",
           (f"sum by (topic) (rate({btm('totalproducerequests')}{RI}))", "{{topic}}"), unit="ops", w=8),
        ts("Fetch requests (per partition)",
           (f"sum by (topic) (rate({btm('totalfetchrequests')}{RI}))", "{{topic}}"), unit="ops", w=8),
        ts("Failed produce / fetch",
           (f"sum by (topic) (rate({btm('failedproducerequests')}{RI}))", "produce {{topic}}"),
           (f"sum by (topic) (rate({btm('failedfetchrequests')}{RI}))", "fetch {{topic}}"), unit="ops", w=8),
        ts("Average record size in",
           (f"sum by (topic) (rate({btm('bytesin')}{RI})) / sum by (topic) (rate({btm('messagesin')}{RI}))",
            "{{topic}}"), unit="bytes"),
        ts("Log size per topic", (f"sum by (topic) (kafka_log_log_size{{{TP}}})", "{{topic}}"), unit="bytes"),
        ts("Log size per partition", (f"kafka_log_log_size{{{TP}}}", "{{topic}}-{{partition}}"), unit="bytes"),
        ts("Messages in the log per partition (end - start offset)",
           (f"kafka_log_log_logendoffset{{{TP}}} - kafka_log_log_logstartoffset{{{TP}}}",
            "{{topic}}-{{partition}}"), unit="short"),
        ts("Log end offset per partition", (f"kafka_log_log_logendoffset{{{TP}}}", "{{topic}}-{{partition}}")),
        ts("Log start offset per partition", (f"kafka_log_log_logstartoffset{{{TP}}}", "{{topic}}-{{partition}}")),
        ts("Partitions", (f"count by (topic) (kafka_log_log_logendoffset{{{TP}}})", "{{topic}}"), w=24, h=6),
    ],
)

G = f'{I},consumergroup=~"$group",topic=~"$topic"'
GROUPS = dashboard(
    "esker-consumer-groups", "Esker consumer groups and lag",
    "Consumer-group lag and committed offsets (kafka_exporter names), members and rebalances.",
    [GROUP, TOPIC],
    [
        stat("Groups", f"sum(kafka_coordinator_group_groupmetadatamanager_numgroups{{{I}}})"),
        stat("Members", f'sum(kafka_consumergroup_members{{{I},consumergroup=~"$group"}})'),
        stat("Total lag", f"sum(kafka_consumergroup_topic_lag{{{G}}})"),
        stat("Rebalances (1h)", f"sum(increase(kafka_server_groupcoordinatormetrics_group_rebalance_total{{{I}}}[1h]))"),
        stat("Groups lagging", f"count(sum by (consumergroup) (kafka_consumergroup_topic_lag{{{G}}}) > 0) or vector(0)"),
        stat("Max partition lag", f"max(kafka_consumergroup_lag{{{G}}})"),
        ts("Lag per group and topic", (f"sum by (consumergroup, topic) (kafka_consumergroup_topic_lag{{{G}}})",
                                       "{{consumergroup}} / {{topic}}"), w=24),
        ts("Lag per partition", (f"kafka_consumergroup_lag{{{G}}}", "{{consumergroup}} {{topic}}-{{partition}}")),
        ts("Consumption rate (committed offsets)",
           (f"sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{G}}}{RI}))",
            "{{consumergroup}} / {{topic}}"), unit="ops"),
        ts("Committed offset per partition",
           (f"kafka_consumergroup_current_offset{{{G}}}", "{{consumergroup}} {{topic}}-{{partition}}")),
        ts("Estimated time to catch up",
           (f"sum by (consumergroup, topic) (kafka_consumergroup_topic_lag{{{G}}}) / clamp_min(sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{G}}}{RI})), 1)",
            "{{consumergroup}} / {{topic}}"), unit="s"),
        ts("Members per group", (f'kafka_consumergroup_members{{{I},consumergroup=~"$group"}}', "{{consumergroup}}")),
        ts("Rebalance rate",
           (f"sum(rate(kafka_server_groupcoordinatormetrics_group_rebalance_total{{{I}}}{RI}))", "rebalances"),
           unit="ops"),
    ],
)

S = f'{I},stream=~"$stream"'
KINESIS = dashboard(
    "esker-kinesis", "Esker Kinesis streams",
    "Kinesis Data Streams API per stream, after the stream-level CloudWatch metrics.",
    [STREAM],
    [
        ts("IncomingRecords", (f"sum by (stream) (rate(esker_kinesis_incoming_records_total{{{S}}}{RI}))", "{{stream}}"),
           unit="ops"),
        ts("IncomingBytes", (f"sum by (stream) (rate(esker_kinesis_incoming_bytes_total{{{S}}}{RI}))", "{{stream}}"),
           unit="Bps"),
        ts("GetRecords.Records",
           (f"sum by (stream) (rate(esker_kinesis_get_records_records_total{{{S}}}{RI}))", "{{stream}}"), unit="ops"),
        ts("GetRecords.Bytes",
           (f"sum by (stream) (rate(esker_kinesis_get_records_bytes_total{{{S}}}{RI}))", "{{stream}}"), unit="Bps"),
        ts("GetRecords.IteratorAgeMilliseconds (latest)",
           (f"max by (stream) (esker_kinesis_get_records_iterator_age_seconds{{{S}}})", "{{stream}}"), unit="s"),
        ts("Provisioned throughput exceeded",
           (f"sum by (stream) (rate(esker_kinesis_write_provisioned_throughput_exceeded_total{{{S}}}{RI}))",
            "write {{stream}}"),
           (f"sum by (stream) (rate(esker_kinesis_read_provisioned_throughput_exceeded_total{{{S}}}{RI}))",
            "read {{stream}}"), unit="ops"),
        ts("Shards per stream", (f'count by (topic) (kafka_log_log_logendoffset{{{I},topic=~"$stream"}})', "{{topic}}"),
           w=24, h=6),
    ],
)

R = f'{I},request=~"$request"'
INTERNALS = dashboard(
    "esker-internals", "Esker broker internals",
    "Request latency and quotas per API, shard threads, fsync, process and allocator.",
    [REQUEST],
    [
        row("Requests"),
        ts("Requests per API and version",
           (f"sum by (request, version) (rate(kafka_network_requestmetrics_requests_total{{{R}}}{RI}))",
            "{{request}} v{{version}}"), unit="reqps"),
        ts("Latency p50 / p99 per API",
           (f"histogram_quantile(0.5, sum by (request, le) (rate(kafka_network_requestmetrics_totaltimems_bucket{{{R}}}{RI})))",
            "p50 {{request}}"),
           (f"histogram_quantile(0.99, sum by (request, le) (rate(kafka_network_requestmetrics_totaltimems_bucket{{{R}}}{RI})))",
            "p99 {{request}}"), unit="ms"),
        ts("Average latency per API",
           (f"sum by (request) (rate(kafka_network_requestmetrics_totaltimems_sum{{{R}}}{RI})) / sum by (request) (rate(kafka_network_requestmetrics_totaltimems_count{{{R}}}{RI}))",
            "{{request}}"), unit="ms"),
        ts("Quota throttle time p99",
           (f"histogram_quantile(0.99, sum by (request, le) (rate(kafka_network_requestmetrics_throttletimems_bucket{{{R}}}{RI})))",
            "{{request}}"), unit="ms"),
        row("Shards"),
        ts("Shard busy ratio (thread CPU)",
           (f"sum by (shard) (rate(esker_shard_cpu_seconds_total{{{I}}}{RI}))", "shard {{shard}}"),
           unit="percentunit"),
        ts("Shard queue depth", (f"sum by (shard) (esker_shard_queue_depth{{{I}}})", "shard {{shard}}")),
        ts("Fsync rounds / fdatasync calls",
           (f"sum by (shard) (rate(esker_shard_flushes_total{{{I}}}{RI}))", "rounds {{shard}}"),
           (f"sum by (shard) (rate(esker_shard_fsyncs_total{{{I}}}{RI}))", "fdatasync {{shard}}"), unit="ops"),
        ts("Fsync round time p50 / p99",
           (f"histogram_quantile(0.5, sum by (shard, le) (rate(kafka_log_logflushstats_logflushrateandtimems_bucket{{{I}}}{RI})))",
            "p50 {{shard}}"),
           (f"histogram_quantile(0.99, sum by (shard, le) (rate(kafka_log_logflushstats_logflushrateandtimems_bucket{{{I}}}{RI})))",
            "p99 {{shard}}"), unit="ms"),
        ts("acks=all appends per fsync round",
           (f"sum(rate(esker_shard_fsync_waiters_total{{{I}}}{RI})) / clamp_min(sum(rate(esker_shard_flushes_total{{{I}}}{RI})), 1e-9)",
            "appends per round"), unit="short"),
        row("Client telemetry (KIP-714)"),
        ts("Client instances and exported series",
           (f"sum(esker_client_telemetry_instances{{{I}}})", "instances"),
           (f"sum(esker_client_telemetry_series{{{I}}})", "series"), w=8),
        ts("Telemetry pushes and refusals",
           (f"sum(rate(esker_client_telemetry_pushes_total{{{I}}}{RI}))", "accepted"),
           (f"sum(rate(esker_client_telemetry_throttled_total{{{I}}}{RI}))", "throttled"),
           (f"sum(rate(esker_client_telemetry_unknown_subscription_total{{{I}}}{RI}))", "stale subscription"),
           (f"sum(rate(esker_client_telemetry_invalid_total{{{I}}}{RI}))", "invalid"),
           (f"sum(rate(esker_client_telemetry_dropped_series_total{{{I}}}{RI}))", "series dropped (cap)"),
           unit="ops", w=16),
        row("Process"),
        ts("CPU", (f"sum(rate(process_cpu_seconds_total{{{I}}}{RI}))", "cpu"), unit="percentunit", w=8),
        ts("Memory",
           (f"sum(process_resident_memory_bytes{{{I}}})", "resident"),
           (f"sum(esker_jemalloc_allocated_bytes{{{I}}})", "jemalloc allocated"),
           (f"sum(esker_jemalloc_active_bytes{{{I}}})", "jemalloc active"),
           (f"sum(esker_jemalloc_resident_bytes{{{I}}})", "jemalloc resident"),
           (f"sum(esker_jemalloc_mapped_bytes{{{I}}})", "jemalloc mapped"), unit="bytes", w=8),
        ts("File descriptors and threads",
           (f"sum(process_open_fds{{{I}}})", "open fds"),
           (f"sum(process_threads{{{I}}})", "threads"), w=8),
        ts("Connections per listener",
           (f"sum by (listener) (kafka_server_socketservermetrics_connections{{{I}}})", "{{listener}}"), w=24,
           h=6),
    ],
)

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, d in [("esker-overview", OVERVIEW), ("esker-topics", TOPICS), ("esker-consumer-groups", GROUPS),
                    ("esker-kinesis", KINESIS), ("esker-internals", INTERNALS)]:
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        print("wrote", os.path.join(OUT, name + ".json"))
