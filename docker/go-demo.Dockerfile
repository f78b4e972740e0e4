# The Go demo program that Kiln scrapes (net/http/pprof, CPU work, allocations, contention).
FROM golang:1.19-bookworm AS build
WORKDIR /src
COPY demo/go-target ./
RUN CGO_ENABLED=0 go build -o /go-target .

FROM debian:bookworm-slim
COPY --from=build /go-target /usr/local/bin/go-target
EXPOSE 6060
CMD ["go-target", "-addr", "0.0.0.0:6060"]
