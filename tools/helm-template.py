"""`helm template` through Helm's own Go SDK (helm-python-sdk, pinned in .ci/requirements.txt).

Usage: helm-template.py CHART RELEASE NAMESPACE VALUES_JSON
Prints the rendered manifests (NOTES.txt left out) as one YAML stream on stdout, in the order
of their template names. Run with .venv/bin/python (.ci/venv.sh creates it).
"""
import json
import sys

import helm_python as helm


def main():
    chart_dir, release, namespace, values = sys.argv[1:5]
    with helm.Chart.load(chart_dir) as chart:
        out = chart.render(json.loads(values), name=release, namespace=namespace, is_install=True)
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt") or not text.strip():
            continue
        sys.stdout.write(f"---\n# Source: {name}\n{text.strip()}\n")


if __name__ == "__main__":
    main()
