# syntax=docker/dockerfile:1
# One image, every binary: producer, worker, flinks-sim (issue 9).
#
#   docker build -t nightly-refresh .
#   docker run --rm nightly-refresh worker --help
#
# Stages: `skeleton` turns the workspace into manifests + empty target roots, so the
# `deps` layer (every crates.io dependency, compiled) is rebuilt only when Cargo.toml,
# Cargo.lock or the set of targets changes, not when code does; `build` compiles the
# workspace on top of it; the runtime image has the binaries, CA roots and nothing else.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS skeleton
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# Keep manifests; replace every target root (lib, main, bins, tests, benches) by a stub.
RUN set -eu; mkdir /skeleton; \
    find . -path ./target -prune -o \( -name Cargo.toml -o -name Cargo.lock \) -print0 \
      | xargs -0 cp --parents -t /skeleton/; \
    find . -path ./target -prune -o -name '*.rs' \( -path '*/src/lib.rs' -o -path '*/src/main.rs' \
         -o -path '*/src/bin/*' -o -path '*/tests/*' -o -path '*/benches/*' -o -path '*/examples/*' \) -print \
      | while read -r f; do \
          mkdir -p "/skeleton/$(dirname "$f")"; \
          case "$f" in */lib.rs) : > "/skeleton/$f" ;; *) echo 'fn main() {}' > "/skeleton/$f" ;; esac; \
        done

FROM ${RUST_IMAGE} AS deps
WORKDIR /src
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked -p producer -p worker -p flinks-sim --bins

FROM deps AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY . .
# COPY keeps the context's mtimes, older than the stub build: touch so cargo rebuilds.
RUN find . -path ./target -prune -o -name '*.rs' -print0 | xargs -0 touch \
 && cargo build --release --locked -p producer -p worker -p flinks-sim --bins \
 && mkdir -p /out \
 && cp target/release/producer target/release/worker target/release/flinks-sim /out/ \
 && /out/producer --help >/dev/null && /out/worker --help >/dev/null && /out/flinks-sim --help >/dev/null

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: rediss:// and https:// verify against the system roots (SSL_CERT_FILE
# adds a private CA). Nothing else: no compiler, no package cache.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /out/producer /out/worker /out/flinks-sim /usr/local/bin/
COPY flinks-sim/rules/ /etc/nightly-refresh/sim-rules/
USER 10001:10001
ENV LOG_FORMAT=json \
    METRICS_ADDR=0.0.0.0:9464
EXPOSE 9464
# Pick the program with the command: `worker`, `producer schedule`, `flinks-sim ...`.
CMD ["worker"]
