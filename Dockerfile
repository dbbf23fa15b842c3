# Multi-stage: a static, cgo-free binary on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/outreach ./cmd/outreach

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/outreach /usr/local/bin/outreach
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
# The binary probes itself: distroless has no shell or curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/outreach", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/outreach"]
CMD ["serve"]
