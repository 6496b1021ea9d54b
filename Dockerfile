# Build: docker build -t agentdesk .
# Run:   docker run --env-file .env -v agentdesk-data:/data agentdesk
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY standins ./standins
COPY migrations ./migrations
COPY src ./src
COPY tests ./tests
RUN cargo build --release --locked --bin agentdesk

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home agentdesk
COPY --from=build /src/target/release/agentdesk /usr/local/bin/agentdesk
USER agentdesk
WORKDIR /data
# SQLite in the data volume by default; set DATABASE_URL=postgres://... for
# PostgreSQL.
ENV DATABASE_URL=sqlite:///data/agentdesk.db
# /healthz, /readyz and /metrics for the orchestrator's probes and scrapers;
# inside the container, 127.0.0.1 would be unreachable from outside.
ENV AGENTDESK_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["agentdesk"]
CMD ["serve"]
