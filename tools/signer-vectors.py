#!/usr/bin/env python3
"""SDK-HMAC-SHA256 test vectors produced by the official Huawei Cloud SDK's own signer.

Usage (in a virtualenv with huaweicloudsdkcore==3.1.219, as pinned in .ci/requirements.txt):

    python tools/signer-vectors.py > tests/data/signer-vectors.json   # regenerate
    python tools/signer-vectors.py --check tests/data/signer-vectors.json  # CI: compare

Each vector is signed through `BasicCredentials.sign_request`, which adds `X-Project-Id` and
(for temporary credentials) `X-Security-Token` and then calls `huaweicloudsdkcore.signer.Signer`,
with a fixed `X-Sdk-Date`. The canonical request and the string to sign are captured from
the SDK's own methods while it signs. The Rust tests (signer/tests/sdk_vectors.rs) check that
roma-signer produces the same canonical request, string to sign and signature, and that its
verifier accepts the SDK's signature. All keys below are made up.
"""

import argparse
import copy
import difflib
import json
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

SDK_VERSION = "3.1.219"

AK = "HPUAEXAMPLEAK0000002"
SK = "ExampleSecretKey0000000000000000000000002"
PROJECT = "0605767f2f00d5762fe0c01f2a1d6d45"
HOST = "roma.ap-southeast-1.myhuaweicloud.com"
DATE = "20240301T120000Z"
JSON_TYPE = "application/json;charset=UTF-8"

RESET = "/v2/{p}/fdi/instances/{i}/multi-tasks/{t}/reset"


def reset_path(instance, task, project=PROJECT):
    return RESET.format(p=project, i=instance, t=task)


# name, method, path, query (list of pairs), headers (ordered), body, security token
CASES = [
    {
        "name": "reset with date_from, as the SDK serialises the body",
        "method": "POST",
        "path": reset_path("fae7ff6c-8e07-4cf8-9e67-589cab2f017c", "15366328208d4d77b76532fe9f4006a6"),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": '{"date_from": 1709294400000}',
    },
    {
        "name": "reset without date_from: body {}",
        "method": "POST",
        "path": reset_path("fae7ff6c-8e07-4cf8-9e67-589cab2f017c", "15366328208d4d77b76532fe9f4006a6"),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": "{}",
    },
    {
        "name": "empty body",
        "method": "POST",
        "path": reset_path("inst-1", "task_1"),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": "",
    },
    {
        "name": "query string with several keys, a repeated key and values needing encoding",
        "method": "GET",
        "path": "/v2/{p}/fdi/instances/inst-1/multi-tasks".format(p=PROJECT),
        "query": [
            ["offset", "0"],
            ["limit", "10"],
            ["name", "orders task/ü+*"],
            ["tag", "b"],
            ["tag", "a"],
            ["a~b", "x.y_z-1"],
        ],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": "",
    },
    {
        "name": "path segments needing percent-encoding (raw)",
        "method": "POST",
        "path": "/v2/{p}/fdi/instances/inst 1/multi-tasks/täsk+1*/reset".format(p=PROJECT),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": "{}",
    },
    {
        "name": "path segments needing percent-encoding (already encoded, with an encoded slash)",
        "method": "POST",
        "path": "/v2/{p}/fdi/instances/inst%201/multi-tasks/a%2Fb%7Ec/reset".format(p=PROJECT),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": "{}",
    },
    {
        "name": "temporary credentials: X-Security-Token",
        "method": "POST",
        "path": reset_path("ce9dfd5c-b3d1-4c60-a7c8-0d1a1a5c8e2b", "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6"),
        "query": [],
        "headers": [["Content-Type", JSON_TYPE]],
        "body": '{"date_from": 0}',
        "security_token": "ExampleSecurityToken0002-with/slash+plus=",
    },
    {
        "name": "non-JSON content type: unsigned payload",
        "method": "PUT",
        "path": "/v1/objects/report.txt",
        "query": [],
        "headers": [["Content-Type", "text/plain"]],
        "body": "hello, world\n",
    },
    {
        "name": "underscore headers are not signed; values are trimmed",
        "method": "POST",
        "path": reset_path("inst-2", "task-2"),
        "query": [["nocatalog", "true"]],
        "headers": [
            ["Content-Type", JSON_TYPE],
            ["X_Trace_Id", "abc"],
            ["X-Custom", "  spaced value\t"],
            ["User-Agent", "taskreset-controller/0.1.0"],
        ],
        "body": '{"date_from": 1630052714000}',
    },
]


class _Capture:
    """Records what the SDK's Signer computes while it signs."""

    def __init__(self):
        self.values = {}
        self._orig_cr = Signer._process_canonical_request
        self._orig_sts = Signer._process_string_to_sign

    def __enter__(self):
        capture = self

        def canonical_request(signer, request, signed_headers):
            out = capture._orig_cr(signer, request, signed_headers)
            capture.values["canonical_request"] = out
            return out

        def string_to_sign(signer, canonical, time):
            out = capture._orig_sts(signer, canonical, time)
            capture.values["string_to_sign"] = out
            return out

        Signer._process_canonical_request = canonical_request
        Signer._process_string_to_sign = string_to_sign
        return self

    def __exit__(self, *exc):
        Signer._process_canonical_request = self._orig_cr
        Signer._process_string_to_sign = self._orig_sts
        return False


def vector(case):
    headers = {name: value for name, value in case["headers"]}
    headers["X-Sdk-Date"] = DATE
    request = SdkRequest(
        method=case["method"],
        schema="https",
        host=HOST,
        resource_path=case["path"],
        query_params=[tuple(pair) for pair in copy.deepcopy(case["query"])],
        header_params=headers,
        body=case["body"].encode("utf-8"),
    )
    credentials = BasicCredentials(AK, SK, PROJECT)
    token = case.get("security_token")
    if token is not None:
        credentials = credentials.with_security_token(token)
    with _Capture() as capture:
        signed = credentials.sign_request(request)
    authorization = signed.header_params["Authorization"]
    return {
        "name": case["name"],
        "access_key": AK,
        "secret_key": SK,
        "security_token": token,
        "project_id": PROJECT,
        "host": HOST,
        "sdk_date": DATE,
        "method": case["method"],
        "path": case["path"],
        "query": case["query"],
        "headers": case["headers"],
        "body": case["body"],
        "expected": {
            "canonical_request": capture.values["canonical_request"],
            "string_to_sign": capture.values["string_to_sign"],
            "signed_headers": authorization.split("SignedHeaders=")[1].split(",")[0],
            "signature": authorization.rsplit("Signature=", 1)[1],
            "authorization": authorization,
            "uri": signed.uri,
        },
    }


def generate():
    return {
        "generator": "tools/signer-vectors.py with huaweicloudsdkcore " + SDK_VERSION,
        "vectors": [vector(case) for case in CASES],
    }


def render(data):
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="FILE", help="compare FILE with freshly generated vectors")
    args = parser.parse_args()
    fresh = render(generate())
    if args.check is None:
        sys.stdout.write(fresh)
        return 0
    with open(args.check, encoding="utf-8") as f:
        committed = f.read()
    if json.loads(committed) == json.loads(fresh):
        print("signer vectors: %s matches huaweicloudsdkcore %s" % (args.check, SDK_VERSION))
        return 0
    sys.stderr.write("signer vectors: %s differs from what the SDK produces:\n" % args.check)
    sys.stderr.writelines(difflib.unified_diff(
        committed.splitlines(True), fresh.splitlines(True), args.check, "generated"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
