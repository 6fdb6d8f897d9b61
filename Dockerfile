# tollgate container image.
#
#   docker build -t tollgate .
#   docker run -p 8080:8080 -v tollgate-data:/data tollgate            # SQLite under /data
#   docker run --rm -e DATABASE_URL=postgres://... tollgate migrate   # migrations only
#
# Without a volume on /data (or at least on /data/keys) every new container generates
# new signing keys, which invalidates all tokens issued before. See docker-compose.yml
# for PostgreSQL.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build

# The slim Rust image already has gcc and libc6-dev, which the bundled SQLite
# (libsqlite3-sys) and the bundled libpq (pq-src, plain C compiled through the `cc`
# crate: no bison, flex, perl or make) need. pq-src builds libpq with OpenSSL support
# through openssl-sys, which links the system OpenSSL: hence pkg-config and libssl-dev
# here and libssl3 in the runtime stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# 1. Dependencies only, against dummy sources, so that this layer stays cached until a
#    manifest or Cargo.lock changes. Cargo loads the whole workspace (the members
#    crates/tollgate-verify and crates/tollgate-django-hash too) and every target a manifest names ([[bench]] auth,
#    [[example]] resource_server), so each of them gets a dummy file.
#    scripts/check-docker-context.py replays these steps to check that.
COPY Cargo.toml Cargo.lock ./
COPY crates/tollgate-verify/Cargo.toml crates/tollgate-verify/
COPY crates/tollgate-django-hash/Cargo.toml crates/tollgate-django-hash/
RUN mkdir -p src benches crates/tollgate-verify/src crates/tollgate-verify/examples \
        crates/tollgate-django-hash/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/auth.rs \
    && echo 'fn main() {}' > crates/tollgate-verify/examples/resource_server.rs \
    && touch src/lib.rs crates/tollgate-verify/src/lib.rs crates/tollgate-django-hash/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src benches crates/tollgate-verify/src crates/tollgate-verify/examples \
        crates/tollgate-django-hash/src

# 2. The real crates. The migrations are embedded at compile time
#    (embed_migrations!("migrations/sqlite") and ("migrations/postgres")), and so are the
#    demo page and the built TypeScript client (include_str!), so they must be present
#    before this build. `touch` makes sure cargo sees the real sources as newer than the
#    dummy ones whatever timestamps COPY gave them.
COPY migrations ./migrations
COPY clients/js/demo/index.html ./clients/js/demo/index.html
COPY clients/js/dist/index.js ./clients/js/dist/index.js
COPY benches ./benches
COPY crates ./crates
COPY src ./src
RUN touch src/main.rs src/lib.rs crates/tollgate-verify/src/lib.rs crates/tollgate-django-hash/src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/tollgate /usr/local/bin/tollgate

# ---------------------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# libssl3: the bundled libpq links OpenSSL dynamically (SQLite and libpq themselves are
# linked statically). ca-certificates: TLS to PostgreSQL with sslrootcert=system.
# curl: the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user. /data/keys is created here, owned by it and private, so that an
# empty named volume mounted on /data or /data/keys is initialised with that ownership.
RUN groupadd --system --gid 10001 tollgate \
    && useradd --system --uid 10001 --gid tollgate --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tollgate \
    && mkdir -p /data/keys \
    && chown -R tollgate:tollgate /data \
    && chmod 0700 /data/keys

COPY --from=build /usr/local/bin/tollgate /usr/local/bin/tollgate

WORKDIR /data

ENV BIND_ADDR=0.0.0.0:8080 \
    JWT_KEYS_DIR=/data/keys \
    DATABASE_URL=sqlite:///data/tollgate.db \
    RUST_LOG=info

EXPOSE 8080

USER tollgate:tollgate

# Liveness only (/healthz does not touch the database; /readyz does). The port follows
# BIND_ADDR if it is overridden.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${BIND_ADDR##*:}/healthz" > /dev/null || exit 1

ENTRYPOINT ["tollgate"]
CMD ["serve"]
