#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) and etcd from their Go modules, pinned in scripts/controlplane/go.mod, into a cache folder
# keyed by the release and a hash of the module files. Prints the folder's path on stdout; progress
# goes to stderr. A cache hit costs nothing; a fresh machine's first build takes minutes (README).
# Needs only the machine's Go (>= the go line of scripts/controlplane/go.mod) and the Go module proxy.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="$HERE/controlplane"
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$MODULE/go.mod")"
KEY="$(cat "$MODULE/go.mod" "$MODULE/go.sum" "$MODULE/etcd/main.go" | sha256sum | cut -c1-12)"
CACHE="${WALKME_DIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/walkme-dic}"
OUT="$CACHE/controlplane/$K8S_VERSION-$KEY"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

complete() { for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done; }

if ! complete; then
  command -v go >/dev/null || { echo "build-controlplane: Go is needed (go.mod asks for $(awk '$1=="go"{print $2}' "$MODULE/go.mod"))" >&2; exit 1; }
  echo "build-controlplane: building Kubernetes $K8S_VERSION and etcd from Go modules into $OUT" >&2
  echo "build-controlplane: the first build on a fresh machine takes several minutes (README: 'Timings')" >&2
  partial="$OUT.partial.$$"
  mkdir -p "$partial"
  trap 'rm -rf "$partial"' EXIT
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  log="$partial/build.log"
  started=$SECONDS
  (cd "$MODULE" && go build -v -trimpath -ldflags "$ldflags" -o "$partial/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd) >"$log" 2>&1 &
  builder=$!
  while kill -0 "$builder" 2>/dev/null; do
    sleep 15
    kill -0 "$builder" 2>/dev/null &&
      echo "build-controlplane: $(grep -vc '^go: ' "$log" || true) packages compiled, $((SECONDS - started))s" >&2
  done
  if ! wait "$builder"; then
    tail -n 30 "$log" >&2
    echo "build-controlplane: go build failed (whole log: $log)" >&2
    trap - EXIT
    exit 1
  fi
  rm -f "$log"
  mkdir -p "$(dirname "$OUT")"
  rm -rf "$OUT" && mv "$partial" "$OUT"
  trap - EXIT
  echo "build-controlplane: built in $((SECONDS - started))s" >&2
fi
echo "$OUT"
