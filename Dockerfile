# syntax=docker/dockerfile:1
# Build stage: the whole workspace, optimized.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libopus-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# BuildKit caches the registry and the build directory between builds, so a
# source change recompiles Sori's crates, not every dependency.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sori \
 && install -m 0755 target/release/sori /usr/local/bin/sori

# Runtime stage: the binary, libopus, CA certificates, a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sori --create-home sori
COPY --from=build /usr/local/bin/sori /usr/local/bin/sori
USER sori
WORKDIR /var/lib/sori
ENV SORI_DATA_DIR=/var/lib/sori/data \
    SORI_LISTEN=0.0.0.0:8080 \
    SORI_LOG_FORMAT=json
VOLUME ["/var/lib/sori/data"]
EXPOSE 8080
# The runtime image has no curl: the binary asks its own /readyz.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["sori", "healthcheck"]
ENTRYPOINT ["sori"]
CMD ["serve"]
