# Multi-stage build of the same command the README uses: cargo build --release --locked.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
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
