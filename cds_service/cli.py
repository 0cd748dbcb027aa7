"""`ivig-cds`: serve the CDS Hooks service, evaluate one request offline, or write the committee's report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigurationError, Settings
from .discovery import service_id
from .errors import RequestError
from .knowledge import DefinitionError, load
from .prefetch import DataUnavailable
from .service import CdsService
from .store import StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivig-cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--trial", action="store_true",
                       help="trial mode (IVIG_CDS_MODE=trial): no JWT needed, loopback only; for trying the service on this machine")
    evaluate = commands.add_parser("evaluate", help="print the CDS Hooks response to a request file, without a server")
    evaluate.add_argument("request", type=Path, help="a CDS Hooks request (JSON)")
    review = commands.add_parser("review", help="write the review document (Markdown) generated from the definitions")
    review.add_argument("--out", type=Path, help="file to write; standard output when omitted")
    export = commands.add_parser("export", help="write the definitions as a transaction Bundle and/or a FHIR package")
    export.add_argument("--bundle", type=Path, help="transaction Bundle file to write")
    export.add_argument("--package", type=Path, help="folder to write the NPM-style FHIR package into")
    report = commands.add_parser("report", help="write the committee's report (cards, feedback, override reasons) as one HTML file")
    report.add_argument("--since", help="first day (YYYY-MM-DD, UTC); default: 90 days before --until")
    report.add_argument("--until", help="last day (YYYY-MM-DD, UTC), included; default: today")
    report.add_argument("--out", type=Path, required=True, help="HTML file to write (self-contained: opens with no network)")
    args = parser.parse_args(argv)
    if args.command == "export" and not (args.bundle or args.package):
        parser.error("export needs --bundle FILE and/or --package DIR")
    try:
        if args.command == "serve":
            return _serve(args.host, args.port, args.workers, trial=args.trial)
        if args.command == "review":
            return _review(args.out)
        if args.command == "export":
            return _export(args.bundle, args.package)
        if args.command == "report":
            return _report(args.since, args.until, args.out)
        return _evaluate(args.request)
    except DefinitionError as exc:
        print(f"ivig-cds: cannot load the definitions: {exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"ivig-cds: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"ivig-cds: card and feedback store: {exc}", file=sys.stderr)
        return 2


def _serve(host: str, port: int, workers: int, *, trial: bool = False) -> int:
    import logging.config
    import os

    from . import jsonlog, metrics
    from .app import create_app
    from .server import run

    logging.config.dictConfig(jsonlog.logging_config())  # start-up messages as JSON lines too
    folder = metrics.use_private_folder()  # before the app and its metrics are made, and before forking
    arbiter = os.getpid()
    try:
        settings = Settings.from_env({**os.environ, "IVIG_CDS_MODE": "trial"} if trial else os.environ)
        settings.check_listen_address(host)
        app = create_app(settings)  # load definitions before forking, so a broken file stops start-up here
        if settings.mode == "trial":
            logging.getLogger(__name__).warning(
                "trial mode: no JWT needed, loopback only; try: curl -s -H 'Content-Type: application/json' "
                "--data @examples/gbs-order-select.json http://%s:%d/cds-services/ivig-order-select", host, port)
        run(app, settings, host=host, port=port, workers=workers, metrics_folder=folder)
    finally:
        if os.getpid() == arbiter:  # a worker leaves through here too (gunicorn exits it with SystemExit)
            metrics.remove_folder(folder)
    return 0


def _export(bundle: Path | None, package: Path | None) -> int:
    from .export import transaction_bundle, write_package

    knowledge = load(Settings.from_env().knowledge_root)
    if bundle is not None:
        bundle.write_text(json.dumps(transaction_bundle(knowledge), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {bundle}", file=sys.stderr)
    if package is not None:
        print(f"wrote {write_package(knowledge, package)}", file=sys.stderr)
    return 0


def _review(out: Path | None) -> int:
    from .review import render

    document = render(load(Settings.from_env().knowledge_root))
    if out is None:
        sys.stdout.write(document)
    else:
        out.write_text(document, encoding="utf-8")
    return 0


def _report(since: str | None, until: str | None, out: Path) -> int:
    """Read-only: the store must exist at the current schema (the service creates and upgrades it)."""
    from . import report
    from .store import Store

    settings = Settings.from_env()
    try:
        period = report.Period.parse(since, until)
    except RequestError as exc:
        print(f"ivig-cds: {exc.reason}", file=sys.stderr)
        return 2
    store = Store(settings.store_url, create=False)
    store.check_current()
    page = report.build(store, period, report.recommendation_labels(load(settings.knowledge_root)))
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({period.since} to {period.until})", file=sys.stderr)
    return 0


def _evaluate(path: Path) -> int:
    body = path.read_bytes()
    try:
        hook = json.loads(body).get("hook")
    except (ValueError, AttributeError):
        hook = None
    settings = Settings.from_env()
    service = CdsService(load(settings.knowledge_root), settings)
    try:
        response = service.call(service_id(hook) if isinstance(hook, str) else "", body)
    except RequestError as exc:
        print(f"ivig-cds: request refused ({exc.status}): {exc.reason}", file=sys.stderr)
        return 1
    except DataUnavailable as exc:
        print(json.dumps(exc.operation_outcome(), indent=2), file=sys.stderr)
        return 1
    print(json.dumps(response, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
