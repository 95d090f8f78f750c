"""Decodes OTLP/HTTP trace export bodies with the official opentelemetry-proto package.

Usage: otlp_decode.py ENCODING:FILE ...   (ENCODING is protobuf or json)

Prints one JSON object: {"resources": [...], "spans": [...]}, ids in hex. The protobuf
bodies go through ExportTraceServiceRequest.ParseFromString, the JSON ones through
json_format.ParseDict (which refuses unknown fields), after OTLP's one JSON rule that
protobuf's mapping lacks: trace and span ids are hex, not base64.
"""
import base64
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def hex_ids_to_base64(node):
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            hex_ids_to_base64(item)


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def main():
    resources, spans = [], []
    for arg in sys.argv[1:]:
        encoding, path = arg.split(":", 1)
        data = open(path, "rb").read()
        request = ExportTraceServiceRequest()
        if encoding == "protobuf":
            request.ParseFromString(data)
        else:
            doc = json.loads(data)
            hex_ids_to_base64(doc)
            json_format.ParseDict(doc, request)
        for rs in request.resource_spans:
            resources.append(attributes(rs.resource.attributes))
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append({
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "events": [{"name": e.name, "time": e.time_unix_nano, "attributes": attributes(e.attributes)} for e in s.events],
                        "status": {"code": s.status.code, "message": s.status.message},
                    })
    json.dump({"resources": resources, "spans": spans}, sys.stdout)


if __name__ == "__main__":
    main()
