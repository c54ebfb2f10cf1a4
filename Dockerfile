# Multi-stage build of the same command the README uses: cargo build --release --locked.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Every path the manifest names must be here: it declares the benches (and the test suite's
# dev-dependency on the crate itself), so cargo reads them even for the binary alone.
# scripts/test builds exactly this context (scripts/check-docker-context).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin backstop

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data backstop \
 && mkdir -p /data && chown backstop /data
COPY --from=build /src/target/release/backstop /usr/local/bin/backstop
USER backstop
WORKDIR /data
# Configure with BACKSTOP_* variables and DATABASE_URL (see README, "Configuration").
ENV BACKSTOP_SERVER__LISTEN=0.0.0.0:8080 \
    BACKSTOP_DATA_DIR=/data
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["backstop"]
CMD ["serve"]
