# collector as a container image (compose.yaml builds it):
#   docker build -t collector .
#   docker run --rm -e COLLECTOR__DATABASE__URL=postgresql://user:pass@host/db collector migrate
# The entrypoint is the `collector` command; the default is `collector run`.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector/ collector/
COPY sql/ sql/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/collector collector
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER collector
WORKDIR /var/lib/collector
EXPOSE 8080
ENTRYPOINT ["collector"]
CMD ["run"]
