#!/usr/bin/env bash
# Debian packages the test suite and benchmarks use (see TESTBED): the OCI
# runtime, CNI plugins, a real registry, busybox for test images, and
# containerd as the reference the benchmarks compare with; mount (losetup) and
# e2fsprogs for the power-cut test's loop-mounted ext4 root; faketime (libfaketime)
# for the clock-jump test; zsh and fish so the completion scripts are loaded by
# the shells they are for; golang-go and golang-google-grpc-dev (grpc-go 1.33) build the
# real grpc-go client of test/e2e/grpc_clients.test.ts, which sends the socket path as
# its HTTP/2 :authority as kubelets before 1.31 do.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  runc containernetworking-plugins docker-registry busybox-static \
  containerd skopeo iproute2 iptables ca-certificates openssl mount e2fsprogs faketime \
  zsh fish golang-go golang-google-grpc-dev >/dev/null
echo "test dependencies installed: $(runc --version | head -1), $(busybox | head -1 | cut -c1-40)"
