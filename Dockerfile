# The sluice image: one static binary and the few files it reads, FROM scratch (product.md,
# "Packaging"). The build stage runs the project's own scripts; scripts/image-rootfs.sh says what
# the final image holds, and CI tests that same folder without Docker (tests/rootfs).
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh \
 && scripts/build-static.sh /build \
 && scripts/image-rootfs.sh /rootfs /build/cmd/sluice/sluice

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/sluice"]
