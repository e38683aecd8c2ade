#!/usr/bin/env bash
# Ingest and scorer throughput with one and with two consumer instances. Needs the local stack
# (`npx churn stack up`). Usage: k8s/scale/measure.sh [subscribers] [events]  (20000 200000)
#
# Traffic is produced once into topics of this run. For each measurement the consumers start
# first on empty topics of their own, the script waits until their group is Stable with every
# instance assigned partitions, and then copies the preloaded messages in, partition for
# partition (kafka-tools.mjs). Throughput is messages over the time from the start of the copy to
# the group's committed lag reaching zero. Starting consumers on preloaded topics instead lets the
# first instance take every partition before the second has joined, which measures start-up,
# not scaling.
#
# Two ingest processes in one group need two DuckDB files (one writer per file): each gets its own
# DUCKDB_PATH, the sharding story of k8s/README.md (one lakehouse per partition group).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$PATH"
SUBSCRIBERS=${1:-20000}
EVENTS=${2:-200000}
RUN=scale-$(date +%s)
DIR=$(mktemp -d "/tmp/churn-$RUN-XXXX")
TOOLS=k8s/scale/kafka-tools.mjs
export TOPIC_PARTITIONS=6 LOG_LEVEL=warn LOG_FORMAT=json MODEL_DIR=$DIR/models OUTBOX_DIR=$DIR/outbox
echo "run $RUN in $DIR; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
now_ms () { date +%s%3N; }
STREAMS="billing network device crm"

echo "== produce $EVENTS events for $SUBSCRIBERS subscribers into $RUN.src.*"
TOPIC_BILLING=$RUN.src.billing TOPIC_NETWORK=$RUN.src.network TOPIC_DEVICE=$RUN.src.device TOPIC_CRM_OUTCOMES=$RUN.src.crm \
  TOPIC_FEATURES=$RUN.src.features TOPIC_CHURN_RISK=$RUN.src.risk \
  node cli/main.ts produce --subscribers "$SUBSCRIBERS" --events "$EVENTS" --seed 11 | tail -2
TOTAL=$(node $TOOLS count $(for s in $STREAMS; do echo "$RUN.src.$s"; done))
echo "source messages: $TOTAL"

# ingest_run <instances> <tag>: N ingest processes in one group, one DuckDB file each.
ingest_run () {
  local n=$1 tag=$2 pids=() start end pairs
  pairs=$(for s in $STREAMS; do echo "$RUN.src.$s=$RUN.$tag.$s"; done)
  node $TOOLS create $pairs "$RUN.src.billing=$RUN.$tag.features"
  for i in $(seq 1 "$n"); do
    TOPIC_BILLING=$RUN.$tag.billing TOPIC_NETWORK=$RUN.$tag.network TOPIC_DEVICE=$RUN.$tag.device TOPIC_CRM_OUTCOMES=$RUN.$tag.crm \
      TOPIC_FEATURES=$RUN.$tag.features TOPIC_CHURN_RISK=$RUN.$tag.risk INGEST_GROUP_ID=$RUN-ingest-$tag REDIS_KEY_PREFIX=$RUN-$tag \
      DUCKDB_PATH=$DIR/$tag-$i.duckdb node cli/main.ts ingest > "$DIR/ingest-$tag-$i.out" 2> "$DIR/ingest-$tag-$i.err" &
    pids+=($!)
  done
  node $TOOLS wait-members "$RUN-ingest-$tag" "$n"
  start=$(now_ms)
  node $TOOLS copy $pairs
  node $TOOLS wait-lag "$RUN-ingest-$tag" $(for s in $STREAMS; do echo "$RUN.$tag.$s"; done)
  end=$(now_ms)
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
  echo "ingest x$n: $TOTAL messages in $(( end - start )) ms = $(( TOTAL * 1000 / (end - start) )) msg/s; per instance (batches messages bronze silver quarantined dead-lettered changelog lag seconds):"
  for i in $(seq 1 "$n"); do tail -1 "$DIR/ingest-$tag-$i.out"; done
}

# score_run <instances> <tag>: N scorers in one group, on a copy of ingest x1's changelog.
score_run () {
  local n=$1 tag=$2 pids=() start end records
  node $TOOLS create "$RUN.one.features=$RUN.$tag.features"
  for i in $(seq 1 "$n"); do
    SCORER_GROUP_ID=$RUN-scorer-$tag TOPIC_FEATURES=$RUN.$tag.features TOPIC_CHURN_RISK=$RUN.$tag.risk REDIS_KEY_PREFIX=$RUN-$tag \
      TOPIC_BILLING=$RUN.$tag.billing TOPIC_NETWORK=$RUN.$tag.network TOPIC_DEVICE=$RUN.$tag.device TOPIC_CRM_OUTCOMES=$RUN.$tag.crm \
      node cli/main.ts score > "$DIR/score-$tag-$i.out" 2> "$DIR/score-$tag-$i.err" &
    pids+=($!)
  done
  node $TOOLS wait-members "$RUN-scorer-$tag" "$n"
  start=$(now_ms)
  node $TOOLS copy "$RUN.one.features=$RUN.$tag.features"
  node $TOOLS wait-lag "$RUN-scorer-$tag" "$RUN.$tag.features"
  end=$(now_ms)
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
  records=$(node $TOOLS count "$RUN.$tag.features")
  echo "score x$n: $records changelog records in $(( end - start )) ms = $(( records * 1000 / (end - start) )) rec/s"
}

echo "== ingest, one instance";  ingest_run 1 one
echo "== ingest, two instances"; ingest_run 2 two
echo "== train a model on the one-instance lakehouse (the scorer needs one)"
DUCKDB_PATH=$DIR/one-1.duckdb node cli/main.ts train --trees 50 --folds 0 | tail -1
echo "== score, one instance";  score_run 1 sone
echo "== score, two instances"; score_run 2 stwo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); logs in $DIR (topics $RUN.* left for inspection)"
