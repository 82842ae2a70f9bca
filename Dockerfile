# cnnd image: built on debian:bookworm, run on debian:bookworm-slim with only the runtime
# libraries, as the non-root user cnnd; the bundled model and config are baked in.
# `make docker` builds and tests it (tests/docker/smoke.sh); README "Deploy" says how to run it.
FROM debian:bookworm AS build
WORKDIR /src
COPY .ci/deps.sh .ci/deps.sh
RUN bash .ci/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY Makefile ./
COPY core core
COPY server server
# OpenBLAS linked statically: only the BLAS code cnnd calls (no LAPACK, no libgfortran), so
# the runtime image needs no libopenblas0 (26 MB in the binary instead of 46 MB of packages).
RUN make -j"$(nproc)" build/cnnd PKG_LIBS="$(pkg-config --libs-only-L openblas) \
        -Wl,-Bstatic -lopenblas -Wl,-Bdynamic $(pkg-config --libs libpng libjpeg zlib libprotobuf-c) -lm" \
 && strip build/cnnd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpng16-16 libjpeg62-turbo libprotobuf-c1 \
        libmicrohttpd12 libjansson4 libinih1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cnnd --no-create-home \
        --shell /usr/sbin/nologin cnnd \
 && mkdir -p /var/lib/cnnd/models /var/lib/cnnd/data \
 && chown -R cnnd:cnnd /var/lib/cnnd
COPY --from=build /src/build/cnnd /usr/local/bin/cnnd
COPY config/cnnd.conf /etc/cnnd/cnnd.conf
COPY config/docker/healthcheck.sh /usr/local/bin/cnnd-healthcheck
COPY --chown=cnnd:cnnd models/repository/ /var/lib/cnnd/models/
# Every option can be set with CNND_<NAME> (docs/server.md "Configuration").  The admin
# listener needs its bearer token (created in admin_token_file when missing, or
# CNND_ADMIN_TOKEN); CNND_ADMIN_LISTEN=off turns it off.
ENV CNND_MODEL_REPOSITORY=/var/lib/cnnd/models \
    CNND_DATA_ROOT=/var/lib/cnnd/data \
    CNND_ADMIN_TOKEN_FILE=/var/lib/cnnd/admin.token \
    CNND_ADMIN_LISTEN=0.0.0.0 \
    CNND_POLL_INTERVAL_S=10
USER cnnd:cnnd
WORKDIR /var/lib/cnnd
VOLUME ["/var/lib/cnnd/models", "/var/lib/cnnd/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cnnd-healthcheck"]
# SIGTERM drains: requests in flight finish, then cnnd exits 0 (within drain_timeout_ms).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cnnd"]
CMD ["--config", "/etc/cnnd/cnnd.conf"]
