# syntax=docker/dockerfile:1
#
# Image of ecs-sd, the service-discovery sidecar of the Prometheus task.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ecs-sd:latest .
#
# The binary is cross-compiled on the build machine's platform (no emulation), statically
# (CGO_ENABLED=0), and runs on distroless as the unprivileged user nonroot (uid/gid 65532).
#
# Writable config volume: ecs-sd writes ecs-services.json into the volume it shares with the
# Prometheus container (/etc/config in the blog's task definition). That volume must be writable by
# uid 65532, or the container definition must set "user" (the blog's task definition runs the
# sidecar with "user": "root" for this reason). The http_sd endpoint (port 9001) needs no volume.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=docker \
        -X github.com/prometheus/common/version.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)" \
      -o /out/ecs-sd ./cmd/ecs-sd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ecs-sd /bin/ecs-sd
USER nonroot:nonroot
EXPOSE 9001
ENTRYPOINT ["/bin/ecs-sd"]
