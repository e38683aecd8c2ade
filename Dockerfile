# syntax=docker/dockerfile:1
# The churn CLI, every role in one image: `serve`, `ingest`, `score`, `work`, `train`, `bootstrap`.
# Node 24 runs the TypeScript sources as they are (type stripping), so there is no build step; the
# first stage only installs the production dependencies, which include native builds (DuckDB,
# msgpackr) made for this image's platform.
FROM node:24.11-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts=false --no-audit --no-fund \
 && npm cache clean --force

FROM node:24.11-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cli ./cli
COPY config ./config
COPY core ./core
COPY streams ./streams
COPY schemas ./schemas
COPY lakehouse ./lakehouse
COPY training ./training
COPY scoring ./scoring
# cli/main.ts imports every command, the local-stack ones too, so that module must be there.
COPY stack ./stack
# jemalloc instead of glibc's malloc for every role: DuckDB in ingest allocates and frees blocks
# in patterns that glibc's arenas keep as fragments, so ingest's memory outside DuckDB's own
# account grew 8.5 MB/min under steady load where jemalloc held it flat (bench/soak.ts
# --allocator glibc|jemalloc; RELIABILITY.md, "Soak").
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD=libjemalloc.so.2
# A numeric non-root user, so Kubernetes can check runAsNonRoot without resolving names. The
# root file system is read-only in the pods; everything written goes to mounted volumes (the
# lakehouse, models, the export, /tmp).
USER 10001:10001
EXPOSE 8080
# Meaningful for the API role (`serve`); Kubernetes ignores it and probes /api/v1/ready and
# /api/v1/health itself (k8s/base/api.yaml).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT ?? '8080') + '/api/v1/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "cli/main.ts"]
CMD ["help"]
