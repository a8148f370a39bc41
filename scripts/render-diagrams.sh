#!/usr/bin/env bash
# Regenerates docs/diagrams/ from the lock-sm tables: DOT and Mermaid sources, and SVGs rendered
# with Graphviz (Debian package `graphviz`). A unit test in the cephlock crate fails when the
# committed .dot files no longer match the generator, so run this after changing the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "render-diagrams: install Graphviz first (apt-get install graphviz)" >&2; exit 1; }
cargo build -q -p cephlock
bin=target/debug/cephlock
for m in simplelock scatterlock filelock locallock; do
  "$bin" sm diagram "$m" --format dot > "docs/diagrams/$m.dot"
  "$bin" sm diagram "$m" --format mermaid > "docs/diagrams/$m.mmd"
  dot -Tsvg "docs/diagrams/$m.dot" -o "docs/diagrams/$m.svg"
done
# The architecture picture is drawn by hand (architecture.dot); only its SVG is generated.
dot -Tsvg docs/diagrams/architecture.dot -o docs/diagrams/architecture.svg
echo "render-diagrams: wrote docs/diagrams/{simplelock,scatterlock,filelock,locallock}.{dot,mmd,svg} and architecture.svg"
