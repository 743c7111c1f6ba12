# Multi-stage build of every Tidemark binary; migrations are compiled into them.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tidemark-hub -p tidemark-worker -p tidemark-app \
 && mkdir /out && cp target/release/hub target/release/app target/release/worker-* /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 tidemark
COPY --from=build /out/ /usr/local/bin/
USER tidemark
EXPOSE 8080 8081
CMD ["hub"]
