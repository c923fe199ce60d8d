# syntax=docker/dockerfile:1
#
# Corridor's image: one multi-stage build, one image holding all four binaries
#   /usr/local/bin/corridor-gateway, corridor-controller, corridor-dns, corridor-load
# The Helm chart (helm/corridor) runs it as corridor/corridor:<appVersion> and picks the
# binary with each container's command.
#
#   docker build -t registry.example.com/corridor/corridor:0.1.0 .
#
# See docs/install.md. Building needs no network beyond crates.io and the base images.

# The toolchain the project is tested with (workspace rust-version is the minimum).
ARG RUST_VERSION=1.95

# --- build: the four binaries with the release profile ------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# protox compiles the .proto files in Rust, rustls does TLS: no protoc, no OpenSSL.
# The registry and target directories are cache mounts (downloads and unchanged crates
# survive between builds), so the binaries are copied out within the step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p corridor-gateway -p corridor-controller -p corridor-dns -p corridor-load \
 && mkdir -p /out \
 && for bin in corridor-gateway corridor-controller corridor-dns corridor-load; do \
        cp "target/release/${bin}" /out/; \
    done

# --- runtime: glibc and CA certificates, no shell, non-root --------------------------------
# distroless/cc matches the builder's Debian 12 glibc; its "nonroot" user is 65532, the
# UID the chart's securityContext runs as.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# No useful default: the chart (or `docker run ... corridor-<binary> ...`) names one.
CMD ["/usr/local/bin/corridor-gateway", "--help"]
