# syntax=docker/dockerfile:1
#
# Fengda as one container: a static Go binary (CGO_ENABLED=0) on a distroless base that
# holds nothing but CA certificates, tzdata and a non-root user (uid 65532).
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t fengda .
#   docker run -p 8080:8080 fengda                    # the demo: memory store, embedded queue
#
# The image is reproducible from this file and the source tree alone: no step reads the
# network except `go mod download`, which go.sum verifies; -trimpath and -buildvcs=false
# keep paths and the checkout's state out of the binary, so the same source, VERSION and
# Go image give the same binary byte for byte. For the same image digest as well, pin
# the two base images by digest (docker buildx imagetools inspect golang:1.26) and build
# with SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" and
# --output type=image,rewrite-timestamp=true (BuildKit 0.13+).

ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=devel
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" -o /out/fengda . \
 && /out/fengda version
# The JetStream file store of queue.mode embedded (./data/jetstream below /app), owned
# by the runtime user so that a fresh volume is writable.
RUN mkdir -p /out/data/jetstream

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=build /out/fengda /usr/local/bin/fengda
COPY --from=build --chown=65532:65532 /out/data /app/data
# config.yaml is read from the working directory; its tenants' knowledge bases are the
# relative paths kb/*.yaml. Mount your own over /app/config.yaml (or pass -config).
COPY config.yaml /app/config.yaml
COPY kb/ /app/kb/
COPY examples/ /app/examples/
USER 65532:65532
# Set here so that `fengda healthcheck` needs no config file to find the server.
ENV FENGDA_SERVER_ADDR=:8080
EXPOSE 8080
VOLUME ["/app/data"]
# distroless has no shell or curl: the binary checks itself (GET /healthz, exit 0 or 1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/fengda", "healthcheck"]
# SIGTERM drains (see README, Operations); give it server.drain_delay +
# server.shutdown_timeout and some: docker stop -t 40, stop_grace_period: 40s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/fengda"]
CMD ["serve"]
