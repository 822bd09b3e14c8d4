# syntax=docker/dockerfile:1
# The taskreset-controller image: one Rust binary on distroless, non-root, nothing else.
# Built without default features: no `sandbox`, no simulator linked in (.ci/production.sh checks it).
#
#   docker build \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t registry.example.com/platform/taskreset-controller:0.1.0 .
#
# Needs BuildKit (the default builder of current Docker and of buildx/Podman) for the cache
# mounts. No image is built or published by this repository's CI: no container engine runs there.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# The git commit, for the taskreset_build_info metric (its git_commit label).
ARG REVISION=unknown
WORKDIR /src
# Symbols are not needed at run time: a smaller image.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    TASKRESET_GIT_COMMIT="${REVISION}" cargo build --release --locked --no-default-features --bin taskreset-controller \
    && install -D -m 0755 target/release/taskreset-controller /out/taskreset-controller \
    && /out/taskreset-controller --version

# distroless/cc: glibc, libgcc, CA certificates and tzdata; no shell, no package manager.
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/taskreset/taskreset-controller
LABEL org.opencontainers.image.title="taskreset-controller" \
      org.opencontainers.image.description="Kubernetes controller that resets Huawei Cloud ROMA Connect FDI combined-task progress, exactly once per TaskReset generation" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/taskreset-controller /usr/local/bin/taskreset-controller
# 65532 is distroless' "nonroot"; the manifests run as this UID with a read-only root file system.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/taskreset-controller"]
CMD ["run"]
