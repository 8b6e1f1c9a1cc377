# syntax=docker/dockerfile:1
# Two images from one build. The default target (the last stage) is the production image:
# producer and worker only. `--target sim` is the Flinks simulator for the demo and compose,
# never deployed next to real credentials.
#
#   docker build -t nightly-refresh .                    # production: producer, worker
#   docker build --target sim -t nightly-refresh-sim .   # flinks-sim and its rules
#   docker run --rm nightly-refresh worker --help
#
# Stages: `skeleton` turns the workspace into manifests + empty target roots, so the
# `deps` layer (every crates.io dependency, compiled) is rebuilt only when Cargo.toml,
# Cargo.lock or the set of targets changes, not when code does; `build` compiles producer
# and worker on top of it, `build-sim` adds flinks-sim; `base` is the runtime (CA roots and
# the non-root user, nothing else) that `sim` and `runtime` each add their binaries to.

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
# The simulator's dependencies too: `build-sim` then compiles only its own crate.
# Downloaded crates live in a build cache mount shared by every build of this Dockerfile,
# not in a layer: a Cargo.lock change downloads only the crates that changed.
RUN --mount=type=cache,id=nightly-refresh-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked -p producer -p worker -p flinks-sim --bins

FROM deps AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The context has no .git: pass the revision for nightly_refresh_build_info{git_rev}, e.g.
#   docker build --build-arg NIGHTLY_REFRESH_GIT_REV="$(git rev-parse --short=12 HEAD)" .
ARG NIGHTLY_REFRESH_GIT_REV=unknown
COPY . .
# COPY keeps the context's mtimes, older than the stub build: touch so cargo rebuilds.
# The release profile keeps line tables for profiling here; the image drops them
# (`strip --strip-debug`: symbols stay, so a panic's backtrace still names functions).
RUN --mount=type=cache,id=nightly-refresh-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    find . -path ./target -prune -o -name '*.rs' -print0 | xargs -0 touch \
 && cargo build --release --locked -p producer -p worker --bins \
 && mkdir -p /out \
 && cp target/release/producer target/release/worker /out/ \
 && strip --strip-debug /out/producer /out/worker \
 && /out/producer --help >/dev/null && /out/worker --help >/dev/null

# The same packages as `deps`: cargo unifies dependency features over the packages it
# builds, and flinks-sim alone would need tokio and much else rebuilt with fewer features.
FROM build AS build-sim
# An ARG ends with its stage: declared again, or shared's build script sees the revision
# unset, reruns, and shared, producer and worker are compiled a second time.
ARG NIGHTLY_REFRESH_GIT_REV=unknown
RUN --mount=type=cache,id=nightly-refresh-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked -p producer -p worker -p flinks-sim --bins \
 && mkdir -p /out-sim \
 && cp target/release/flinks-sim /out-sim/ \
 && strip --strip-debug /out-sim/flinks-sim \
 && /out-sim/flinks-sim --help >/dev/null

FROM ${RUNTIME_IMAGE} AS base
# ca-certificates: rediss:// and https:// verify against the system roots (SSL_CERT_FILE
# adds a private CA). Nothing else: no compiler, no package cache.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
USER 10001:10001
ENV LOG_FORMAT=json

# The simulator image (compose's `flinks-sim`, demos): `docker build --target sim`.
FROM base AS sim
COPY --from=build-sim /out-sim/flinks-sim /usr/local/bin/
COPY flinks-sim/rules/ /etc/nightly-refresh/sim-rules/
EXPOSE 8080
CMD ["flinks-sim", "--listen", "0.0.0.0:8080", "--rules", "/etc/nightly-refresh/sim-rules/demo.toml"]

# The production image, the default target: the programs that hold real credentials and
# nothing that answers as Flinks.
FROM base AS runtime
COPY --from=build /out/producer /out/worker /usr/local/bin/
ENV METRICS_ADDR=0.0.0.0:9464
EXPOSE 9464
# Pick the program with the command: `worker`, `producer schedule`, `producer report`.
CMD ["worker"]
