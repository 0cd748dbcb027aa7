# The IVIG-CDS service: gunicorn on port 8080, production mode unless IVIG_CDS_MODE says otherwise.
#   docker build -t ivig-cds . && docker run -p 8080:8080 -e IVIG_CDS_TRUSTED_ISSUERS=... ivig-cds
# docker-compose.yml runs it in development mode next to a HAPI FHIR server holding the definitions.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The package and its pinned dependencies first, so that editing a definition does not reinstall them.
COPY pyproject.toml ./
COPY cds_service ./cds_service
RUN pip install --no-cache-dir . && rm -rf build ivig_cds.egg-info

# The definitions are data next to the code, not part of the installed package: a non-editable install
# looks for them beside site-packages, so say where they are.
COPY plandefinitions ./plandefinitions
COPY valuesets ./valuesets
COPY tools/load_definitions.py ./tools/load_definitions.py
ENV IVIG_CDS_KNOWLEDGE_ROOT=/app

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ivig \
    && install -d -o 10001 -m 700 /var/lib/ivig-cds
# The card and feedback store (a SQLite file): mount a volume here to keep it, or set a postgresql:// URL.
ENV IVIG_CDS_STORE_URL=sqlite:////var/lib/ivig-cds/store.sqlite3
VOLUME ["/var/lib/ivig-cds"]
USER 10001

EXPOSE 8080
# Liveness: /healthz answers 200 with no credential whatever the settings (discovery may be set to need a JWT), and
# only when a worker answers HTTP, which an open port alone does not prove. urlopen raises on any other status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
CMD ["ivig-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
